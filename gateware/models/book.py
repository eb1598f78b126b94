"""Golden model of the order book: ITCH events → L3 orders → price levels → top-N updates.

The model of the ``book`` stage (``gateware/book.py``), capacity limits included, so it
predicts every update and every counter of the gateware. With the default ``depth=None``
and ``capacity=None`` it is the exact book (every order, every level).

The update stream carries one update per level change, enough for a consumer to keep
its own copy of the top ``n`` levels of every (symbol, side) without ever seeing the
whole book:

* ``MODIFY`` level ``i`` now holds (price, shares, orders);
* ``INSERT`` at ``i``: levels ``i..n-2`` move down one, the last falls off, the new level
  is at ``i``;
* ``DELETE`` at ``i``: levels ``i+1..n-1`` move up one, and (price, shares, orders) is the
  level that enters at ``n-1`` from below (all zero when there is none);
* ``CLEAR``: the host cleared symbol ``sym`` (both sides), or every symbol when
  ``all_syms`` is set.

``bbo`` is set when level 0 changed. Level 0 is the best: highest bid, lowest ask.

Capacity (the gateware's, modelled exactly)
-------------------------------------------
*Order table*: ``capacity`` orders in ``capacity // ways`` buckets of ``ways`` entries; a
reference lives in bucket :func:`bucket_of`. An add whose bucket is full is refused
(``table_full``); its later events find no order (``unknown_ref``).

*Level store*: each (symbol, side) keeps at most ``depth`` levels (``depth >= n``). The
store holds every level better than its ``limit``; a side that never overflowed has no
limit. An add that would make ``depth + 1`` levels drops the worst one (which may be the
new one) and the limit becomes that price (``levels_dropped``); its orders are
*untracked*. An add at or beyond the limit is untracked too. Untracked orders are still
in the order table and their events are counted (``untracked``) without touching levels;
when the last untracked order of a side is gone, the limit is lifted and the side is
exact again. While a side has a limit and fewer than ``n`` levels, its published top may
lack levels that exist deeper; every update published in that state is counted in
``short_side`` (the host resyncs that symbol, e.g. by clearing it and replaying).

Prints
------
The book is where an Executed ('E') learns its price: the order table holds it. With
``keep_prints`` every execution of a traded symbol is kept in ``prints`` (a
:class:`Print`, in event order, for the trade tap,
``models.control.events.TradeTapModel``): an E at the resting order's price, a C at its
own price, a P (a trade against a non-displayed order) with its price and side, a Q
(a cross) with its price (side 0); P and Q never touch the book. An E or C whose
reference the table does not hold has no price nor side: it is kept with
``miss="unpriced"``; a C whose printable byte is not 'Y' (NASDAQ's 'N': the execution
is reported elsewhere, e.g. in a cross's Q, and is not a print) with
``miss="non_printable"``, as the software feed handler (``host.services.feed``) treats
it. Shares are the message's, low 32 bits (only a Q can carry more), even when more
than the order had (``overfill``): that is what the venue traded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from tick2trade.gateware.interfaces import BookAction, Side, names
from tick2trade.protocol.itch import Event

BUY, SELL = Side.BUY.value, Side.SELL.value
ACTIONS = names(BookAction)  # an update's action: its code in the gateware is the index
assert ACTIONS == ("modify", "insert", "delete", "clear"), ACTIONS
MODIFY, INSERT, DELETE, CLEAR = ACTIONS
SHARES_MASK = 0xFFFF_FFFF  # a print's shares: 32 bits (every message but Q has no more)
BOOK_COUNTERS = ("adds", "executes", "cancels", "deletes", "replaces", "duplicate_ref",
                 "unknown_ref", "overfill", "updates", "table_full", "levels_dropped",
                 "untracked", "short_side", "level_missing", "clears")


def bucket_of(ref: int, index_bits: int) -> int:
    """The order table bucket of an order reference: the 64-bit reference folded by XOR
    into ``index_bits`` bits. Venues hand out references in sequence, so consecutive
    references land in consecutive buckets; the fold keeps high bits in play when they
    are not sequential. The rest of the reference (``ref >> index_bits``) is the tag the
    table stores: with the bucket it gives the reference back."""
    if index_bits == 0:
        return 0
    out, mask = 0, (1 << index_bits) - 1
    for shift in range(0, 64, index_bits):
        out ^= (ref >> shift) & mask
    return out


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
    all_syms: bool = False
    best_price: int = 0  # the side's best level after this change (0, 0: no tracked level)
    best_shares: int = 0


@dataclass(frozen=True)
class Print:
    sym: int
    kind: str  # "E", "C", "P", "Q"
    side: int
    price: int
    shares: int
    match: int
    miss: str | None = None  # "unpriced", "non_printable": no print


Level = tuple[int, int, int]  # price, shares, orders


@dataclass
class Side:
    levels: dict[int, list[int]] = field(default_factory=dict)  # price -> [shares, orders]
    limit: int | None = None  # levels at or beyond this price are not tracked
    untracked: int = 0  # live orders at untracked prices


def better(side: int, a: int, b: int) -> bool:
    return a > b if side == BUY else a < b


class BookModel:
    """Orders and levels as the ``book`` stage keeps them; the top ``n`` per side published
    as updates.

    ITCH rules: Add ('A', 'F') creates an order (a reference already live is counted in
    ``duplicate_ref`` and ignored); Executed ('E', 'C') and Cancel ('X') take shares off
    (more than remain: ``overfill``, the order is emptied); an order with no shares left
    is gone; Delete ('D') removes it; Replace ('U') removes the original and adds the new
    reference with the same symbol and side at the new price and shares (time priority is
    lost, which does not show in aggregated levels). An unknown reference is counted in
    ``unknown_ref`` and changes nothing. 'C' prints at its own price but takes shares
    off the order's level. Other event types do not touch the book.

    Level shares are 32 bits and order counts 16 bits in the gateware (wrapping); the
    model keeps Python integers, so flows that exceed them are not comparable.
    """

    def __init__(self, n: int = 8, *, depth: int | None = None, capacity: int | None = None,
                 ways: int = 4, keep_prints: bool = False):
        if depth is not None and depth < n:
            raise ValueError(f"depth {depth} < n {n}: the store must hold the published top")
        if capacity is not None:
            buckets = capacity // ways
            if capacity % ways or buckets & (buckets - 1):
                raise ValueError(f"capacity {capacity}: must be ways ({ways}) times a power "
                                 f"of two")
            self.index_bits = buckets.bit_length() - 1
        self.n, self.depth, self.capacity, self.ways = n, depth, capacity, ways
        self.orders: dict[int, Order] = {}
        self.buckets: dict[int, int] = Counter()  # bucket -> live orders in it
        self.sides: dict[tuple[int, int], Side] = {}
        self.counters = Counter({k: 0 for k in BOOK_COUNTERS})
        # every execution seen, for the trade tap (None: not kept)
        self.prints: list[Print] | None = [] if keep_prints else None

    def take_prints(self) -> list[Print]:
        """The prints since the last call, in event order."""
        out = self.prints or []
        if self.prints is not None:
            self.prints = []
        return out

    # --- queries
    def top(self, sym: int, side: int) -> list[Level]:
        levels = self._side(sym, side).levels
        prices = sorted(levels, reverse=side == BUY)[:self.n]
        return [(p, levels[p][0], levels[p][1]) for p in prices]

    def book(self, sym: int) -> dict[str, list[list[int]]]:
        """The tracked book of a symbol, best first: {"bids": [[price, shares, orders]...],
        "asks": [...]} (the ``t2t replay --book`` format)."""
        out = {}
        for name, side in (("bids", BUY), ("asks", SELL)):
            levels = self._side(sym, side).levels
            out[name] = [[p, *levels[p]] for p in sorted(levels, reverse=side == BUY)]
        return out

    @property
    def occupancy(self) -> int:
        return len(self.orders)

    def _side(self, sym: int, side: int) -> Side:
        return self.sides.setdefault((sym, side), Side())

    # --- events
    def apply(self, ev: Event) -> list[Update]:
        c = self.counters
        t = ev.type
        if t in "AF":
            c["adds"] += 1
            return self._add(ev.order_ref, ev.sym, SELL if ev.side == ord("S") else BUY,
                             ev.price, ev.shares)
        if t in "PQ" and self.prints is not None:
            self.prints.append(Print(ev.sym, t, SELL if ev.side == ord("S") else BUY,
                                     ev.price, ev.shares & SHARES_MASK, ev.match))
        if t not in "ECXDU":
            return []
        order = self.orders.get(ev.order_ref)
        if t in "EC" and self.prints is not None:
            self._print(ev, order)
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

    def _print(self, ev: Event, order: Order | None) -> None:
        shares = ev.shares & SHARES_MASK
        if ev.type == "C" and ev.code != ord("Y"):
            self.prints.append(Print(ev.sym, "C", 0, 0, shares, ev.match, "non_printable"))
        elif order is None:
            self.prints.append(Print(ev.sym, ev.type, 0, 0, shares, ev.match, "unpriced"))
        else:
            self.prints.append(Print(order.sym, ev.type, order.side,
                                     ev.price if ev.type == "C" else order.price, shares,
                                     ev.match))

    def clear(self, sym: int | None = None) -> list[Update]:
        """The host clears one symbol, or all: its orders and levels are forgotten."""
        self.counters["clears"] += 1
        for ref in [r for r, o in self.orders.items() if sym is None or o.sym == sym]:
            self._forget(ref)
        for key in [k for k in self.sides if sym is None or k[0] == sym]:
            del self.sides[key]
        self.counters["updates"] += 1
        return [Update(sym or 0, 0, CLEAR, 0, 0, 0, 0, False, sym is None)]

    def _forget(self, ref: int) -> None:
        del self.orders[ref]
        if self.capacity is not None:
            self.buckets[bucket_of(ref, self.index_bits)] -= 1

    def _add(self, ref: int, sym: int, side: int, price: int, shares: int) -> list[Update]:
        c = self.counters
        if ref in self.orders:
            c["duplicate_ref"] += 1
            return []
        if self.capacity is not None:
            bucket = bucket_of(ref, self.index_bits)
            if self.buckets[bucket] == self.ways:
                c["table_full"] += 1
                return []
            self.buckets[bucket] += 1
        self.orders[ref] = Order(sym, side, price, shares)
        st = self._side(sym, side)
        before = self.top(sym, side)
        level = st.levels.get(price)
        if level is None and st.limit is not None and not better(side, price, st.limit):
            st.untracked += 1
            c["untracked"] += 1
            return []
        if level is None:
            level = st.levels[price] = [0, 0]
        level[0] += shares
        level[1] += 1
        if self.depth is not None and len(st.levels) > self.depth:
            worst = max(st.levels, key=lambda p: -p if side == BUY else p)
            st.untracked += st.levels.pop(worst)[1]
            st.limit = worst
            c["levels_dropped"] += 1
        return self._publish(sym, side, price, before)

    def _reduce(self, ref: int, order: Order, take: int) -> list[Update]:
        c = self.counters
        gone = take == order.shares
        order.shares -= take
        if gone:
            self._forget(ref)
        st = self._side(order.sym, order.side)
        before = self.top(order.sym, order.side)
        level = st.levels.get(order.price)
        if level is None:
            if st.limit is not None and not better(order.side, order.price, st.limit):
                c["untracked"] += 1
                st.untracked -= gone
                if st.untracked == 0:
                    st.limit = None
            else:
                c["level_missing"] += 1
            return []
        level[0] -= take
        level[1] -= gone
        if level[1] == 0:
            del st.levels[order.price]
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
        if after:
            up = replace(up, best_price=after[0][0], best_shares=after[0][1])
        self.counters["updates"] += 1
        st = self.sides[(sym, side)]
        if st.limit is not None and len(st.levels) < self.n:
            self.counters["short_side"] += 1
        return [up]


def apply_update(top: list[Level], up: Update, n: int) -> list[Level]:
    """What a consumer of the update stream does with its copy of one side's top ``n``
    (a ``CLEAR`` empties both sides of its symbol, or of every symbol)."""
    if up.action == CLEAR:
        return []
    top = list(top)
    level = (up.price, up.shares, up.orders)
    if up.action == MODIFY:
        top[up.level] = level
    elif up.action == INSERT:
        top.insert(up.level, level)
        del top[n:]
    elif up.action == DELETE:
        del top[up.level]
        if up.orders:
            top.append(level)
    return top
