"""The FPGA's top level: receive path, book, trade path, CSR bank, control endpoint,
transmit arbiter.

What the Verilator model (``sim/topsim.py``, ``t2t sim``) and a board build start from.
Turn it into Verilog with ``gateware.export.to_verilog`` (always-ready streams).
"""

from amaranth import Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tick2trade.gateware.book import Book
from tick2trade.gateware.control.control import ControlEndpoint
from tick2trade.gateware.control.csr import CsrBank
from tick2trade.gateware.control.events import BookTap, EventArbiter, TradeTap
from tick2trade.gateware.interfaces import GAP_LAYOUT, RECORD_BITS
from tick2trade.gateware.registers import RegisterBlock
from tick2trade.gateware.trade.eth_tx import TxArbiter
from tick2trade.protocol import control as proto
from tick2trade.gateware.models.phy import mac as mac_model
from tick2trade.gateware.models.trade import risk as trade
from tick2trade.protocol.regmap import RegisterMap
from tick2trade.gateware.models.rx.eth_rx import RxConfig
from tick2trade.gateware.models.rx.rx_path import EVENT_DEPTH
from tick2trade.gateware.trade.ouch_rx import OuchRx
from tick2trade.gateware.trade.ouch_tx import OuchTx
from tick2trade.gateware.trade.risk import Risk
from tick2trade.gateware.rx.rx_path import RxPath
from tick2trade.gateware.trade.strategy import Strategy
from tick2trade.gateware.stream import beat_layout
from tick2trade.gateware.trade.telemetry import Telemetry

DEFAULT_MAC = 0x02_00_00_00_00_02
# Transmit arbiter inputs, highest priority first (orders, then control replies).
TX_ORDERS, TX_CONTROL = 0, 1
ALARMS = ("gap_overflow", "event_overflow", "control_drop", "kill", "book_overflow",
          "trade_overflow")


class Top(wiring.Component):
    """Everything between the MAC and the host.

    Blocks are added in pipeline order and each declares its registers next to itself
    (``RxPath.registers``, ``ControlEndpoint.registers``); ``__init__`` collects them in
    address order — ``sys``, ``ctl``, ``rx``, ``book``, ``strategy``, ``risk``,
    ``ouch_tx``, ``telemetry``, ``mac``, ``ouch_rx``, ``book_stream``, ``trade_stream`` —
    into ``self.map``; a block added later appends its ``RegisterBlock`` at the end (no
    address moves).

    The trade path: the decoder's events (before the receive FIFO), its early events and
    open message's symbol (the fast path) and the book's updates feed ``Strategy``; its intents pass ``Risk``; passed orders become frames in
    ``OuchTx``, which has the ``TX_ORDERS`` input of ``TxArbiter``. ``Telemetry`` stamps
    them.

    The venue's answers come back to ``rx.ctl_ip`` : ``ouch_tx.src_port``; ``OuchRx``
    parses them, keeps the gate's positions and open exposure (``Risk.answers``) and
    sends one record per answer on the event channel, taking turns with the gap
    reports (each has a FIFO register, ``rx.gaps`` and ``ouch_rx.answers``, for when
    the channel is off). ``BookTap`` copies the updates the strategy takes into book
    records (with ``book_stream.enable``), which go when none of the others waits
    (``EventArbiter``); ``TradeTap`` makes a trade record of each print the book sees
    (``Book.prints``: E at the order's price, C, P; with ``trade_stream.enable``), which
    go before the book records.

    ``sys`` registers: ``id`` (``models.control.DEVICE_ID``), ``map_hash`` (the map's
    hash, so the host can tell whether it holds this bitstream's map), ``cycles`` (free-
    running, 64-bit: read the low word, then the high word, and read again if the low word
    wrapped), ``scratch`` (rw, for link tests) and ``alarms`` (w1c: a gap report or an
    event was lost to a full FIFO, a control frame was dropped, the risk gate's kill
    switch went on or off, a book record or a print was lost to its tap's full FIFO).

    Parameters
    ----------
    data_width, symbols, locates, event_depth, gap_depth : as for ``RxPath``.
    config : RxConfig
        Reset values of the receive path's configuration (feeds, control address).
    mac : int
        Reset value of the endpoint's Ethernet address.

    Members
    -------
    mac_rx : In(stream, always ready) — frames from the MAC, without FCS; ``abort`` on a
        frame's last beat says the MAC found it bad (FCS, runt, PHY error). The receive
        path has acted on its bytes already (cut-through); a control request in it is
        dropped (``ctl.counters.bad_frame``).
    mac_tx : Out(stream) — whole frames to the MAC, without FCS.
    kill : Out(1) — the risk gate's kill switch is on (a board lights a LED with it).
    mac_counters : In(StructLayout) — ``models.mac.COUNTERS`` from the board's MAC, shown
        as the ``mac`` registers (0 in the virtual FPGA, which has no MAC).
    book : dict
        ``Book`` parameters other than ``symbols`` (default: the shipped size).
    limits : models.trade.Limits
        Reset values of the risk registers (default: every check off).
    """

    def __init__(self, data_width: int = 64, symbols: int = 64, locates: int = 16384,
                 event_depth: int = EVENT_DEPTH, gap_depth: int = 16, config: RxConfig | None = None,
                 mac: int = DEFAULT_MAC, book: dict | None = None,
                 limits: trade.Limits | None = None):
        self.data_width = data_width
        self.symbols = symbols
        self.book = Book(symbols, **(book or {}))
        super().__init__({
            "mac_rx": In(stream.Signature(beat_layout(data_width, abort=1),
                                          always_ready=True)),
            "mac_tx": Out(stream.Signature(beat_layout(data_width))),
            "kill": Out(1),
            "mac_counters": In(data.StructLayout({n: 32 for n in mac_model.COUNTERS})),
        })
        self.rx = RxPath(data_width, symbols=symbols, locates=locates,
                         event_depth=event_depth, gap_depth=gap_depth)
        self.control = ControlEndpoint(data_width, frame_verdict=True)
        self.strategy = Strategy(symbols, n=self.book.n)
        self.risk = Risk(symbols)
        self.ouch_tx = OuchTx(data_width, symbols)
        self.telemetry = Telemetry(symbols)
        self.ouch_rx = OuchRx(data_width, symbols)
        self.answer_register = stream.Signature(RECORD_BITS).create()
        self.tx_arbiter = TxArbiter(data_width, inputs=2)
        self.gap_register = stream.Signature(GAP_LAYOUT).create()
        self.book_tap = BookTap(symbols, self.book.n)
        self.trade_tap = TradeTap(symbols)
        self.event_arbiter = EventArbiter()
        self.cycles = Signal(64)
        self.map_hash = Signal(32)
        self.scratch = Signal(32)
        self.alarm_set = Signal(len(ALARMS))
        system = RegisterBlock("sys", "Identity, the map's hash, the cycle counter, alarms.")
        system.ro("id", Const(proto.DEVICE_ID, 32), "device identity: 0x54325400 + protocol version")
        system.ro("map_hash", self.map_hash, "32 bits of the SHA-256 of this register map")
        system.ro("cycles", self.cycles, "free-running clock cycle counter")
        system.rw("scratch", self.scratch, "free for the host (link tests)")
        system.w1c("alarms", self.alarm_set, "sticky: " + ", ".join(
            f"bit {i} {name}" for i, name in enumerate(ALARMS)))
        self.bank = CsrBank([
            system,
            self.control.registers(mac),
            self.rx.registers(self.gap_register, config),
            self.book.registers(),
            self.strategy.registers(),
            self.risk.registers(limits),
            self.ouch_tx.registers(),
            self.telemetry.registers(),
            self._mac_registers(),
            self.ouch_rx.registers(self.answer_register),
            self.book_tap.registers(),
            self.trade_tap.registers(),
        ])
        self.map = self.bank.map

    def _mac_registers(self) -> RegisterBlock:
        regs = RegisterBlock("mac", "The board's Ethernet MAC: frames and why some were bad.")
        regs.struct("counters", self.mac_counters, "ro", "32-bit wrapping counter")
        return regs

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = self.rx
        m.submodules.control = ep = self.control
        m.submodules.csr = self.bank
        m.submodules.tx_arbiter = arb = self.tx_arbiter

        mac = self.mac_rx
        m.d.comb += [rx.mac.valid.eq(mac.valid), *(getattr(rx.mac.payload, k).eq(
            getattr(mac.payload, k)) for k in ("data", "be", "first", "last"))]
        # eth_rx is 1 cycle deep: the frame's end, a cycle late, never precedes the last
        # beat of a control datagram it carried
        frame_end, frame_abort = Signal(), Signal()
        m.d.sync += [frame_end.eq(mac.valid & mac.payload.last),
                     frame_abort.eq(mac.payload.abort)]
        wiring.connect(m, rx.ctl, ep.ctl)
        wiring.connect(m, ep.bus, self.bank.bus)
        m.submodules.book = book = self.book
        wiring.connect(m, rx.events, book.events)

        # the trade path
        m.submodules.strategy = strat = self.strategy
        m.submodules.risk = risk = self.risk
        m.submodules.ouch_tx = ouch = self.ouch_tx
        m.submodules.telemetry = tel = self.telemetry
        m.submodules.ouch_rx = orx = self.ouch_rx
        wiring.connect(m, rx.taps, strat.events)
        wiring.connect(m, rx.early, strat.early)
        wiring.connect(m, book.updates, strat.updates)
        wiring.connect(m, strat.intents, risk.intents)
        wiring.connect(m, risk.orders, ouch.orders)
        wiring.connect(m, ouch.frames, getattr(arb, f"in{TX_ORDERS}"))
        sent = risk.orders.valid & ouch.orders.ready

        # the venue's answers: to the order port, from the venue; Enters as they leave
        # fill the order table that tells ouch_rx the side, symbol and price of each
        wiring.connect(m, rx.ouch, orx.datagrams)
        wiring.connect(m, orx.reports, risk.answers)
        order = risk.orders.payload
        m.d.comb += [
            rx.ouch_port.eq(ouch.src_port), orx.venue_ip.eq(ouch.venue_ip),
            orx.venue_port.eq(ouch.venue_port),
            orx.sent.stb.eq(ouch.sent.stb & ~ouch.sent.cancel),
            orx.sent.user_ref.eq(ouch.sent.user_ref), orx.sent.sym.eq(order.sym),
            orx.sent.side.eq(order.side != ord("B")), orx.sent.price.eq(order.price),
            orx.sent.quantity.eq(order.quantity),
        ]
        m.d.comb += [
            strat.now.eq(self.cycles[:32]), strat.t_in.eq(tel.t_in),
            strat.early_sym.eq(rx.open_sym), strat.t_in_early.eq(tel.t_in_early),
            risk.now.eq(self.cycles[:len(risk.now)]), risk.watch.eq(rx.watch),
            ouch.src_mac.eq(ep.mac), ouch.src_ip.eq(rx.ctl_ip),
            ouch.risk_cancel_all.eq(risk.cancel_all),
            tel.now.eq(self.cycles[:32]),
            tel.frame_start.eq(self.mac_rx.valid & self.mac_rx.payload.first),
            tel.sent.stb.eq(sent), tel.sent.user_ref.eq(ouch.sent.user_ref),
            tel.sent.sym.eq(risk.orders.payload.sym),
            tel.sent.cancel.eq(risk.orders.payload.cancel), tel.stamps.eq(risk.stamps),
            self.kill.eq(risk.status.killed),
        ]
        m.d.comb += [ep.frame_end.eq(frame_end), ep.frame_abort.eq(frame_abort),
                     ep.ip.eq(rx.ctl_ip), ep.port.eq(rx.ctl_port),
                     self.map_hash.eq(self.map.hash)]
        m.d.sync += self.cycles.eq(self.cycles + 1)

        # The event channel: gap reports, answers, prints and a copy of the book's updates
        m.submodules.book_tap = tap = self.book_tap
        m.submodules.trade_tap = trades = self.trade_tap
        m.submodules.event_arbiter = evs = self.event_arbiter
        m.d.comb += [tap.updates.valid.eq(book.updates.valid & strat.updates.ready),
                     tap.updates.payload.eq(book.updates.payload),
                     tap.channel.eq(ep.event_enable), evs.enable.eq(ep.event_enable)]
        wiring.connect(m, rx.gaps, evs.gaps)
        wiring.connect(m, orx.records, evs.answers)
        wiring.connect(m, book.prints, trades.prints)
        m.d.comb += [trades.misses.eq(book.print_misses), trades.channel.eq(ep.event_enable)]
        wiring.connect(m, trades.records, evs.trades)
        wiring.connect(m, tap.records, evs.book)
        wiring.connect(m, evs.events, ep.events)
        wiring.connect(m, evs.gap_register, wiring.flipped(self.gap_register))
        wiring.connect(m, evs.answer_register, wiring.flipped(self.answer_register))

        wiring.connect(m, ep.tx, getattr(arb, f"in{TX_CONTROL}"))
        wiring.connect(m, arb.out, wiring.flipped(self.mac_tx))

        # alarms: a counter that moved since the last cycle
        watched = {"gap_overflow": [rx.counters.fifo.gap_overflow],
                   "event_overflow": [rx.counters.fifo.event_overflow],
                   "control_drop": [getattr(ep.counters, k)
                                    for k in (*proto.DROP_REASONS, "busy")],
                   "kill": [risk.status.killed],
                   "book_overflow": [tap.counters.overflow],
                   "trade_overflow": [trades.counters.overflow]}
        for bit, name in enumerate(ALARMS):
            for value in watched[name]:
                last = Signal(32, name=f"last_{name}")
                m.d.sync += last.eq(value)
                with m.If(last != value):
                    m.d.comb += self.alarm_set[bit].eq(1)
        return m


def register_map(**params) -> RegisterMap:
    """The register map of a ``Top`` with these parameters, without elaborating it (the
    components built only to be described are marked so that Amaranth does not warn
    about them being unused)."""
    top = Top(**params)
    for part in (top, top.rx, top.control, top.bank, top.tx_arbiter, top.book, top.strategy,
                 top.risk, top.ouch_tx, top.telemetry, top.ouch_rx, top.book_tap,
                 top.trade_tap, top.event_arbiter):
        part._MustUse__silence = True
    return top.map
