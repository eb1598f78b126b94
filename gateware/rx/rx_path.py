"""The receive path as one component: ``eth_rx`` → ``moldudp`` → ``itch`` → event FIFO.

This is the top level the Verilator harness, the cocotb tests and ``t2t replay`` build;
turn it into Verilog with ``gateware.export.to_verilog`` (always-ready streams have a
constant ``ready`` that ``verilog.convert`` will not take as a port).
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from tick2trade.gateware.rx.commit_fifo import CommitFifo
from tick2trade.gateware.rx.eth_rx import FEED_FILTER, MAX_FEEDS, EthRx
from tick2trade.gateware.interfaces import (GAP_LAYOUT, RELEASE_LAYOUT, event_layout,
                                            locate_write_layout, sym_bits,
                                            watch_layout)
from tick2trade.gateware.rx.itch import ItchDecoder
from tick2trade.gateware.models.rx import eth_rx as model
from tick2trade.gateware.models.rx.itch import ITCH_COUNTERS
from tick2trade.gateware.models.rx.rx_path import EVENT_DEPTH
from tick2trade.gateware.models.rx.moldudp import DEFAULT_WINDOW
from tick2trade.gateware.rx.moldudp import WINDOW_BITS, MoldUdp
from tick2trade.gateware.rx.moldudp import counters_layout as mold_counters_layout
from tick2trade.gateware.stream import beat_layout

FIFO_COUNTERS = ("event_overflow", "gap_overflow", "hold_overflow", "held_skipped")
HOLD_DEPTH = 128  # events of held packets (526-bit entries: 15 block RAMs up to 512)


def counters_layout(symbols: int) -> data.StructLayout:
    from tick2trade.protocol.itch import MESSAGES

    return data.StructLayout({
        "eth_rx": data.StructLayout({n: 32 for n in model.ETH_COUNTERS}),
        "moldudp": mold_counters_layout(),
        "itch": data.StructLayout({n: 32 for n in ITCH_COUNTERS}),
        "itch_by_type": data.StructLayout({m.name: 32 for m in MESSAGES.values()}),
        "fifo": data.StructLayout({n: 32 for n in FIFO_COUNTERS}),
    })


class RxPath(wiring.Component):
    """Market-data receive path.

    Parameters
    ----------
    data_width : int
        Bits per beat (64 for 10GbE, 8 for 1GbE).
    symbols : int
        Instruments traded (watch-list entries, symbol index width).
    locates : int
        Depth of the locate table (stock locates beyond it are never traded).
    event_depth, gap_depth : int
        FIFOs toward the consumer; when full, new events/gaps are dropped and counted.

    With ``udp_verify`` (reset value 1) a feed packet whose UDP checksum fails leaves no
    trace downstream: ``MoldUdp`` puts its sequence state back and drops its gap report,
    and its events, written into the event FIFO as tentative entries, are discarded; a
    good packet's events become readable 2 cycles after its verdict (3 after its last
    beat left ``eth_rx``). The strategy's ``taps`` and ``early`` are cut-through and do
    not wait: the fast path acts on a packet's bytes before its checksum is known.

    Members
    -------
    mac : In(stream) — frames from the MAC, always ready.
    events : Out(stream) — normalized ITCH events of traded instruments, with backpressure.
    taps : Out(stream, always ready) — the same events straight from the decoder, before
        the FIFO (for the strategy, which takes one every cycle and cannot wait).
    early, open_sym : Out — the decoder's ``early`` events (a cycle before ``taps``, in
        the beat of the message's last byte) and the open message's symbol (see
        ``ItchDecoder``), for the strategy's fast path.
    gaps : Out(stream) — MoldUDP64 gap reports, with backpressure.
    ctl : Out(stream) — control-port datagrams, always ready.
    ouch : Out(stream) — datagrams to ``ctl_ip``:``ouch_port`` (the venue's answers),
        always ready.
    feeds, feed_src, ctl_ip, ctl_port, ouch_port, watch, loc_wr, reset_session,
    seq_window, udp_verify : configuration.
    counters : Out — every counter of every stage (32-bit, wrapping; but
        ``moldudp.gap_messages``: 64-bit, saturating).
    """

    def __init__(self, data_width: int = 64, symbols: int = 64, locates: int = 16384,
                 event_depth: int = EVENT_DEPTH, gap_depth: int = 16):
        self.data_width = data_width
        self.symbols = symbols
        self.locates = locates
        self.event_depth = event_depth
        self.gap_depth = gap_depth
        super().__init__({
            "mac": In(stream.Signature(beat_layout(data_width), always_ready=True)),
            "events": Out(stream.Signature(event_layout(symbols))),
            "taps": Out(stream.Signature(event_layout(symbols), always_ready=True)),
            "early": Out(stream.Signature(event_layout(symbols), always_ready=True)),
            "open_sym": Out(sym_bits(symbols)),
            "gaps": Out(stream.Signature(GAP_LAYOUT)),
            "ctl": Out(stream.Signature(beat_layout(data_width, src_mac=48, src_ip=32,
                                                    src_port=16), always_ready=True)),
            "feeds": In(data.ArrayLayout(FEED_FILTER, MAX_FEEDS)),
            "feed_src": In(data.ArrayLayout(32, 2)),
            "ctl_ip": In(32),
            "ctl_port": In(16),
            "ouch": Out(stream.Signature(beat_layout(data_width, src_mac=48, src_ip=32,
                                                     src_port=16), always_ready=True)),
            "ouch_port": In(16),
            "watch": In(watch_layout(symbols)),
            "loc_wr": In(locate_write_layout(symbols)),
            "reset_session": In(1),
            "seq_window": In(WINDOW_BITS, init=DEFAULT_WINDOW),
            "udp_verify": In(1, init=1),
            "hold_packets": In(4, init=4),
            "hold_cycles": In(32, init=1 << 16),
            "counters": Out(counters_layout(symbols)),
        })

    def elaborate(self, platform):
        m = Module()
        w = self.data_width
        m.submodules.eth = eth = EthRx(w)
        m.submodules.mold = mold = MoldUdp(w)
        m.submodules.itch = dec = ItchDecoder(w, self.symbols, self.locates)

        wiring.connect(m, wiring.flipped(self.mac), eth.mac)
        wiring.connect(m, eth.feed, mold.feed)
        wiring.connect(m, eth.verdict, mold.verdict)
        wiring.connect(m, mold.msgs, dec.msgs)
        wiring.connect(m, eth.ctl, wiring.flipped(self.ctl))
        wiring.connect(m, eth.ouch, wiring.flipped(self.ouch))
        m.d.comb += [
            eth.feeds.eq(self.feeds), eth.feed_src.eq(self.feed_src),
            mold.seq_window.eq(self.seq_window), mold.verify.eq(self.udp_verify),
            mold.hold_packets.eq(self.hold_packets), mold.hold_cycles.eq(self.hold_cycles),
            eth.ctl_ip.eq(self.ctl_ip),
            eth.ctl_port.eq(self.ctl_port), eth.ouch_port.eq(self.ouch_port), mold.reset_session.eq(self.reset_session),
            dec.watch.eq(self.watch), dec.loc_wr.eq(self.loc_wr),
            self.counters.eth_rx.eq(eth.counters), self.counters.moldudp.eq(mold.counters),
            self.counters.itch.eq(dec.counters), self.counters.itch_by_type.eq(dec.by_type),
            self.taps.payload.eq(dec.events.payload),
            self.early.payload.eq(dec.early.payload),
            self.open_sym.eq(dec.open_sym),
        ]

        # The stages cannot stall (a frame arrives whether we are ready or not), so the
        # consumer is decoupled by FIFOs; when one is full the new entry is dropped and
        # counted — never an entry already accepted.
        # The event FIFO commits a packet's events at its verdict: the last event leaves
        # the decoder 2 cycles after the packet's last beat left eth_rx, the verdict 1
        # cycle after it, so the verdict is delayed 2 cycles to come after every event.
        judged = Signal(2)
        failed = Signal(2)
        m.d.sync += [judged.eq(Cat(eth.verdict.valid, judged[0])),
                     failed.eq(Cat(eth.verdict.payload, failed[0]))]
        shape = event_layout(self.symbols)
        main = m.submodules.event_fifo = CommitFifo(shape.size, self.event_depth)
        hold = m.submodules.hold_fifo = CommitFifo(shape.size, HOLD_DEPTH)
        for q in (main, hold):
            m.d.comb += [q.hold.eq(self.udp_verify), q.commit.eq(judged[1] & ~failed[1]),
                         q.discard.eq(judged[1] & failed[1]), q.w_data.eq(dec.events.payload)]
        # A held packet's events go aside, and neither to the strategy: they are out of
        # order. ``route_hold`` covers the decoder's early events as they come (the
        # beat after the message's last byte left moldudp), its events a cycle later.
        to_hold = Signal()
        m.d.sync += to_hold.eq(mold.route_hold)
        m.d.comb += [main.w_en.eq(dec.events.valid & ~to_hold),
                     hold.w_en.eq(dec.events.valid & to_hold),
                     self.taps.valid.eq(dec.events.valid & ~to_hold),
                     self.early.valid.eq(dec.early.valid & ~mold.route_hold)]

        # Releases: each run let go becomes a record — where in the main queue its
        # events go (``pos``, a count of committed main entries), how far they reach in
        # the hold queue (``hpos``) and ``skip`` — taken once the verdict's commit is
        # counted (3 cycles after it; the release comes 1 cycle after it). A run forced
        # out by a packet goes before that packet: its header set the barrier there,
        # which stops the main queue until the record (or a failed verdict) replaces it.
        rec_shape = data.StructLayout({"pos": 16, "hpos": 16, "skip": 65})
        # (unbuffered: a record is readable the cycle after it is written, the cycle the
        # barrier it replaces goes down)
        recs = m.submodules.release_fifo = fifo.SyncFIFO(width=rec_shape.size, depth=4)
        m.d.comb += mold.hold_room.eq(recs.w_level <= 2)
        rel_d = [Signal(RELEASE_LAYOUT, name=f"rel_{i}") for i in range(2)]
        rel_v = Signal(2)
        m.d.sync += [rel_v.eq(Cat(mold.release.valid, rel_v[0])),
                     rel_d[0].eq(mold.release.payload), rel_d[1].eq(rel_d[0])]
        barrier = Signal()
        barrier_pos = Signal(16)
        settled = Signal()  # the cycle after a verdict's commit
        m.d.sync += settled.eq(judged[1])
        barrier_hpos = Signal(16)  # the forced run's end in the hold queue: the packet
        # forcing it out may start the next run there
        with m.If(mold.barrier):
            m.d.sync += [barrier.eq(1), barrier_pos.eq(main.total),
                         barrier_hpos.eq(hold.total)]
        with m.Elif(settled):
            m.d.sync += barrier.eq(0)
        rec_in = Signal(rec_shape)
        m.d.comb += [rec_in.pos.eq(Mux(rel_d[1].forced & barrier, barrier_pos, main.total)),
                     rec_in.hpos.eq(Mux(rel_d[1].forced & barrier, barrier_hpos,
                                        hold.total)),
                     rec_in.skip.eq(rel_d[1].skip),
                     recs.w_data.eq(rec_in), recs.w_en.eq(rel_v[1])]

        # The consumer's side: the main queue up to the first record's position (or the
        # barrier), then that run's events from the hold queue (those older than its
        # ``skip`` dropped), then the main queue again.
        rec = Signal(rec_shape)
        m.d.comb += rec.eq(recs.r_data)
        main_out = Signal(16)
        hold_out = Signal(16)
        serve_hold = recs.r_rdy & (main_out == rec.pos)
        run_left = hold_out != rec.hpos
        ev_hold = Signal(shape)
        m.d.comb += ev_hold.eq(hold.r_data)
        skip_it = ev_hold.seq < rec.skip
        main_open = ~(barrier & (main_out == barrier_pos))
        with m.If(serve_hold):
            m.d.comb += [self.events.payload.eq(hold.r_data),
                         self.events.valid.eq(run_left & hold.r_rdy & ~skip_it),
                         hold.r_en.eq(run_left & (skip_it | self.events.ready)),
                         recs.r_en.eq(~run_left)]
        with m.Else():
            m.d.comb += [self.events.payload.eq(main.r_data),
                         self.events.valid.eq(main.r_rdy & main_open),
                         main.r_en.eq(self.events.ready & main_open)]
        with m.If(hold.r_en & hold.r_rdy):
            m.d.sync += hold_out.eq(hold_out + 1)
        with m.If(main.r_en & main.r_rdy):
            m.d.sync += main_out.eq(main_out + 1)

        gapq = m.submodules.gap_fifo = fifo.SyncFIFOBuffered(width=GAP_LAYOUT.size,
                                                             depth=self.gap_depth)
        m.d.comb += [gapq.w_data.eq(mold.gaps.payload), gapq.w_en.eq(mold.gaps.valid),
                     self.gaps.payload.eq(gapq.r_data), self.gaps.valid.eq(gapq.r_rdy),
                     gapq.r_en.eq(self.gaps.ready)]
        # When a queue is full the new entry is dropped and counted — never one accepted.
        for name, cond in (("event_overflow", main.w_en & ~main.w_rdy),
                           ("gap_overflow", gapq.w_en & ~gapq.w_rdy),
                           ("hold_overflow", hold.w_en & ~hold.w_rdy),
                           ("held_skipped", serve_hold & run_left & hold.r_rdy & skip_it)):
            n = Signal(32, name=name)
            with m.If(cond):
                m.d.sync += n.eq(n + 1)
            m.d.comb += getattr(self.counters.fifo, name).eq(n)
        return m

    def registers(self, gaps, config: model.RxConfig | None = None):
        """The receive path's registers (``protocol.regmap`` access kinds): its counters,
        its configuration inputs with ``config`` as the reset values (default:
        ``RxConfig.default()``, NASDAQ's lines A/B and the control port), the locate
        write and session reset strobes, and ``gaps`` — the stream the top level hands
        the bank to pop gap reports from — as a FIFO register."""
        from tick2trade.gateware.registers import RegisterBlock

        cfg = config if config is not None else model.RxConfig.default()
        resets = {}
        for i, f in enumerate(cfg.feeds[:MAX_FEEDS]):
            resets.update({f"feeds[{i}].enable": 1, f"feeds[{i}].line": f.line,
                           f"feeds[{i}].group": f.group, f"feeds[{i}].port": f.port})
        regs = RegisterBlock("rx", "Market-data receive path: eth_rx → moldudp → itch.")
        regs.struct("counters", self.counters, "ro", "32-bit wrapping counter",
                    docs={"counters.moldudp.gap_messages": "64-bit counter, saturating "
                          "at 2**64 - 1"})
        regs.struct("feeds", self.feeds, "rw", "feed filter (group, port → line)", resets)
        regs.struct("feed_src", self.feed_src, "rw", "IPv4 source of line A [0] / B [1] "
                    "feed datagrams (0: any)",
                    {f"feed_src[{k}]": cfg.feed_src[k] for k in range(2)})
        regs.rw("seq_window", self.seq_window, "MoldUDP64: a packet starting further "
                "ahead of the expected sequence needs confirming", cfg.seq_window)
        regs.rw("hold_packets", self.hold_packets, "MoldUDP64: packets ahead of the "
                "expected sequence held back before a gap is declared (0: none)",
                cfg.hold_packets)
        regs.rw("hold_cycles", self.hold_cycles, "MoldUDP64: the longest a run of held "
                "packets waits for its hole to fill, in cycles", cfg.hold_cycles)
        regs.rw("udp_verify", self.udp_verify, "1: a feed packet whose UDP checksum fails "
                "is dropped (its events wait for its last byte); 0: counted only",
                int(cfg.udp_verify))
        regs.rw("ctl_ip", self.ctl_ip, "IPv4 address of the control endpoint", cfg.ctl_ip)
        regs.rw("ctl_port", self.ctl_port, "UDP port of the control endpoint (0: none)",
                cfg.ctl_port)
        regs.struct("watch", self.watch, "rw", "watch list (stock, big-endian ASCII)")
        regs.pulse("loc_wr", self.loc_wr, "host write into the locate table: set stb=1 "
                   "(traded=0 removes the locate); at most one every other cycle")
        regs.pulse("reset_session", self.reset_session, "write 1: forget the MoldUDP64 "
                   "session; the next packet's is adopted")
        regs.fifo("gaps", gaps, "MoldUDP64 gap reports (when ctl.event_enable is 0)")
        return regs
