"""The order service: placement, cancellation and the lifecycle the broker reports.

``place`` validates, then hands the writer (``writer.Writer``, group commit) one job:
the host's risk checks, the order row as ``pending`` and its audit record, in the
transaction of a batch. When the order goes to the broker depends on where the broker
lives:

- A broker outside the process (a venue session: what it is sent cannot be called
  back) gets the order only after that batch has committed, so no order can be live at
  the market without being on disk. Its answers come back as further writer jobs, and a
  placement answers after a second commit when the broker answers at once.
- An in-process broker (``Broker.in_process``: the paper broker, whose state lives and
  dies with this process) gets it inside the same job, and its immediate answers
  (accept, fills, an immediate cancel) are written in that same transaction — one
  commit per placement. Nothing is acknowledged earlier: the API answers once the
  batch has committed. If the batch rolls back, the broker is told to forget the order
  (``withdraw``), so it never reports on an order that is not stored.

Broker callbacks move the order on, each a writer job (``Writer.join``: inside the
placement's own job when the broker answers synchronously):

    pending → accepted → partially_filled → filled
                      ↘ canceled   (also from pending/partially_filled)
    pending → rejected

Each transition reads the order row, checks the move is allowed (a late or repeated
callback is ignored and logged), and writes — in one transaction — the order, the
execution and the position (``portfolio.apply_fill``), an audit record and the
``order_status`` notification. What the API returns is the order as stored.

Once committed, a placement, each status change and each fill is counted (``placed``,
``tally``, ``fills``, ``filled_shares``: what ``GET /metrics`` reports) and logged at
INFO with the id of the API request that placed the order (``logs.request_id``, kept
with the order while it is open), so the placement's line and the broker's answers to
it can be found together whichever thread wrote them.

The writer's jobs use SQLAlchemy Core, not ORM units of work: they are the hot path,
and each runs alone on the writer's thread, where its cost is every waiting request's.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, replace

from sqlalchemy import Engine, Row, bindparam, case, func, insert, select, update

from tick2trade.host import logs
from tick2trade.host.services import audit, bus, executions, notify, ordertypes, risk
from tick2trade.host.services.broker import Broker, OrderTicket
from tick2trade.host.services.db import Execution, Order, Position, utcnow
from tick2trade.host.services.money import px
from tick2trade.host.services.portfolio import PositionState, apply_fill
from tick2trade.host.services.status import OPEN, TERMINAL, OrderStatus
from tick2trade.host.services.writer import Batch, Writer

log = logging.getLogger(__name__)

TYPES = tuple(ordertypes.TYPES)
TIFS = ordertypes.TIFS
SIDES = ordertypes.SIDES
MODIFY_TIMEOUT = 5.0   # seconds a modify waits for the venue's answer
NOT_AT_BROKER = ("not working at the broker (its state was lost, e.g. by a restart): "
                 "closed on the cancel request")


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
    trail_amount: int | None = None
    trail_bps: int | None = None
    trail_ref: str | None = None
    display_qty: int | None = None
    display_jitter: int | None = None
    take_profit: int | None = None
    stop_loss: int | None = None

    def validate(self, reference: int | None = None) -> None:
        """The type's rules (``ordertypes.validate``), as ``OrderError``."""
        try:
            ordertypes.validate(self, reference)
        except ordertypes.Invalid as exc:
            raise OrderError(str(exc)) from None

    def columns(self) -> dict:
        """The order's own columns of its row."""
        return {"symbol": self.symbol, "side": self.side, "type": self.type,
                "tif": self.tif, "qty": self.qty,
                **{f: getattr(self, f) for f in ordertypes.OPTIONAL_FIELDS}}

    def ticket(self, order_id: int, qty: int | None = None) -> OrderTicket:
        return OrderTicket(order_id, self.symbol, self.side, self.type, self.tif,
                           self.qty if qty is None else qty, self.price, self.stop_price,
                           self.trail_amount, self.trail_bps, self.trail_ref,
                           self.display_qty, self.display_jitter)

    @classmethod
    def of(cls, row) -> NewOrder:
        """The request an order row was placed with (its current parameters)."""
        return cls(**{f: getattr(row, f) for f in ("symbol", "side", "type", "tif", "qty",
                                                  *ordertypes.OPTIONAL_FIELDS)})


def order_json(o: Order) -> dict:
    return {"id": o.id, "symbol": o.symbol, "side": o.side, "type": o.type, "tif": o.tif,
            "qty": o.qty, "price": px(o.price), "stop_price": px(o.stop_price),
            "filled_qty": o.filled_qty,
            "avg_fill_price": px(o.filled_notional // o.filled_qty) if o.filled_qty else None,
            "status": o.status, "reason": o.reason,
            "trail_amount": px(o.trail_amount), "trail_bps": o.trail_bps,
            "trail_ref": o.trail_ref, "display_qty": o.display_qty,
            "display_jitter": o.display_jitter, "take_profit": px(o.take_profit),
            "stop_loss": px(o.stop_loss), "group_id": o.group_id, "parent_id": o.parent_id,
            "triggered": bool(o.triggered), "priority": o.priority,
            "created_at": audit.as_utc(o.created_at).isoformat(),
            "updated_at": audit.as_utc(o.updated_at).isoformat()}


class Orders:
    """The OMS over a session factory (reads), a ``Writer`` (the order path's writes), a
    broker, a mark-price source and where in-app notifications are pushed."""

    def __init__(self, sessions, writer: Writer, broker: Broker,
                 mark=lambda symbol: None, push: notify.Push = lambda user_id, msg: None,
                 reader: Engine | None = None, on_fill=None, event_bus=None) -> None:
        self.sessions = sessions
        # an event bus (services.bus.Bus): orders, executions and notifications are
        # published to it after commit, and notifications are not stored here
        self.bus = event_bus
        # called after the commit of each fill: (order_id, user_id, symbol, side, qty,
        # price) — the history recorder's hook
        self.on_fill = on_fill
        self.writer = writer
        self.reader = reader or writer.engine
        self.broker = broker
        self.mark = mark
        self.push = push
        # called after the commit of each change of an order's status, with the row as
        # stored (a mapping): OCO and bracket orders follow their legs (``contingent``)
        self.status_hooks: list = []
        # where notification recipients are also cached, shared with the other processes
        # (``services.shared.Shared``; the platform sets it when it has Redis)
        self.recipients_store = None
        self._modifies: dict[int, dict] = {}   # order id → the modify waiting for its answer
        self._lock = threading.Lock()
        # changed only by commit hooks, which run on one thread at a time (the writer's
        # leader): an open order → the request that placed it; the committed
        # placements, and placements and status changes by the status reached; the
        # fills and their shares
        self._request_ids: dict[int, str] = {}
        self.placed = 0
        self.tally: Counter = Counter()
        self.fills = 0
        self.filled_shares = 0
        broker.attach(self)

    # --- requests -----------------------------------------------------------------------

    def place(self, user_id: int, username: str, new: NewOrder) -> Row:
        """The order as stored once the broker's immediate answer (if any) is stored."""
        mark = self.mark(new.symbol)
        new.validate(mark)
        reference = new.price or new.stop_price or mark
        rid = logs.request_id.get()
        if getattr(self.broker, "in_process", False):
            return self.writer.run(lambda b: self._place_in_batch(b, user_id, username,
                                                                  new, reference, rid))
        order_id, status = self.writer.run(
            lambda b: self._store(b, user_id, username, new, reference, rid=rid))
        if status == OrderStatus.PENDING:
            self._submit(order_id, new)
        with self.reader.connect() as conn:
            return conn.execute(_READ_ORDER, {"order_id": order_id}).one()

    def _place_in_batch(self, b: Batch, user_id: int, username: str, new: NewOrder,
                        reference: int | None, rid: str | None = None) -> Row:
        """The writer's job for one placement with an in-process broker: store, submit
        (its answers join this batch), and return the row the batch will commit (each
        write of the order returns it, so it is not read again)."""
        order_id, status = self._store(b, user_id, username, new, reference, rid=rid)
        if status == OrderStatus.PENDING:
            b.after_rollback.append(lambda: self.broker.withdraw(order_id))
            self._submit(order_id, new)
        return b.scratch[("order", order_id)]

    def _submit(self, order_id: int, new: NewOrder, qty: int | None = None,
                again: bool = False) -> None:
        """``again``: an order accepted before a restart, sent to a broker that started
        empty (``resume``)."""
        submit = getattr(self.broker, "submit_again", self.broker.submit) if again \
            else self.broker.submit
        try:
            submit(new.ticket(order_id, qty))
        except Exception as exc:
            # the order is stored; say it did not reach the market rather than leave
            # it pending forever or answer 500
            log.exception("broker refused order %s", order_id)
            self.on_rejected(order_id, f"broker unavailable: {type(exc).__name__}")

    def store(self, b: Batch, user_id: int, username: str, new: NewOrder,
              reference: int | None) -> tuple[int, str]:
        """Inside a writer job: the risk checks, the order row (``pending``, or
        ``rejected`` saying why) and its audit record, for an order that reaches no
        broker (an accepted RFQ quote, ``rfq``); returns (order id, status)."""
        return self._store(b, user_id, username, new, reference)

    def _store(self, b: Batch, user_id: int, username: str, new: NewOrder,
               reference: int | None, group_id: int | None = None,
               parent_id: int | None = None, rid: str | None = None) -> tuple[int, str]:
        """The writer's job for one placement: risk checks against the batch's view of
        the database, the order row, its audit record and any notifications. ``rid``:
        the API request placing it."""
        status, reason, check = OrderStatus.PENDING, None, risk.Check()
        if _cached(b, "kill_switch", lambda: risk.kill_switch(b.conn)):
            status, reason = OrderStatus.REJECTED, "kill switch engaged"
        else:
            limits = _cached(b, ("limits", new.symbol),
                             lambda: risk.limits_for(b.conn, new.symbol))
            check = risk.check_order(b.conn, user_id, new.symbol, new.side, new.qty,
                                     reference, limits)
            if check.reason:
                status, reason = OrderStatus.REJECTED, f"risk: {check.reason}"
        now = utcnow()
        order_id = _written(b, b.conn.execute(_INSERT_ORDER, {
            "user_id": user_id, **new.columns(), "group_id": group_id,
            "parent_id": parent_id, "triggered": False,
            "filled_qty": 0, "filled_notional": 0, "status": status, "reason": reason,
            "created_at": now, "updated_at": now}).one()).id
        self._publish_order(b, b.scratch[("order", order_id)]._mapping)
        b.chain.append(username, "order.place", f"order:{order_id}", {
            **{k: v for k, v in new.columns().items() if v is not None},
            "group_id": group_id, "parent_id": parent_id,
            "status": status, "reason": reason})
        b.after_commit.append(lambda: self._placed(order_id, new, status, reason, rid))
        if status == OrderStatus.REJECTED:
            self._notify(b, user_id, "order_status", _status_payload({
                "id": order_id, "symbol": new.symbol, "side": new.side, "status": status,
                "qty": new.qty, "filled_qty": 0, "reason": reason}))
            if reason.startswith("risk:"):
                self._notify(b, user_id, "risk_alert", {
                    "level": "breached", "symbol": new.symbol, "detail": reason,
                    "order_id": order_id})
        elif check.near:
            self._notify(b, user_id, "risk_alert", {
                "level": "near", "symbol": new.symbol, "detail": check.near,
                "order_id": order_id})
        return order_id, status

    def _placed(self, order_id: int, new: NewOrder, status: str, reason: str | None,
                rid: str | None) -> None:
        if rid is not None and status not in TERMINAL:
            self._request_ids[order_id] = rid
        self.placed += 1
        self.tally[status] += 1
        log.info("order %s placed: %s %d %s %s %s, %s%s", order_id, new.side, new.qty,
                 new.symbol, new.type, new.tif, status, f" ({reason})" if reason else "",
                 extra=logs.tagged(rid))

    def _changed(self, order_id: int, status: str, reason: str | None) -> None:
        """After the commit of a status change: count it, log it under the request that
        placed the order (forgotten once the order is closed)."""
        rid = (self._request_ids.pop(order_id, None) if status in TERMINAL
               else self._request_ids.get(order_id))
        self.tally[status] += 1
        log.info("order %s %s%s", order_id, status, f" ({reason})" if reason else "",
                 extra=logs.tagged(rid))

    def _filled(self, order_id: int, qty: int, price: int, venue: str) -> None:
        self.fills += 1
        self.filled_shares += qty
        log.info("order %s executed %d at %s on %s", order_id, qty, px(price), venue,
                 extra=logs.tagged(self._request_ids.get(order_id)))

    def open_counts(self) -> dict[str, int]:
        """The orders open in the store, by status (every open status, 0 included)."""
        with self.reader.connect() as conn:
            got = dict(conn.execute(select(Order.status, func.count()).where(
                Order.status.in_(OPEN)).group_by(Order.status)).all())
        return {str(status): got.get(status, 0) for status in OPEN}

    def _notify(self, b: Batch, user_id: int, kind: str, payload: dict) -> None:
        if self.bus is not None:
            b.after_commit.append(lambda: notify.publish(self.bus, user_id, kind, payload))
            return
        outbox = b.scratch.get("outbox")
        if outbox is None:
            outbox = b.scratch["outbox"] = notify.Outbox(
                b.conn, b.cache.setdefault("recipients", {}), self.recipients_store)
            b.before_commit.append(outbox.write)
        message = outbox.add(user_id, kind, payload)
        if message is not None and message["in_app"]:
            b.after_commit.append(
                lambda: self.push(user_id, notify.envelope(message["json"])))

    def cancel(self, user_id: int, order_id: int, username: str, any_user: bool = False) -> Order:
        with self.sessions.begin() as s:
            order = s.get(Order, order_id)
            if order is None or (order.user_id != user_id and not any_user):
                raise NotFound(f"no order {order_id}")
            if order.status in TERMINAL:
                raise Conflict(f"order {order_id} is already {order.status}")
            audit.append(s, username, "order.cancel_request", f"order:{order_id}")
        try:
            known = self.broker.cancel(order_id)
        except Exception as exc:
            log.exception("broker refused to cancel order %s", order_id)
            raise BrokerUnavailable(f"the cancel of order {order_id} did not reach the broker "
                                    f"({type(exc).__name__}); the order may still be live, "
                                    f"retry") from None
        if known is False and getattr(self.broker, "in_process", False):
            # the store has it open, the broker (in this process) does not: nothing
            # works it, so say so rather than answer as if a cancel were on its way
            self.on_canceled(order_id, NOT_AT_BROKER)
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

    def cancel_all(self) -> dict[str, int]:
        """Cancel every open order (the kill switch). Returns what happened, read back
        from the store: ``canceled`` (closed by now), ``pending`` (still open: the
        broker's answer is on its way, e.g. from a venue), ``failed`` (the broker
        refused the request; still open)."""
        with self.sessions() as s:
            ids = list(s.execute(select(Order.id).where(Order.status.in_(OPEN))).scalars())
        failed = 0
        for order_id in ids:
            try:
                known = self.broker.cancel(order_id)
            except Exception:
                log.exception("broker refused to cancel order %s", order_id)
                failed += 1
                continue
            if known is False and getattr(self.broker, "in_process", False):
                self.on_canceled(order_id, NOT_AT_BROKER)
        with self.reader.connect() as conn:
            still = set(conn.execute(select(Order.id).where(
                Order.id.in_(ids), Order.status.in_(OPEN))).scalars()) if ids else set()
        return {"canceled": len(ids) - len(still), "pending": len(still) - failed,
                "failed": failed}

    def expire_open(self, reason: str) -> int:
        """Cancel, in the store only, every order still open: for a start whose venue is
        a new one that cannot know them (each ``t2t run`` simulates its own), so that no
        order shows as working where nothing works it. Returns how many."""
        with self.sessions() as s:
            ids = list(s.execute(select(Order.id).where(Order.status.in_(OPEN))).scalars())
        for order_id in ids:
            self.on_canceled(order_id, reason)
        return len(ids)

    def place_group(self, user_id: int, username: str, legs: list[NewOrder],
                    parent_id: int | None = None) -> list[Row]:
        """Place ``legs`` as one group, one-cancels-other (``contingent``), in one
        transaction: an OCO (``group_id`` is the first leg's id), or a bracket's exits
        (``parent_id`` and ``group_id`` the entry's)."""
        for leg in legs:
            leg.validate(self.mark(leg.symbol))
        if parent_id is None:
            try:
                ordertypes.validate_oco(legs)
            except ordertypes.Invalid as exc:
                raise OrderError(str(exc)) from None
        in_process = getattr(self.broker, "in_process", False)
        rid = logs.request_id.get()

        def job(b: Batch) -> list[tuple[int, str]]:
            placed, group = [], parent_id
            for leg in legs:
                reference = leg.price or leg.stop_price or self.mark(leg.symbol)
                order_id, status = self._store(b, user_id, username, leg, reference,
                                               group, parent_id, rid)
                if group is None:
                    group = order_id
                    b.conn.execute(update(Order).where(Order.id == order_id)
                                   .values(group_id=group))
                placed.append((order_id, status))
            if in_process:
                for (order_id, status), leg in zip(placed, legs, strict=True):
                    if status == OrderStatus.PENDING:
                        b.after_rollback.append(lambda i=order_id: self.broker.withdraw(i))
                        self._submit(order_id, leg)
            return placed

        placed = self.writer.run(job)
        if not in_process:
            for (order_id, status), leg in zip(placed, legs, strict=True):
                if status == OrderStatus.PENDING:
                    self._submit(order_id, leg)
        with self.reader.connect() as conn:
            return [conn.execute(_READ_ORDER, {"order_id": i}).one() for i, _ in placed]

    def modify(self, user_id: int, order_id: int, username: str, *, qty: int | None = None,
               price: int | None = None, stop_price: int | None = None) -> Row:
        """Change an open order's quantity (the total, filled shares included) and
        prices: an OUCH Replace for an order at the venue (``priority`` says whether it
        kept its place), new parameters for a synthetic one held here. Answers once the
        broker has answered and the change is stored."""
        order = self.get(user_id, order_id)
        if order.status not in OPEN:
            raise Conflict(f"order {order_id} is already {order.status}")
        if order.status == OrderStatus.PENDING:
            raise Conflict(f"order {order_id} is not accepted yet; retry")
        current = NewOrder.of(order)
        if order.type == "trailing_stop":
            # its stop_price is where the trail has got to, not a parameter
            current = replace(current, stop_price=None)
        changed = replace(current, qty=current.qty if qty is None else qty,
                          price=current.price if price is None else price,
                          stop_price=current.stop_price if stop_price is None else stop_price)
        if changed == current:
            raise OrderError("nothing to change: give a different qty, price or stop_price")
        if order.triggered and stop_price is not None:
            raise OrderError(f"order {order_id} has triggered: its stop_price is spent")
        changed.validate(self.mark(order.symbol))
        if changed.qty <= order.filled_qty:
            raise OrderError(f"qty must be above the {order.filled_qty} shares already "
                             f"executed")
        modify = getattr(self.broker, "modify", None)
        if modify is None:
            raise Conflict("this broker cannot modify orders: cancel and place again")
        waiting = {"new": changed, "filled": order.filled_qty, "done": threading.Event(),
                   "refused": None}
        with self._lock:
            if order_id in self._modifies:
                raise Conflict(f"a modify of order {order_id} is under way; retry")
            self._modifies[order_id] = waiting
        try:
            with self.sessions.begin() as s:
                audit.append(s, username, "order.modify_request", f"order:{order_id}",
                             {"qty": changed.qty, "price": changed.price,
                              "stop_price": changed.stop_price})
            try:
                modify(order_id, changed.qty - order.filled_qty, changed.price,
                       changed.stop_price)
            except Exception as exc:
                log.exception("broker refused to modify order %s", order_id)
                raise BrokerUnavailable(f"the modify of order {order_id} did not reach the "
                                        f"broker ({type(exc).__name__}); retry") from None
            if not waiting["done"].wait(MODIFY_TIMEOUT):
                raise BrokerUnavailable(f"no answer to the modify of order {order_id} within "
                                        f"{MODIFY_TIMEOUT:g} s; it may still take effect")
        finally:
            with self._lock:
                self._modifies.pop(order_id, None)
        if waiting["refused"] is not None:
            raise Conflict(f"modify refused: {waiting['refused']}")
        with self.reader.connect() as conn:
            return conn.execute(_READ_ORDER, {"order_id": order_id}).one()

    def note(self, order_id: int, **values) -> None:
        """Store a synthetic order's working state (``synthetic``): a trailing stop's
        new level (``stop_price``), its release (``triggered``)."""
        def job(b: Batch) -> None:
            row = b.conn.execute(update(Order).where(Order.id == order_id,
                                                     Order.status.in_(OPEN))
                                 .values(**values, updated_at=utcnow())
                                 .returning(*_ORDER_COLUMNS)).one_or_none()
            if row is not None:
                _written(b, row)      # a placement's answer shows it (a trail's level)
            if values.get("triggered"):
                b.chain.append("oms", "order.triggered", f"order:{order_id}",
                               {k: v for k, v in values.items() if k != "triggered"} or None)
        self.writer.join(job)

    def resume(self, resubmit: bool) -> dict[str, int]:
        """After a start: put every open order back to work. A day order placed on an
        earlier (UTC) day is canceled, its session is over; a synthetic order held here
        is armed again (``broker.resume``); with ``resubmit`` (the broker started empty:
        the paper broker, a venue simulator started afresh) an order that was at the
        market goes to it again for what is left of it, except a released stop, whose
        market order's fate at the old venue is unknown (canceled, saying so). Without
        ``resubmit`` orders at the venue are left to it. Returns counts by outcome."""
        with self.sessions() as s:
            rows = list(s.execute(select(Order).where(Order.status.in_(OPEN))
                                  .order_by(Order.id)).scalars())
        today, counts = utcnow().date(), Counter()
        resume_held = getattr(self.broker, "resume", None)
        for row in rows:
            left, new = row.qty - row.filled_qty, NewOrder.of(row)
            if row.tif == "day" and audit.as_utc(row.created_at).date() < today:
                self.on_canceled(row.id, "day order of an earlier session")
                counts["expired"] += 1
            elif row.status == OrderStatus.PENDING:
                self.on_canceled(row.id, "never answered before the restart")
                counts["expired"] += 1
            elif row.type in ordertypes.TRIGGERED and not row.triggered and resume_held:
                resume_held(new.ticket(row.id, left))
                counts["armed"] += 1
            elif not resubmit:
                counts["left_at_venue"] += 1
            elif row.type == "iceberg" and resume_held:
                resume_held(new.ticket(row.id, left))
                counts["armed"] += 1
            elif row.type in ordertypes.TRIGGERED and \
                    ordertypes.TYPES[row.type].releases_as == "market":
                self.on_canceled(row.id, "released as a market order before the restart; "
                                         "its outcome at the old venue is unknown")
                counts["expired"] += 1
            else:
                kind = ordertypes.TYPES[row.type].releases_as
                self._submit(row.id, replace(new, type=kind, stop_price=None), left, again=True)
                counts["resubmitted"] += 1
        return dict(counts)

    def on_replaced(self, order_id: int, priority: str) -> None:
        with self._lock:
            waiting = self._modifies.get(order_id)
        if waiting is None:
            log.info("order %s: a replace nobody waits for (timed out?)", order_id)
            return
        new = waiting["new"]

        def job(b: Batch) -> None:
            row = b.conn.execute(_TRANSITION_READ, {"order_id": order_id}).one_or_none()
            if row is None or row.status not in OPEN:
                _ignored(b, order_id)
                return
            # the venue's quantity is what stays open: shares executed while the
            # replace was on its way come on top
            qty = new.qty + (row.filled_qty - waiting["filled"])
            values = {"qty": qty, "price": new.price, "priority": priority}
            if new.type != "trailing_stop":
                values["stop_price"] = new.stop_price
            _written(b, b.conn.execute(_UPDATE_ORDER, {
                "order_id": order_id, **values, "updated_at": utcnow()}).one())
            b.chain.append("broker", "order.modified", f"order:{order_id}", values)
        try:
            self.writer.join(job)
        finally:
            waiting["done"].set()

    def on_modify_rejected(self, order_id: int, reason: str) -> None:
        with self._lock:
            waiting = self._modifies.get(order_id)
        if waiting is not None:
            waiting["refused"] = reason
            waiting["done"].set()

    # --- broker callbacks ---------------------------------------------------------------

    def _transition(self, order_id: int, allowed: tuple[str, ...], apply) -> None:
        """Run ``apply(batch, order)`` on the order's row (a dict of its columns, changed
        in place) as a writer job, if the order is in an ``allowed`` state."""
        def job(b: Batch) -> None:
            row = b.conn.execute(_TRANSITION_READ, {"order_id": order_id}
                                 ).mappings().one_or_none()
            if row is None or row["status"] not in allowed:
                _ignored(b, order_id)
                return
            order = dict(row)
            apply(b, order)
            changed = {k: v for k, v in order.items() if v != row[k]}
            if not changed:
                return
            stored = _written(b, b.conn.execute(_UPDATE_ORDER, {
                **changed, "order_id": order_id, "updated_at": utcnow()}).one())
            if order["status"] != row["status"]:
                self._notify(b, order["user_id"], "order_status", _status_payload(order))
                self._status_changed(b, stored._mapping)
                b.after_commit.append(lambda: self._changed(order_id, order["status"],
                                                            order["reason"]))
        self.writer.join(job)

    def _move(self, order_id: int, allowed: tuple[str, ...], status: str,
              reason: str | None = None) -> None:
        """A transition that changes only the status (and the reason): one conditional
        ``UPDATE … RETURNING`` does the read, the check and the write."""
        def job(b: Batch) -> None:
            values = {"order_id": order_id, "allowed": allowed, "new_status": status,
                      "new_reason": reason[:200] if reason is not None else None,
                      "keep_reason": reason is None, "now": utcnow()}
            row = b.conn.execute(_MOVE_ORDER, values).one_or_none()
            if row is None:
                _ignored(b, order_id)
                return
            row = _written(b, row)._mapping
            b.chain.append("broker", f"order.{status}", f"order:{order_id}",
                           None if reason is None else {"reason": reason})
            self._notify(b, row["user_id"], "order_status", _status_payload(row))
            self._status_changed(b, row)
            b.after_commit.append(lambda: self._changed(order_id, status, reason))
        self.writer.join(job)

    def _publish_order(self, b: Batch, row) -> None:
        """``row`` (a mapping of the order's columns) to ``t2t.orders.<user>`` after
        commit, when there is a bus."""
        if self.bus is not None:
            event = dict(row)
            msg_id = f"order:{event['id']}:{event['status']}:{event['filled_qty']}"
            b.after_commit.append(lambda: self.bus.publish(
                bus.subject("T2T_ORDERS", event["user_id"]), event, msg_id))

    def _status_changed(self, b: Batch, row) -> None:
        self._publish_order(b, row)
        for hook in self.status_hooks:
            b.after_commit.append(lambda hook=hook: hook(row))

    def on_accepted(self, order_id: int) -> None:
        self._move(order_id, (OrderStatus.PENDING,), OrderStatus.ACCEPTED)

    def on_rejected(self, order_id: int, reason: str) -> None:
        self._move(order_id, (OrderStatus.PENDING,), OrderStatus.REJECTED, reason)

    def on_canceled(self, order_id: int, reason: str) -> None:
        self._move(order_id, OPEN, OrderStatus.CANCELED, reason)

    def on_executed(self, order_id: int, qty: int, price: int,
                    liquidity: str | None = None, venue: str | None = None) -> None:
        """``venue``: who executed it, when not the broker (an RFQ's, ``rfq``)."""
        venue = venue or getattr(self.broker, "venue", "PAPER")

        def apply(b, order):
            qty_now = min(qty, order["qty"] - order["filled_qty"])
            if qty_now <= 0:
                return
            user_id, symbol, side = order["user_id"], order["symbol"], order["side"]
            key = {"user": user_id, "sym": symbol}
            held = b.conn.execute(_READ_POSITION, key).one_or_none()
            state, gained = apply_fill(PositionState(*held) if held else PositionState(),
                                       qty_now if side == "buy" else -qty_now, price)
            values = {"qty": state.qty, "cost": state.cost, "realized": state.realized,
                      "deployed": state.deployed}
            if held is None:
                b.conn.execute(insert(Position), {"user_id": user_id, "symbol": symbol,
                                                  **values})
            else:
                b.conn.execute(_UPDATE_POSITION, {**key, **values})
            execution = {
                "order_id": order_id, "user_id": user_id, "symbol": symbol, "side": side,
                "qty": qty_now, "price": price, "realized_pnl": gained, "ts": utcnow(),
                "exec_id": executions.exec_id(venue, order_id, order["filled_qty"]),
                "venue": venue, "liquidity": liquidity,
                "fee": executions.fee(venue, liquidity, qty_now)}
            b.conn.execute(insert(Execution), execution)
            if self.bus is not None:
                b.after_commit.append(lambda: self.bus.publish(
                    bus.subject("T2T_EXECUTIONS", user_id), execution, execution["exec_id"]))
            order["filled_qty"] += qty_now
            order["filled_notional"] += qty_now * price
            order["status"] = (OrderStatus.FILLED if order["filled_qty"] == order["qty"]
                               else OrderStatus.PARTIALLY_FILLED)
            b.chain.append("broker", "order.executed", f"order:{order_id}",
                           {"qty": qty_now, "price": price, "realized": gained})
            b.after_commit.append(lambda: self._filled(order_id, qty_now, price, venue))
            if self.on_fill is not None:
                b.after_commit.append(lambda: self.on_fill(order_id, user_id, symbol, side,
                                                           qty_now, price))
        self._transition(order_id, OPEN, apply)


# The writer's statements, built once: constructing a statement costs more than running
# it, on the one thread every order waits for.
_ORDER_COLUMNS = tuple(Order.__table__.columns)
_INSERT_ORDER = insert(Order).returning(*_ORDER_COLUMNS)
_READ_ORDER = select(*_ORDER_COLUMNS).where(Order.id == bindparam("order_id"))
_TRANSITION_COLUMNS = (Order.id, Order.user_id, Order.symbol, Order.side, Order.qty,
                       Order.filled_qty, Order.filled_notional, Order.status, Order.reason)
_TRANSITION_READ = select(*_TRANSITION_COLUMNS).where(Order.id == bindparam("order_id"))
_MOVE_ORDER = (
    update(Order)
    .where(Order.id == bindparam("order_id"),
           Order.status.in_(bindparam("allowed", expanding=True)))
    .values(status=bindparam("new_status"), updated_at=bindparam("now"),
            reason=case((bindparam("keep_reason"), Order.reason),
                        else_=bindparam("new_reason")))
    .returning(*_ORDER_COLUMNS))
_UPDATE_ORDER = update(Order).where(Order.id == bindparam("order_id")).returning(*_ORDER_COLUMNS)
_POSITION_KEY = (Position.user_id == bindparam("user"), Position.symbol == bindparam("sym"))
_READ_POSITION = select(Position.qty, Position.cost, Position.realized,
                        Position.deployed).where(*_POSITION_KEY)
_UPDATE_POSITION = update(Position).where(*_POSITION_KEY)


def _written(b: Batch, row: Row) -> Row:
    """Keep the order row a statement of this batch returned: the placement's answer."""
    b.scratch[("order", row.id)] = row
    return row


def _ignored(b: Batch, order_id: int) -> None:
    """Say why a broker report changed nothing (a late or repeated callback)."""
    row = b.conn.execute(_TRANSITION_READ, {"order_id": order_id}).one_or_none()
    if row is None:
        log.warning("broker reported on unknown order %s", order_id)
    else:
        log.info("order %s: ignoring a report in state %s", order_id, row.status)


def _cached(b: Batch, key, read):
    """A value no order job changes (the kill switch, a symbol's limits), read once per
    batch: the batch holds the audit head, so whoever changes them waits for it."""
    if key not in b.cache:
        b.cache[key] = read()
    return b.cache[key]


def _status_payload(order: dict) -> dict:
    return {"order_id": order["id"], "symbol": order["symbol"], "side": order["side"],
            "status": order["status"], "qty": order["qty"], "filled_qty": order["filled_qty"],
            "reason": order["reason"]}
