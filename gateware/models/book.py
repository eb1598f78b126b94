"""Golden model of the order book: ITCH events → L3 orders → price levels → top-N updates.

Groundwork for the ``book`` stage (issue 4): the rules ITCH defines, the aggregation and
the update stream are fixed here; the gateware's capacity limits (hash buckets, tracked
depth) will be added as parameters when the stage is built, so the model keeps
predicting every counter.

The update stream carries one update per level change, enough for a consumer to keep
its own copy of the top ``n`` levels of every (symbol, side) without ever seeing the
whole book:

* ``MODIFY`` level ``i`` now holds (price, shares, orders);
* ``INSERT`` at ``i``: levels ``i..n-2`` move down one, the last falls off, the new level
  is at ``i``;
* ``DELETE`` at ``i``: levels ``i+1..n-1`` move up one, and (price, shares, orders) is the
  level that enters at ``n-1`` from below (all zero when there is none).

``bbo`` is set when level 0 changed. Level 0 is the best: highest bid, lowest ask.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .itch import Event

BUY, SELL = 0, 1
MODIFY, INSERT, DELETE = "modify", "insert", "delete"
BOOK_COUNTERS = ("adds", "executes", "cancels", "deletes", "replaces", "duplicate_ref",
                 "unknown_ref", "overfill", "updates")


@dataclass
class Order:
    sym: int
    side: int
    price: int
    shares: int


@dataclass(frozen=True)
class Update:
    sym: int
    side: int
    action: str
    level: int
    price: int
    shares: int
    orders: int
    bbo: bool


Level = tuple[int, int, int]  # price, shares, orders


class BookModel:
    """Every order and every level, exactly; the top ``n`` per side published as updates.

    ITCH rules: Add ('A', 'F') creates an order (a reference already live is counted in
    ``duplicate_ref`` and ignored); Executed ('E', 'C') and Cancel ('X') take shares off
    (more than remain: ``overfill``, the order is emptied); an order with no shares left
    is gone; Delete ('D') removes it; Replace ('U') removes the original and adds the new
    reference with the same symbol and side at the new price and shares (time priority is
    lost, which does not show in aggregated levels). An unknown reference is counted in
    ``unknown_ref`` and changes nothing. 'C' prints at its own price but takes shares
    off the order's level. Other event types do not touch the book.
    """

    def __init__(self, n: int = 8):
        self.n = n
        self.orders: dict[int, Order] = {}
        self.levels: dict[tuple[int, int], dict[int, list[int]]] = {}
        self.counters = Counter({k: 0 for k in BOOK_COUNTERS})

    # --- queries
    def top(self, sym: int, side: int) -> list[Level]:
        levels = self.levels.get((sym, side), {})
        prices = sorted(levels, reverse=side == BUY)[:self.n]
        return [(p, levels[p][0], levels[p][1]) for p in prices]

    def book(self, sym: int) -> dict[str, list[list[int]]]:
        """The whole book of a symbol, best first: {"bids": [[price, shares, orders]...],
        "asks": [...]} (the ``t2t replay --book`` format)."""
        out = {}
        for name, side in (("bids", BUY), ("asks", SELL)):
            levels = self.levels.get((sym, side), {})
            out[name] = [[p, *levels[p]] for p in sorted(levels, reverse=side == BUY)]
        return out

    # --- events
    def apply(self, ev: Event) -> list[Update]:
        c = self.counters
        t = ev.type
        if t in "AF":
            c["adds"] += 1
            return self._add(ev.order_ref, ev.sym, SELL if ev.side == ord("S") else BUY,
                             ev.price, ev.shares)
        if t not in "ECXDU":
            return []
        order = self.orders.get(ev.order_ref)
        c[{"E": "executes", "C": "executes", "X": "cancels", "D": "deletes",
           "U": "replaces"}[t]] += 1
        if order is None:
            c["unknown_ref"] += 1
            return []
        if t in "ECX":
            take = ev.shares
            if take > order.shares:
                c["overfill"] += 1
                take = order.shares
            return self._reduce(ev.order_ref, order, take)
        out = self._reduce(ev.order_ref, order, order.shares)
        if t == "U":
            out += self._add(ev.new_ref, order.sym, order.side, ev.price, ev.shares)
        return out

    def _add(self, ref: int, sym: int, side: int, price: int, shares: int) -> list[Update]:
        if ref in self.orders:
            self.counters["duplicate_ref"] += 1
            return []
        before = self.top(sym, side)
        self.orders[ref] = Order(sym, side, price, shares)
        level = self.levels.setdefault((sym, side), {}).setdefault(price, [0, 0])
        level[0] += shares
        level[1] += 1
        return self._publish(sym, side, price, before)

    def _reduce(self, ref: int, order: Order, take: int) -> list[Update]:
        before = self.top(order.sym, order.side)
        levels = self.levels[(order.sym, order.side)]
        level = levels[order.price]
        level[0] -= take
        order.shares -= take
        if order.shares == 0:
            del self.orders[ref]
            level[1] -= 1
            if level[1] == 0:
                del levels[order.price]
        return self._publish(order.sym, order.side, order.price, before)

    def _publish(self, sym: int, side: int, price: int, before: list[Level]) -> list[Update]:
        """The update that turns ``before`` into the current top ``n``, after the level
        at ``price`` (and only it) changed."""
        after = self.top(sym, side)
        if after == before:
            return []
        was = next((i for i, lv in enumerate(before) if lv[0] == price), None)
        now = next((i for i, lv in enumerate(after) if lv[0] == price), None)
        if was is not None and now is not None:
            up = Update(sym, side, MODIFY, now, *after[now], now == 0)
        elif now is not None:
            up = Update(sym, side, INSERT, now, *after[now], now == 0)
        else:
            entering = after[-1] if len(after) == self.n else (0, 0, 0)
            up = Update(sym, side, DELETE, was, *entering, was == 0)
        self.counters["updates"] += 1
        return [up]


def apply_update(top: list[Level], up: Update, n: int) -> list[Level]:
    """What a consumer of the update stream does with its copy of one side's top ``n``."""
    top = list(top)
    level = (up.price, up.shares, up.orders)
    if up.action == MODIFY:
        top[up.level] = level
    elif up.action == INSERT:
        top.insert(up.level, level)
        del top[n:]
    else:
        del top[up.level]
        if up.orders:
            top.append(level)
    return top
