"""Market data as the host sees it: quotes, books at full depth, trades and bars per symbol.

Whatever reads a feed writes here: the software feed handler (``host/services/feed.py``,
full depth from the venue's ITCH), the engine (the FPGA's top N over the event channel),
a test. The API, the WebSocket streams, the paper broker, price alerts and the history
recorder read it, or listen to it.

Design decisions
----------------
- **One sequence per symbol.** Every change of a symbol's book is a ``BookUpdate`` with
  the next ``seq`` of that symbol: a ``delta`` (the levels that changed, size 0 for a
  level that left) or a ``snapshot`` (the whole book, after a resync or a restart of the
  source). A reader that sees ``seq`` jump by more than one has missed a delta and asks
  for ``book_view`` (which carries the ``seq`` it is consistent with).
- **Depth is the source's.** A software feed keeps every level (``depth`` None); the
  FPGA's book tracks N levels per side (``depth`` N), and the store says so, so a client
  can mark the top N the gateware trades on.
- Listeners (``listen``) are called on the writer's thread after the lock is released,
  in the order changes were made; one that raises is logged and the others still run.
  Kinds: ``quote`` (a ``Quote``), ``book`` (a ``BookUpdate``), ``trade`` (a ``Trade``),
  ``bar`` (the symbol and its changed ``Bar``).
- Held in memory: the store is a view of the live feed, rebuilt from it on restart.
  Long history goes to ``host/services/history.py``; bars here cover the last
  ``max_bars`` intervals per symbol.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime

from sortedcontainers import SortedDict

from tick2trade.host.services.db import utcnow

log = logging.getLogger(__name__)

KINDS = ("quote", "book", "trade", "bar")
SIDES = ("bid", "ask")


@dataclass(frozen=True)
class Quote:
    symbol: str
    bid: int | None = None
    bid_size: int = 0
    ask: int | None = None
    ask_size: int = 0
    last: int | None = None
    last_size: int = 0
    ts: datetime | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Level:
    """A price level: ``size`` shares resting in ``orders`` orders (0 when the source does
    not count orders)."""
    price: int
    size: int
    orders: int = 0


@dataclass(frozen=True)
class BookUpdate:
    """One change of a symbol's book. ``delta``: the levels that changed (size 0 = the
    level is gone); ``snapshot``: every level, best first."""
    symbol: str
    seq: int
    kind: str                    # "delta" | "snapshot"
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    source: str                  # "feed" | "fpga" | "manual"
    depth: int | None            # levels per side the source tracks; None: all of them
    ts: datetime


@dataclass(frozen=True)
class BookView:
    """A consistent copy of a book: levels best first, as of update ``seq``."""
    symbol: str
    seq: int
    bids: list[Level]
    asks: list[Level]
    source: str
    depth: int | None
    ts: datetime | None


@dataclass(frozen=True)
class Trade:
    """A print: ``side`` is the resting order's ("buy" or "sell") where the feed says."""
    symbol: str
    price: int
    size: int
    ts: datetime
    seq: int = 0                 # per symbol, from 1
    side: str | None = None
    match: int | None = None


@dataclass
class Bar:
    start: datetime
    open: int
    high: int
    low: int
    close: int
    volume: int


Listener = Callable[..., None]
LevelChange = tuple  # (price, size) or (price, size, orders)


@dataclass
class _Book:
    bids: SortedDict = field(default_factory=lambda: SortedDict(lambda p: -p))
    asks: SortedDict = field(default_factory=SortedDict)
    seq: int = 0
    source: str = "manual"
    depth: int | None = None
    ts: datetime | None = None

    def side(self, name: str) -> SortedDict:
        return self.bids if name == "bid" else self.asks

    def top(self, name: str) -> Level | None:
        levels = self.side(name)
        return levels.peekitem(0)[1] if levels else None


def _levels(changes: Iterable[LevelChange]) -> tuple[Level, ...]:
    return tuple(c if isinstance(c, Level) else Level(*c) for c in changes)


class MarketData:
    """Thread-safe store of quotes, books, trades and bars; ``bar_seconds`` is the width of
    the in-memory bars."""

    def __init__(self, bar_seconds: int = 60, max_bars: int = 1440) -> None:
        self._lock = threading.Lock()
        self._quotes: dict[str, Quote] = {}
        self._books: dict[str, _Book] = {}
        self._bars: dict[str, deque[Bar]] = {}
        self._trades: dict[str, int] = {}
        self.bar_seconds = bar_seconds
        self.max_bars = max_bars
        self._listeners: dict[str, list[Listener]] = {k: [] for k in KINDS}

    # --- listeners ------------------------------------------------------------------------

    def listen(self, kind: str, listener: Listener) -> None:
        if kind not in self._listeners:
            raise ValueError(f"unknown market data kind {kind!r} (known: {', '.join(KINDS)})")
        self._listeners[kind].append(listener)

    def unlisten(self, kind: str, listener: Listener) -> None:
        self._listeners[kind].remove(listener)

    def subscribe(self, listener: Listener) -> None:
        """Quotes (``listen("quote", ...)``)."""
        self.listen("quote", listener)

    def unsubscribe(self, listener: Listener) -> None:
        self.unlisten("quote", listener)

    # --- reads ----------------------------------------------------------------------------

    def symbols(self) -> list[str]:
        with self._lock:
            return sorted(set(self._quotes) | set(self._books))

    def quote(self, symbol: str) -> Quote | None:
        with self._lock:
            return self._quotes.get(symbol)

    def book_view(self, symbol: str, depth: int | None = None) -> BookView | None:
        """The book of ``symbol`` (its best ``depth`` levels per side), None when no book
        was ever written for it."""
        with self._lock:
            b = self._books.get(symbol)
            if b is None:
                return None
            bids = list(b.bids.values()[:depth] if depth is not None else b.bids.values())
            asks = list(b.asks.values()[:depth] if depth is not None else b.asks.values())
            return BookView(symbol, b.seq, bids, asks, b.source, b.depth, b.ts)

    def book(self, symbol: str):
        """``(bids, asks)`` as (price, size) lists, best first; None without a book."""
        view = self.book_view(symbol)
        if view is None:
            return None
        return ([(x.price, x.size) for x in view.bids], [(x.price, x.size) for x in view.asks])

    def bars(self, symbol: str, start: datetime | None = None,
             end: datetime | None = None) -> list[Bar] | None:
        with self._lock:
            if symbol not in self._bars:
                return None
            return [replace(b) for b in self._bars[symbol]
                    if (start is None or b.start >= start) and (end is None or b.start < end)]

    def mark(self, symbol: str) -> int | None:
        """The price positions are valued at: mid of the BBO when both sides are there,
        else the last trade."""
        q = self.quote(symbol)
        if q is None:
            return None
        if q.bid is not None and q.ask is not None:
            return (q.bid + q.ask) // 2
        return q.last

    # --- writes ---------------------------------------------------------------------------

    def update(self, symbol: str, *, bid: int | None = None, bid_size: int = 0,
               ask: int | None = None, ask_size: int = 0, ts: datetime | None = None) -> Quote:
        """A new best bid and offer (``None``: that side is empty), for a source that has
        no depth (the venue's touch, a test)."""
        with self._lock:
            quote = self._set_quote(symbol, bid, bid_size if bid is not None else 0,
                                    ask, ask_size if ask is not None else 0, ts or utcnow())
        self._notify("quote", quote)
        return quote

    def apply(self, symbol: str, bids: Iterable[LevelChange] = (),
              asks: Iterable[LevelChange] = (), *, ts: datetime | None = None,
              source: str = "feed", depth: int | None = None) -> BookUpdate | None:
        """Levels that changed: ``(price, size[, orders])`` each, size 0 for a level that
        left. Returns the delta (None when nothing was given); the quote follows the top."""
        bids, asks = _levels(bids), _levels(asks)
        if not bids and not asks:
            return None
        ts = ts or utcnow()
        with self._lock:
            b = self._books.get(symbol)
            if b is None:  # not setdefault, which would build a _Book every call
                b = self._books[symbol] = _Book()
            for name, changes in (("bid", bids), ("ask", asks)):
                levels = b.side(name)
                for lv in changes:
                    if lv.size > 0:
                        levels[lv.price] = lv
                    else:
                        levels.pop(lv.price, None)
            b.seq += 1
            b.source, b.depth, b.ts = source, depth, ts
            update = BookUpdate(symbol, b.seq, "delta", bids, asks, source, depth, ts)
            quote = self._quote_from(symbol, b, ts)
        self._notify("book", update)
        if quote is not None:
            self._notify("quote", quote)
        return update

    def snapshot(self, symbol: str, bids: Iterable[LevelChange],
                 asks: Iterable[LevelChange], *, ts: datetime | None = None,
                 source: str = "feed", depth: int | None = None) -> BookUpdate:
        """Replace the whole book (a resync, a source's restart); levels best first."""
        bids, asks = _levels(bids), _levels(asks)
        ts = ts or utcnow()
        with self._lock:
            old = self._books.get(symbol)
            b = _Book(seq=old.seq if old else 0)
            for lv in bids:
                if lv.size > 0:
                    b.bids[lv.price] = lv
            for lv in asks:
                if lv.size > 0:
                    b.asks[lv.price] = lv
            b.seq += 1
            b.source, b.depth, b.ts = source, depth, ts
            self._books[symbol] = b
            update = BookUpdate(symbol, b.seq, "snapshot", tuple(b.bids.values()),
                                tuple(b.asks.values()), source, depth, ts)
            quote = self._quote_from(symbol, b, ts, force=True)
        self._notify("book", update)
        if quote is not None:
            self._notify("quote", quote)
        return update

    def set_book(self, symbol: str, bids: list[tuple[int, int]],
                 asks: list[tuple[int, int]]) -> None:
        """Depth from a source that sends whole books: (price, size) levels, best first."""
        self.snapshot(symbol, bids, asks, source="manual")

    def trade(self, symbol: str, price: int, size: int, ts: datetime | None = None, *,
              side: str | None = None, match: int | None = None) -> Quote:
        """A print: sets ``last`` and feeds the bar of its interval."""
        ts = ts or utcnow()
        bar = None
        with self._lock:
            old = self._quotes.get(symbol) or Quote(symbol)
            # built, not dataclasses.replace: a print per execution makes this hot
            quote = Quote(symbol, old.bid, old.bid_size, old.ask, old.ask_size, price, size,
                          ts)
            self._quotes[symbol] = quote
            seq = self._trades[symbol] = self._trades.get(symbol, 0) + 1
            bars = self._bars.get(symbol)
            if bars is None:
                bars = self._bars[symbol] = deque(maxlen=self.max_bars)
            epoch = int(ts.timestamp()) // self.bar_seconds * self.bar_seconds
            start = datetime.fromtimestamp(epoch, ts.tzinfo)
            if bars and bars[-1].start == start:
                bar = bars[-1]
                bar.high, bar.low = max(bar.high, price), min(bar.low, price)
                bar.close = price
                bar.volume += size
            elif not bars or bars[-1].start < start:
                bar = Bar(start, price, price, price, price, size)
                bars.append(bar)
            # a print older than the newest bar is late; it updates last but no bar
            if bar is not None:
                bar = Bar(bar.start, bar.open, bar.high, bar.low, bar.close, bar.volume)
        self._notify("trade", Trade(symbol, price, size, ts, seq, side, match))
        if bar is not None:
            self._notify("bar", symbol, bar)
        self._notify("quote", quote)
        return quote

    # --- inside the lock ------------------------------------------------------------------

    def _set_quote(self, symbol, bid, bid_size, ask, ask_size, ts) -> Quote:
        old = self._quotes.get(symbol, Quote(symbol))
        quote = replace(old, bid=bid, bid_size=bid_size, ask=ask, ask_size=ask_size, ts=ts)
        self._quotes[symbol] = quote
        return quote

    def _quote_from(self, symbol: str, b: _Book, ts, force: bool = False) -> Quote | None:
        """The quote after a book change; None when the top did not change."""
        bid, ask = b.top("bid"), b.top("ask")
        top = (bid.price if bid else None, bid.size if bid else 0,
               ask.price if ask else None, ask.size if ask else 0)
        old = self._quotes.get(symbol)
        if not force and old is not None and (old.bid, old.bid_size, old.ask,
                                              old.ask_size) == top:
            return None
        return self._set_quote(symbol, *top, ts)

    def _notify(self, kind: str, *args) -> None:
        # one failing listener (say, alerts with the database away) must neither stop
        # the others nor bounce back into the feed
        for listener in list(self._listeners[kind]):
            try:
                listener(*args)
            except Exception:
                log.exception("market data %s listener %r failed on %s", kind, listener,
                              args[0] if kind == "bar" else args[0].symbol)
