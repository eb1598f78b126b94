"""Fan-out to WebSocket clients: per-user notifications and per-symbol quotes.

Publishers run on any thread (the feed, the API's worker threads, commit hooks); each
connection owns an ``asyncio.Queue`` on the server's event loop, and messages cross over
with ``call_soon_threadsafe``. A queue is bounded: a client too slow to drain it loses
its oldest quotes rather than holding memory (notifications stay readable from
``GET /notifications``).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field


@dataclass(eq=False)
class Connection:
    user_id: int
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=1000))
    symbols: set[str] = field(default_factory=set)
    notifications: bool = True

    def put(self, message: dict) -> None:
        def _put() -> None:
            if self.queue.full():
                self.queue.get_nowait()
            self.queue.put_nowait(message)
        try:
            self.loop.call_soon_threadsafe(_put)
        except RuntimeError:
            pass  # the connection's loop has closed: it is going away


class Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conns: set[Connection] = set()

    def add(self, conn: Connection) -> None:
        with self._lock:
            self._conns.add(conn)

    def remove(self, conn: Connection) -> None:
        with self._lock:
            self._conns.discard(conn)

    def to_user(self, user_id: int, message: dict) -> None:
        with self._lock:
            targets = [c for c in self._conns if c.user_id == user_id and c.notifications]
        for c in targets:
            c.put(message)

    def to_symbol(self, symbol: str, message: dict) -> None:
        with self._lock:
            targets = [c for c in self._conns if symbol in c.symbols]
        for c in targets:
            c.put(message)
