"""The HTTP/WebSocket API (FastAPI; OpenAPI at ``/docs`` and ``/openapi.json``).

Design decisions:
- Every route but register/login/refresh needs a bearer access token; roles are checked
  by dependency (``require("operator")``), so a route states who may call it.
- Rate limits per user (per client address for anonymous calls) in a moving window
  (``limits``), answered with 429 and ``Retry-After``. Failed logins have their own,
  stricter throttle (``auth.Users``).
- Requests are validated by pydantic models with bounds (a quantity fits 64-bit
  arithmetic, text has no control characters), so bad input is a 4xx saying which field
  and why; service errors map to 401/403/404/409/422/503 in one table (``_ERRORS``).
- Prices cross the API as decimal strings with four places (inputs may be JSON
  numbers or strings); inside they are integer ticks (``money``).
- Lists are paginated with ``limit``/``offset`` and return ``total``.
- Handlers are plain ``def``: FastAPI runs them on its thread pool, which suits the
  blocking database drivers. The WebSocket is ``async``, and so is order placement,
  the hot path, which makes a single hop to the pool (each sync dependency or handler
  would be one more); the auth dependencies are ``async`` because they never block.
"""


import asyncio
import csv
import io
import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import (
    Depends,
    FastAPI,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    ValidationError,
    field_validator,
)
from sqlalchemy import func, select

from tick2trade.host.services import audit, notify, risk
from tick2trade.host.services.auth import AuthError, Conflict, Principal, Throttled, role_at_least
from tick2trade.host.services.db import Execution, Notification, RiskLimit, User
from tick2trade.host.services.device import DeviceRefused, DeviceTimeout, NoDevice
from tick2trade.host.services.hub import Connection
from tick2trade.host.services.money import MAX_PRICE, px, to_ticks
from tick2trade.host.services.orders import (BrokerUnavailable, NewOrder, NotFound, OrderError,
                                             order_json)
from tick2trade.host.services.orders import Conflict as OrderConflict
from tick2trade.host.services.platform import Platform, quote_json
from tick2trade.host.services.portfolio import performance
from tick2trade.host.services.writer import WriteFailed

log = logging.getLogger(__name__)

SYMBOL = r"^[A-Z0-9][A-Z0-9.\-]{0,7}$"
MAX_QTY = 1_000_000_000
WS_IN_FLIGHT = 64        # orders one WebSocket may have being placed at once
Symbol = Annotated[str, Path(pattern=SYMBOL, description="Instrument, 1-8 characters "
                                                         "A-Z 0-9 . - (e.g. AAPL, BTC-USD)")]
Price = Annotated[Decimal, Field(gt=0, le=MAX_PRICE, decimal_places=4,
                                 description="Decimal, at most 4 places")]


def _plain_text(value: str | None) -> str | None:
    if value is not None and any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("control characters are not allowed")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(Strict):
    username: str = Field(pattern=r"^[A-Za-z0-9_.\-]{3,32}$")
    email: EmailStr
    password: str = Field(min_length=8, max_length=128)
    display_name: str = Field("", max_length=100)
    _text = field_validator("display_name", "password")(_plain_text)


class LoginIn(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128)
    _text = field_validator("username", "password")(_plain_text)


class RefreshIn(Strict):
    refresh_token: str = Field(min_length=1, max_length=2000)


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class UserOut(BaseModel):
    id: int
    username: str
    email: str
    role: str
    display_name: str
    webhook_url: str | None
    created_at: datetime


class ProfileIn(Strict):
    display_name: str | None = Field(None, max_length=100)
    email: EmailStr | None = None
    webhook_url: HttpUrl | None = None
    password: str | None = Field(None, min_length=8, max_length=128)
    current_password: str | None = Field(None, max_length=128)
    _text = field_validator("display_name", "password", "current_password")(_plain_text)


class RoleIn(Strict):
    role: Literal["trader", "operator", "admin"]


class OrderIn(Strict):
    symbol: str = Field(pattern=SYMBOL)
    side: Literal["buy", "sell"]
    type: Literal["market", "limit", "stop"]
    tif: Literal["day", "gtc", "ioc", "fok"] = "day"
    qty: int = Field(gt=0, le=MAX_QTY)
    price: Price | None = None
    stop_price: Price | None = None


class OrderOut(BaseModel):
    id: int
    symbol: str
    side: str
    type: str
    tif: str
    qty: int
    price: str | None
    stop_price: str | None
    filled_qty: int
    avg_fill_price: str | None
    status: str
    reason: str | None
    created_at: datetime
    updated_at: datetime


class Page(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[Any]


class OrderPage(Page):
    items: list[OrderOut]


class LimitsIn(Strict):
    max_order_qty: int | None = Field(None, gt=0, le=MAX_QTY)
    max_notional: Price | None = Field(None, description="Quote currency, at most 4 places")
    max_position: int | None = Field(None, gt=0, le=MAX_QTY)


class PreferenceIn(Strict):
    kind: Literal["order_status", "price_alert", "risk_alert", "portfolio_value"]
    channel: Literal["in_app", "webhook", "email"]
    enabled: bool


class PreferencesIn(Strict):
    preferences: list[PreferenceIn] = Field(min_length=1, max_length=12)


class AlertIn(Strict):
    symbol: str = Field(pattern=SYMBOL)
    field: Literal["bid", "ask", "last"]
    op: Literal["above", "below"]
    threshold: Price


class KillSwitchIn(Strict):
    engaged: bool
    reason: str = Field("", max_length=200)
    _text = field_validator("reason")(_plain_text)


class ConfigIn(Strict):
    config: dict[str, Any]


_ERRORS: dict[type[Exception], int] = {
    AuthError: 401, PermissionError: 403, NotFound: 404, LookupError: 404, Conflict: 409,
    OrderConflict: 409, OrderError: 422, NoDevice: 503, BrokerUnavailable: 503,
    WriteFailed: 503, DeviceRefused: 409, DeviceTimeout: 503,
}


def _utc(ts: datetime | None) -> datetime | None:
    return None if ts is None else (ts.replace(tzinfo=UTC) if ts.tzinfo is None
                                    else ts.astimezone(UTC))


def create_app(platform: Platform) -> FastAPI:
    """The API over ``platform``; serving it does not start background work (``t2t api``
    does, tests call the passes themselves)."""
    app = FastAPI(title="tick2trade host API", version="0.1.0",
                  description="Users, market data, orders, portfolio, risk, notifications "
                              "and operator controls of the tick2trade host. Prices are "
                              "decimal strings with 4 places; quantities are integers.")
    app.state.platform = platform
    limiter = MovingWindowRateLimiter(MemoryStorage())
    user_limits = parse_many(platform.limits.requests)
    anon_limits = parse_many(platform.limits.anonymous)
    bearer = HTTPBearer(auto_error=False)

    for exc_type, status in _ERRORS.items():
        def handler(request, exc, status=status):
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)
        app.add_exception_handler(exc_type, handler)

    @app.exception_handler(Throttled)
    def throttled(request, exc: Throttled):
        return JSONResponse({"detail": "too many failed logins; try again later"},
                            status_code=429, headers={"Retry-After": str(exc.retry_after)})

    def _rate(key: str, rules) -> None:
        for rule in rules:
            if not limiter.hit(rule, "api", key):
                reset = limiter.get_window_stats(rule, "api", key).reset_time
                wait = max(1, int(reset - datetime.now(UTC).timestamp()) + 1)
                raise HTTPException(429, f"rate limit {rule} exceeded",
                                    headers={"Retry-After": str(wait)})

    def anonymous(request: Request) -> None:
        _rate(f"addr:{_address(request)}", anon_limits)

    # async, though they never wait: a sync dependency costs a trip through the thread
    # pool on every request (token check and rate limit are a few microseconds of CPU)
    async def current(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
                      ) -> Principal:
        if creds is None:
            raise HTTPException(401, "missing bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
        who = platform.users.authenticate(creds.credentials)
        _rate(f"user:{who.user_id}", user_limits)
        return who

    def require(role: str):
        async def check(who: Annotated[Principal, Depends(current)]) -> Principal:
            if not role_at_least(who.role, role):
                raise PermissionError(f"this needs the {role} role (you are {who.role})")
            return who
        return check

    Who = Annotated[Principal, Depends(current)]
    Operator = Annotated[Principal, Depends(require("operator"))]
    Admin = Annotated[Principal, Depends(require("admin"))]
    Limit = Annotated[int, Query(ge=1, le=platform.limits.max_page)]
    Offset = Annotated[int, Query(ge=0, le=10**9)]

    # --- auth and users -----------------------------------------------------------------

    @app.post("/auth/register", status_code=201, response_model=UserOut, tags=["users"],
              dependencies=[Depends(anonymous)])
    def register(body: RegisterIn):
        return platform.users.register(body.username, body.email, body.password,
                                       body.display_name)

    @app.post("/auth/login", response_model=TokensOut, tags=["users"],
              dependencies=[Depends(anonymous)])
    def login(body: LoginIn, request: Request):
        t = platform.users.login(body.username, body.password, _address(request))
        return TokensOut(access_token=t.access_token, refresh_token=t.refresh_token,
                         expires_in=t.expires_in)

    @app.post("/auth/refresh", response_model=TokensOut, tags=["users"],
              dependencies=[Depends(anonymous)])
    def refresh(body: RefreshIn):
        t = platform.users.refresh(body.refresh_token)
        return TokensOut(access_token=t.access_token, refresh_token=t.refresh_token,
                         expires_in=t.expires_in)

    @app.post("/auth/logout", status_code=204, tags=["users"])
    def logout(body: RefreshIn, who: Who):
        platform.users.logout(body.refresh_token)
        return Response(status_code=204)

    @app.get("/users/me", response_model=UserOut, tags=["users"])
    def me(who: Who):
        return platform.users.get(who.user_id)

    @app.patch("/users/me", response_model=UserOut, tags=["users"])
    def update_me(body: ProfileIn, who: Who, request: Request):
        changes = body.model_dump(exclude_unset=True, exclude={"current_password"})
        if "password" in changes:
            # a stolen access token alone must not be enough to take the account over
            platform.users.confirm_password(who.username, body.current_password or "",
                                            _address(request))
        if "webhook_url" in changes and changes["webhook_url"] is not None:
            changes["webhook_url"] = str(changes["webhook_url"])
        if changes.get("display_name") is None:
            changes.pop("display_name", None)
        if changes.get("email") is None:
            changes.pop("email", None)
        return platform.users.update_profile(who.user_id, changes)

    @app.put("/users/{username}/role", response_model=UserOut, tags=["users"])
    def set_role(username: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.\-]{3,32}$")],
                 body: RoleIn, who: Admin):
        return platform.users.set_role(username, body.role, who.username)

    # --- market data --------------------------------------------------------------------

    def _quote(symbol: str):
        q = platform.market.quote(symbol)
        if q is None:
            raise NotFound(f"no market data for {symbol}")
        return q

    @app.get("/market/{symbol}/quote", tags=["market"])
    def quote(symbol: Symbol, who: Who):
        return quote_json(_quote(symbol))

    @app.get("/market/{symbol}/book", tags=["market"])
    def book(symbol: Symbol, who: Who):
        levels = platform.market.book(symbol)
        if levels is None:
            q = _quote(symbol)
            levels = ([(q.bid, q.bid_size)] if q.bid is not None else [],
                      [(q.ask, q.ask_size)] if q.ask is not None else [])
        return {"symbol": symbol,
                "bids": [{"price": px(p), "size": n} for p, n in levels[0]],
                "asks": [{"price": px(p), "size": n} for p, n in levels[1]]}

    @app.get("/market/{symbol}/history", tags=["market"])
    def history(symbol: Symbol, who: Who, start: Annotated[datetime | None, Query(alias="from")] = None,
                end: Annotated[datetime | None, Query(alias="to")] = None):
        bars = platform.market.bars(symbol, _utc(start), _utc(end))
        if bars is None:
            raise NotFound(f"no trades recorded for {symbol}")
        return {"symbol": symbol, "interval_seconds": platform.market.bar_seconds,
                "bars": [{"start": b.start.isoformat(), "open": px(b.open), "high": px(b.high),
                          "low": px(b.low), "close": px(b.close), "volume": b.volume}
                         for b in bars]}

    # --- orders -------------------------------------------------------------------------

    @app.post("/orders", status_code=201, response_model=OrderOut, tags=["orders"])
    async def place(body: OrderIn, who: Who):
        # the hot path: one hop to a worker thread (placement waits for the writer's
        # commits and the broker's callbacks), the rest on the event loop
        order = await run_in_threadpool(platform.orders.place, who.user_id, who.username,
                                        _new_order(body))
        return order_json(order)

    @app.get("/orders", response_model=OrderPage, tags=["orders"])
    def list_orders(who: Who, limit: Limit = 50, offset: Offset = 0,
                    status: Literal["pending", "accepted", "partially_filled", "filled",
                                    "canceled", "rejected"] | None = None):
        total, rows = platform.orders.list(who.user_id, status, limit, offset)
        return {"total": total, "limit": limit, "offset": offset,
                "items": [order_json(o) for o in rows]}

    @app.get("/orders/{order_id}", response_model=OrderOut, tags=["orders"])
    def get_order(order_id: Annotated[int, Path(ge=1, le=2**62)], who: Who):
        return order_json(platform.orders.get(who.user_id, order_id))

    @app.delete("/orders/{order_id}", response_model=OrderOut, tags=["orders"])
    def cancel_order(order_id: Annotated[int, Path(ge=1, le=2**62)], who: Who):
        return order_json(platform.orders.cancel(who.user_id, order_id, who.username))

    # --- portfolio ----------------------------------------------------------------------

    @app.get("/portfolio/positions", tags=["portfolio"])
    def positions(who: Who):
        pos = platform.positions(who.user_id)
        marks = platform.marks(pos)
        return {"positions": [{
            "symbol": sym, "qty": p.qty,
            "avg_price": px(p.cost // p.qty) if p.qty else None,
            "mark": px(marks.get(sym)),
            "market_value": px(p.market_value(marks[sym])) if sym in marks else None,
            "unrealized": px(p.unrealized(marks[sym])) if sym in marks else None,
            "realized": px(p.realized)} for sym, p in pos.items()]}

    @app.get("/portfolio/performance", tags=["portfolio"])
    def perf(who: Who):
        pos = platform.positions(who.user_id)
        p = performance(pos, platform.marks(pos))
        return {"market_value": px(p.market_value), "realized": px(p.realized),
                "unrealized": px(p.unrealized), "total_pnl": px(p.total_pnl),
                "capital_deployed": px(p.deployed), "total_return": p.total_return}

    @app.get("/portfolio/transactions", tags=["portfolio"],
             responses={200: {"content": {"text/csv": {}, "application/pdf": {}}}})
    def transactions(who: Who, format: Literal["json", "csv", "pdf"] = "json",
                     limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
                     offset: Offset = 0):
        with platform.sessions() as s:
            total = s.execute(select(func.count()).select_from(Execution)
                              .where(Execution.user_id == who.user_id)).scalar_one()
            rows = [_execution_row(e) for e in s.execute(
                select(Execution).where(Execution.user_id == who.user_id)
                .order_by(Execution.id).limit(limit).offset(offset)).scalars()]
        if format == "csv":
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=list(_EXECUTION_COLUMNS))
            writer.writeheader()
            writer.writerows(rows)
            return Response(out.getvalue(), media_type="text/csv", headers={
                "Content-Disposition": 'attachment; filename="transactions.csv"'})
        if format == "pdf":
            return Response(_transactions_pdf(who.username, rows), media_type="application/pdf",
                            headers={"Content-Disposition":
                                     'attachment; filename="transactions.pdf"'})
        return {"total": total, "limit": limit, "offset": offset, "items": rows}

    # --- risk ---------------------------------------------------------------------------

    @app.get("/risk/limits", tags=["risk"])
    def get_limits(who: Who):
        with platform.sessions() as s:
            return {"kill_switch": risk.kill_switch(s),
                    "limits": [_limit_json(r) for r in risk.all_limits(s)]}

    @app.put("/risk/limits/{symbol}", tags=["risk"])
    def put_limits(symbol: Annotated[str, Path(pattern=r"^(\*|[A-Z0-9][A-Z0-9.\-]{0,7})$")],
                   body: LimitsIn, who: Operator):
        values = body.model_dump(exclude_unset=True)
        if values.get("max_notional") is not None:
            values["max_notional"] = to_ticks(values["max_notional"])
        with platform.sessions.begin() as s:
            row = risk.set_limits(s, symbol, values)
            audit.append(s, who.username, "risk.limits", f"symbol:{symbol}", values)
            return _limit_json(row)

    # --- notifications ------------------------------------------------------------------

    @app.get("/notifications", tags=["notifications"])
    def list_notifications(who: Who, limit: Limit = 50, offset: Offset = 0,
                           unread: bool = False, after_id: Annotated[int, Query(ge=0)] = 0):
        with platform.sessions() as s:
            q = select(Notification).where(Notification.user_id == who.user_id,
                                           Notification.id > min(after_id, 2**62))
            if unread:
                q = q.where(Notification.read.is_(False))
            total = s.execute(select(func.count()).select_from(q.subquery())).scalar_one()
            rows = s.execute(q.order_by(Notification.id.desc()).limit(limit)
                             .offset(offset)).scalars()
            return {"total": total, "limit": limit, "offset": offset,
                    "items": [notify.notification_json(n) for n in rows]}

    @app.post("/notifications/{notification_id}/read", status_code=204, tags=["notifications"])
    def mark_read(notification_id: Annotated[int, Path(ge=1, le=2**62)], who: Who):
        with platform.sessions.begin() as s:
            n = s.get(Notification, notification_id)
            if n is None or n.user_id != who.user_id:
                raise NotFound(f"no notification {notification_id}")
            n.read = True
            audit.append(s, who.username, "notification.read", f"notification:{n.id}")
        return Response(status_code=204)

    @app.get("/notifications/preferences", tags=["notifications"])
    def get_prefs(who: Who):
        with platform.sessions() as s:
            return _prefs_json(notify.preferences(s, who.user_id))

    @app.put("/notifications/preferences", tags=["notifications"])
    def put_prefs(body: PreferencesIn, who: Who):
        changes = [(p.kind, p.channel, p.enabled) for p in body.preferences]
        with platform.sessions.begin() as s:
            notify.set_preferences(s, who.user_id, changes)
            audit.append(s, who.username, "notifications.preferences", f"user:{who.user_id}",
                         {"changes": [list(c) for c in changes]})
            return _prefs_json(notify.preferences(s, who.user_id))

    @app.post("/alerts", status_code=201, tags=["notifications"])
    def create_alert(body: AlertIn, who: Who):
        a = platform.alerts.create(who.user_id, body.symbol, body.field, body.op,
                                   to_ticks(body.threshold), who.username)
        return {"id": a.id, "symbol": a.symbol, "field": a.field, "op": a.op,
                "threshold": px(a.threshold), "active": True}

    @app.delete("/alerts/{alert_id}", status_code=204, tags=["notifications"])
    def delete_alert(alert_id: Annotated[int, Path(ge=1, le=2**62)], who: Who):
        if not platform.alerts.delete(who.user_id, alert_id, who.username):
            raise NotFound(f"no alert {alert_id}")
        return Response(status_code=204)

    # --- operator -----------------------------------------------------------------------

    def _device():
        if platform.device is None:
            raise NoDevice()
        return platform.device

    @app.get("/operator/device", tags=["operator"])
    def device_status(who: Operator):
        return _device().status()

    @app.get("/operator/counters", tags=["operator"])
    def device_counters(who: Operator):
        return _device().counters()

    @app.put("/operator/config", tags=["operator"])
    def push_config(body: ConfigIn, who: Operator):
        device = _device()
        with platform.sessions.begin() as s:
            audit.append(s, who.username, "device.config", "device", body.config)
        return device.push_config(body.config)

    @app.get("/operator/kill-switch", tags=["operator"])
    def get_kill(who: Operator):
        with platform.sessions() as s:
            return {"engaged": risk.kill_switch(s)}

    @app.put("/operator/kill-switch", tags=["operator"])
    def put_kill(body: KillSwitchIn, who: Operator):
        """Engaged: new orders are rejected, open orders are canceled, the device (if
        attached) stops sending; every user gets a risk alert."""
        with platform.sessions.begin() as s:
            risk.set_kill_switch(s, body.engaged)
            audit.append(s, who.username, "risk.kill_switch", "platform",
                         {"engaged": body.engaged, "reason": body.reason})
            users = s.execute(select(User.id)).scalars().all()
            for user_id in users:
                notify.emit(s, user_id, "risk_alert", {
                    "level": "kill_switch", "engaged": body.engaged, "by": who.username,
                    "reason": body.reason})
        canceled = platform.orders.cancel_all() if body.engaged else 0
        device = "not attached"
        if platform.device is not None:
            platform.device.set_kill_switch(body.engaged)
            device = "set"
        return {"engaged": body.engaged, "orders_canceled": canceled, "device": device}

    # --- WebSocket ----------------------------------------------------------------------

    def _failure(exc: Exception) -> tuple[int, str]:
        """The status code and message an HTTP request would have been answered with."""
        if isinstance(exc, HTTPException):
            return exc.status_code, str(exc.detail)
        if isinstance(exc, ValidationError):
            return 422, "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'order'}: "
                                  f"{e['msg']}" for e in exc.errors())
        status = next(code for kind, code in _ERRORS.items() if isinstance(exc, kind))
        return status, str(exc)

    @app.websocket("/ws")
    async def ws(socket: WebSocket, token: str = ""):
        """``/ws?token=<access token>``. Client messages: ``{"op": "subscribe",
        "symbols": [...]}``, ``{"op": "unsubscribe", "symbols": [...]}``, ``{"op":
        "notifications", "enabled": false}`` (this connection stops, or with true
        resumes, receiving the user's notifications: an order-entry connection may
        leave them to another), ``{"op": "place", "ref": <your reference>, "order":
        <the body of POST /orders>}``. Server messages: ``{"type": "quote", ...}``,
        ``{"type": "notification", ...}``, ``{"type": "notifications", "enabled": ...}``,
        ``{"type": "order", "ref": ..., "order": <as POST /orders answers>}``,
        ``{"type": "error", "detail": ...}`` (with ``ref`` and the HTTP ``status`` the
        request would have had when a placement failed).

        Order entry here is the same placement as ``POST /orders`` (validation, rate
        limit, durable write before the answer) without a request's HTTP and token
        work; up to ``WS_IN_FLIGHT`` orders of a connection are placed at once, and
        answers come as they are stored, not necessarily in the order sent."""
        try:
            who = platform.users.authenticate(token)
        except AuthError as exc:
            await socket.close(code=1008, reason=str(exc))
            return
        await socket.accept()
        conn = Connection(who.user_id, asyncio.get_running_loop())
        platform.hub.add(conn)
        sending = asyncio.Lock()         # one message on the wire at a time
        in_flight = asyncio.Semaphore(WS_IN_FLIGHT)
        placing: set[asyncio.Task] = set()

        async def send(message: dict) -> None:
            async with sending:
                await socket.send_json(message)

        async def sender() -> None:
            while True:
                await send(await conn.queue.get())

        async def place_one(ref, body: dict) -> None:
            try:
                order = OrderIn.model_validate(body)
                _rate(f"user:{who.user_id}", user_limits)
                stored = await run_in_threadpool(platform.orders.place, who.user_id,
                                                 who.username, _new_order(order))
                answer = {"type": "order", "ref": ref, "order": OrderOut.model_validate(
                    order_json(stored)).model_dump(mode="json")}
            except (HTTPException, ValidationError, *_ERRORS) as exc:
                status, detail = _failure(exc)
                answer = {"type": "error", "ref": ref, "status": status, "detail": detail}
            except Exception:
                log.exception("WebSocket placement failed")
                answer = {"type": "error", "ref": ref, "status": 500,
                          "detail": "internal error"}
            finally:
                in_flight.release()
            # sent here, not queued: the hub's queue drops its oldest messages when a
            # client lags, and an order's answer must not be dropped
            try:
                await send(answer)
            except (WebSocketDisconnect, RuntimeError, OSError):
                pass     # the client left; what it placed is stored all the same

        task = asyncio.create_task(sender())
        try:
            await send({"type": "hello", "user": who.username})
            while True:
                try:
                    msg = json.loads(await socket.receive_text())
                    op = msg["op"]
                    if op == "place":
                        ref, body = msg.get("ref"), msg["order"]
                        if not isinstance(body, dict) or not isinstance(
                                ref, str | int | None) or len(str(ref)) > 64:
                            raise ValueError
                        await in_flight.acquire()
                        job = asyncio.create_task(place_one(ref, body))
                        placing.add(job)
                        job.add_done_callback(placing.discard)
                        continue
                    if op == "notifications":
                        if not isinstance(msg["enabled"], bool):
                            raise ValueError
                        conn.notifications = msg["enabled"]
                        conn.put({"type": "notifications", "enabled": conn.notifications})
                        continue
                    symbols = msg.get("symbols", [])
                    if op not in ("subscribe", "unsubscribe") or not isinstance(symbols, list):
                        raise ValueError
                    symbols = [str(x) for x in symbols][:100]
                except (ValueError, KeyError, TypeError):
                    conn.put({"type": "error", "detail": 'expected {"op": "subscribe" or '
                                                         '"unsubscribe", "symbols": [...]}, '
                                                         '{"op": "notifications", "enabled": '
                                                         'true or false} or {"op": "place", '
                                                         '"ref": <string or integer>, '
                                                         '"order": {...}}'})
                    continue
                if op == "subscribe":
                    conn.symbols.update(symbols)
                    for sym in symbols:
                        if (q := platform.market.quote(sym)) is not None:
                            conn.put({"type": "quote", **quote_json(q)})
                else:
                    conn.symbols.difference_update(symbols)
                conn.put({"type": "subscribed", "symbols": sorted(conn.symbols)})
        except WebSocketDisconnect:
            pass
        finally:
            platform.hub.remove(conn)
            task.cancel()

    return app


def _new_order(body: OrderIn) -> NewOrder:
    return NewOrder(symbol=body.symbol, side=body.side, type=body.type, tif=body.tif,
                    qty=body.qty, price=_ticks(body.price), stop_price=_ticks(body.stop_price))


def _ticks(value: Decimal | None) -> int | None:
    return to_ticks(value) if value is not None else None


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


_EXECUTION_COLUMNS = ("id", "ts", "order_id", "symbol", "side", "qty", "price", "notional",
                      "realized_pnl")


def _execution_row(e: Execution) -> dict:
    return {"id": e.id, "ts": audit.as_utc(e.ts).isoformat(), "order_id": e.order_id,
            "symbol": e.symbol, "side": e.side, "qty": e.qty, "price": px(e.price),
            "notional": px(e.qty * e.price), "realized_pnl": px(e.realized_pnl)}


def _transactions_pdf(username: str, rows: list[dict]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(orientation="landscape")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 10, f"tick2trade - transactions of {username}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=8)
    pdf.cell(0, 6, f"{len(rows)} executions, generated {datetime.now(UTC).isoformat()}",
             new_x="LMARGIN", new_y="NEXT")
    with pdf.table(text_align="RIGHT") as table:
        table.row(list(_EXECUTION_COLUMNS))
        for r in rows:
            table.row([str(r[c]) for c in _EXECUTION_COLUMNS])
    return bytes(pdf.output())


def _limit_json(r: RiskLimit) -> dict:
    return {"symbol": r.symbol, "max_order_qty": r.max_order_qty,
            "max_notional": px(r.max_notional), "max_position": r.max_position}


def _prefs_json(prefs: dict[tuple[str, str], bool]) -> dict:
    return {"preferences": [{"kind": k, "channel": c, "enabled": v}
                            for (k, c), v in sorted(prefs.items())]}
