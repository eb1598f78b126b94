"""What several API processes over one database share through Redis (``server.redis_url``).

Without Redis a ``t2t api`` process keeps all of this in memory, as one process needs.
With it:

- **Rate limits and login throttles** count in Redis (``limits``' Redis storage, the same
  moving windows), so N processes allow what one does, not N times as much
  (``Shared.limits_storage``).
- **Pushes**: ``Hub.to_user`` messages (order status, notifications) are delivered to
  this process's WebSockets at once and published to the others, which deliver them to
  theirs: a client connected to any process gets every event of its user, in the order
  each process published them.
- **Token revocations**: ``Users.forget`` (logout, password or role change, a reused
  refresh token) is published, and every process drops what it cached of the user's
  tokens, so a logout on one process ends the token on all of them in the time Redis
  takes to deliver a message, rather than after ``auth.RECHECK`` seconds.
- **Notification recipients** (a user's preferences and addresses, read for each order
  event) are cached with a TTL (``RECIPIENTS_TTL``): each process's own cache is
  cleared whenever another process writes, and this saves reading them again. A change
  deletes the entry; the TTL bounds how long a read that raced the change can live.

Keys and channels are under one namespace per database (``namespace``): processes over
the same database share, other installations on the same Redis server do not.

Pub/sub runs on a thread of its own with its own event loop (``redis.asyncio``); a
publisher on any thread only queues. What is published while the link to Redis is down
is lost (logged): a client reads missed notifications from ``GET /notifications``, and a
missed revocation still takes effect after ``auth.RECHECK`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import threading
from collections.abc import Callable

import redis
import redis.asyncio as aioredis
from limits.storage import RedisStorage

log = logging.getLogger(__name__)

RECIPIENTS_TTL = 30          # seconds a user's cached notification recipients live
CONNECT_TIMEOUT = 5.0
RETRY = 1.0                  # seconds between attempts to get the link back


class SharedUnavailable(RuntimeError):
    """Redis does not answer: at start (``t2t api`` stops), or for a rate-limit or
    throttle count (the request answers 503)."""


LIMITS_DOWN = "the rate limits are counted in Redis, which does not answer; retry"


def namespace(database_url: str) -> str:
    """``t2t:`` and a digest of the database URL (its password left out)."""
    from sqlalchemy.engine import make_url

    shown = make_url(database_url).render_as_string(hide_password=True)
    return "t2t:" + hashlib.sha256(shown.encode()).hexdigest()[:12]


class Shared:
    """One process's link to the Redis server it shares state through."""

    def __init__(self, url: str, database_url: str) -> None:
        self.url = url
        self.prefix = namespace(database_url)
        self.origin = secrets.token_hex(8)       # this process, to skip its own messages
        self.client = redis.Redis.from_url(url, socket_timeout=CONNECT_TIMEOUT,
                                           socket_connect_timeout=CONNECT_TIMEOUT)
        self._handlers: dict[str, Callable[[str], None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.lost = 0                              # messages not published (link down)

    def key(self, *parts: object) -> str:
        return ":".join((self.prefix, *map(str, parts)))

    # --- rate limits --------------------------------------------------------------------

    def limits_storage(self) -> RedisStorage:
        # wrapped: a Redis error is a limits.errors.StorageError, which the callers
        # turn into SharedUnavailable (503) without Redis's own text (an address)
        return RedisStorage(self.url, key_prefix=self.key("limits"),
                            socket_timeout=CONNECT_TIMEOUT, wrap_exceptions=True)

    # --- notification recipients --------------------------------------------------------

    def recipients(self, user_id: int):
        """A user's cached (preferences, addresses), or None."""
        try:
            raw = self.client.get(self.key("recipients", user_id))
        except redis.RedisError:
            log.warning("Redis: recipients of user %s not read", user_id, exc_info=True)
            return None
        if raw is None:
            return None
        prefs, targets = json.loads(raw)
        return {tuple(k.split("/", 1)): v for k, v in prefs.items()}, targets

    def keep_recipients(self, user_id: int, prefs: dict, targets: dict) -> None:
        try:
            self.client.set(self.key("recipients", user_id),
                            json.dumps([{f"{k}/{c}": v for (k, c), v in prefs.items()},
                                        targets]), ex=RECIPIENTS_TTL)
        except redis.RedisError:
            log.warning("Redis: recipients of user %s not kept", user_id, exc_info=True)

    def drop_recipients(self, user_id: int) -> None:
        try:
            self.client.delete(self.key("recipients", user_id))
        except redis.RedisError:
            log.warning("Redis: recipients of user %s not dropped", user_id, exc_info=True)

    # --- pub/sub ------------------------------------------------------------------------

    def on(self, topic: str, handler: Callable[[str], None]) -> None:
        """Call ``handler(payload)`` (on the pub/sub thread) for each message another
        process publishes on ``topic``; before ``start``."""
        self._handlers[self.key("topic", topic)] = handler

    def publish(self, topic: str, payload: str) -> None:
        """Queue ``payload`` for the other processes (from any thread; never blocks)."""
        loop, queue = self._loop, self._queue
        if loop is None or queue is None:
            return
        try:
            loop.call_soon_threadsafe(queue.put_nowait,
                                      (self.key("topic", topic), f"{self.origin} {payload}"))
        except RuntimeError:
            pass  # closed

    def start(self) -> None:
        """Connect and subscribe; ``SharedUnavailable`` if Redis does not answer."""
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise SharedUnavailable(f"Redis at {self.url} does not answer: {exc}") from None
        self._thread = threading.Thread(target=self._run, name="t2t-redis", daemon=True)
        self._thread.start()
        if not self._ready.wait(CONNECT_TIMEOUT) or self._error is not None:
            raise SharedUnavailable(f"Redis at {self.url}: subscribing failed: "
                                    f"{self._error or 'no answer'}")

    def close(self) -> None:
        loop = self._loop
        if loop is not None and self._queue is not None:
            try:
                loop.call_soon_threadsafe(self._queue.put_nowait, None)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(5)
        self.client.close()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(loop))
        finally:
            loop.close()

    async def _main(self, loop: asyncio.AbstractEventLoop) -> None:
        self._queue = asyncio.Queue()
        self._loop = loop
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=CONNECT_TIMEOUT)
        listener = asyncio.create_task(self._listen_forever(client))
        try:
            await self._publish(client)      # until close()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await client.aclose()

    async def _listen_forever(self, client) -> None:
        while True:
            try:
                await self._listen(client)
            except (redis.RedisError, OSError) as exc:
                if not self._ready.is_set():
                    self._error = exc
                    self._ready.set()
                    return
                log.warning("Redis pub/sub link lost (%s); retrying", exc)
                await asyncio.sleep(RETRY)

    async def _listen(self, client) -> None:
        async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(*self._handlers)
            self._ready.set()
            async for message in pubsub.listen():
                if message["type"] != "message":
                    continue
                origin, _, payload = message["data"].decode().partition(" ")
                if origin == self.origin:
                    continue
                handler = self._handlers.get(message["channel"].decode())
                try:
                    handler(payload)
                except Exception:
                    log.exception("handling a message on %s failed", message["channel"])

    async def _publish(self, client) -> None:
        """Publish what is queued, oldest first; what queued up meanwhile goes in one
        pipeline (one round trip) instead of one each."""
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            closing = None in batch
            batch = batch[:batch.index(None)] if closing else batch
            if batch:
                pipe = client.pipeline(transaction=False)
                for channel, data in batch:
                    pipe.publish(channel, data)
                try:
                    await pipe.execute()
                except (redis.RedisError, OSError):
                    self.lost += len(batch)
                    log.warning("Redis: %d messages were not published", len(batch),
                                exc_info=True)
            if closing:
                return
