"""Fan-out to WebSocket clients: per-user notifications and per-(channel, symbol) streams.

Publishers run on any thread (the feed, the engine, the API's worker threads, commit
hooks). A message is encoded to JSON once, by the publisher, and the same text is queued
for every connection that wants it; the connection's sender task on the server's event
loop is woken with ``call_soon_threadsafe`` when its queue stops being empty.

Slow clients
------------
Each connection's queue is bounded in **bytes of encoded JSON** (``max_bytes``, 1 MiB by
default), counted by the publisher as it queues, so neither a client that stops reading
nor an event loop too busy to run the sender lets the queue grow past it. A message
that would cross the bound is not queued: the connection is marked overflowed, its
queue is freed, and the sender closes the socket with code 1013 (try again later) and
the reason ``too slow: N messages queued``. Nothing is dropped silently: a book stream
whose deltas were skipped would be wrong with nothing to show for it, so a client either
gets every message in order or is disconnected, and reconnecting brings a fresh snapshot.
``Hub.dropped_slow`` counts the connections dropped so.

With Redis (several API processes), ``to_user`` messages are also handed to ``relay``,
which publishes them to the other processes; they come back there through ``deliver``.
Symbol streams stay local: every process reads the market itself.

Answers to a connection's own requests (orders placed over the socket) do not go
through the queue: the WebSocket handler sends them itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

CHANNELS = ("quotes", "book", "trades", "bars")
MAX_QUEUED_BYTES = 1 << 20
SLOW_CLOSE_CODE = 1013      # "try again later": reconnecting (and resubscribing) heals it


def encode(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class TooSlow(Exception):
    """The connection's queue overflowed; ``str()`` is the close reason."""


class Connection:
    """One WebSocket's queue and subscriptions. ``put`` from any thread; ``take`` on the
    connection's event loop."""

    def __init__(self, user_id: int, loop: asyncio.AbstractEventLoop,
                 max_bytes: int = MAX_QUEUED_BYTES) -> None:
        self.user_id, self.loop, self.max_bytes = user_id, loop, max_bytes
        self.notifications = True
        self.channels: dict[str, set[str]] = {c: set() for c in CHANNELS}
        self.depth: int | None = None        # levels per side of this connection's books
        self._lock = threading.Lock()
        self._queue: deque[str] = deque()
        self._bytes = 0
        self._wake = asyncio.Event()
        self.overflow: str | None = None
        self.overflowed = asyncio.Event()    # set on the loop once ``overflow`` is

    @property
    def symbols(self) -> set[str]:
        """The quote subscriptions (the channel the first version of ``/ws`` had)."""
        return self.channels["quotes"]

    def queued(self) -> tuple[int, int]:
        """(messages, bytes) waiting to be sent."""
        with self._lock:
            return len(self._queue), self._bytes

    def put(self, message: dict | str) -> bool:
        """Queue ``message`` (a dict, or JSON text already encoded); False when the
        connection overflowed now or before and will be closed."""
        text = message if isinstance(message, str) else encode(message)
        with self._lock:
            if self.overflow is not None:
                return False
            if self._bytes + len(text) > self.max_bytes:
                self.overflow = (f"too slow: {len(self._queue)} messages queued "
                                 f"({self._bytes} bytes, limit {self.max_bytes})")
                self._queue.clear()
                self._bytes = 0
                wake, ok = self._overflowed, False
            else:
                wake = self._wake.set if not self._queue else None
                self._queue.append(text)
                self._bytes += len(text)
                ok = True
        if wake is not None:
            try:
                self.loop.call_soon_threadsafe(wake)
            except RuntimeError:
                pass  # the connection's loop has closed: it is going away
        return ok

    def _overflowed(self) -> None:
        self.overflowed.set()
        self._wake.set()

    async def take(self) -> list[str]:
        """Everything queued, oldest first, once there is something; raises ``TooSlow``
        once the queue overflowed."""
        while True:
            with self._lock:
                if self.overflow is not None:
                    raise TooSlow(self.overflow)
                if self._queue:
                    batch = list(self._queue)
                    self._queue.clear()
                    self._bytes = 0
                    return batch
                self._wake.clear()
            await self._wake.wait()


class Hub:
    """The live connections and an index of who subscribed to what."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conns: set[Connection] = set()
        self._subs: dict[tuple[str, str], set[Connection]] = {}
        self.dropped_slow = 0
        self.max_bytes = MAX_QUEUED_BYTES    # for connections made from now on
        # where ``to_user`` messages also go (user id, JSON text): the other API
        # processes (services/shared.py), whose ``deliver`` hands them to their sockets
        self.relay: Callable[[int, str], None] | None = None

    def add(self, conn: Connection) -> None:
        with self._lock:
            self._conns.add(conn)

    def remove(self, conn: Connection) -> None:
        with self._lock:
            self._conns.discard(conn)
            for channel, symbols in conn.channels.items():
                for sym in symbols:
                    self._drop(channel, sym, conn)

    def subscribe(self, conn: Connection, channel: str, symbols: Iterable[str]) -> None:
        with self._lock:
            for sym in symbols:
                conn.channels[channel].add(sym)
                self._subs.setdefault((channel, sym), set()).add(conn)

    def unsubscribe(self, conn: Connection, channel: str, symbols: Iterable[str]) -> None:
        with self._lock:
            for sym in list(symbols):
                conn.channels[channel].discard(sym)
                self._drop(channel, sym, conn)

    def _drop(self, channel: str, sym: str, conn: Connection) -> None:
        subs = self._subs.get((channel, sym))
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self._subs[channel, sym]

    def subscribers(self, channel: str, symbol: str) -> list[Connection]:
        with self._lock:
            return list(self._subs.get((channel, symbol), ()))

    def slow(self, conn: Connection, reason: str) -> None:
        """Count a connection closed for overflowing its queue."""
        with self._lock:
            self.dropped_slow += 1
        log.warning("WebSocket of user %s dropped: %s", conn.user_id, reason)

    def stats(self) -> dict:
        with self._lock:
            return {"connections": len(self._conns), "dropped_slow": self.dropped_slow,
                    "subscriptions": {c: sum(len(v) for (ch, _), v in self._subs.items()
                                             if ch == c) for c in CHANNELS}}

    def to_user(self, user_id: int, message: dict) -> None:
        relay = self.relay
        with self._lock:
            targets = [c for c in self._conns if c.user_id == user_id and c.notifications]
        if targets or relay is not None:
            text = encode(message)
            for c in targets:
                c.put(text)
            if relay is not None:
                relay(user_id, text)

    def deliver(self, user_id: int, text: str) -> None:
        """A ``to_user`` message another process published, to this one's sockets."""
        with self._lock:
            targets = [c for c in self._conns if c.user_id == user_id and c.notifications]
        for c in targets:
            c.put(text)

    def to_symbol(self, symbol: str, message: dict, channel: str = "quotes") -> None:
        self.send(self.subscribers(channel, symbol), message)

    @staticmethod
    def send(targets: Iterable[Connection], message: dict) -> None:
        text = None
        for c in targets:
            text = text or encode(message)
            c.put(text)
