"""Golden model of the trade path's decisions: the ``strategy`` trigger table
(``gateware/trade/strategy.py``); the ``risk`` gate's is ``models/trade/risk.py``.

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
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tick2trade.gateware.interfaces import ItchType, Source, TriggerKind, names
from tick2trade.protocol.itch import Event

from ..book import BUY, CLEAR, SELL, Update

KINDS = names(TriggerKind)  # a trigger's kind: its code is the index
assert KINDS == ("take", "stop", "improve"), KINDS
TAKE, STOP, IMPROVE = (k.value for k in (TriggerKind.TAKE, TriggerKind.STOP,
                                          TriggerKind.IMPROVE))
SOURCES = names(Source)  # where an intent came from: its code is the index
assert SOURCES == ("event", "update", "host", "fast"), SOURCES
# rejects that count toward the automatic kill switch
STRATEGY_COUNTERS = ("events", "updates", "injected", "fired_take", "fired_stop",
                     "fired_improve", "disarmed", "queue_full")
TRADE_PRINTS = tuple(t.value for t in (ItchType.TRADE, ItchType.ORDER_EXECUTED_WITH_PRICE,
                                       ItchType.CROSS_TRADE))
ADDS = (ItchType.ADD_ORDER.value, ItchType.ADD_ORDER_MPID.value)
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


# ---------------------------------------------------------------------------------------
# The pipelines' timing, for comparing with the gateware cycle by cycle.

STRATEGY_LATENCY = 2  # input offered → intent offered (event and update paths)
FAST_LATENCY = 0  # early event offered → intent offered (fast path)


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
