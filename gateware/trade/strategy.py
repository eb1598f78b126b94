"""``strategy``: the host-written trigger table — market data in, order intents out.

Golden model: :class:`gateware.models.trade.Strategy` (the trigger kinds, the market
state and which input sees which state are stated there).

Three paths share the table, one entry per symbol:

* the *fast path* decides ``take`` triggers in the cycle an Add Order's last byte is in
  the decoder (its ``early`` event, combinational): the decoder names the open
  message's symbol (``early_sym``) while the message is still arriving, so the entry and
  the market are read the cycle before and only the price comparison waits for the last
  byte. Its intent goes to the risk gate in that same cycle;
* the *event path* takes ITCH events straight from the decoder a cycle later (always
  ready, one per cycle) and decides trade-print ``stop`` triggers, and the ``take`` of
  an event the fast path did not decide (the fallback: the symbol named the cycle before
  was not the event's, or an event-path intent holds the risk gate's input that cycle);
* the *update path* takes the book's updates (each carries the side's new best) and
  decides ``stop`` on the BBO and ``improve``; a host injection takes this path's slot
  for one cycle (the book waits).

The event and update paths read the table and the market memories in the cycle their
input arrives and decide in the next; the decision is registered. So their intents leave
2 cycles after the input was offered; a fast-path intent leaves in its ``early`` cycle.
Fast and event-path intents go to the risk gate at once (they never meet: the fast
path gives way); update-path intents wait in a small queue for a cycle without either.
One-shot entries are disarmed by the decision that fires them; when paths fire the same
one-shot entry in one cycle, the fast path wins, then the event path.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from tick2trade.gateware.bytefield import counter_bank
from tick2trade.gateware.interfaces import (BookAction, ItchType, Side, Source, TriggerKind,
                                           event_layout, intent_layout, sym_bits,
                                           update_layout)
from tick2trade.gateware.models.trade import strategy as model

ENTRY = data.StructLayout({
    "enable": 1, "kind": 2, "side": 1, "one_shot": 1, "price": 32, "quantity": 32,
    "tif": 8, "offset": 32, "min_spread": 32, "tag": 16,
})
"""A trigger table entry (``models.trade.Trigger``)."""


def inject_layout(symbols: int) -> data.StructLayout:
    """A host order for the risk gate (staged; ``inject_stb`` sends it)."""
    return data.StructLayout({
        "sym": sym_bits(symbols), "side": 1, "price": 32, "quantity": 32,
        "tif": 8, "tag": 16, "cancel": 1, "user_ref": 32,
    })


class Strategy(wiring.Component):
    """Trigger table → order intents.

    Parameters
    ----------
    symbols : int
    n : int
        The book's published depth (for the update layout).
    queue_depth : int
        Update-path intents waiting for the risk gate.

    Members
    -------
    events : In(stream(event_layout), always ready) — from the ITCH decoder.
    early : In(stream(event_layout), always ready) — the decoder's ``early`` events: the
        same events, a cycle before ``events`` (combinational in the decoder).
    early_sym : In — the symbol of the message the decoder has open, from the cycle after
        its locate: the fast path reads that entry for the ``early`` event of the next
        cycle.
    updates : In(stream(update_layout)) — from the book.
    intents : Out(stream(intent_layout)) — to the risk gate (which is always ready).
    entry, entry_wr : In — the staged entry and the strobe that writes it at ``sym``.
    inject, inject_stb : In — a host order and the strobe that sends it.
    now, t_in : In(32) — the cycle counter; the frame start of the event offered now.
    t_in_early : In(32) — the frame start of the ``early`` event offered now.
    armed : Out(symbols) — entries armed (a one-shot that fired reads 0).
    counters : Out — ``models.trade.STRATEGY_COUNTERS``.

    Latency: a fast-path intent is valid in its ``early`` event's cycle; the others 2
    cycles after their input was offered.
    """

    def __init__(self, symbols: int = 64, n: int = 8, queue_depth: int = 4):
        self.symbols, self.n, self.queue_depth = symbols, n, queue_depth
        sb = sym_bits(symbols)
        super().__init__({
            "events": In(stream.Signature(event_layout(symbols), always_ready=True)),
            "early": In(stream.Signature(event_layout(symbols), always_ready=True)),
            "early_sym": In(sb),
            "updates": In(stream.Signature(update_layout(symbols, n))),
            "intents": Out(stream.Signature(intent_layout(symbols))),
            "entry": In(ENTRY),
            "entry_wr": In(data.StructLayout({"stb": 1, "sym": sb})),
            "inject": In(inject_layout(symbols)),
            "inject_stb": In(1),
            "now": In(32),
            "t_in": In(32),
            "t_in_early": In(32),
            "armed": Out(symbols),
            "counters": Out(data.StructLayout({c: 32 for c in model.STRATEGY_COUNTERS})),
        })

    def registers(self):
        """The table (stage an ``entry``, then write ``entry_wr`` with its symbol), the
        armed flags, the host's order injection and the counters."""
        from tick2trade.gateware.registers import RegisterBlock

        regs = RegisterBlock("strategy", "Trigger table: one entry per symbol.")
        regs.rw("entry", self.entry, "staged trigger entry (kind: 0 take, 1 stop, "
                "2 improve; side: 0 buy, 1 sell; prices in 1/10000)")
        regs.pulse("entry_wr", self.entry_wr, "write the staged entry at sym (arms it "
                   "when enabled)")
        regs.ro("armed", self.armed, "bit per symbol: its entry is armed")
        regs.rw("inject", self.inject, "staged host order (side: 0 buy, 1 sell)")
        regs.pulse("inject_stb", self.inject_stb, "write 1: send the staged host order "
                   "through the risk gate")
        regs.struct("counters", self.counters, "ro", "32-bit wrapping counter")
        return regs

    def elaborate(self, platform):
        m = Module()
        S = self.symbols
        inc = counter_bank(m, model.STRATEGY_COUNTERS, self.counters)

        m.submodules.table = table = memory.Memory(shape=ENTRY, depth=S, init=[])
        tw = table.write_port()
        m.d.comb += [tw.addr.eq(self.entry_wr.sym), tw.data.eq(self.entry),
                     tw.en.eq(self.entry_wr.stb)]
        bbo_shape = data.StructLayout({"bid": 32, "ask": 32})
        m.submodules.bbo = bbo = memory.Memory(shape=bbo_shape, depth=S, init=[])
        bbo_w = bbo.write_port()
        m.submodules.last = last = memory.Memory(shape=32, depth=S, init=[])
        last_w = last.write_port()
        m.submodules.sent = sent = memory.Memory(shape=32, depth=S, init=[])
        sent_w = sent.write_port()
        sent_valid = Signal(S)  # improve: the entry has sent since it was written
        have_bid = Signal(S)
        have_ask = Signal(S)
        armed = Signal(S)
        m.d.comb += self.armed.eq(armed)

        def reference(b, a, hb, ha, lst):
            return Mux(hb & ha, (b + a)[1:33], lst)

        # the fast path's verdicts, which the other paths give way to
        f_sym = Signal(sym_bits(S))  # the symbol whose entry the fast path reads out now
        f_ok = Signal()  # the fast path decides the early event's take (fire or not)
        f_fire = Signal()
        f_disarm = Signal()

        # ---- event path: read in c0, decide in c1 -------------------------------------
        ev = self.events.payload
        e_t_rd = table.read_port(transparent_for=(tw,))
        e_b_rd = bbo.read_port(transparent_for=(bbo_w,))
        e_l_rd = last.read_port(transparent_for=(last_w,))
        m.d.comb += [e_t_rd.addr.eq(ev.sym), e_b_rd.addr.eq(ev.sym), e_l_rd.addr.eq(ev.sym)]
        ev1 = Signal.like(ev)
        ev1_valid = Signal()
        ev1_t_in = Signal(32)
        ev1_t = Signal(32)
        m.d.sync += [ev1.eq(ev), ev1_valid.eq(self.events.valid), ev1_t_in.eq(self.t_in),
                     ev1_t.eq(self.now)]
        # the early event of cycle c is the event of c + 1: its take was decided already
        ev_fast, ev1_fast = Signal(), Signal()
        m.d.sync += [ev_fast.eq(f_ok), ev1_fast.eq(ev_fast)]
        m.d.comb += inc["events"].eq(self.events.valid)

        e = e_t_rd.data
        e_armed = e.enable & armed.bit_select(ev1.sym, 1)
        t = ev1.type
        prints = ((t == ItchType.TRADE) | (t == ItchType.ORDER_EXECUTED_WITH_PRICE)
                  | (t == ItchType.CROSS_TRADE)) & (ev1.price != 0)
        buy = e.side == Side.BUY
        stop_hit = Mux(buy, ev1.price >= e.price, ev1.price <= e.price)
        take_fire = self._takes(e, ev1) & ~ev1_fast
        stop_fire = (e.kind == TriggerKind.STOP) & prints & stop_hit
        e_fire = Signal()
        m.d.comb += e_fire.eq(ev1_valid & e_armed & (take_fire | stop_fire)
                              & ~(f_disarm & (f_sym == ev1.sym)))
        m.d.comb += [last_w.addr.eq(ev1.sym), last_w.data.eq(ev1.price),
                     last_w.en.eq(ev1_valid & prints)]
        e_ref = reference(e_b_rd.data.bid, e_b_rd.data.ask, have_bid.bit_select(ev1.sym, 1),
                          have_ask.bit_select(ev1.sym, 1), e_l_rd.data)

        ei = Signal(intent_layout(S))
        ei_valid = Signal()
        m.d.sync += ei_valid.eq(e_fire)
        with m.If(e_fire):
            m.d.sync += [ei.sym.eq(ev1.sym), ei.side.eq(e.side),
                         ei.price.eq(Mux(e.kind == TriggerKind.TAKE, e.price,
                                         self._stop_limit(e))),
                         ei.quantity.eq(e.quantity), ei.tif.eq(e.tif), ei.tag.eq(e.tag),
                         ei.ref.eq(e_ref), ei.source.eq(Source.EVENT),
                         ei.cancel.eq(0), ei.user_ref.eq(0), ei.t_in.eq(ev1_t_in),
                         ei.t_event.eq(ev1_t)]
            m.d.comb += [inc["fired_take"].eq(e.kind == TriggerKind.TAKE),
                         inc["fired_stop"].eq(e.kind == TriggerKind.STOP)]

        # ---- fast path: read in the cycle before the early event, decide in its cycle --
        # The entry and the market are read at the symbol the decoder names for its open
        # message; in the early event's cycle only the price comparison is left, and the
        # intent's own fields (the entry's limit and quantity, the reference) never
        # depend on that price, so the risk gate's first stage takes it in this cycle.
        fev = self.early.payload
        f_t_rd = table.read_port(transparent_for=(tw,))
        f_b_rd = bbo.read_port(transparent_for=(bbo_w,))
        f_l_rd = last.read_port(transparent_for=(last_w,))
        m.d.comb += [p.addr.eq(self.early_sym) for p in (f_t_rd, f_b_rd, f_l_rd)]
        m.d.sync += f_sym.eq(self.early_sym)
        fe = f_t_rd.data
        m.d.comb += [
            f_ok.eq(self.early.valid & (fev.sym == f_sym) & ~ei_valid),
            f_fire.eq(f_ok & fe.enable & armed.bit_select(f_sym, 1) & self._takes(fe, fev)),
            f_disarm.eq(f_fire & fe.one_shot),
        ]
        fi = Signal(intent_layout(S))
        m.d.comb += [fi.sym.eq(f_sym), fi.side.eq(fe.side), fi.price.eq(fe.price),
                     fi.quantity.eq(fe.quantity), fi.tif.eq(fe.tif), fi.tag.eq(fe.tag),
                     fi.ref.eq(reference(f_b_rd.data.bid, f_b_rd.data.ask,
                                         have_bid.bit_select(f_sym, 1),
                                         have_ask.bit_select(f_sym, 1), f_l_rd.data)),
                     fi.source.eq(Source.FAST), fi.t_in.eq(self.t_in_early),
                     fi.t_event.eq(self.now)]
        with m.If(f_fire):
            m.d.comb += inc["fired_take"].eq(1)

        # ---- update path (and host injections): read in c0, decide in c1 --------------
        m.submodules.uq = uq = fifo.SyncFIFO(width=Signal(intent_layout(S)).shape().size,
                                             depth=self.queue_depth)
        room = Signal()
        m.d.comb += room.eq(uq.level < self.queue_depth - 1)
        inj, inj_stb = self.inject, self.inject_stb
        m.d.comb += self.updates.ready.eq(room & ~inj_stb)
        up = self.updates.payload
        take_up = self.updates.valid & self.updates.ready
        u_sym = Mux(inj_stb, inj.sym, up.sym)
        u_t_rd = table.read_port(transparent_for=(tw,))
        u_b_rd = bbo.read_port(transparent_for=(bbo_w,))
        u_l_rd = last.read_port(transparent_for=(last_w,))
        u_s_rd = sent.read_port(transparent_for=(sent_w,))
        m.d.comb += [p.addr.eq(u_sym) for p in (u_t_rd, u_b_rd, u_l_rd, u_s_rd)]
        up1 = Signal.like(up)
        up1_valid = Signal()
        inj1 = Signal.like(inj)
        inj1_stb = Signal()
        u_t = Signal(32)
        # an injection with no room in the queue is refused (counted), never half-taken
        m.d.sync += [up1.eq(up), up1_valid.eq(take_up), inj1.eq(inj),
                     inj1_stb.eq(inj_stb & room), u_t.eq(self.now)]
        m.d.comb += [inc["updates"].eq(take_up), inc["injected"].eq(inj_stb & room),
                     inc["queue_full"].eq(inj_stb & ~room)]

        u = u_t_rd.data
        old = u_b_rd.data
        sym1 = Mux(inj1_stb, inj1.sym, up1.sym)
        hb_old, ha_old = have_bid.bit_select(sym1, 1), have_ask.bit_select(sym1, 1)
        is_clear = up1.action == BookAction.CLEAR
        has_best = up1.best_shares != 0
        bid, ask = Signal(32), Signal(32)
        hb, ha = Signal(), Signal()
        m.d.comb += [bid.eq(old.bid), ask.eq(old.ask), hb.eq(hb_old), ha.eq(ha_old)]
        with m.If(up1.side == Side.BUY):
            m.d.comb += [bid.eq(up1.best_price), hb.eq(has_best)]
        with m.Else():
            m.d.comb += [ask.eq(up1.best_price), ha.eq(has_best)]
        live = up1_valid & ~is_clear
        with m.If(up1_valid & is_clear):
            with m.If(up1.all_syms):
                m.d.sync += [have_bid.eq(0), have_ask.eq(0)]
            with m.Else():
                m.d.sync += [have_bid.bit_select(up1.sym, 1).eq(0),
                             have_ask.bit_select(up1.sym, 1).eq(0)]
        with m.Elif(live):
            m.d.sync += [have_bid.bit_select(up1.sym, 1).eq(hb),
                         have_ask.bit_select(up1.sym, 1).eq(ha)]
            m.d.comb += [bbo_w.addr.eq(up1.sym), bbo_w.en.eq(1),
                         bbo_w.data.bid.eq(bid), bbo_w.data.ask.eq(ask)]

        u_buy = u.side == Side.BUY
        watched, have_watched = Mux(u_buy, ask, bid), Mux(u_buy, ha, hb)
        u_stop = ((u.kind == TriggerKind.STOP) & (up1.side != u.side) & have_watched
                  & Mux(u_buy, watched >= u.price, watched <= u.price))
        quote = Signal(32)
        m.d.comb += quote.eq(Mux(u_buy, bid + u.offset, ask - u.offset))
        quote_ok = Mux(u_buy, (quote < ask) & (quote <= u.price),
                       (ask >= u.offset) & (quote > bid) & (quote >= u.price))
        repeat = sent_valid.bit_select(up1.sym, 1) & (quote == u_s_rd.data)
        u_improve = ((u.kind == TriggerKind.IMPROVE) & hb & ha & (ask - bid >= u.min_spread)
                     & quote_ok & ~repeat)
        # the event path's decision in this cycle disarms first
        taken_by_event = ((e_fire & (ev1.sym == up1.sym)
                           & (e.one_shot | (e.kind == TriggerKind.STOP)))
                          | (f_disarm & (f_sym == up1.sym)))
        u_fire = Signal()
        m.d.comb += u_fire.eq(live & u.enable & armed.bit_select(up1.sym, 1) & ~taken_by_event
                              & (u_stop | u_improve))
        improved = u_fire & ~u_stop
        m.d.comb += [sent_w.addr.eq(up1.sym), sent_w.data.eq(quote), sent_w.en.eq(improved)]
        with m.If(improved):
            m.d.sync += sent_valid.bit_select(up1.sym, 1).eq(1)
        u_ref = reference(bid, ask, hb, ha, u_l_rd.data)
        i_ref = reference(old.bid, old.ask, hb_old, ha_old, u_l_rd.data)

        ui = Signal(intent_layout(S))
        m.d.comb += [uq.w_data.eq(ui), uq.w_en.eq(u_fire | inj1_stb)]
        with m.If(inj1_stb):
            m.d.comb += [ui.sym.eq(inj1.sym), ui.side.eq(inj1.side), ui.price.eq(inj1.price),
                         ui.quantity.eq(inj1.quantity), ui.tif.eq(inj1.tif),
                         ui.tag.eq(inj1.tag), ui.ref.eq(i_ref), ui.cancel.eq(inj1.cancel),
                         ui.user_ref.eq(inj1.user_ref),
                         ui.source.eq(Source.HOST)]
        with m.Else():
            m.d.comb += [ui.sym.eq(up1.sym), ui.side.eq(u.side),
                         ui.price.eq(Mux(u_stop, self._stop_limit(u), quote)),
                         ui.quantity.eq(u.quantity), ui.tif.eq(u.tif), ui.tag.eq(u.tag),
                         ui.ref.eq(u_ref), ui.source.eq(Source.UPDATE)]
            with m.If(u_fire):
                m.d.comb += [inc["fired_stop"].eq(u_stop), inc["fired_improve"].eq(~u_stop)]
        m.d.comb += [ui.t_in.eq(u_t), ui.t_event.eq(u_t)]

        # ---- arming: host writes arm, fires of one-shot entries disarm ----------------
        e_disarm = e_fire & (e.one_shot | (e.kind == TriggerKind.STOP))
        u_disarm = u_fire & (u.one_shot | (u.kind == TriggerKind.STOP))
        m.d.comb += inc["disarmed"].eq(e_disarm | u_disarm | f_disarm)
        with m.If(f_disarm):
            m.d.sync += armed.bit_select(f_sym, 1).eq(0)
        with m.If(e_disarm):
            m.d.sync += armed.bit_select(ev1.sym, 1).eq(0)
        with m.If(u_disarm):
            m.d.sync += armed.bit_select(up1.sym, 1).eq(0)
        with m.If(self.entry_wr.stb):
            m.d.sync += [armed.bit_select(self.entry_wr.sym, 1).eq(self.entry.enable),
                         sent_valid.bit_select(self.entry_wr.sym, 1).eq(0)]

        # ---- out: the event path, else the fast path; the queue when both are idle ----
        head = Signal(intent_layout(S))
        m.d.comb += head.eq(uq.r_data)
        with m.If(ei_valid):
            m.d.comb += [self.intents.payload.eq(ei), self.intents.valid.eq(1)]
        with m.Elif(f_fire):
            m.d.comb += [self.intents.payload.eq(fi), self.intents.valid.eq(1)]
        with m.Else():
            m.d.comb += [self.intents.payload.eq(head), self.intents.valid.eq(uq.r_rdy),
                         uq.r_en.eq(self.intents.ready)]
        return m

    @staticmethod
    def _takes(e, ev):
        """``models.trade.strategy`` and ``models.trade.risk``'s take rule: ``ev`` is an Add on the other side from the entry
        ``e`` (a take) at a price that crosses its limit."""
        buy = e.side == Side.BUY
        add = (ev.type == ItchType.ADD_ORDER) | (ev.type == ItchType.ADD_ORDER_MPID)
        crosses = Mux(buy, ev.price <= e.price, ev.price >= e.price)
        return ((e.kind == TriggerKind.TAKE) & add & (ev.side == Mux(buy, ord("S"), ord("B")))
                & crosses)

    @staticmethod
    def _stop_limit(e):
        """``models.trade.stop_limit``: the stop price through by ``offset`` (0 floor)."""
        down = Mux(e.price > e.offset, e.price - e.offset, 0)
        return Mux(e.side == Side.SELL, down, (e.price + e.offset)[:32])

