"""The event bus: the platform's events on NATS JetStream, for workers in other processes.

Without a bus (the default) notifications, history and risk run inside ``t2t api`` as
before. With one (``t2t api --bus nats://…`` or ``T2T_BUS_URL``) the API publishes its
events here and ``t2t worker notifier|history|risk`` consume them, each in its own
process (``host/services/workers.py``).

Streams and subjects
--------------------
One stream per kind of event (file storage, kept ``MAX_AGE``), the subject's last token
saying whose or which (``token`` makes any symbol or id a valid subject token):

============================  ===================================  ========================
stream                        subjects                             message id (dedup)
============================  ===================================  ========================
``T2T_ORDERS``                ``t2t.orders.<user>``                ``order:<id>:<status>:<filled>``
``T2T_EXECUTIONS``            ``t2t.executions.<user>``            the execution's ``exec_id``
``T2T_BOOK``                  ``t2t.book.<symbol>``                ``book:<run>:<symbol>:<seq>``
``T2T_TRADES``                ``t2t.trades.<symbol>``              ``trade:<run>:<symbol>:<seq>``
``T2T_NOTIFICATIONS``         ``t2t.notifications.<user>``         the event's ``event_id``
============================  ===================================  ========================

``<run>`` is drawn when the publisher starts: the book and print sequences start again
at 1 when the API restarts, and must not collide with the ids of the last run inside
the server's duplicate window. Every message is JSON and carries the ``Nats-Msg-Id``
header, so a publish retried after a lost acknowledgement is stored once.

``t2t.inapp.<user>`` is a plain (not stored) subject: the notifier publishes each
notification it stored there, and the API pushes it to the user's WebSockets.

Delivery
--------
The publisher queues events in memory and publishes them from its own thread, after the
transaction that made them has committed; a publish that fails is retried
(``RETRIES``), then counted in ``failed``. An API that dies between a commit and the
publish loses those events (there is no outbox between the database and the bus).
Consumers are durable pull consumers that acknowledge after their effect is committed,
and their effects are idempotent, so the path from the stream on is at-least-once
delivery with exactly-once effects.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable

import nats
from nats.js.api import ConsumerConfig, StorageType, StreamConfig

log = logging.getLogger(__name__)

ENV = "T2T_BUS_URL"
STREAMS = {
    "T2T_ORDERS": "t2t.orders",
    "T2T_EXECUTIONS": "t2t.executions",
    "T2T_BOOK": "t2t.book",
    "T2T_TRADES": "t2t.trades",
    "T2T_NOTIFICATIONS": "t2t.notifications",
}
INAPP = "t2t.inapp"
MAX_AGE = 7 * 86400.0           # seconds a stream keeps a message
DUPLICATE_WINDOW = 120.0        # seconds the server remembers a message id
RETRIES = 5
BATCH = 256                     # publishes in flight at once

# The durable consumers of the workers: name → (stream, subject filter)
CONSUMERS = {
    "notifier": ("T2T_NOTIFICATIONS", "t2t.notifications.>"),
    "history-trades": ("T2T_TRADES", "t2t.trades.>"),
    "history-book": ("T2T_BOOK", "t2t.book.>"),
    "history-executions": ("T2T_EXECUTIONS", "t2t.executions.>"),
    "risk": ("T2T_EXECUTIONS", "t2t.executions.>"),
}


def token(value: object) -> str:
    """``value`` as one subject token: letters, digits, ``-`` and ``_`` as they are,
    any other character (``.``, ``*``, ``>``, space...) as ``%XX`` of its UTF-8 bytes."""
    out = []
    for ch in str(value):
        if ch.isascii() and (ch.isalnum() or ch in "-_"):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode())
    return "".join(out) or "%"


def subject(stream: str, key: object) -> str:
    return f"{STREAMS[stream]}.{token(key)}"


def encode(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":"), default=str).encode()


async def ensure_streams(js) -> None:
    """Create the streams that do not exist (an existing one is left as configured)."""
    for name, prefix in STREAMS.items():
        try:
            await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            await js.add_stream(StreamConfig(
                name=name, subjects=[f"{prefix}.>"], storage=StorageType.FILE,
                max_age=MAX_AGE, duplicate_window=DUPLICATE_WINDOW))


async def consumer_lag(js, durables=None) -> dict[str, int]:
    """Messages each durable consumer has still to finish: not yet delivered plus
    delivered and not acknowledged (the value of ``t2t_consumer_lag_messages``, label
    ``consumer``). A consumer not created yet is left out."""
    lag = {}
    for durable in durables or CONSUMERS:
        stream, _ = CONSUMERS[durable]
        try:
            info = await js.consumer_info(stream, durable)
        except nats.js.errors.NotFoundError:
            continue
        lag[durable] = info.num_pending + info.num_ack_pending
    return lag


class Bus:
    """A connection to the bus on an event loop of its own thread, for code that is not
    asynchronous: ``publish`` from any thread returns at once; ``call`` runs a coroutine
    on the bus's loop and waits for it.

    ``max_queued`` bounds the events waiting to be published; one published while the
    queue is full is dropped and counted in ``dropped`` (the feed must not wait for a
    server that is away)."""

    def __init__(self, url: str, max_queued: int = 100_000,
                 connect_timeout: float = 5.0) -> None:
        self.url, self.max_queued = url, max_queued
        self.run = uuid.uuid4().hex[:12]
        self.published = self.duplicates = self.dropped = self.failed = 0
        self._lock = threading.Condition()
        self._pending = 0       # queued or in flight
        self._loop = asyncio.new_event_loop()
        self._queue: asyncio.Queue | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="t2t-bus",
                                        daemon=True)
        self._thread.start()
        try:
            self.call(self._connect(), timeout=connect_timeout + 5)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            raise

    async def _connect(self) -> None:
        try:
            self.nc = await nats.connect(self.url, connect_timeout=5,
                                         max_reconnect_attempts=-1, allow_reconnect=True)
        except Exception as exc:
            raise ConnectionError(f"cannot reach the event bus at {self.url}: {exc}") from exc
        self.js = self.nc.jetstream()
        await ensure_streams(self.js)
        self._queue = asyncio.Queue()
        self._sender = asyncio.ensure_future(self._send_loop())

    def call(self, coro: Awaitable, timeout: float | None = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # --- publishing -----------------------------------------------------------------------

    def publish(self, subject: str, event: dict, msg_id: str) -> bool:
        """Queue ``event`` for ``subject``; False when it was dropped (queue full)."""
        with self._lock:
            if self._pending >= self.max_queued:
                self.dropped += 1
                return False
            self._pending += 1
        self._loop.call_soon_threadsafe(self._queue.put_nowait,
                                        (subject, encode(event), msg_id))
        return True

    async def _send_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            # started in order, so written to the socket in order
            await asyncio.gather(*(self._send(*item) for item in batch))
            with self._lock:
                self._pending -= len(batch)
                self._lock.notify_all()

    async def _send(self, subject: str, data: bytes, msg_id: str) -> None:
        for attempt in range(RETRIES):
            try:
                ack = await self.js.publish(subject, data, timeout=5,
                                            headers={"Nats-Msg-Id": msg_id})
            except Exception as exc:  # noqa: BLE001 — any failure: try again, then count
                if attempt == RETRIES - 1:
                    self.failed += 1
                    log.error("event %s to %s not published: %s", msg_id, subject, exc)
                    return
                await asyncio.sleep(0.2 * 2 ** attempt)
            else:
                self.published += 1
                self.duplicates += bool(ack.duplicate)
                return

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued event is published (or given up); False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._pending == 0, timeout)

    # --- the rest -------------------------------------------------------------------------

    def subscribe(self, subject: str, handler: Callable[[str, dict], None]) -> None:
        """Call ``handler(subject, event)`` on the bus's thread for each message of a plain
        subject (wildcards allowed)."""
        async def on_message(msg) -> None:
            try:
                handler(msg.subject, json.loads(msg.data))
            except Exception:
                log.exception("handler of %s failed", msg.subject)

        async def sub() -> None:
            await self.nc.subscribe(subject, cb=on_message)
            await self.nc.flush()
        self.call(sub())

    def consumer_lag_messages(self) -> dict[str, int]:
        """``consumer_lag`` per durable consumer (see there)."""
        return self.call(consumer_lag(self.js))

    def stats(self) -> dict:
        with self._lock:
            return {"queued": self._pending, "published": self.published,
                    "duplicates": self.duplicates, "dropped": self.dropped,
                    "failed": self.failed}

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)

        async def stop() -> None:
            self._sender.cancel()
            await self.nc.flush(timeout=5)
            await self.nc.close()
        try:
            self.call(stop(), timeout)
        except Exception:  # noqa: BLE001 — closing: a server already gone is fine
            log.warning("event bus connection did not close cleanly", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)


async def pull(js, durable: str, ack_wait: float = 30.0, max_ack_pending: int = 10_000):
    """The durable pull subscription of one of ``CONSUMERS`` (made on first use; it
    resumes where the last acknowledged message left it). A message not acknowledged
    within ``ack_wait`` seconds is delivered again.

    At most ``max_ack_pending`` messages are out unacknowledged (the worker's batch):
    after a worker died, what it had not acknowledged is delivered again *before*
    anything newer, so a consumer's effects see each stream in order and a stored
    stream position (the history's) is a true high-water mark. With more in flight, a
    restarted worker took newer messages first and then skipped the redelivered older
    ones as done (5 prints of 3,000 lost in CI)."""
    stream, subject_filter = CONSUMERS[durable]
    return await js.pull_subscribe(
        subject_filter, durable=durable, stream=stream,
        config=ConsumerConfig(ack_wait=ack_wait, max_ack_pending=max_ack_pending))
