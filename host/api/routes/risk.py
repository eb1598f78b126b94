"""The host's risk limits: anyone may read them, an operator sets them."""

from typing import Annotated

from fastapi import APIRouter, Path

from tick2trade.host.api.deps import CurrentUser, Operator, PlatformDep
from tick2trade.host.api.schemas import LimitsIn
from tick2trade.host.services import audit, risk
from tick2trade.host.services.db import RiskLimit
from tick2trade.host.services.money import px, to_ticks

router = APIRouter(tags=["risk"])

# a symbol, or * for the limits of every symbol without its own
LimitSymbol = Annotated[str, Path(pattern=r"^(\*|[A-Z0-9][A-Z0-9.\-]{0,7})$")]


def _limit_json(r: RiskLimit) -> dict:
    return {"symbol": r.symbol, "max_order_qty": r.max_order_qty,
            "max_notional": px(r.max_notional), "max_position": r.max_position}


@router.get("/risk/limits")
def get_limits(who: CurrentUser, platform: PlatformDep):
    with platform.sessions() as s:
        return {"kill_switch": risk.kill_switch(s),
                "limits": [_limit_json(r) for r in risk.all_limits(s)]}


@router.put("/risk/limits/{symbol}")
def put_limits(symbol: LimitSymbol, body: LimitsIn, who: Operator, platform: PlatformDep):
    values = body.model_dump(exclude_unset=True)
    if values.get("max_notional") is not None:
        values["max_notional"] = to_ticks(values["max_notional"])
    with platform.sessions.begin() as s:
        row = risk.set_limits(s, symbol, values)
        audit.append(s, who.username, "risk.limits", f"symbol:{symbol}", values)
        return _limit_json(row)
