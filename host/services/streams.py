"""Market-data streams for WebSocket clients: books (snapshot, then deltas), trades, bars.

``Streams`` listens to ``MarketData`` and hands each change, encoded once, to the hub's
subscribers of its (channel, symbol). Quotes go out by ``Platform`` (``quote_json``).

The book stream
---------------
A subscriber gets a ``snapshot`` of the book as of some ``seq``, then one ``delta`` per
``seq`` after it — the same numbers as ``MarketData``'s per-symbol sequence (and
``GET /market/{symbol}/book``'s ``seq``): the levels that changed, ``size`` 0 for a level
that left (a full-depth delta passes on what the source sent, so a removal may name a
level the book did not hold: nothing to do). Applying the deltas in order to the
snapshot gives the book.

A subscription names the levels per side it wants (``depth``; None for all). At full
depth a delta is ``MarketData``'s own. With a depth N the stream carries the changes of
the top N — a level leaving the top N is a removal, one entering it (because a better
one left) an addition — so every seq still gets a delta, empty when the top N did not
move, and a client's seq chain has no holes it would mistake for a loss.

Client rules: a delta whose ``seq`` is not above the book's ``seq`` is stale (it was in
the snapshot already): skip it. One whose ``seq`` is more than one above is a gap:
ask for a snapshot (``{"op": "snapshot", "symbol": ...}`` on ``/ws``). A ``snapshot``
message replaces the book whenever it comes (a source's resync sends one too).

Prices are decimal strings as in the quote JSON (``money.px``); a level is
``[price, size, orders]`` (orders 0 when the source does not count them).

Ordering: the snapshot for a new subscriber and the deltas for existing ones are made
and queued under one lock, so a connection's queue holds its snapshot before any delta
computed against it. Listeners may be called by several writer threads; a delta that
arrives after a newer book was read is skipped, and a top-N stream that finds the book
moved past the update it was called for sends a snapshot instead of a delta.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from tick2trade.host.services.hub import Connection, Hub
from tick2trade.host.services.marketdata import Bar, BookUpdate, BookView, Level, MarketData, Trade
from tick2trade.host.services.money import px


def levels_json(levels) -> list[list]:
    return [[px(lv.price), lv.size, lv.orders] for lv in levels]


def book_json(symbol: str, kind: str, seq: int, bids, asks, source: str | None,
              depth_tracked: int | None, depth: int | None, ts) -> dict:
    """``depth``: the levels per side this stream carries (None: all);
    ``depth_tracked``: the levels the source keeps (None: all), as in the REST book."""
    return {"type": "book", "kind": kind, "symbol": symbol, "seq": seq,
            "bids": levels_json(bids), "asks": levels_json(asks), "source": source,
            "depth": depth, "depth_tracked": depth_tracked,
            "ts": ts.isoformat() if ts else None}


def trade_json(t: Trade) -> dict:
    return {"type": "trade", "symbol": t.symbol, "seq": t.seq, "price": px(t.price),
            "size": t.size, "side": t.side, "match": t.match, "ts": t.ts.isoformat()}


def bar_json(symbol: str, bar: Bar, seconds: int) -> dict:
    return {"type": "bar", "symbol": symbol, "interval_seconds": seconds,
            "start": bar.start.isoformat(), "open": px(bar.open), "high": px(bar.high),
            "low": px(bar.low), "close": px(bar.close), "volume": bar.volume}


def _diff(old: list[Level], new: list[Level], best_first) -> list[Level]:
    """The levels that turn ``old`` into ``new``: changed or added ones, and size-0
    removals; best first."""
    before = {lv.price: lv for lv in old}
    after = {lv.price: lv for lv in new}
    changes = [lv for p, lv in after.items() if before.get(p) != lv]
    changes += [Level(p, 0, 0) for p in before if p not in after]
    return sorted(changes, key=best_first)


def _bid_order(lv: Level) -> int:
    return -lv.price


def _ask_order(lv: Level) -> int:
    return lv.price


@dataclass
class _TopN:
    """What the subscribers of one (symbol, depth) were last sent."""
    seq: int = 0
    bids: list[Level] = field(default_factory=list)
    asks: list[Level] = field(default_factory=list)


class Streams:
    """Book, trade and bar streams from ``market`` to ``hub``'s subscribers."""

    def __init__(self, market: MarketData, hub: Hub) -> None:
        self.market, self.hub = market, hub
        self._lock = threading.Lock()
        self._tops: dict[str, dict[int, _TopN]] = {}     # symbol → depth → last sent
        self._depths: dict[tuple[Connection, str], int | None] = {}
        market.listen("book", self._on_book)
        market.listen("trade", self._on_trade)
        market.listen("bar", self._on_bar)

    # --- subscriptions (the WebSocket handler) --------------------------------------------

    def subscribe_book(self, conn: Connection, symbol: str, depth: int | None) -> None:
        """Queue a snapshot for ``conn`` and the deltas after it from now on."""
        with self._lock:
            self._depths[conn, symbol] = depth
            conn.put(self._snapshot(symbol, depth))
            self.hub.subscribe(conn, "book", [symbol])

    def snapshot(self, conn: Connection, symbol: str) -> bool:
        """A fresh snapshot for a book subscriber (after a gap); False if ``conn`` does
        not subscribe to ``symbol``'s book."""
        with self._lock:
            if symbol not in conn.channels["book"]:
                return False
            conn.put(self._snapshot(symbol, self._depths.get((conn, symbol))))
            return True

    def unsubscribe_book(self, conn: Connection, symbols) -> None:
        with self._lock:
            symbols = list(symbols)
            self.hub.unsubscribe(conn, "book", symbols)
            for sym in symbols:
                self._depths.pop((conn, sym), None)

    def forget(self, conn: Connection) -> None:
        """``conn`` has gone (after ``hub.remove``)."""
        with self._lock:
            for key in [k for k in self._depths if k[0] is conn]:
                del self._depths[key]

    def _view(self, symbol: str, depth: int | None) -> BookView:
        view = self.market.book_view(symbol, depth)
        return view or BookView(symbol, 0, [], [], "none", None, None)

    def _snapshot(self, symbol: str, depth: int | None) -> dict:
        if depth is None:
            v = self._view(symbol, None)
            return book_json(symbol, "snapshot", v.seq, v.bids, v.asks, v.source, v.depth,
                             None, v.ts)
        # a top-N subscriber starts from what its group was last sent, so the group's
        # next delta applies to it as to the others
        tops = self._tops.setdefault(symbol, {})
        top = tops.get(depth)
        if top is None:
            v = self._view(symbol, depth)
            top = tops[depth] = _TopN(v.seq, v.bids, v.asks)
        else:
            v = self._view(symbol, 0)    # source, depth and time; no levels
        return book_json(symbol, "snapshot", top.seq, top.bids, top.asks, v.source, v.depth,
                         depth, v.ts)

    # --- market data listeners (the writers' threads) -------------------------------------

    def _on_book(self, u: BookUpdate) -> None:
        with self._lock:
            conns = self.hub.subscribers("book", u.symbol)
            if not conns:
                self._tops.pop(u.symbol, None)
                return
            by_depth: dict[int | None, list[Connection]] = {}
            for c in conns:
                if (c, u.symbol) in self._depths:
                    by_depth.setdefault(self._depths[c, u.symbol], []).append(c)
            for depth, targets in by_depth.items():
                msg = (book_json(u.symbol, u.kind, u.seq, u.bids, u.asks, u.source, u.depth,
                                 None, u.ts) if depth is None else self._top_change(u, depth))
                if msg is not None:
                    self.hub.send(targets, msg)
            tops = self._tops.get(u.symbol, {})
            for depth in [d for d in tops if d not in by_depth]:
                del tops[depth]      # nobody left at that depth

    def _top_change(self, u: BookUpdate, depth: int) -> dict | None:
        top = self._tops.setdefault(u.symbol, {}).setdefault(depth, _TopN())
        if u.seq <= top.seq:
            return None                  # already in what the group was sent
        v = self._view(u.symbol, depth)
        if u.kind == "delta" and v.seq == u.seq == top.seq + 1:
            kind = "delta"
            bids = _diff(top.bids, v.bids, _bid_order)
            asks = _diff(top.asks, v.asks, _ask_order)
        else:
            kind, bids, asks = "snapshot", v.bids, v.asks
        top.seq, top.bids, top.asks = v.seq, v.bids, v.asks
        return book_json(u.symbol, kind, v.seq, bids, asks, v.source, v.depth, depth, v.ts)

    def _on_trade(self, t: Trade) -> None:
        self.hub.to_symbol(t.symbol, trade_json(t), "trades")

    def _on_bar(self, symbol: str, bar: Bar) -> None:
        self.hub.to_symbol(symbol, bar_json(symbol, bar, self.market.bar_seconds), "bars")
