"""Market data as the host sees it: the latest quote, book and bars per symbol.

The engine feeds this store (BBO and depth from the FPGA's book, trades from the feed)
by calling ``update``/``set_book``/``trade``; the API reads it and listeners (the paper
broker, price alerts, WebSocket subscribers) are called after each change. It is held in
memory: the store is a view of the live feed, rebuilt from it on restart. Long history
(Parquet/DuckDB, per DESIGN) is a later piece; bars here cover the last ``max_bars``
intervals per symbol.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from tick2trade.host.services.db import utcnow

log = logging.getLogger(__name__)


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


@dataclass
class Bar:
    start: datetime
    open: int
    high: int
    low: int
    close: int
    volume: int


Listener = Callable[[Quote], None]


class MarketData:
    """Thread-safe store of quotes, books and bars; ``bar_seconds`` is the bar width."""

    def __init__(self, bar_seconds: int = 60, max_bars: int = 1440) -> None:
        self._lock = threading.Lock()
        self._quotes: dict[str, Quote] = {}
        self._books: dict[str, tuple[list[tuple[int, int]], list[tuple[int, int]]]] = {}
        self._bars: dict[str, deque[Bar]] = {}
        self.bar_seconds = bar_seconds
        self.max_bars = max_bars
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def symbols(self) -> list[str]:
        with self._lock:
            return sorted(self._quotes)

    def quote(self, symbol: str) -> Quote | None:
        with self._lock:
            return self._quotes.get(symbol)

    def book(self, symbol: str):
        with self._lock:
            return self._books.get(symbol)

    def bars(self, symbol: str, start: datetime | None = None,
             end: datetime | None = None) -> list[Bar] | None:
        with self._lock:
            if symbol not in self._bars:
                return None
            return [replace(b) for b in self._bars[symbol]
                    if (start is None or b.start >= start) and (end is None or b.start < end)]

    def update(self, symbol: str, *, bid: int | None = None, bid_size: int = 0,
               ask: int | None = None, ask_size: int = 0, ts: datetime | None = None) -> Quote:
        """A new best bid and offer (``None``: that side is empty)."""
        with self._lock:
            old = self._quotes.get(symbol, Quote(symbol))
            quote = replace(old, bid=bid, bid_size=bid_size if bid is not None else 0,
                            ask=ask, ask_size=ask_size if ask is not None else 0,
                            ts=ts or utcnow())
            self._quotes[symbol] = quote
        self._notify(quote)
        return quote

    def set_book(self, symbol: str, bids: list[tuple[int, int]],
                 asks: list[tuple[int, int]]) -> None:
        """Depth: (price, size) levels, best first; the top levels also set the BBO."""
        with self._lock:
            self._books[symbol] = (list(bids), list(asks))
        self.update(symbol, bid=bids[0][0] if bids else None,
                    bid_size=bids[0][1] if bids else 0,
                    ask=asks[0][0] if asks else None, ask_size=asks[0][1] if asks else 0)

    def trade(self, symbol: str, price: int, size: int, ts: datetime | None = None) -> Quote:
        """A print: sets ``last`` and feeds the bar of its interval."""
        ts = ts or utcnow()
        with self._lock:
            old = self._quotes.get(symbol, Quote(symbol))
            quote = replace(old, last=price, last_size=size, ts=ts)
            self._quotes[symbol] = quote
            bars = self._bars.setdefault(symbol, deque(maxlen=self.max_bars))
            epoch = int(ts.timestamp()) // self.bar_seconds * self.bar_seconds
            start = datetime.fromtimestamp(epoch, ts.tzinfo)
            if bars and bars[-1].start == start:
                bar = bars[-1]
                bar.high, bar.low = max(bar.high, price), min(bar.low, price)
                bar.close = price
                bar.volume += size
            elif not bars or bars[-1].start < start:
                bars.append(Bar(start, price, price, price, price, size))
            # a print older than the newest bar is late; it updates last but no bar
        self._notify(quote)
        return quote

    def mark(self, symbol: str) -> int | None:
        """The price positions are valued at: mid of the BBO when both sides are there,
        else the last trade."""
        q = self.quote(symbol)
        if q is None:
            return None
        if q.bid is not None and q.ask is not None:
            return (q.bid + q.ask) // 2
        return q.last

    def _notify(self, quote: Quote) -> None:
        # one failing listener (say, alerts with the database away) must neither stop
        # the others nor bounce back into the feed
        for listener in list(self._listeners):
            try:
                listener(quote)
            except Exception:
                log.exception("market data listener %r failed on %s", listener, quote.symbol)
