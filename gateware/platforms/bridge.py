"""Between the MAC's bytes and the core's beats on a board: the clock crossings, and the
gearbox when the core is wider than a byte.

The MAC receives in the PHY's clock and transmits in the board's 125 MHz clock; the core
runs either in that same clock at W = 8 or, wider, in a slower clock of its own
(docs/hardware.md says why). ``CoreBridge`` is everything in between, so that a board
top level is only pins, clocks and this, and so that the path can be simulated without
a PLL or I/O cells (``tests/gateware/platforms/test_bridge.py``).
"""

from amaranth import Module
from amaranth.hdl import DomainRenamer
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from tick2trade.gateware.phy.gearbox import Narrow, Widen
from tick2trade.gateware.stream import beat_layout

CDC_DEPTH = 16


class CoreBridge(wiring.Component):
    """MAC bytes in ``rx_domain`` → core beats in ``core_domain``; core beats →
    MAC bytes in ``tx_domain``.

    Receive: ``Widen`` packs bytes into ``core_width``-bit beats (none at W = 8) and a
    ``CDC_DEPTH``-deep asynchronous FIFO carries each beat into the core's clock, read
    every cycle it holds one; the core's clock must take beats faster than the line
    brings them (at W = 64, 15.6 MHz for 1GbE), so the FIFO never fills. Transmit: the
    core's beats cross through another asynchronous FIFO (with ``ready``: a frame that
    starts is sent at the MAC's pace) and ``Narrow`` sends them a byte per cycle. With
    ``core_width`` 8 the core must run in ``tx_domain``, and transmit is a wire.

    Members
    -------
    rx_bytes : In(stream.Signature(beat_layout(8, abort=1), always_ready=True))
        In ``rx_domain``: the MAC's receive side.
    rx_beats : Out(stream.Signature(beat_layout(core_width, abort=1), always_ready=True))
        In ``core_domain``.
    tx_beats : In(stream.Signature(beat_layout(core_width))) — in ``core_domain``.
    tx_bytes : Out(stream.Signature(beat_layout(8))) — in ``tx_domain``.
    """

    def __init__(self, core_width: int, core_domain: str = "sync",
                 rx_domain: str = "eth_rx", tx_domain: str = "sync"):
        if core_width == 8 and core_domain != tx_domain:
            raise ValueError("a W = 8 core runs in the MAC's transmit clock")
        self.core_width = core_width
        self._core, self._rx, self._tx = core_domain, rx_domain, tx_domain
        super().__init__({
            "rx_bytes": In(stream.Signature(beat_layout(8, abort=1), always_ready=True)),
            "rx_beats": Out(stream.Signature(beat_layout(core_width, abort=1),
                                             always_ready=True)),
            "tx_beats": In(stream.Signature(beat_layout(core_width))),
            "tx_bytes": Out(stream.Signature(beat_layout(8))),
        })

    def elaborate(self, platform):
        m = Module()
        wide = self.core_width != 8

        rx = self.rx_bytes
        if wide:
            m.submodules.widen = widen = DomainRenamer(self._rx)(Widen(self.core_width,
                                                                       abort=1))
            m.d.comb += [widen.bytes_in.valid.eq(rx.valid),
                         widen.bytes_in.payload.eq(rx.payload)]
            rx = widen.beats
        m.submodules.rx_cdc = rx_cdc = fifo.AsyncFIFO(
            width=len(rx.payload.as_value()), depth=CDC_DEPTH, r_domain=self._core,
            w_domain=self._rx)
        m.d.comb += [rx_cdc.w_data.eq(rx.payload.as_value()), rx_cdc.w_en.eq(rx.valid),
                     rx_cdc.r_en.eq(1), self.rx_beats.valid.eq(rx_cdc.r_rdy),
                     self.rx_beats.payload.eq(rx_cdc.r_data)]

        if not wide:
            wiring.connect(m, wiring.flipped(self.tx_beats), wiring.flipped(self.tx_bytes))
            return m
        # a core fast enough for the line fills a beat sooner than the MAC sends its 8
        # bytes (48 ns against 64 ns at 20.8 MHz): a frame that starts never runs dry
        # buffered: the beat comes out of a register, not straight from the FIFO's LUT
        # RAM into Narrow's lane select and the MAC's FCS in the same 8 ns
        m.submodules.tx_cdc = tx_cdc = fifo.AsyncFIFOBuffered(
            width=len(self.tx_beats.payload.as_value()), depth=CDC_DEPTH,
            r_domain=self._tx, w_domain=self._core)
        m.submodules.narrow = narrow = DomainRenamer(self._tx)(Narrow(self.core_width))
        m.d.comb += [tx_cdc.w_data.eq(self.tx_beats.payload.as_value()),
                     tx_cdc.w_en.eq(self.tx_beats.valid),
                     self.tx_beats.ready.eq(tx_cdc.w_rdy),
                     narrow.beats.valid.eq(tx_cdc.r_rdy),
                     narrow.beats.payload.eq(tx_cdc.r_data),
                     tx_cdc.r_en.eq(narrow.beats.ready)]
        wiring.connect(m, narrow.bytes_out, wiring.flipped(self.tx_bytes))
        return m
