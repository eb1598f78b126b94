"""Quotes, order books and trade bars of the market data the platform holds."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from tick2trade.host.api.deps import CurrentUser, PlatformDep
from tick2trade.host.api.schemas import SYMBOL
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
    """A query's time in UTC; one without a zone is taken to be UTC already."""
    return None if ts is None else (ts.replace(tzinfo=UTC) if ts.tzinfo is None
                                    else ts.astimezone(UTC))


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
            "depth_tracked": view.depth,
            "bids": [{"price": px(x.price), "size": x.size, "orders": x.orders}
                     for x in view.bids],
            "asks": [{"price": px(x.price), "size": x.size, "orders": x.orders}
                     for x in view.asks]}


@router.get("/market/{symbol}/history")
def history(symbol: Symbol, who: CurrentUser, platform: PlatformDep,
            start: Annotated[datetime | None, Query(alias="from")] = None,
            end: Annotated[datetime | None, Query(alias="to")] = None):
    bars = platform.market.bars(symbol, _utc(start), _utc(end))
    if bars is None:
        raise NotFound(f"no trades recorded for {symbol}")
    return {"symbol": symbol, "interval_seconds": platform.market.bar_seconds,
            "bars": [{"start": b.start.isoformat(), "open": px(b.open), "high": px(b.high),
                      "low": px(b.low), "close": px(b.close), "volume": b.volume}
                     for b in bars]}
