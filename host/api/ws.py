"""``/ws``: market-data streams and notifications pushed to the client, and order entry."""

import asyncio
import contextlib
import json
import logging
import re

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from tick2trade.host.api import errors, guard
from tick2trade.host.api.deps import RateLimits
from tick2trade.host.api.schemas import SYMBOL, OrderIn, OrderOut
from tick2trade.host.services import watchlists
from tick2trade.host.services.auth import AuthError, Principal
from tick2trade.host.services.hub import CHANNELS, SLOW_CLOSE_CODE, Connection, TooSlow
from tick2trade.host.services.orders import order_json
from tick2trade.host.services.platform import Platform, quote_json
from tick2trade.host.services.streams import bar_json
from tick2trade.host.services.watchlists import DEFAULT

log = logging.getLogger(__name__)

router = APIRouter()

IN_FLIGHT = 64        # orders one WebSocket may have being placed at once
MAX_MESSAGE = 64 << 10  # characters of one client message
AUTH_TIMEOUT = 10.0   # seconds a connection may take to send its token
BEARER = "bearer"     # the subprotocol that carries the token: ["bearer", <token>]
OLD_FORM = ("no token in the URL (URLs are logged): send subprotocols bearer, <token> "
            "or first {\"op\": \"auth\", \"token\": ...}")
NO_AUTH = 'expected {"op": "auth", "token": <access token>} first'
MAX_SYMBOLS = 100     # symbols one message may name, and one channel of a connection hold
MAX_DEPTH = 1000      # the deepest book stream (levels per side) one may ask for
USAGE = ('expected {"op": "subscribe" or "unsubscribe", "channels": [...], "symbols": '
         '[...], "depth": N}, {"op": "snapshot", "symbol": ...}, {"op": "notifications", '
         '"enabled": true or false} or {"op": "place", "ref": <string or integer>, '
         '"order": {...}}')
_SYMBOL = re.compile(SYMBOL)


class _Refused(Exception):
    """A client message that is answered with ``{"type": "error", "detail": str()}``."""


@router.websocket("/ws")
async def ws(socket: WebSocket):
    """``/ws``: market-data streams, notifications, order entry.

    Authentication (the access token never goes in the URL, which proxies and servers
    log): either the subprotocols ``bearer, <access token>`` (browsers:
    ``new WebSocket(url, ["bearer", token])``; the server answers with ``bearer``), or
    a first message ``{"op": "auth", "token": <access token>}`` within 10 s. A refused
    token closes the connection with 1008 and the reason; so does ``?token=`` (the old
    form), naming these two. A token that stops being valid (logout, password change)
    fails the next placement with 401 and closes the connection.

    Client messages:

    - ``{"op": "subscribe", "channels": [...], "symbols": [...], "depth": N}``.
      Channels: ``quotes`` (the default when ``channels`` is left out), ``book``,
      ``trades``, ``bars``. ``symbols``: at most 100, each with market data (a symbol
      the platform has never seen is refused, the error names the ones it has); left
      out, the caller's ``default`` watchlist (``PUT /watchlists``), or the list named
      by ``"watchlist": <name>`` — listed symbols without market data yet are skipped
      and named in the answer's ``unknown``. ``depth``: levels per side of the book
      stream, 1 to 1000 (left out or null: every level).
    - ``{"op": "unsubscribe", "channels": [...], "symbols": [...]}`` (left out: every
      channel, every symbol).
    - ``{"op": "snapshot", "symbol": ...}``: a fresh book snapshot, for a client that
      saw a delta's ``seq`` jump.
    - ``{"op": "notifications", "enabled": false}`` (this connection stops, or with
      true resumes, receiving the user's notifications: an order-entry connection may
      leave them to another), ``{"op": "place", "ref": <your reference>, "order":
      <the body of POST /orders>}``.

    Server messages: ``{"type": "quote", ...}`` (as ``GET /market/{symbol}/quote``);
    ``{"type": "book", "kind": "snapshot" or "delta", "symbol", "seq", "bids": [[price,
    size, orders], ...], "asks", "source", "depth", "depth_tracked", "ts"}`` (rules in
    ``host/services/streams.py``: skip a delta whose seq is not above your book's, ask
    for a snapshot when one jumps); ``{"type": "trade", "symbol", "seq", "price",
    "size", "side", "match", "ts"}``; ``{"type": "bar", "symbol", "interval_seconds",
    "start", "open", "high", "low", "close", "volume"}`` (the current bar, each time it
    changes); ``{"type": "subscribed", "symbols": [...], "channels": {channel:
    [symbols]}}`` after each (un)subscribe; ``{"type": "notification", ...}``,
    ``{"type": "notifications", "enabled": ...}``, ``{"type": "order", "ref": ...,
    "order": <as POST /orders answers>}``, ``{"type": "rfq_quote", "rfq_id", "quote":
    <a quote as GET /rfq/{id} lists it>}`` (each quote for one of your RFQs as it
    arrives; sent with your notifications), ``{"type": "error", "detail": ...}`` (with
    ``ref`` and the HTTP ``status`` the request would have had when a placement
    failed). A refused message changes nothing and the connection stays open.

    A client that does not read fast enough is disconnected (close code 1013, reason
    ``too slow: N messages queued``) once 1 MiB of messages wait for it (``hub``):
    its streams stay gap-free or end. Order answers are not queued.

    Order entry here is the same placement as ``POST /orders`` (validation, rate
    limit, durable write before the answer) without a request's HTTP and token
    work; up to ``IN_FLIGHT`` orders of a connection are placed at once, and
    answers come as they are stored, not necessarily in the order sent."""
    platform: Platform = socket.app.state.platform
    # a refusal is a close after the accept: closing before it is an HTTP 403, which
    # loses the reason
    if "token" in socket.query_params:
        await socket.accept()
        await socket.close(code=1008, reason=OLD_FORM)
        return
    offered = socket.scope.get("subprotocols") or []
    if len(offered) >= 2 and offered[0] == BEARER:
        token = offered[1]
        await socket.accept(subprotocol=BEARER)
        try:
            who = await run_in_threadpool(platform.users.authenticate, token)
        except AuthError as exc:
            await socket.close(code=1008, reason=str(exc)[:123])
            return
    else:
        await socket.accept()
        try:
            token, who = await asyncio.wait_for(_first_message_auth(socket, platform),
                                                AUTH_TIMEOUT)
        except (TimeoutError, _Refused) as exc:
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                await socket.close(code=1008, reason=(str(exc) or NO_AUTH)[:123])
            return
        except WebSocketDisconnect:
            return
    session = _Session(socket, platform, socket.app.state.rate_limits, who, token)
    platform.hub.add(session.conn)
    sender = asyncio.create_task(session.forward())
    watcher = asyncio.create_task(session.drop_when_slow(sender))
    try:
        await session.send({"type": "hello", "user": who.username})
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("text") is None:
                session.conn.put({"type": "error", "detail": "binary messages are not "
                                  "accepted: send JSON text"})
                continue
            await session.receive(message["text"])
    except (WebSocketDisconnect, RuntimeError):
        pass     # RuntimeError: receiving after we closed a slow client's socket
    finally:
        platform.hub.remove(session.conn)
        platform.streams.forget(session.conn)
        sender.cancel()
        watcher.cancel()


async def _first_message_auth(socket: WebSocket, platform: Platform) -> tuple[str, Principal]:
    try:
        text = await socket.receive_text()
    except KeyError:        # a binary message
        raise _Refused(NO_AUTH) from None
    try:
        msg = guard.loads(text) if len(text) <= MAX_MESSAGE else None
        token = msg["token"] if msg.get("op") == "auth" else None
    except (ValueError, KeyError, TypeError, AttributeError):
        token = None
    if not isinstance(token, str):
        raise _Refused(NO_AUTH)
    try:
        return token, await run_in_threadpool(platform.users.authenticate, token)
    except AuthError as exc:
        raise _Refused(str(exc)) from None


class _Session:
    """One connection's state: its hub subscription and the placements under way."""

    def __init__(self, socket: WebSocket, platform: Platform, rate: RateLimits,
                 who: Principal, token: str) -> None:
        self.socket, self.platform, self.rate, self.who = socket, platform, rate, who
        self.token = token
        self.ended: str | None = None     # why the token stopped being valid
        self.conn = Connection(who.user_id, asyncio.get_running_loop(),
                               max_bytes=platform.hub.max_bytes)
        self.sending = asyncio.Lock()         # one message on the wire at a time
        self.in_flight = asyncio.Semaphore(IN_FLIGHT)
        self.placing: set[asyncio.Task] = set()

    async def send(self, message: dict) -> None:
        async with self.sending:
            await self.socket.send_json(message)

    async def forward(self) -> None:
        """Send what the hub queues for this connection (streams, notifications)."""
        try:
            while True:
                for text in await self.conn.take():
                    async with self.sending:
                        await self.socket.send_text(text)
        except TooSlow:
            pass     # drop_when_slow closes the socket

    async def drop_when_slow(self, sender: asyncio.Task) -> None:
        """Close the socket once the connection's queue overflowed, even while the
        sender waits on a client that stopped reading."""
        await self.conn.overflowed.wait()
        reason = self.conn.overflow or "too slow"
        self.platform.hub.slow(self.conn, reason)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await self.socket.close(code=SLOW_CLOSE_CODE, reason=reason[:123])

    async def receive(self, text: str) -> None:
        conn = self.conn
        try:
            if len(text) > MAX_MESSAGE:
                raise _Refused(f"message too large: at most {MAX_MESSAGE} characters "
                               f"(got {len(text)})")
            try:
                msg = guard.loads(text)
                op = msg["op"]
            except guard.NotStrictJSON as exc:
                raise _Refused(str(exc)) from None
            except (ValueError, KeyError, TypeError):
                raise _Refused(USAGE) from None
            if op == "place":
                ref, body = msg.get("ref"), msg.get("order")
                if not isinstance(body, dict) or not isinstance(
                        ref, str | int | None) or len(str(ref)) > 64:
                    raise _Refused(USAGE)
                await self.in_flight.acquire()
                job = asyncio.create_task(self.place(ref, body))
                self.placing.add(job)
                job.add_done_callback(self.placing.discard)
            elif op == "notifications":
                if not isinstance(msg.get("enabled"), bool):
                    raise _Refused(USAGE)
                conn.notifications = msg["enabled"]
                conn.put({"type": "notifications", "enabled": conn.notifications})
            elif op == "subscribe":
                await self.subscribe(msg)
            elif op == "unsubscribe":
                self.unsubscribe(msg)
            elif op == "snapshot":
                sym = msg.get("symbol")
                if not isinstance(sym, str) or not self.platform.streams.snapshot(conn, sym):
                    raise _Refused(f"snapshot: not subscribed to the book of {sym!r} "
                                   f"(subscribe with \"channels\": [\"book\"] first)")
            else:
                raise _Refused(USAGE)
        except _Refused as exc:
            conn.put({"type": "error", "detail": str(exc)})

    async def subscribe(self, msg: dict) -> None:
        channels = _channels(msg.get("channels", ["quotes"]))
        depth = msg.get("depth")
        if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool)
                                  or not 1 <= depth <= MAX_DEPTH):
            raise _Refused(f"depth: an integer from 1 to {MAX_DEPTH}, or null for every "
                           f"level (got {depth!r})")
        known = set(self.platform.market.symbols())
        unknown: list[str] = []
        if "symbols" in msg:
            symbols = _symbols(msg["symbols"])
            missing = [s for s in symbols if s not in known]
            if missing:
                raise _Refused(f"unknown symbol{'s' * (len(missing) > 1)} "
                               f"{', '.join(missing)}: no market data; "
                               f"known: {_listing(known)}")
        else:
            symbols, unknown = await self._watchlist(msg.get("watchlist", DEFAULT), known)
        for ch in channels:
            total = len(self.conn.channels[ch] | set(symbols))
            if total > MAX_SYMBOLS:
                raise _Refused(f"at most {MAX_SYMBOLS} symbols per channel; {ch} would "
                               f"have {total} (unsubscribe some first)")
        conn, hub, market = self.conn, self.platform.hub, self.platform.market
        for ch in channels:
            if ch == "book":
                for sym in symbols:
                    self.platform.streams.subscribe_book(conn, sym, depth)
                continue
            hub.subscribe(conn, ch, symbols)
            for sym in symbols:
                if ch == "quotes" and (q := market.quote(sym)) is not None:
                    conn.put({"type": "quote", **quote_json(q)})
                elif ch == "bars" and (bars := market.bars(sym)):
                    conn.put(bar_json(sym, bars[-1], market.bar_seconds))
        self._subscribed(unknown)

    async def _watchlist(self, name, known: set[str]) -> tuple[list[str], list[str]]:
        if not isinstance(name, str) or not name:
            raise _Refused("watchlist: the name of one of your watchlists")
        listed = await run_in_threadpool(watchlists.symbols, self.platform.sessions,
                                         self.who.user_id, name)
        if listed is None:
            raise _Refused(f"no symbols given and you have no watchlist {name!r} "
                           f"(PUT /watchlists, or name \"symbols\")")
        return [s for s in listed if s in known], [s for s in listed if s not in known]

    def unsubscribe(self, msg: dict) -> None:
        channels = _channels(msg.get("channels", list(CHANNELS)))
        for ch in channels:
            symbols = (_symbols(msg["symbols"]) if "symbols" in msg
                       else list(self.conn.channels[ch]))
            if ch == "book":
                self.platform.streams.unsubscribe_book(self.conn, symbols)
            else:
                self.platform.hub.unsubscribe(self.conn, ch, symbols)
        self._subscribed([])

    def _subscribed(self, unknown: list[str]) -> None:
        chans = {ch: sorted(syms) for ch, syms in self.conn.channels.items() if syms}
        answer = {"type": "subscribed",
                  "symbols": sorted(set().union(*self.conn.channels.values())),
                  "channels": chans}
        if unknown:
            answer["unknown"] = unknown
        self.conn.put(answer)

    async def place(self, ref, body: dict) -> None:
        who = self.who
        try:
            users = self.platform.users
            if users.cached(self.token) is None:
                await run_in_threadpool(users.authenticate, self.token)
            order = OrderIn.model_validate(body)
            self.rate.user(who.user_id)
            stored = await run_in_threadpool(self.platform.orders.place, who.user_id,
                                             who.username, order.to_new_order())
            answer = {"type": "order", "ref": ref, "order": OrderOut.model_validate(
                order_json(stored)).model_dump(mode="json")}
        except (HTTPException, ValidationError, *errors.STATUS) as exc:
            status, detail = errors.failure(exc)
            answer = {"type": "error", "ref": ref, "status": status, "detail": detail}
            if isinstance(exc, AuthError):
                self.ended = str(exc)
        except Exception:
            log.exception("WebSocket placement failed")
            answer = {"type": "error", "ref": ref, "status": 500, "detail": "internal error"}
        finally:
            self.in_flight.release()
        # sent here, not queued: a lagging client is disconnected when its queue
        # overflows, and the answer to an order it placed must still reach it
        try:
            await self.send(answer)
            if self.ended:
                await self.socket.close(code=1008, reason=self.ended[:123])
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass     # the client left; what it placed is stored all the same


def _channels(value) -> list[str]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(c, str) and c in CHANNELS for c in value)):
        raise _Refused(f"channels: a non-empty list of {', '.join(CHANNELS)} "
                       f"(got {json.dumps(value)[:100]})")
    return list(dict.fromkeys(value))


def _symbols(value) -> list[str]:
    if not isinstance(value, list):
        raise _Refused(f"symbols: a list of symbols (got {json.dumps(value)[:100]})")
    if len(value) > MAX_SYMBOLS:
        raise _Refused(f"at most {MAX_SYMBOLS} symbols per message (got {len(value)})")
    bad = [v for v in value if not isinstance(v, str) or not _SYMBOL.match(v)]
    if bad:
        raise _Refused(f"symbols: 1-8 characters A-Z 0-9 . - each (got "
                       f"{json.dumps(bad[0])[:40]})")
    return list(dict.fromkeys(value))


def _listing(symbols: set[str], most: int = 50) -> str:
    if not symbols:
        return "none yet"
    names = sorted(symbols)
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more
