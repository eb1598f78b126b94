"""``/ws``: quotes and notifications pushed to the client, and order entry."""

import asyncio
import json
import logging

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from tick2trade.host.api import errors
from tick2trade.host.api.deps import RateLimits
from tick2trade.host.api.schemas import OrderIn, OrderOut
from tick2trade.host.services.auth import AuthError, Principal
from tick2trade.host.services.hub import Connection
from tick2trade.host.services.orders import order_json
from tick2trade.host.services.platform import Platform, quote_json

log = logging.getLogger(__name__)

router = APIRouter()

IN_FLIGHT = 64        # orders one WebSocket may have being placed at once
MAX_SYMBOLS = 100     # symbols one (un)subscribe message may name
USAGE = ('expected {"op": "subscribe" or "unsubscribe", "symbols": [...]}, {"op": '
         '"notifications", "enabled": true or false} or {"op": "place", "ref": <string or '
         'integer>, "order": {...}}')


@router.websocket("/ws")
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
    work; up to ``IN_FLIGHT`` orders of a connection are placed at once, and
    answers come as they are stored, not necessarily in the order sent."""
    platform: Platform = socket.app.state.platform
    try:
        who = platform.users.authenticate(token)
    except AuthError as exc:
        await socket.close(code=1008, reason=str(exc))
        return
    await socket.accept()
    session = _Session(socket, platform, socket.app.state.rate_limits, who)
    platform.hub.add(session.conn)
    sender = asyncio.create_task(session.forward())
    try:
        await session.send({"type": "hello", "user": who.username})
        while True:
            await session.receive(await socket.receive_text())
    except WebSocketDisconnect:
        pass
    finally:
        platform.hub.remove(session.conn)
        sender.cancel()


class _Session:
    """One connection's state: its hub subscription and the placements under way."""

    def __init__(self, socket: WebSocket, platform: Platform, rate: RateLimits,
                 who: Principal) -> None:
        self.socket, self.platform, self.rate, self.who = socket, platform, rate, who
        self.conn = Connection(who.user_id, asyncio.get_running_loop())
        self.sending = asyncio.Lock()         # one message on the wire at a time
        self.in_flight = asyncio.Semaphore(IN_FLIGHT)
        self.placing: set[asyncio.Task] = set()

    async def send(self, message: dict) -> None:
        async with self.sending:
            await self.socket.send_json(message)

    async def forward(self) -> None:
        """Send what the hub queues for this connection (quotes, notifications)."""
        while True:
            await self.send(await self.conn.queue.get())

    async def receive(self, text: str) -> None:
        conn = self.conn
        try:
            msg = json.loads(text)
            op = msg["op"]
            if op == "place":
                ref, body = msg.get("ref"), msg["order"]
                if not isinstance(body, dict) or not isinstance(
                        ref, str | int | None) or len(str(ref)) > 64:
                    raise ValueError
                await self.in_flight.acquire()
                job = asyncio.create_task(self.place(ref, body))
                self.placing.add(job)
                job.add_done_callback(self.placing.discard)
                return
            if op == "notifications":
                if not isinstance(msg["enabled"], bool):
                    raise ValueError
                conn.notifications = msg["enabled"]
                conn.put({"type": "notifications", "enabled": conn.notifications})
                return
            symbols = msg.get("symbols", [])
            if op not in ("subscribe", "unsubscribe") or not isinstance(symbols, list):
                raise ValueError
            symbols = [str(x) for x in symbols][:MAX_SYMBOLS]
        except (ValueError, KeyError, TypeError):
            conn.put({"type": "error", "detail": USAGE})
            return
        if op == "subscribe":
            conn.symbols.update(symbols)
            for sym in symbols:
                if (q := self.platform.market.quote(sym)) is not None:
                    conn.put({"type": "quote", **quote_json(q)})
        else:
            conn.symbols.difference_update(symbols)
        conn.put({"type": "subscribed", "symbols": sorted(conn.symbols)})

    async def place(self, ref, body: dict) -> None:
        who = self.who
        try:
            order = OrderIn.model_validate(body)
            self.rate.user(who.user_id)
            stored = await run_in_threadpool(self.platform.orders.place, who.user_id,
                                             who.username, order.to_new_order())
            answer = {"type": "order", "ref": ref, "order": OrderOut.model_validate(
                order_json(stored)).model_dump(mode="json")}
        except (HTTPException, ValidationError, *errors.STATUS) as exc:
            status, detail = errors.failure(exc)
            answer = {"type": "error", "ref": ref, "status": status, "detail": detail}
        except Exception:
            log.exception("WebSocket placement failed")
            answer = {"type": "error", "ref": ref, "status": 500, "detail": "internal error"}
        finally:
            self.in_flight.release()
        # sent here, not queued: the hub's queue drops its oldest messages when a
        # client lags, and an order's answer must not be dropped
        try:
            await self.send(answer)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass     # the client left; what it placed is stored all the same
