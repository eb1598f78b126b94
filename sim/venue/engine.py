"""Price-time priority matching engine, one book per instrument.

Orders are plain objects in per-price FIFO queues (``dict`` price → ``deque``), with a
heap of prices per side for the best level (stale prices are popped lazily). Everything
the engine does is appended to ``Engine.events`` as a tuple whose first item is its kind;
the ITCH publisher (``sim.venue.feed``) and the order-entry gateway (``sim.venue.gateway``)
turn those into market data and OUCH responses, so the engine knows neither protocol.

Prices are integers in 1/10000 (ITCH's and OUCH's 4 implied decimals); ``None`` is a
market order. Quantities are integers (shares, or lots of a crypto pair's base currency).

Rules
-----
- Strict price-time priority; executions at the resting order's price.
- Market orders never rest (the rest is cancelled); IOC likewise; FOK executes in full or
  not at all; DAY and GTC rest, and :meth:`Engine.end_of_day` cancels the DAY orders.
- Cancel to a new (smaller) open quantity, 0 = all; cancel-replace keeps time priority
  only when the price is the same and the quantity does not grow, else the order gets a
  new reference and goes to the back (and may execute at once if its new price crosses).
- Self-match prevention, when on, compares the ``owner`` of both orders:
  ``"cancel_resting"`` cancels the resting order and goes on, ``"cancel_incoming"`` cancels
  the rest of the incoming order.
- Hidden orders rest and match like displayed ones but are not published.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

from tick2trade.protocol import ouch

BUY, SELL = "B", "S"
DAY, IOC, GTC, FOK = ouch.TIF_DAY, ouch.TIF_IOC, ouch.TIF_GTC, ouch.TIF_FOK
TIFS = (DAY, IOC, GTC, FOK)
SMP_MODES = (None, "cancel_resting", "cancel_incoming")

# Event kinds and their tuples:
ADD = "A"  # (ADD, sym, ref, side, qty, price, hidden, owner): an order rests
EXEC = "E"  # (EXEC, sym, maker_ref, qty, price, match, taker_ref, maker_side, maker_hidden)
CANCEL = "X"  # (CANCEL, sym, ref, cancelled, remaining, reason, published)
REPLACE = "U"  # (REPLACE, sym, old_ref, new_ref, qty, price, side, hidden, old_qty)
# ``published``: the order was resting and displayed, so the feed must show the cancel.
# REPLACE with new_ref == old_ref kept its priority (qty ≤ old_qty, same price); with a
# new reference and qty 0 the replacement executed in full and nothing rests.

# Reject codes (ouch.REJECT_REASONS); the engine returns them negated.
R_SYMBOL, R_QTY, R_PRICE, R_SIDE, R_TIF, R_UNKNOWN, R_CLOSED, R_MARKET_REPLACE = \
    1, 2, 3, 4, 5, 7, 8, 10
MAX_ITCH_PRICE = 0xFFFFFFFF  # ITCH carries prices in 4 bytes


@dataclass(frozen=True)
class Instrument:
    """One tradable symbol (an ITCH stock: 1-8 ASCII characters, e.g. ``BTC-USD``)."""

    symbol: str
    locate: int
    tick: int = 100  # price increment in 1/10000 ($0.01)
    lot: int = 1  # quantity increment
    max_qty: int = 1_000_000
    max_price: int = MAX_ITCH_PRICE
    round_lot: int = 100  # published in the stock directory
    kind: str = "equity"  # or "crypto"

    def __post_init__(self):
        if not (1 <= len(self.symbol) <= 8 and self.symbol.isascii()):
            raise ValueError(f"instrument {self.symbol!r}: a symbol is 1-8 ASCII characters")
        if self.tick <= 0 or self.lot <= 0 or not 0 < self.locate < 65536:
            raise ValueError(f"instrument {self.symbol}: tick and lot must be > 0, locate "
                             f"1-65535")


class Order:
    __slots__ = ("hidden", "owner", "price", "qty", "ref", "side", "sym", "tif")

    def __init__(self, ref, sym, side, qty, price, tif, owner, hidden):
        self.ref, self.sym, self.side, self.qty, self.price = ref, sym, side, qty, price
        self.tif, self.owner, self.hidden = tif, owner, hidden

    def __repr__(self) -> str:
        return (f"Order({self.ref}, {self.sym}, {self.side}, {self.qty}@{self.price}, "
                f"tif={self.tif}, owner={self.owner}, hidden={self.hidden})")


class Book:
    """Both sides of one instrument: price → FIFO of orders, and a heap of prices."""

    __slots__ = ("ask_heap", "asks", "bid_heap", "bids", "instrument")

    def __init__(self, instrument: Instrument):
        self.instrument = instrument
        self.bids: dict[int, deque[Order]] = {}
        self.asks: dict[int, deque[Order]] = {}
        self.bid_heap: list[int] = []  # negated prices
        self.ask_heap: list[int] = []

    def best_bid(self) -> int | None:
        heap, levels = self.bid_heap, self.bids
        while heap and -heap[0] not in levels:
            heapq.heappop(heap)
        return -heap[0] if heap else None

    def best_ask(self) -> int | None:
        heap, levels = self.ask_heap, self.asks
        while heap and heap[0] not in levels:
            heapq.heappop(heap)
        return heap[0] if heap else None

    def snapshot(self) -> dict[str, list[tuple[int, list[tuple[int, int]]]]]:
        """{"B": [(price, [(ref, qty), ...]), ...] best first, "S": ...}"""
        return {
            BUY: [(p, [(o.ref, o.qty) for o in self.bids[p]])
                  for p in sorted(self.bids, reverse=True)],
            SELL: [(p, [(o.ref, o.qty) for o in self.asks[p]]) for p in sorted(self.asks)],
        }


class Engine:
    """The venue's books. ``submit``/``cancel``/``replace`` return a positive order
    reference (or True) when done and a negative reject code (``ouch.REJECT_REASONS``)
    when refused; what happened is in ``events``."""

    def __init__(self, instruments: list[Instrument], *, smp: str | None = None):
        if smp not in SMP_MODES:
            raise ValueError(f"self-match prevention {smp!r}: one of {SMP_MODES}")
        self.instruments = {i.symbol: i for i in instruments}
        self.books: dict[str, Book] = {i.symbol: Book(i) for i in instruments}
        self.orders: dict[int, Order] = {}  # resting orders by reference
        self.events: list[tuple] = []
        self.smp = smp
        self.open = True
        self.next_ref = 1
        self.next_match = 1

    # -- entry points ---------------------------------------------------------------

    def submit(self, symbol: str, side: str, qty: int, price: int | None,
               tif: str = DAY, owner: object = None, hidden: bool = False) -> int:
        book = self.books.get(symbol)
        if book is None:
            return -R_SYMBOL
        if not self.open:
            return -R_CLOSED
        inst = book.instrument
        if side != BUY:
            if side not in ouch.SIDES:
                return -R_SIDE
            side = SELL
        if qty <= 0 or qty > inst.max_qty or qty % inst.lot:
            return -R_QTY
        if price is not None and (price <= 0 or price > inst.max_price or price % inst.tick):
            return -R_PRICE
        if tif not in TIFS:
            return -R_TIF
        ref = self.next_ref
        self.next_ref = ref + 1
        if tif == FOK and self._fillable(book, side, price, owner) < qty:
            self.events.append((CANCEL, symbol, ref, qty, 0, "I", False))
            return ref
        order = Order(ref, symbol, side, qty, price, tif, owner, hidden)
        killed = self._match(book, order)
        if order.qty and not killed:
            if price is None or tif == IOC or tif == FOK:
                self.events.append((CANCEL, symbol, ref, order.qty, 0, "I", False))
            else:
                self._rest(book, order)
                self.events.append((ADD, symbol, ref, side, order.qty, price, hidden, owner))
        return ref

    def cancel(self, ref: int, qty: int = 0, reason: str = "U") -> int:
        """Reduce the open quantity of resting order ``ref`` to ``qty`` (0: cancel it)."""
        order = self.orders.get(ref)
        if order is None:
            return -R_UNKNOWN
        if qty >= order.qty:
            return True
        cancelled = order.qty - qty
        if qty:
            order.qty = qty
        else:
            self._remove(order)
        self.events.append((CANCEL, order.sym, ref, cancelled, qty, reason, not order.hidden))
        return True

    def replace(self, ref: int, qty: int, price: int | None) -> int:
        """Cancel-replace resting order ``ref``; returns the reference it has after."""
        order = self.orders.get(ref)
        if order is None:
            return -R_UNKNOWN
        if price is None:
            return -R_MARKET_REPLACE
        book = self.books[order.sym]
        inst = book.instrument
        if qty <= 0 or qty > inst.max_qty or qty % inst.lot:
            return -R_QTY
        if price <= 0 or price > inst.max_price or price % inst.tick:
            return -R_PRICE
        old_qty = order.qty
        if price == order.price and qty <= old_qty:
            order.qty = qty
            self.events.append((REPLACE, order.sym, ref, ref, qty, price, order.side,
                                order.hidden, old_qty))
            return ref
        self._remove(order)
        new_ref = self.next_ref
        self.next_ref = new_ref + 1
        new = Order(new_ref, order.sym, order.side, qty, price, order.tif, order.owner,
                    order.hidden)
        events = self.events
        slot = len(events)
        events.append(None)  # the REPLACE goes before the executions it causes
        if not self._match(book, new) and new.qty:
            self._rest(book, new)
        else:
            new.qty = 0
        events[slot] = (REPLACE, order.sym, ref, new_ref, new.qty, price, order.side,
                        order.hidden, old_qty)
        return new_ref

    def end_of_day(self) -> None:
        """Cancel every DAY order (reason ``E``, closed) and stop taking orders."""
        for order in [o for o in self.orders.values() if o.tif == DAY]:
            self.cancel(order.ref, 0, "E")
        self.open = False

    # -- internals --------------------------------------------------------------------

    def _rest(self, book: Book, order: Order) -> None:
        price = order.price
        if order.side == BUY:
            level = book.bids.get(price)
            if level is None:
                level = book.bids[price] = deque()
                heapq.heappush(book.bid_heap, -price)
        else:
            level = book.asks.get(price)
            if level is None:
                level = book.asks[price] = deque()
                heapq.heappush(book.ask_heap, price)
        level.append(order)
        self.orders[order.ref] = order

    def _remove(self, order: Order) -> None:
        book = self.books[order.sym]
        levels = book.bids if order.side == BUY else book.asks
        level = levels[order.price]
        level.remove(order)
        if not level:
            del levels[order.price]
        del self.orders[order.ref]

    def _match(self, book: Book, taker: Order) -> bool:
        """Execute ``taker`` against the other side, leaving its open quantity in it;
        True when self-match prevention cancelled the rest of it."""
        if taker.side == BUY:
            levels, heap, sign = book.asks, book.ask_heap, 1
        else:
            levels, heap, sign = book.bids, book.bid_heap, -1
        limit = taker.price
        qty = taker.qty
        events, orders, smp = self.events, self.orders, self.smp
        sym, tref, owner = taker.sym, taker.ref, taker.owner
        while qty and heap:
            price = heap[0] * sign
            level = levels.get(price)
            if level is None:
                heapq.heappop(heap)
                continue
            if limit is not None and (price > limit if sign == 1 else price < limit):
                break
            while qty and level:
                maker = level[0]
                if smp and maker.owner == owner and owner is not None:
                    if smp == "cancel_resting":
                        level.popleft()
                        del orders[maker.ref]
                        events.append((CANCEL, sym, maker.ref, maker.qty, 0, "Q",
                                       not maker.hidden))
                        continue
                    events.append((CANCEL, sym, tref, qty, 0, "Q", False))
                    taker.qty = 0
                    return True
                fill = min(qty, maker.qty)
                match = self.next_match
                self.next_match = match + 1
                events.append((EXEC, sym, maker.ref, fill, price, match, tref, maker.side,
                               maker.hidden))
                qty -= fill
                if fill == maker.qty:
                    level.popleft()
                    del orders[maker.ref]
                else:
                    maker.qty -= fill
            if not level:
                del levels[price]
                heapq.heappop(heap)
        taker.qty = qty
        return False

    def _fillable(self, book: Book, side: str, limit: int | None, owner) -> int:
        """What a FOK order could execute now, under the self-match rule."""
        if side == BUY:
            prices = sorted(p for p in book.asks if limit is None or p <= limit)
            levels = book.asks
        else:
            prices = sorted((p for p in book.bids if limit is None or p >= limit),
                            reverse=True)
            levels = book.bids
        total = 0
        for p in prices:
            for o in levels[p]:
                if self.smp and owner is not None and o.owner == owner:
                    if self.smp == "cancel_incoming":
                        return total
                    continue
                total += o.qty
        return total
