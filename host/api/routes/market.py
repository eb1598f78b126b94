"""Quotes, order books and trade bars of the market data the platform holds."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from tick2trade.host.api.deps import CurrentUser, PlatformDep
from tick2trade.host.api.schemas import SYMBOL
from tick2trade.host.services.history import INTERVALS, History, Unavailable
from tick2trade.host.services.marketdata import MarketData, Quote
from tick2trade.host.services.money import px
from tick2trade.host.services.orders import NotFound
from tick2trade.host.services.platform import quote_json

router = APIRouter(tags=["market"])

Symbol = Annotated[str, Path(pattern=SYMBOL, description="Instrument, 1-8 characters "
                                                         "A-Z 0-9 . - (e.g. AAPL, BTC-USD)")]


def _quote(market: MarketData, symbol: str) -> Quote:
    q = market.quote(symbol)
    if q is None:
        raise NotFound(f"no market data for {symbol}")
    return q


def _utc(ts: datetime | None) -> datetime | None:
    """A query's time in UTC; one without a zone is taken to be UTC already. One whose
    offset carries it past year 1 or 9999 in UTC is 422."""
    if ts is None or ts.tzinfo is None:
        return None if ts is None else ts.replace(tzinfo=UTC)
    try:
        return ts.astimezone(UTC)
    except (OverflowError, ValueError):
        raise HTTPException(422, f"{ts.isoformat()} is out of range in UTC (years "
                                 f"1-9999)") from None


def _stale(platform, source: str) -> bool:
    """The software feed has a gap open (waiting for a retransmission): the book is as
    it was before the gap, not updated past it."""
    live = platform.live
    return bool(source == "feed" and live is not None and live.feed is not None
                and live.feed.status()["gap_open"])


@router.get("/market")
def symbols(who: CurrentUser, platform: PlatformDep):
    """Every symbol the platform has market data for, with its quote and where its book
    comes from (``feed``: the software feed, full depth; ``fpga``: the FPGA's top N)."""
    out = []
    for sym in platform.market.symbols():
        q = platform.market.quote(sym)
        view = platform.market.book_view(sym, 0)
        out.append({**(quote_json(q) if q else {"symbol": sym}),
                    "source": view.source if view else "quote",
                    "depth_tracked": view.depth if view else 1})
    return {"symbols": out}


@router.get("/market/{symbol}/quote")
def quote(symbol: Symbol, who: CurrentUser, platform: PlatformDep):
    return quote_json(_quote(platform.market, symbol))


@router.get("/market/{symbol}/book")
def book(symbol: Symbol, who: CurrentUser, platform: PlatformDep,
         depth: Annotated[int | None, Query(ge=1, le=10_000, description=
                          "Levels per side, best first (default: every level held)")] = None):
    """The symbol's book as the platform holds it: every level of a software feed, or the
    FPGA's top N (``depth_tracked``); ``seq`` is the per-symbol update number the book is
    consistent with (the WebSocket ``book`` stream's deltas carry the same numbers)."""
    view = platform.market.book_view(symbol, depth)
    if view is None:  # no depth for this symbol: the top of book is all there is
        q = _quote(platform.market, symbol)
        return {"symbol": symbol, "seq": 0, "source": "quote", "depth_tracked": 1,
                "bids": [{"price": px(q.bid), "size": q.bid_size, "orders": 0}]
                if q.bid is not None else [],
                "asks": [{"price": px(q.ask), "size": q.ask_size, "orders": 0}]
                if q.ask is not None else []}
    return {"symbol": symbol, "seq": view.seq, "source": view.source,
            "depth_tracked": view.depth, "stale": _stale(platform, view.source),
            "bids": [{"price": px(x.price), "size": x.size, "orders": x.orders}
                     for x in view.bids],
            "asks": [{"price": px(x.price), "size": x.size, "orders": x.orders}
                     for x in view.asks]}


MAX_BARS = 10_000
INTERVAL_DOC = "Bar width: 1s, 1m, 1h or 1d (UTC buckets; default 1m)"


def _range(start: datetime | None, end: datetime | None,
           default: timedelta) -> tuple[datetime, datetime]:
    """[from, to) in UTC: ``to`` defaults to now, ``from`` to ``default`` before it."""
    end = _utc(end) or datetime.now(UTC)
    try:
        start = _utc(start) or end - default
    except (OverflowError, ValueError):
        raise HTTPException(422, f"to ({end.isoformat()}) is too early for the default "
                                 f"from; give from") from None
    if start >= end:
        raise HTTPException(422, f"from ({start.isoformat()}) must be before to "
                                 f"({end.isoformat()})")
    return start, end


@router.get("/market/{symbol}/history")
def history(symbol: Symbol, who: CurrentUser, platform: PlatformDep,
            start: Annotated[datetime | None, Query(alias="from", description=
                             "Start (ISO 8601, UTC without a zone); default: 1,000 bars "
                             "before to")] = None,
            end: Annotated[datetime | None, Query(alias="to", description=
                           "End, exclusive (default: now)")] = None,
            interval: Annotated[str | None, Query(description=INTERVAL_DOC)] = None):
    """OHLCV bars whose start is in [from, to). With the platform's history store
    (``source`` "history"): every interval, at most 10,000 bars a request, and 1 s bars
    only after ``raw_since`` (older prints were compacted into 1-minute bars). Without
    it (``source`` "memory"): the bars the market-data service holds in memory."""
    if interval is not None and interval not in INTERVALS:
        raise HTTPException(422, f"interval {interval!r} is not one of "
                                 f"{', '.join(INTERVALS)}")
    store = getattr(platform, "history", None)
    if store is None:
        width = platform.market.bar_seconds
        if interval is not None and INTERVALS[interval] != width:
            raise HTTPException(422, f"this platform keeps no history store: only the "
                                     f"{width} s bars held in memory (interval omitted)")
        if start is not None and end is not None and _utc(start) >= _utc(end):
            raise HTTPException(422, "from must be before to")
        bars = platform.market.bars(symbol, _utc(start), _utc(end))
        if bars is None:
            raise NotFound(f"no trades recorded for {symbol}")
        return {"symbol": symbol, "interval_seconds": width, "source": "memory",
                "bars": [_bar(b) for b in bars]}
    interval = interval or "1m"
    seconds = INTERVALS[interval]
    start, end = _range(start, end, timedelta(seconds=seconds * 1000))
    n = History.buckets(start, end, interval)
    if n > MAX_BARS:
        raise HTTPException(422, f"{n} bars of {interval} from {start.isoformat()} to "
                                 f"{end.isoformat()}: at most {MAX_BARS} a request (narrow "
                                 f"the range or widen the interval)")
    try:
        bars = store.bars(symbol, start, end, interval)
    except Unavailable as e:
        raise HTTPException(422, str(e)) from None
    raw_since = store.raw_since()
    return {"symbol": symbol, "interval": interval, "interval_seconds": seconds,
            "source": "history", "from": start.isoformat(), "to": end.isoformat(),
            "raw_since": raw_since.isoformat() if raw_since else None,
            "bars": [{**_bar(b), "trades": b.trades} for b in bars]}


def _bar(b) -> dict:
    return {"start": b.start.isoformat(), "open": px(b.open), "high": px(b.high),
            "low": px(b.low), "close": px(b.close), "volume": b.volume}


@router.get("/market/{symbol}/trades")
def trades(symbol: Symbol, who: CurrentUser, platform: PlatformDep,
           start: Annotated[datetime | None, Query(alias="from", description=
                            "Start (ISO 8601; default: one hour before to)")] = None,
           end: Annotated[datetime | None, Query(alias="to", description=
                          "End, exclusive (default: now)")] = None,
           limit: Annotated[int, Query(ge=1, le=10_000)] = 1000):
    """Trade prints in [from, to), oldest first, at most ``limit``; ``truncated`` says
    more follow (ask again from the last ``ts``). Prints before ``raw_since`` were
    compacted into bars and are not kept. 404 without a history store."""
    store = getattr(platform, "history", None)
    if store is None:
        raise NotFound("this platform keeps no history store (trade prints are not kept)")
    start, end = _range(start, end, timedelta(hours=1))
    page = store.trades(symbol, start, end, limit + 1)
    raw_since = store.raw_since()
    return {"symbol": symbol, "from": start.isoformat(), "to": end.isoformat(),
            "raw_since": raw_since.isoformat() if raw_since else None,
            "truncated": len(page) > limit,
            "trades": [{"ts": p.ts.isoformat(), "price": px(p.price), "size": p.size,
                        "side": p.side, "match": p.match, "source": p.source}
                       for p in page[:limit]]}
