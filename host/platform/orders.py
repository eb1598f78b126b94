"""The order service: placement, cancellation and the lifecycle the broker reports.

``place`` validates, runs the host's risk checks and stores the order as ``pending``
with its audit record in one transaction; only after that commit is the order handed to
the broker, so an order the API acknowledged is on disk even if the broker or the
process dies next. Broker callbacks move it on:

    pending → accepted → partially_filled → filled
                      ↘ canceled   (also from pending/partially_filled)
    pending → rejected

Each transition locks the order row, checks the move is allowed (a late or repeated
callback is ignored and logged), and writes — in one transaction — the order, the
execution and the position (``portfolio.apply_fill``), an audit record and the
``order_status`` notification.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select

from . import audit, notify, risk
from .broker import Broker, OrderTicket
from .db import Execution, Order, Position, utcnow
from .money import px
from .portfolio import PositionState, apply_fill

log = logging.getLogger(__name__)

TYPES = ("market", "limit", "stop")
TIFS = ("day", "gtc", "ioc", "fok")
SIDES = ("buy", "sell")
TERMINAL = ("filled", "canceled", "rejected")
OPEN = risk.OPEN_STATUSES


class OrderError(ValueError):
    """The order request itself is wrong (422)."""


class NotFound(LookupError):
    pass


class Conflict(Exception):
    """The order is in a state that does not allow this (409)."""


class BrokerUnavailable(Exception):
    """The broker could not be reached for a request that needs it (503)."""


@dataclass(frozen=True)
class NewOrder:
    symbol: str
    side: str
    type: str
    qty: int
    tif: str = "day"
    price: int | None = None
    stop_price: int | None = None

    def validate(self) -> None:
        if self.side not in SIDES:
            raise OrderError(f"side must be one of {', '.join(SIDES)}")
        if self.type not in TYPES:
            raise OrderError(f"type must be one of {', '.join(TYPES)}")
        if self.tif not in TIFS:
            raise OrderError(f"tif must be one of {', '.join(TIFS)}")
        if self.qty <= 0:
            raise OrderError("qty must be positive")
        if self.type == "limit" and self.price is None:
            raise OrderError("a limit order needs a price")
        if self.type != "limit" and self.price is not None:
            raise OrderError(f"a {self.type} order takes no price")
        if self.type == "stop" and self.stop_price is None:
            raise OrderError("a stop order needs a stop_price")
        if self.type != "stop" and self.stop_price is not None:
            raise OrderError("only a stop order takes a stop_price")
        for name in ("price", "stop_price"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise OrderError(f"{name} must be positive")


def order_json(o: Order) -> dict:
    return {"id": o.id, "symbol": o.symbol, "side": o.side, "type": o.type, "tif": o.tif,
            "qty": o.qty, "price": px(o.price), "stop_price": px(o.stop_price),
            "filled_qty": o.filled_qty,
            "avg_fill_price": px(o.filled_notional // o.filled_qty) if o.filled_qty else None,
            "status": o.status, "reason": o.reason,
            "created_at": audit.as_utc(o.created_at).isoformat(),
            "updated_at": audit.as_utc(o.updated_at).isoformat()}


class Orders:
    """The OMS over a session factory, a broker and a mark-price source."""

    def __init__(self, sessions, broker: Broker, mark=lambda symbol: None) -> None:
        self.sessions = sessions
        self.broker = broker
        self.mark = mark
        broker.attach(self)

    # --- requests -----------------------------------------------------------------------

    def place(self, user_id: int, username: str, new: NewOrder) -> Order:
        new.validate()
        with self.sessions.begin() as s:
            order = Order(user_id=user_id, symbol=new.symbol, side=new.side, type=new.type,
                          tif=new.tif, qty=new.qty, price=new.price, stop_price=new.stop_price,
                          status="pending")
            check = risk.Check()
            # checked before the order joins the session, so it is not its own open order
            if risk.kill_switch(s):
                order.status, order.reason = "rejected", "kill switch engaged"
            else:
                check = risk.check_order(s, user_id, new.symbol, new.side, new.qty,
                                         new.price or new.stop_price or self.mark(new.symbol))
                if check.reason:
                    order.status, order.reason = "rejected", f"risk: {check.reason}"
            s.add(order)
            s.flush()
            audit.append(s, username, "order.place", f"order:{order.id}", {
                "symbol": new.symbol, "side": new.side, "type": new.type, "tif": new.tif,
                "qty": new.qty, "price": new.price, "stop_price": new.stop_price,
                "status": order.status, "reason": order.reason})
            if order.status == "rejected":
                notify.emit(s, user_id, "order_status", _status_payload(order))
                if order.reason.startswith("risk:"):
                    notify.emit(s, user_id, "risk_alert", {
                        "level": "breached", "symbol": new.symbol, "detail": order.reason,
                        "order_id": order.id})
            elif check.near:
                notify.emit(s, user_id, "risk_alert", {
                    "level": "near", "symbol": new.symbol, "detail": check.near,
                    "order_id": order.id})
        if order.status == "pending":
            ticket = OrderTicket(order.id, order.symbol, order.side, order.type, order.tif,
                                 order.qty, order.price, order.stop_price)
            try:
                self.broker.submit(ticket)
            except Exception as exc:
                # the order is stored; say it did not reach the market rather than leave
                # it pending forever or answer 500
                log.exception("broker refused order %s", order.id)
                self.on_rejected(order.id, f"broker unavailable: {type(exc).__name__}")
            with self.sessions() as s:
                order = s.get(Order, order.id)
        return order

    def cancel(self, user_id: int, order_id: int, username: str, any_user: bool = False) -> Order:
        with self.sessions.begin() as s:
            order = s.get(Order, order_id)
            if order is None or (order.user_id != user_id and not any_user):
                raise NotFound(f"no order {order_id}")
            if order.status in TERMINAL:
                raise Conflict(f"order {order_id} is already {order.status}")
            audit.append(s, username, "order.cancel_request", f"order:{order_id}")
        try:
            self.broker.cancel(order_id)
        except Exception as exc:
            log.exception("broker refused to cancel order %s", order_id)
            raise BrokerUnavailable(f"the cancel of order {order_id} did not reach the broker "
                                    f"({type(exc).__name__}); the order may still be live, "
                                    f"retry") from None
        return self.get(user_id, order_id, any_user=True)

    def get(self, user_id: int, order_id: int, any_user: bool = False) -> Order:
        with self.sessions() as s:
            order = s.get(Order, order_id)
            if order is None or (order.user_id != user_id and not any_user):
                raise NotFound(f"no order {order_id}")
            return order

    def list(self, user_id: int, status: str | None, limit: int, offset: int):
        with self.sessions() as s:
            q = select(Order).where(Order.user_id == user_id)
            if status:
                q = q.where(Order.status == status)
            total = s.execute(select(func.count()).select_from(q.subquery())).scalar_one()
            rows = s.execute(q.order_by(Order.id.desc()).limit(limit).offset(offset)).scalars()
            return total, list(rows)

    def cancel_all(self) -> int:
        """Cancel every open order (the kill switch); returns how many were asked."""
        with self.sessions() as s:
            ids = list(s.execute(select(Order.id).where(Order.status.in_(OPEN))).scalars())
        for order_id in ids:
            self.broker.cancel(order_id)
        return len(ids)

    # --- broker callbacks ---------------------------------------------------------------

    def _transition(self, order_id: int, allowed: tuple[str, ...], apply) -> None:
        with self.sessions.begin() as s:
            audit.lock(s)
            order = s.get(Order, order_id, with_for_update=True)
            if order is None:
                log.warning("broker reported on unknown order %s", order_id)
                return
            if order.status not in allowed:
                log.info("order %s: ignoring a report in state %s", order_id, order.status)
                return
            before = order.status
            apply(s, order)
            order.updated_at = utcnow()
            if order.status != before:
                notify.emit(s, order.user_id, "order_status", _status_payload(order))

    def on_accepted(self, order_id: int) -> None:
        def apply(s, order):
            order.status = "accepted"
            audit.append(s, "broker", "order.accepted", f"order:{order_id}")
        self._transition(order_id, ("pending",), apply)

    def on_rejected(self, order_id: int, reason: str) -> None:
        def apply(s, order):
            order.status, order.reason = "rejected", reason[:200]
            audit.append(s, "broker", "order.rejected", f"order:{order_id}", {"reason": reason})
        self._transition(order_id, ("pending",), apply)

    def on_canceled(self, order_id: int, reason: str) -> None:
        def apply(s, order):
            order.status, order.reason = "canceled", reason[:200]
            audit.append(s, "broker", "order.canceled", f"order:{order_id}", {"reason": reason})
        self._transition(order_id, ("pending", "accepted", "partially_filled"), apply)

    def on_executed(self, order_id: int, qty: int, price: int) -> None:
        def apply(s, order):
            qty_now = min(qty, order.qty - order.filled_qty)
            if qty_now <= 0:
                return
            pos = s.get(Position, (order.user_id, order.symbol), with_for_update=True)
            if pos is None:
                pos = Position(user_id=order.user_id, symbol=order.symbol, qty=0, cost=0,
                               realized=0, deployed=0)
                s.add(pos)
            state, gained = apply_fill(PositionState(pos.qty, pos.cost, pos.realized,
                                                     pos.deployed),
                                       qty_now if order.side == "buy" else -qty_now, price)
            pos.qty, pos.cost, pos.realized, pos.deployed = (state.qty, state.cost,
                                                             state.realized, state.deployed)
            s.add(Execution(order_id=order.id, user_id=order.user_id, symbol=order.symbol,
                            side=order.side, qty=qty_now, price=price, realized_pnl=gained))
            order.filled_qty += qty_now
            order.filled_notional += qty_now * price
            order.status = "filled" if order.filled_qty == order.qty else "partially_filled"
            audit.append(s, "broker", "order.executed", f"order:{order_id}",
                         {"qty": qty_now, "price": price, "realized": gained})
        self._transition(order_id, ("pending", "accepted", "partially_filled"), apply)


def _status_payload(order: Order) -> dict:
    return {"order_id": order.id, "symbol": order.symbol, "side": order.side,
            "status": order.status, "qty": order.qty, "filled_qty": order.filled_qty,
            "reason": order.reason}
