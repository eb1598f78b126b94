"""Golden model of the trade path's decisions: the ``strategy`` trigger table and the
``risk`` gate (``gateware/strategy.py``, ``gateware/risk.py``).

Given what the strategy saw, cycle by cycle, the model says which order intents it made
and, for each, whether the risk gate let it through or which check refused it. Timing
enters in two places and is modelled exactly: state written by one input is seen by
inputs of *later* cycles only, and the risk gate's time-based checks (rate, duplicate
window, watchdog) read the cycle at which the gate took the intent.

Trigger kinds (one entry per symbol; prices in 1/10000, ``tick`` in the same unit)
------------------------------------------------------------------------------------
``take``
    An order appears on the other side at a price that crosses the entry's limit (an
    Add on the ask at or below a buy limit, on the bid at or above a sell limit): send
    ``quantity`` at the limit. Decided from the ITCH event itself, before the book has
    applied it, normally on the fast path: in the cycle the decoder has the Add's last
    byte (its *early* event), a cycle before the event path would see it; it sees the
    state as an input offered in the cycle before would (``run_strategy`` says when the
    event path decides instead). Replaces are not takes (their event has no side).
``stop``
    Always one-shot. A sell stop fires when a trade prints (P, C, Q) at or below the stop
    price or the best bid falls to or below it; a buy stop on a print at or above it or
    a best offer at or above it. The order is a stop-limit: the stop price minus (sell)
    or plus (buy) ``offset`` (ticks × tick, worked out by the host).
``improve``
    On every book update of the symbol with both sides present and a spread of at least
    ``min_spread``: a buy quotes the bid plus ``offset`` (0 joins), a sell the ask minus
    ``offset``; never crossing the other side, never beyond the entry's
    ``price`` (a buy's cap, a sell's floor), and only when the price differs from the
    last one this entry sent.
An entry with ``one_shot`` disarms when it fires (stop entries always do); writing the
entry arms it again.

The market state per symbol: best bid and ask (from the book's updates, which carry the
side's best after each change) and the last trade price (from P, C, Q events). The
reference price for the collar is the mid of bid and ask when both exist, else the last
trade, else none.

Risk checks, in the order of their reason codes (the first failing one is reported)
-------------------------------------------------------------------------------------
``kill`` (host switch, breach count, or watchdog), ``restricted`` symbol, ``bad_order``
(zero quantity or price), ``max_shares``, ``max_notional`` (price × quantity),
``no_reference`` / ``collar`` (|price − ref| against ``collar_bps`` of the reference
and against ``collar_price``), ``position`` (position + open buys + quantity for a buy,
open sells + quantity − position for a sell, against ``position_limit``), ``gross``
(notional sent minus notional the host released, plus this order's), ``open_orders``,
``rate_global`` / ``rate_symbol`` (GCRA token buckets: an order passes when the bucket's
theoretical arrival time is at most ``tolerance`` = (burst − 1) × ``interval`` cycles ahead
of now, and moves it ``interval`` on), ``duplicate``
(same symbol, side, price and quantity as the symbol's last passed order within
``dup_window`` cycles), ``tx_busy`` (the queue to the order sender is full). A limit of
0 switches its check off. Cancels (host-injected) pass every check. A passed enter
updates open exposure, gross, open orders, both buckets and the duplicate memory; the
host reports fills, cancels and closed orders back (:meth:`Risk.report`).

With ``kill_after`` > 0, that many rejects for reasons after ``restricted`` trip the kill
switch. The watchdog trips it when the host sends no heartbeat for ``watchdog`` cycles.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .book import BUY, CLEAR, SELL, Update
from .itch import Event

TAKE, STOP, IMPROVE = range(3)
KINDS = ("take", "stop", "improve")
SOURCES = ("event", "update", "host", "fast")
REASONS = ("pass", "kill", "restricted", "bad_order", "max_shares", "max_notional",
           "no_reference", "collar", "position", "gross", "open_orders", "rate_global",
           "rate_symbol", "duplicate", "tx_busy")
# rejects that count toward the automatic kill switch
BREACHES = frozenset(REASONS[REASONS.index("bad_order"):REASONS.index("tx_busy")])
KILL_CAUSES = ("host", "breaches", "watchdog")
STRATEGY_COUNTERS = ("events", "updates", "injected", "fired_take", "fired_stop",
                     "fired_improve", "disarmed", "queue_full")
RISK_COUNTERS = REASONS + ("cancels", "reports", "reports_lost", "decisions_lost")
TRADE_PRINTS = (ord("P"), ord("C"), ord("Q"))
ADDS = (ord("A"), ord("F"))
TIME_BITS = 48
MASK32 = (1 << 32) - 1


@dataclass
class Trigger:
    """One entry of the trigger table (``strategy.entry`` register fields)."""

    enable: bool = False
    kind: int = TAKE
    side: int = BUY
    one_shot: bool = False
    price: int = 0
    quantity: int = 0
    tif: int = ord("3")
    offset: int = 0  # ticks × tick: a stop's slippage, an improve's step from the touch
    min_spread: int = 0  # spread ticks × tick: an improve's least spread
    tag: int = 0


@dataclass(frozen=True)
class Intent:
    """An order the strategy (or the host) wants sent, with the reference price the
    strategy saw and where it came from."""

    sym: int
    side: int
    price: int
    quantity: int
    tif: int
    tag: int
    ref: int
    source: str
    cancel: bool = False
    user_ref: int = 0


@dataclass
class Market:
    bid: int | None = None
    ask: int | None = None
    last: int = 0

    def reference(self) -> int:
        if self.bid is not None and self.ask is not None:
            return (self.bid + self.ask) >> 1
        return self.last


class Strategy:
    """The trigger table and market state of ``symbols`` instruments."""

    def __init__(self, symbols: int):
        self.symbols = symbols
        self.table = [Trigger() for _ in range(symbols)]
        self.armed = [False] * symbols
        self.last_sent: list[int | None] = [None] * symbols  # improve: the last price sent
        self.market = [Market() for _ in range(symbols)]
        self.counters = dict.fromkeys(STRATEGY_COUNTERS, 0)

    def write(self, sym: int, entry: Trigger) -> None:
        """The host writes an entry: it is armed when enabled, and forgets its last price."""
        self.table[sym] = replace(entry)
        self.armed[sym] = entry.enable
        self.last_sent[sym] = None

    def cycle(self, event: Event | None = None, update: Update | None = None,
              inject: Intent | None = None, early: Event | None = None,
              taken: bool = False) -> list[Intent]:
        """One clock cycle's inputs: at most one Add whose take is decided on the fast
        path (``early``), one event (the event path; ``taken``: its take was decided on
        the fast path already) and one book update or host injection (the update path;
        an injection takes that path's slot). All read the state as it was before this
        cycle; the intents come out fast path first, then event path."""
        snapshot = [replace(m) for m in self.market]
        out: list[Intent] = []
        writes: list = []
        if early is not None:
            out += self._take(early, snapshot[early.sym], "fast")
        if event is not None:
            self.counters["events"] += 1
            out += self._event(event, snapshot[event.sym], writes, taken)
        if inject is not None:
            self.counters["injected"] += 1
            out.append(replace(inject, ref=snapshot[inject.sym].reference(), source="host"))
        elif update is not None:
            self.counters["updates"] += 1
            out += self._update(update, snapshot, writes)
        for apply in writes:
            apply()
        return out

    def _fire(self, sym: int, side: int, price: int, source: str, ref: int) -> Intent:
        e = self.table[sym]
        self.counters[f"fired_{KINDS[e.kind]}"] += 1
        if e.one_shot or e.kind == STOP:
            self.armed[sym] = False
            self.counters["disarmed"] += 1
        return Intent(sym, side, price & MASK32, e.quantity, e.tif, e.tag, ref, source)

    def _take(self, ev: Event, m: Market, source: str) -> list[Intent]:
        e = self.table[ev.sym]
        if not (e.enable and self.armed[ev.sym]) or e.kind != TAKE or ord(ev.type) not in ADDS:
            return []
        opposite = ord("S") if e.side == BUY else ord("B")
        crosses = ev.price <= e.price if e.side == BUY else ev.price >= e.price
        if ev.side == opposite and crosses:
            return [self._fire(ev.sym, e.side, e.price, source, m.reference())]
        return []

    def _event(self, ev: Event, m: Market, writes: list, taken: bool) -> list[Intent]:
        sym, t = ev.sym, ord(ev.type)
        e = self.table[sym]
        prints = t in TRADE_PRINTS and ev.price != 0
        if prints:
            writes.append(lambda: setattr(self.market[sym], "last", ev.price))
        if not taken and (fired := self._take(ev, m, "event")):
            return fired
        if not (e.enable and self.armed[sym]):
            return []
        if e.kind == STOP and prints:
            hit = ev.price <= e.price if e.side == SELL else ev.price >= e.price
            if hit:
                return [self._fire(sym, e.side, stop_limit(e), "event", m.reference())]
        return []

    def _update(self, up: Update, snapshot: list[Market], writes: list) -> list[Intent]:
        if up.action == CLEAR:
            for s in (range(self.symbols) if up.all_syms else (up.sym,)):
                writes.append(lambda s=s: self._forget_bbo(s))
            return []
        sym = up.sym
        m = replace(snapshot[sym])
        best = up.best_price if up.best_shares else None
        if up.side == BUY:
            m.bid = best
        else:
            m.ask = best
        writes.append(lambda: self._set_bbo(sym, m.bid, m.ask))
        e = self.table[sym]
        if not (e.enable and self.armed[sym]):
            return []
        if e.kind == STOP:
            watched = m.bid if e.side == SELL else m.ask
            if up.side != e.side and watched is not None and (
                    watched <= e.price if e.side == SELL else watched >= e.price):
                return [self._fire(sym, e.side, stop_limit(e), "update", m.reference())]
        if e.kind == IMPROVE and m.bid is not None and m.ask is not None:
            price = improve_price(e, m.bid, m.ask)
            if price is not None and price != self.last_sent[sym]:
                self.last_sent[sym] = price
                return [self._fire(sym, e.side, price, "update", m.reference())]
        return []

    def _forget_bbo(self, sym: int) -> None:
        self.market[sym].bid = self.market[sym].ask = None

    def _set_bbo(self, sym: int, bid: int | None, ask: int | None) -> None:
        self.market[sym].bid, self.market[sym].ask = bid, ask


def stop_limit(e: Trigger) -> int:
    """A stop entry's order price: the stop, ``ticks`` ticks through it (0 if below 0)."""
    return max(0, e.price - e.offset) if e.side == SELL else e.price + e.offset


def improve_price(e: Trigger, bid: int, ask: int) -> int | None:
    """The price an improve entry quotes at, or None when the rule says not to."""
    if ask - bid < e.min_spread:
        return None
    if e.side == BUY:
        price = bid + e.offset
        return price if price < ask and price <= e.price else None
    price = ask - e.offset
    return price if price > bid and price >= e.price else None


@dataclass
class Limits:
    """The risk registers (0 switches a check off; cycles for times)."""

    max_shares: int = 0
    max_notional: int = 0  # price × quantity, in 1/10000
    collar_bps: int = 0
    collar_price: int = 0
    position_limit: int = 0
    max_gross: int = 0
    max_open_orders: int = 0
    rate_interval: int = 0  # cycles per order, global
    rate_tolerance: int = 0  # (burst - 1) × interval
    sym_rate_interval: int = 0
    sym_rate_tolerance: int = 0
    dup_window: int = 0
    kill: bool = False
    kill_after: int = 0
    watchdog: int = 0
    watchdog_cancel: bool = False
    restricted: frozenset = frozenset()


@dataclass
class SymRisk:
    position: int = 0
    open_buy: int = 0
    open_sell: int = 0
    tat: int = 0
    last: tuple | None = None  # side, price, quantity of the last passed order
    last_time: int = 0


@dataclass
class Risk:
    """The pre-trade gate: ``check`` decides, ``report`` applies the host's news."""

    symbols: int
    limits: Limits = field(default_factory=Limits)
    queue_room: int = 16

    def __post_init__(self):
        self.state = [SymRisk() for _ in range(self.symbols)]
        self.tat = 0
        self.gross = 0
        self.open_orders = 0
        self.breaches = 0
        self.tripped = 0  # bits 1, 2 of KILL_CAUSES (bit 0, the host's switch, is a limit)
        self.heartbeat = 0
        self.cancel_all_sent = False
        self.counters = dict.fromkeys(RISK_COUNTERS, 0)

    def killed(self) -> bool:
        return self.limits.kill or bool(self.tripped)

    def heartbeat_at(self, now: int) -> None:
        self.heartbeat = now

    def tick(self, now: int) -> bool:
        """The watchdog at cycle ``now``; True when it trips (and asks for cancel-all
        if so configured)."""
        lim = self.limits
        if lim.watchdog and not self.tripped & 4 and now - self.heartbeat > lim.watchdog:
            self.tripped |= 4
            return lim.watchdog_cancel
        return False

    def reason(self, it: Intent, now: int, queue_free: bool = True) -> str:
        lim, st = self.limits, self.state[it.sym]
        if it.cancel:  # cancels only reduce risk
            return "pass" if queue_free else "tx_busy"
        if self.killed():
            return "kill"
        if it.sym in lim.restricted:
            return "restricted"
        if it.quantity == 0 or it.price == 0:
            return "bad_order"
        if lim.max_shares and it.quantity > lim.max_shares:
            return "max_shares"
        notional = it.price * it.quantity
        if lim.max_notional and notional > lim.max_notional:
            return "max_notional"
        if lim.collar_bps or lim.collar_price:
            if it.ref == 0:
                return "no_reference"
            dev = abs(it.price - it.ref)
            if (lim.collar_bps and dev * 10000 > lim.collar_bps * it.ref) or \
                    (lim.collar_price and dev > lim.collar_price):
                return "collar"
        if lim.position_limit:
            exposure = (st.position + st.open_buy + it.quantity if it.side == BUY
                        else st.open_sell + it.quantity - st.position)
            if exposure > lim.position_limit:
                return "position"
        if lim.max_gross and self.gross + notional > lim.max_gross:
            return "gross"
        if lim.max_open_orders and self.open_orders >= lim.max_open_orders:
            return "open_orders"
        if lim.rate_interval and self.tat - now > lim.rate_tolerance:
            return "rate_global"
        if lim.sym_rate_interval and st.tat - now > lim.sym_rate_tolerance:
            return "rate_symbol"
        if lim.dup_window and st.last == (it.side, it.price, it.quantity) and \
                now - st.last_time < lim.dup_window:
            return "duplicate"
        if not queue_free:
            return "tx_busy"
        return "pass"

    def check(self, it: Intent, now: int, queue_free: bool = True) -> str:
        """Decide ``it`` at cycle ``now``; a pass updates the state."""
        why = self.reason(it, now, queue_free)
        self.counters[why] += 1
        if it.cancel:
            self.counters["cancels"] += 1
            return why
        lim, st = self.limits, self.state[it.sym]
        if why == "pass":
            if it.side == BUY:
                st.open_buy += it.quantity
            else:
                st.open_sell += it.quantity
            self.gross += it.price * it.quantity
            self.open_orders += 1
            if lim.rate_interval:
                self.tat = max(self.tat, now) + lim.rate_interval
            if lim.sym_rate_interval:
                st.tat = max(st.tat, now) + lim.sym_rate_interval
            st.last, st.last_time = (it.side, it.price, it.quantity), now
        elif why in BREACHES:
            self.breaches += 1
            if lim.kill_after and self.breaches >= lim.kill_after:
                self.tripped |= 2
        return why

    def report(self, sym: int, side: int, filled: int = 0, canceled: int = 0,
               closed: bool = False, released: int = 0) -> None:
        """The host's news about an order: shares filled and canceled, whether it is
        closed now, and the notional it no longer holds against the gross limit."""
        st = self.state[sym]
        self.counters["reports"] += 1
        done = filled + canceled  # more than was open leaves 0
        if side == BUY:
            st.position += filled
            st.open_buy = max(0, st.open_buy - done)
        else:
            st.position -= filled
            st.open_sell = max(0, st.open_sell - done)
        self.open_orders = max(0, self.open_orders - closed)
        self.gross = max(0, self.gross - released)

    def reset_kill(self) -> None:
        """The host re-arms after a trip: causes and the breach count are cleared."""
        self.tripped = 0
        self.breaches = 0
        self.cancel_all_sent = False


# ---------------------------------------------------------------------------------------
# The pipelines' timing, for comparing with the gateware cycle by cycle.

STRATEGY_LATENCY = 2  # input offered → intent offered (event and update paths)
FAST_LATENCY = 0  # early event offered → intent offered (fast path)
RISK_LATENCY = 2  # intent offered → decided (risk gate: stage A reads, stage B decides)


def run_strategy(strategy: Strategy, arrivals: dict[int, tuple], writes: dict[int, list],
                 early: dict[int, tuple[Event, int]] | None = None
                 ) -> list[tuple[int, Intent]]:
    """The intents the strategy offers the risk gate and when: ``arrivals[c]`` is (event,
    update, inject) taken in cycle ``c``, ``writes[c]`` the (sym, Trigger) entries the host
    writes in cycle ``c``, ``early[c]`` the early event offered in cycle ``c`` (the
    event that ``arrivals[c + 1]`` carries) and the ``early_sym`` of cycle ``c - 1``.

    Event-path intents are offered 2 cycles after their event. A fast-path intent is
    offered in its early event's cycle and sees the state an input of the cycle before
    would see; the fast path decides when the symbol named the cycle before is the
    event's and no event-path intent is offered in that cycle — otherwise the event path
    decides the take as for any event. Update-path intents queue behind the others for a
    cycle without one."""
    early = early or {}
    out: list[tuple[int, Intent]] = []
    now: dict[int, Intent] = {}  # fast and event-path intents, by the cycle offered
    queue: list[tuple[int, Intent]] = []
    taken: set[int] = set()  # cycles whose event had its take decided on the fast path
    end = max([*arrivals, *writes, *early, 0]) + STRATEGY_LATENCY + 1
    c = 0
    while c <= end or queue:
        for sym, entry in writes.get(c, ()):
            strategy.write(sym, entry)
        ev = None
        if c + 1 in early:
            ev, named = early[c + 1]
            if ev.sym != named or c + 1 in now:
                ev = None
            else:
                taken.add(c + 2)
        event, update, inject = arrivals.get(c, (None, None, None))
        for it in strategy.cycle(event, update, inject, early=ev, taken=c in taken):
            if it.source == "fast":
                now[c + 1 + FAST_LATENCY] = it
            elif it.source == "event":
                now[c + STRATEGY_LATENCY] = it
            else:
                queue.append((c + STRATEGY_LATENCY, it))
        if c in now:
            out.append((c, now.pop(c)))
        elif queue and queue[0][0] <= c:
            out.append((c, queue.pop(0)[1]))
        c += 1
    return out


@dataclass(frozen=True)
class Report:
    sym: int
    side: int
    filled: int = 0
    canceled: int = 0
    closed: bool = False
    released: int = 0


def run_risk(risk: Risk, offered: list[tuple[int, Intent]], reports: dict[int, Report]
             | None = None, heartbeats: set[int] = frozenset(), kill_resets: set[int] =
             frozenset(), until: int | None = None) -> list[tuple[int, Intent, str]]:
    """The gate's decisions (cycle decided, intent, reason) for intents offered at the
    given cycles, with host reports, heartbeats and kill resets written in the given
    cycles, and the watchdog ticking every cycle up to ``until``."""
    reports = dict(reports or {})
    by_cycle = dict(offered)
    last = max([*by_cycle, *reports, *heartbeats, *kill_resets, 0]) + 2
    until = max(until or 0, last)
    out: list[tuple[int, Intent, str]] = []
    pending: list[tuple[int, Report]] = []  # (cycle it may be taken, report)
    report_in_b: Report | None = None
    for t in range(until + 1):
        # stage B of the intent offered (or report taken) in cycle t - 1
        if t - 1 in by_cycle:
            it = by_cycle[t - 1]
            out.append((t, it, risk.check(it, t)))
        elif report_in_b is not None:
            risk.report(**vars(report_in_b))
        report_in_b = None
        if risk.tick(t):
            risk.cancel_all_sent = True
        if t in heartbeats:
            risk.heartbeat_at(t)
        if t in kill_resets:
            risk.reset_kill()
        # stage A: a waiting report is taken in a cycle without an intent
        if pending and pending[0][0] <= t and t not in by_cycle:
            report_in_b = pending.pop(0)[1]
        if t in reports:
            if pending:
                risk.counters["reports_lost"] += 1
                pending.clear()
            pending.append((t + 1, reports[t]))
    return out
