"""``risk``: the pre-trade gate every order passes before a byte of it leaves.

Golden model: :class:`gateware.models.trade.Risk` (the checks, their order, what a pass
changes, the host's reports, the kill switch and the watchdog).

Two cycles per intent, always, whatever the intent: in the first the symbol's state is
read and the products (notional, collar band) are formed; in the second every check is
evaluated at once, the first failing one gives the reason, and a pass writes the state
back and queues the order for ``ouch_tx``. Intents are taken every cycle (the strategy
relies on that); a report — from ``ouch_rx`` (``answers``, the venue's answers parsed
on-chip) or staged by the host — uses a cycle without one, ``answers`` first.
Every decision, pass or reject, is recorded in the ``decisions`` FIFO the host drains,
and counted by reason.
"""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from tick2trade.gateware.bytefield import counter_bank
from tick2trade.gateware.interfaces import (STAMPS, TIME_BITS, KillCause, RejectReason, Side,
                                            decision_layout, intent_layout, order_layout,
                                            report_layout, watch_layout)
from tick2trade.gateware.models.trade import risk as model

TIME = TIME_BITS

LIMITS = data.StructLayout({
    "max_shares": 32, "max_notional": 64, "collar_bps": 16, "collar_price": 32,
    "position_limit": 32, "max_gross": 64, "max_open_orders": 16,
    "rate_interval": 32, "rate_tolerance": 32, "sym_rate_interval": 32,
    "sym_rate_tolerance": 32, "dup_window": 32, "kill": 1, "kill_after": 16,
    "watchdog": 32, "watchdog_cancel": 1,
})
"""The risk registers (``models.trade.Limits``; 0 switches a check off)."""

SYM_STATE = data.StructLayout({
    "position": signed(32), "open_buy": 32, "open_sell": 32, "tat": TIME,
    "last_valid": 1, "last_side": 1, "last_price": 32, "last_quantity": 32,
    "last_time": TIME,
})

STATUS = data.StructLayout({"killed": 1, "tripped": len(KillCause),
                            "breaches": 16, "open_orders": 16, "gross": 64})


class Risk(wiring.Component):
    """The pre-trade risk gate.

    Parameters
    ----------
    symbols : int
    queue_depth : int
        Passed orders waiting for ``ouch_tx``; a pass with no room is ``tx_busy``.
    decision_depth : int
        Decision records waiting for the host; when full, records are lost (counted).

    Members
    -------
    intents : In(stream(intent_layout)) — always ready.
    orders : Out(stream(order_layout)) — to ``ouch_tx``; ``stamps`` rides along.
    stamps : Out(STAMPS) — timestamps of the order at the head of ``orders``.
    decisions : Out(stream(decision_layout)) — one record per intent.
    limits : In(LIMITS); restricted : In(symbols) — a bit per symbol.
    watch : In(watch_layout) — the stock of each symbol (for the order).
    answers : In(stream(report_layout)) — reports from ``ouch_rx``; taken in a cycle
        without an intent, the symbol's state written in the next.
    report : In(report_layout); report_stb, heartbeat, kill_reset : In(1) strobes.
    now : In(48) — the cycle counter.
    status : Out(STATUS); cancel_all : Out(1) — a strobe when the watchdog trips with
        ``watchdog_cancel`` set.
    counters : Out — ``models.trade.RISK_COUNTERS``.

    Latency: an order taken in cycle t is at the head of ``orders`` in cycle t + 2.
    """

    def __init__(self, symbols: int = 64, queue_depth: int = 16, decision_depth: int = 64):
        self.symbols, self.queue_depth, self.decision_depth = symbols, queue_depth, decision_depth
        super().__init__({
            "intents": In(stream.Signature(intent_layout(symbols))),
            "orders": Out(stream.Signature(order_layout(symbols))),
            "stamps": Out(STAMPS),
            "decisions": Out(stream.Signature(decision_layout(symbols))),
            "limits": In(LIMITS),
            "restricted": In(symbols),
            "watch": In(watch_layout(symbols)),
            "answers": In(stream.Signature(report_layout(symbols))),
            "report": In(report_layout(symbols)),
            "report_stb": In(1),
            "heartbeat": In(1),
            "kill_reset": In(1),
            "now": In(TIME),
            "status": Out(STATUS),
            "cancel_all": Out(1),
            "counters": Out(data.StructLayout({c: 32 for c in model.RISK_COUNTERS})),
        })

    def registers(self, limits: model.Limits | None = None):
        """Limits (reset values from ``limits``), the restricted list, the host's reports,
        heartbeat and kill reset strobes, status, the decision FIFO and the counters."""
        from tick2trade.gateware.registers import RegisterBlock

        lim = limits or model.Limits()
        resets = {f"limits.{name}": int(getattr(lim, name)) for name, _ in LIMITS
                  if not isinstance(getattr(lim, name), frozenset)}
        regs = RegisterBlock("risk", "Pre-trade risk gate (reasons: " + ", ".join(
            f"{i} {r}" for i, r in enumerate(model.REASONS)) + ").")
        regs.struct("limits", self.limits, "rw", "limit (0: check off)", resets)
        regs.rw("restricted", self.restricted, "bit per symbol: no orders")
        regs.rw("report", self.report, "staged host news of an order: shares filled and "
                "canceled, closed, notional released (1/10000)")
        regs.pulse("report_stb", self.report_stb, "write 1: apply the staged report")
        regs.pulse("heartbeat", self.heartbeat, "write 1: the host is alive (watchdog)")
        regs.pulse("kill_reset", self.kill_reset, "write 1: clear a tripped kill switch "
                   "and the breach count")
        regs.struct("status", self.status, "ro", "gate state")
        regs.fifo("decisions", self.decisions, "one record per intent: reason 0 is a pass")
        regs.struct("counters", self.counters, "ro", "32-bit wrapping counter")
        return regs

    def elaborate(self, platform):
        m = Module()
        S = self.symbols
        lim = self.limits
        now = self.now
        inc = counter_bank(m, model.RISK_COUNTERS, self.counters)

        m.submodules.state = mem = memory.Memory(shape=SYM_STATE, depth=S, init=[])
        wr = mem.write_port()
        rd = mem.read_port(transparent_for=(wr,))

        tripped = Signal(len(KillCause))
        breaches = Signal(16)
        open_orders = Signal(16)
        gross = Signal(64)
        tat = Signal(TIME)
        hb_time = Signal(TIME)
        killed = lim.kill | tripped.any()
        m.d.comb += [self.status.killed.eq(killed), self.status.tripped.eq(tripped | lim.kill),
                     self.status.breaches.eq(breaches), self.status.open_orders.eq(open_orders),
                     self.status.gross.eq(gross)]

        # ---- stage A: read the symbol's state, form the products ---------------------
        it = self.intents.payload
        m.d.comb += self.intents.ready.eq(1)
        # a report waits for a cycle without an intent, ouch_rx's before the host's; a
        # host report arriving while another still waits replaces it (counted: the host
        # paces its reports)
        report = Signal.like(self.report)
        waiting = Signal()
        answer = self.answers
        m.d.comb += answer.ready.eq(~self.intents.valid)
        take_answer = answer.valid & ~self.intents.valid
        take_report = waiting & ~self.intents.valid & ~answer.valid
        with m.If(take_report):
            m.d.sync += waiting.eq(0)
        with m.If(self.report_stb):
            m.d.sync += [report.eq(self.report), waiting.eq(1)]
            m.d.comb += inc["reports_lost"].eq(waiting & ~take_report)
        m.d.comb += rd.addr.eq(Mux(self.intents.valid, it.sym,
                                   Mux(answer.valid, answer.payload.sym, report.sym)))

        a = Signal.like(it)
        a_valid = Signal()
        a_report = Signal.like(self.report)
        a_report_stb = Signal()
        notional = Signal(64)
        dev_scaled = Signal(48)
        band = Signal(48)
        dev = Mux(it.price > it.ref, it.price - it.ref, it.ref - it.price)
        m.d.sync += [a.eq(it), a_valid.eq(self.intents.valid),
                     a_report.eq(Mux(answer.valid, answer.payload, report)),
                     a_report_stb.eq(take_report | take_answer), notional.eq(it.price * it.quantity),
                     dev_scaled.eq(dev * 10000), band.eq(lim.collar_bps * it.ref)]
        a_dev = Signal(32)
        m.d.sync += a_dev.eq(dev)

        # ---- stage B: decide ------------------------------------------------------------
        st = rd.data
        buy = a.side == Side.BUY
        exposure = Signal(signed(35))
        m.d.comb += exposure.eq(Mux(buy, st.position + st.open_buy + a.quantity,
                                    st.open_sell + a.quantity - st.position))
        tat_ahead = Signal(signed(TIME + 1))
        sym_ahead = Signal(signed(TIME + 1))
        m.d.comb += [tat_ahead.eq(tat - now), sym_ahead.eq(st.tat - now)]
        R = RejectReason
        failing = {
            R.KILL: killed,
            R.RESTRICTED: self.restricted.bit_select(a.sym, 1),
            R.BAD_ORDER: (a.quantity == 0) | (a.price == 0),
            R.MAX_SHARES: (lim.max_shares != 0) & (a.quantity > lim.max_shares),
            R.MAX_NOTIONAL: (lim.max_notional != 0) & (notional > lim.max_notional),
            R.NO_REFERENCE: ((lim.collar_bps != 0) | (lim.collar_price != 0)) & (a.ref == 0),
            R.COLLAR: (((lim.collar_bps != 0) & (dev_scaled > band))
                       | ((lim.collar_price != 0) & (a_dev > lim.collar_price))),
            R.POSITION: (lim.position_limit != 0) & (exposure > lim.position_limit),
            R.GROSS: (lim.max_gross != 0) & (gross + notional > lim.max_gross),
            R.OPEN_ORDERS: (lim.max_open_orders != 0) & (open_orders >= lim.max_open_orders),
            R.RATE_GLOBAL: (lim.rate_interval != 0) & (tat_ahead > lim.rate_tolerance),
            R.RATE_SYMBOL: (lim.sym_rate_interval != 0) & (sym_ahead > lim.sym_rate_tolerance),
            R.DUPLICATE: ((lim.dup_window != 0) & st.last_valid & (st.last_side == a.side)
                          & (st.last_price == a.price) & (st.last_quantity == a.quantity)
                          & ((now - st.last_time)[:TIME] < lim.dup_window)),
        }
        m.submodules.queue = q = fifo.SyncFIFO(
            width=order_layout(S).size + STAMPS.size, depth=self.queue_depth)
        failing[R.TX_BUSY] = ~q.w_rdy
        assert list(failing) == list(R)[1:], "a check for every reason, in their order"
        reason = Signal(4)
        for code in reversed(list(failing)):
            with m.If(failing[code]):
                m.d.comb += reason.eq(code)
        with m.If(a.cancel):  # cancels only reduce risk: they wait for nothing but room
            m.d.comb += reason.eq(Mux(q.w_rdy, R.PASS, R.TX_BUSY))
        passed = a_valid & (reason == R.PASS)
        enter = passed & ~a.cancel

        with m.If(a_valid):
            for code in R:
                m.d.comb += inc[model.REASONS[code.value]].eq(reason == code)
            m.d.comb += inc["cancels"].eq(a.cancel)

        # the order and its stamps into the queue toward ouch_tx
        order = Signal(order_layout(S))
        stamps = Signal(STAMPS)
        m.d.comb += [
            order.cancel.eq(a.cancel), order.user_ref.eq(a.user_ref),
            order.side.eq(Mux(buy, ord("B"), ord("S"))), order.quantity.eq(a.quantity),
            order.stock.eq(self.watch[a.sym].stock), order.price.eq(a.price),
            order.tif.eq(a.tif), order.tag.eq(a.tag), order.sym.eq(a.sym),
            stamps.t_in.eq(a.t_in), stamps.t_event.eq(a.t_event), stamps.t_decide.eq(now),
            q.w_data.eq(Cat(order, stamps)), q.w_en.eq(passed),
            self.orders.payload.eq(q.r_data[:order_layout(S).size]),
            self.stamps.eq(q.r_data[order_layout(S).size:]),
            self.orders.valid.eq(q.r_rdy), q.r_en.eq(self.orders.ready),
        ]

        # the decision record
        m.submodules.decisions = dq = fifo.SyncFIFOBuffered(
            width=decision_layout(S).size, depth=self.decision_depth)
        rec = Signal(decision_layout(S))
        m.d.comb += [rec.sym.eq(a.sym), rec.side.eq(a.side), rec.source.eq(a.source),
                     rec.cancel.eq(a.cancel), rec.reason.eq(reason), rec.price.eq(a.price),
                     rec.quantity.eq(a.quantity), rec.t_decide.eq(now),
                     dq.w_data.eq(rec), dq.w_en.eq(a_valid),
                     self.decisions.payload.eq(dq.r_data), self.decisions.valid.eq(dq.r_rdy),
                     dq.r_en.eq(self.decisions.ready),
                     inc["decisions_lost"].eq(a_valid & ~dq.w_rdy)]

        # ---- what a pass, a breach or a report changes ----------------------------------
        new = Signal(SYM_STATE)
        m.d.comb += [new.eq(st), wr.addr.eq(a.sym), wr.data.eq(new)]
        with m.If(enter):
            with m.If(buy):
                m.d.comb += new.open_buy.eq(st.open_buy + a.quantity)
            with m.Else():
                m.d.comb += new.open_sell.eq(st.open_sell + a.quantity)
            with m.If(lim.sym_rate_interval != 0):
                m.d.comb += new.tat.eq(Mux(sym_ahead > 0, st.tat, now) + lim.sym_rate_interval)
            m.d.comb += [new.last_valid.eq(1), new.last_side.eq(a.side),
                         new.last_price.eq(a.price), new.last_quantity.eq(a.quantity),
                         new.last_time.eq(now), wr.en.eq(1)]
            m.d.sync += [gross.eq(gross + notional), open_orders.eq(open_orders + 1)]
            with m.If(lim.rate_interval != 0):
                m.d.sync += tat.eq(Mux(tat_ahead > 0, tat, now) + lim.rate_interval)
        with m.Elif(a_valid & ~a.cancel & (reason >= R.BAD_ORDER) & (reason < R.TX_BUSY)):
            m.d.sync += breaches.eq(breaches + 1)
            with m.If((lim.kill_after != 0) & (breaches + 1 >= lim.kill_after)):
                m.d.sync += tripped[KillCause.BREACHES.value].eq(1)
        with m.Elif(a_report_stb):
            # a host that reports more than was open leaves 0, never a wrapped count
            r = a_report
            done = r.filled + r.canceled

            def less(value, by):
                return Mux(value > by, value - by, 0)
            with m.If(r.side == Side.BUY):
                m.d.comb += [new.position.eq(st.position + r.filled),
                             new.open_buy.eq(less(st.open_buy, done))]
            with m.Else():
                m.d.comb += [new.position.eq(st.position - r.filled),
                             new.open_sell.eq(less(st.open_sell, done))]
            m.d.comb += [wr.addr.eq(r.sym), wr.en.eq(1), inc["reports"].eq(1)]
            m.d.sync += [open_orders.eq(less(open_orders, r.closed)),
                         gross.eq(less(gross, r.released))]

        # ---- watchdog and the host's reset ------------------------------------------------
        with m.If(self.heartbeat):
            m.d.sync += hb_time.eq(now)
        late = (now - hb_time)[:TIME] > lim.watchdog
        with m.If((lim.watchdog != 0) & ~tripped[KillCause.WATCHDOG.value] & late):
            m.d.sync += tripped[KillCause.WATCHDOG.value].eq(1)
            m.d.comb += self.cancel_all.eq(lim.watchdog_cancel)
        with m.If(self.kill_reset):
            m.d.sync += [tripped.eq(0), breaches.eq(0)]
        return m
