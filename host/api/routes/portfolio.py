"""The caller's positions, performance and executions (JSON, CSV or PDF)."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from tick2trade.host.api.deps import CurrentUser, Offset, PlatformDep
from tick2trade.host.services import reports
from tick2trade.host.services.money import px
from tick2trade.host.services.portfolio import performance

router = APIRouter(tags=["portfolio"])


@router.get("/portfolio/positions")
def positions(who: CurrentUser, platform: PlatformDep):
    pos = platform.positions(who.user_id)
    marks = platform.marks(pos)
    return {"positions": [{
        "symbol": sym, "qty": p.qty,
        "avg_price": px(p.cost // p.qty) if p.qty else None,
        "mark": px(marks.get(sym)),
        "market_value": px(p.market_value(marks[sym])) if sym in marks else None,
        "unrealized": px(p.unrealized(marks[sym])) if sym in marks else None,
        "realized": px(p.realized)} for sym, p in pos.items()]}


@router.get("/portfolio/performance")
def perf(who: CurrentUser, platform: PlatformDep):
    pos = platform.positions(who.user_id)
    p = performance(pos, platform.marks(pos))
    return {"market_value": px(p.market_value), "realized": px(p.realized),
            "unrealized": px(p.unrealized), "total_pnl": px(p.total_pnl),
            "capital_deployed": px(p.deployed), "total_return": p.total_return}


def _download(content: str | bytes, media_type: str, filename: str) -> Response:
    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/portfolio/transactions",
            responses={200: {"content": {"text/csv": {}, "application/pdf": {}}}})
def transactions(who: CurrentUser, platform: PlatformDep,
                 format: Literal["json", "csv", "pdf"] = "json",
                 limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
                 offset: Offset = 0):
    with platform.sessions() as s:
        total, rows = reports.transactions(s, who.user_id, limit, offset)
    if format == "csv":
        return _download(reports.as_csv(rows), "text/csv", "transactions.csv")
    if format == "pdf":
        return _download(reports.as_pdf(who.username, rows), "application/pdf",
                         "transactions.pdf")
    return {"total": total, "limit": limit, "offset": offset, "items": rows}
