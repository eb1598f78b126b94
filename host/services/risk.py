"""Slow-path risk on the host: limits per symbol (``*`` for all), the kill switch.

Checks run when an order is placed, before it reaches the broker: order quantity,
notional (limit price, else the mark) and the position the order could reach
(position plus same-side open orders plus this order). A breach rejects the order and
raises a ``risk_alert``; an order that brings the reachable position to 90 % of its
limit or more goes through with a "near" alert. A symbol's own row wins over ``*``,
limit by limit. The FPGA's risk stage makes the binding checks on every order; these
are the host's view of the same limits, and the ones orders from the API meet first.

After the fact, ``monitor_execution`` (``t2t worker risk``, over the event bus) looks at
each execution: the user's position in the symbol recomputed from every stored
execution, against ``max_position``; a breach (a limit lowered under an open position,
fills the pre-trade check could not foresee) engages the kill switch and is returned
for a ``risk_alert``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, case, func, select
from sqlalchemy.orm import Session

from tick2trade.host.services import audit
from tick2trade.host.services.db import Execution, Order, Position, RiskLimit, Setting, utcnow
from tick2trade.host.services.status import OPEN

LIMIT_FIELDS = ("max_order_qty", "max_notional", "max_position")
NEAR = 0.9


@dataclass(frozen=True)
class Check:
    reason: str | None = None      # set: reject
    near: str | None = None        # set: alert, accept


def limits_for(s: Session | Connection, symbol: str) -> dict[str, int | None]:
    cols = [getattr(RiskLimit, f) for f in LIMIT_FIELDS]
    rows = {r[0]: r[1:] for r in s.execute(
        select(RiskLimit.symbol, *cols).where(RiskLimit.symbol.in_([symbol, "*"])))}
    out: dict[str, int | None] = {}
    for i, f in enumerate(LIMIT_FIELDS):
        own = rows[symbol][i] if symbol in rows else None
        out[f] = own if own is not None else (rows["*"][i] if "*" in rows else None)
    return out


def all_limits(s: Session) -> list[RiskLimit]:
    return list(s.execute(select(RiskLimit).order_by(RiskLimit.symbol)).scalars())


def set_limits(s: Session, symbol: str, values: dict[str, int | None]) -> RiskLimit:
    row = s.get(RiskLimit, symbol)
    if row is None:
        row = RiskLimit(symbol=symbol)
        s.add(row)
    for f in LIMIT_FIELDS:
        if f in values:
            setattr(row, f, values[f])
    row.updated_at = utcnow()
    return row


def check_order(s: Session | Connection, user_id: int, symbol: str, side: str, qty: int,
                price: int | None, limits: dict[str, int | None] | None = None) -> Check:
    """``limits``: the symbol's limits when the caller already has them."""
    lim = limits if limits is not None else limits_for(s, symbol)
    if lim["max_order_qty"] is not None and qty > lim["max_order_qty"]:
        return Check(f"quantity {qty} exceeds max_order_qty {lim['max_order_qty']}")
    if lim["max_notional"] is not None and price is not None \
            and qty * price > lim["max_notional"]:
        return Check(f"notional {qty * price} exceeds max_notional {lim['max_notional']} "
                     f"(ticks of 1/10000)")
    if lim["max_position"] is not None:
        held = s.execute(select(Position.qty).where(Position.user_id == user_id,
                                                    Position.symbol == symbol)
                         ).scalar_one_or_none() or 0
        sign = 1 if side == "buy" else -1
        open_qty = s.execute(select(func.coalesce(func.sum(Order.qty - Order.filled_qty), 0))
                             .where(Order.user_id == user_id, Order.symbol == symbol,
                                    Order.side == side,
                                    Order.status.in_(OPEN))).scalar_one()
        reach = abs(held + sign * (open_qty + qty))
        if reach > lim["max_position"]:
            return Check(f"position could reach {reach}, max_position is {lim['max_position']}")
        if reach >= NEAR * lim["max_position"]:
            return Check(near=f"position could reach {reach} of max_position "
                              f"{lim['max_position']}")
    return Check()


def kill_switch(s: Session | Connection) -> bool:
    return s.execute(select(Setting.value).where(Setting.key == "kill_switch")
                     ).scalar_one_or_none() == "on"


def set_kill_switch(s: Session, engaged: bool) -> None:
    row = s.get(Setting, "kill_switch")
    if row is None:
        s.add(Setting(key="kill_switch", value="on" if engaged else "off"))
    else:
        row.value = "on" if engaged else "off"


def exposure(s: Session | Connection, user_id: int, symbol: str) -> int:
    """The user's position in ``symbol`` as the sum of its executions (bought minus
    sold)."""
    signed = case((Execution.side == "buy", Execution.qty), else_=-Execution.qty)
    return s.execute(select(func.coalesce(func.sum(signed), 0)).where(
        Execution.user_id == user_id, Execution.symbol == symbol)).scalar_one()


def monitor_execution(s: Session, execution: dict) -> dict | None:
    """The risk monitor's effect for one execution (a bus event with ``exec_id``,
    ``user_id`` and ``symbol``): None within limits; on a breach the kill switch is
    engaged in ``s``'s transaction (audited, once) and the alert's payload returned.
    Idempotent: it reads only what is stored, and an engaged switch stays as it is."""
    user_id, symbol = execution["user_id"], execution["symbol"]
    held = exposure(s, user_id, symbol)
    limit = limits_for(s, symbol)["max_position"]
    if limit is None or abs(held) <= limit:
        return None
    detail = (f"position {held} after execution {execution['exec_id']} exceeds "
              f"max_position {limit}")
    if not kill_switch(s):
        set_kill_switch(s, True)
        audit.append(s, "risk-monitor", "risk.kill_switch", "platform",
                     {"engaged": True, "reason": detail})
    return {"level": "breached", "symbol": symbol, "detail": detail,
            "exec_id": execution["exec_id"], "kill_switch": True}
