"""``telemetry``: where the trade path's cycles go, counted by the gateware itself.

Every timestamp is the low 32 bits of the top level's free-running cycle counter:

* ``t_in``: the cycle the first beat of the frame that carried the deciding message
  arrived from the MAC. The receive path's stages take one beat every cycle and hand the
  decoded event to the strategy ``RX_TAP_LATENCY`` cycles after the MAC beat holding the
  message's last byte, so the frame start seen that many cycles earlier is the one (a
  short delay line; no timestamp travels through the parsers). The decoder's early
  event, which the strategy's fast path decides on, comes a cycle sooner
  (``EARLY_TAP_LATENCY``), and its frame start is taken a stage earlier on the same line;
* ``t_event``: the event (or its early event, or a book update, or a host injection)
  reached the strategy;
* ``t_decide``: the risk gate decided;
* ``t_out``: the order's first beat was taken toward the MAC.

For every order sent, cancels included, a record goes into the ``records`` FIFO the host
drains (``orders_out`` counts them all). An Enter's tick-to-trade ``t_out - t_in`` also
goes into a histogram of ``BINS`` bins of
``2**hist_shift`` cycles each (the last bin takes everything beyond), with its minimum
and maximum; a cancel is a reaction to the host, not to a tick, so it stays out of them.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from tick2trade.gateware.interfaces import STAMPS, sym_bits

RX_TAP_LATENCY = 3  # MAC beat with a message's last byte → its event at the strategy
EARLY_TAP_LATENCY = RX_TAP_LATENCY - 1  # … → its early event at the strategy
BINS = 32
COUNTERS = ("frames_in", "orders_out", "records_lost")


def record_layout(symbols: int) -> data.StructLayout:
    return data.StructLayout({"user_ref": 32, "sym": sym_bits(symbols), "cancel": 1,
                              "t_in": 32, "t_event": 32, "t_decide": 32, "t_out": 32})


class Telemetry(wiring.Component):
    """Timestamps, per-order latency records and the tick-to-trade histogram.

    Members
    -------
    now : In(32) — the cycle counter.
    frame_start : In(1) — the MAC delivers a frame's first beat this cycle.
    t_in : Out(32) — the frame start for the event the strategy is offered now.
    t_in_early : Out(32) — the frame start for the early event offered now.
    sent : In — an order's first beat is taken this cycle (``stb``), its ``user_ref``,
        ``sym``, ``cancel`` and the ``stamps`` the risk gate queued with it.
    records : Out(stream(record_layout)) — one per order sent.
    hist_shift : In(5); histogram, ttt_min, ttt_max : Out; counters : Out.
    """

    def __init__(self, symbols: int = 64, depth: int = 64):
        self.symbols, self.depth = symbols, depth
        super().__init__({
            "now": In(32),
            "frame_start": In(1),
            "t_in": Out(32),
            "t_in_early": Out(32),
            "sent": In(data.StructLayout({"stb": 1, "user_ref": 32, "sym": sym_bits(symbols),
                                          "cancel": 1})),
            "stamps": In(STAMPS),
            "records": Out(stream.Signature(record_layout(symbols))),
            "hist_shift": In(5),
            "histogram": Out(data.ArrayLayout(32, BINS)),
            "ttt_min": Out(32),
            "ttt_max": Out(32),
            "counters": Out(data.StructLayout({c: 32 for c in COUNTERS})),
        })

    def registers(self):
        from tick2trade.gateware.registers import RegisterBlock

        regs = RegisterBlock("telemetry", "Timestamps (cycles), per-order latency records, "
                             "tick-to-trade histogram.")
        regs.fifo("records", self.records, "one per order sent: user_ref, sym, cancel, "
                  "t_in (frame's first beat in), t_event, t_decide, t_out (first beat out)")
        regs.rw("hist_shift", self.hist_shift, "histogram bin width: 2**hist_shift cycles")
        regs.struct("histogram", self.histogram, "ro", f"orders by tick-to-trade; bin "
                    f"{BINS - 1} takes the rest")
        regs.ro("ttt_min", self.ttt_min, "least tick-to-trade seen (cycles)")
        regs.ro("ttt_max", self.ttt_max, "most tick-to-trade seen (cycles)")
        regs.struct("counters", self.counters, "ro", "32-bit wrapping counter")
        return regs

    def elaborate(self, platform):
        m = Module()
        now = self.now
        counts = {c: Signal(32, name=f"n_{c}") for c in COUNTERS}
        for c, sig in counts.items():
            m.d.comb += getattr(self.counters, c).eq(sig)

        start = Signal(32)
        start_now = Mux(self.frame_start, now, start)
        m.d.sync += start.eq(start_now)
        line = [start_now]
        for i in range(RX_TAP_LATENCY):
            stage = Signal(32, name=f"start_{i + 1}")
            m.d.sync += stage.eq(line[-1])
            line.append(stage)
        m.d.comb += [self.t_in.eq(line[RX_TAP_LATENCY]),
                     self.t_in_early.eq(line[EARLY_TAP_LATENCY])]
        with m.If(self.frame_start):
            m.d.sync += counts["frames_in"].eq(counts["frames_in"] + 1)

        m.submodules.q = q = fifo.SyncFIFOBuffered(width=record_layout(self.symbols).size,
                                                   depth=self.depth)
        rec = Signal(record_layout(self.symbols))
        sent = self.sent
        m.d.comb += [rec.user_ref.eq(sent.user_ref), rec.sym.eq(sent.sym),
                     rec.cancel.eq(sent.cancel), rec.t_in.eq(self.stamps.t_in),
                     rec.t_event.eq(self.stamps.t_event),
                     rec.t_decide.eq(self.stamps.t_decide), rec.t_out.eq(now),
                     q.w_data.eq(rec), q.w_en.eq(sent.stb),
                     self.records.payload.eq(q.r_data), self.records.valid.eq(q.r_rdy),
                     q.r_en.eq(self.records.ready)]
        with m.If(sent.stb):
            m.d.sync += counts["orders_out"].eq(counts["orders_out"] + 1)
            with m.If(~q.w_rdy):
                m.d.sync += counts["records_lost"].eq(counts["records_lost"] + 1)

        ttt = Signal(32)
        m.d.comb += ttt.eq(now - self.stamps.t_in)
        scaled = Signal(32)
        m.d.comb += scaled.eq(ttt >> self.hist_shift)
        seen = Signal()
        lo = Signal(32)
        hi = Signal(32)
        m.d.comb += [self.ttt_min.eq(lo), self.ttt_max.eq(hi)]
        with m.If(sent.stb & ~sent.cancel):
            index = Mux(scaled >= BINS - 1, BINS - 1, scaled[:5])
            for b in range(BINS):
                with m.If(index == b):
                    m.d.sync += self.histogram[b].eq(self.histogram[b] + 1)
            m.d.sync += seen.eq(1)
            with m.If(~seen | (ttt < lo)):
                m.d.sync += lo.eq(ttt)
            with m.If(~seen | (ttt > hi)):
                m.d.sync += hi.eq(ttt)
        return m
