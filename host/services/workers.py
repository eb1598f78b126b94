"""The event bus's consumers: ``t2t worker notifier|history|risk``, one process each.

Each worker reads its durable pull consumer(s) (``bus.CONSUMERS``) in batches, commits
the batch's effect, then acknowledges it; a batch whose effect failed is handed back
(``nak``) and comes again. A worker killed at any point loses nothing — what it had
not acknowledged is delivered again once ``ack_wait`` has passed — and doubles nothing,
because every effect is idempotent:

- notifier: ``notify.store_events`` skips an event whose id is stored (a unique
  column), then its dispatcher delivers the outbox (webhooks, e-mail) as the API's does
  without a bus, and each new in-app notification goes to ``t2t.inapp.<user>``;
- history: ``History.flush(marks=…)`` writes a batch with the stream sequence it
  reached, in one DuckDB transaction, and messages at or below it are skipped;
- risk: ``risk.monitor_execution`` recomputes the position from the stored executions;
  a breach's alert has the event id ``risk:<exec_id>``, so an execution seen twice
  makes one notification (the server's duplicate window, then the notifier's check).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import nats

from tick2trade.host.services import bus, notify, risk
from tick2trade.host.services.db import make_engine, session_factory, upgrade
from tick2trade.host.services.marketdata import Quote, Trade

log = logging.getLogger(__name__)

WORKERS = {"notifier": ("notifier",),
           "history": ("history-trades", "history-book", "history-executions"),
           "risk": ("risk",)}

Handler = Callable[[list], Awaitable[None]]


async def consume(js, durable: str, handle: Handler, stop: asyncio.Event, *,
                  batch: int = 100, ack_wait: float = 30.0) -> None:
    """Fetch batches of ``durable`` until ``stop``; ``handle(messages)`` commits their
    effect, then they are acknowledged (or handed back when it raised)."""
    sub = await bus.pull(js, durable, ack_wait, max_ack_pending=batch)
    size = 1
    while not stop.is_set():
        # A fetch that finds nothing waiting lingers until its batch is full or it times
        # out, so ask for one message when idle (it comes as soon as it is published)
        # and for as many as the last one said are waiting behind it when catching up.
        try:
            msgs = await sub.fetch(size, timeout=0.5)
        except (nats.errors.TimeoutError, asyncio.TimeoutError):
            size = 1
            continue
        size = max(1, min(batch, msgs[-1].metadata.num_pending))
        try:
            await handle(msgs)
        except Exception:
            log.exception("%s: a batch of %d failed; it will come again", durable, len(msgs))
            for m in msgs:
                await m.nak(delay=1.0)
            continue
        for m in msgs:
            await m.ack()


def _events(msgs) -> list[dict]:
    return [json.loads(m.data) for m in msgs]


def notifier(sessions, nc) -> Handler:
    async def handle(msgs) -> None:
        pushes = await asyncio.to_thread(notify.store_events, sessions, _events(msgs))
        for user_id, message in pushes:
            await nc.publish(f"{bus.INAPP}.{bus.token(user_id)}",
                             bus.encode({"user_id": user_id, "message": message}))
    return handle


def risk_monitor(sessions, js) -> Handler:
    def effects(events: list[dict]) -> list[tuple[dict, dict]]:
        out = []
        for e in events:
            with sessions.begin() as s:
                alert = risk.monitor_execution(s, e)
            if alert is not None:
                out.append((e, alert))
        return out

    async def handle(msgs) -> None:
        for e, alert in await asyncio.to_thread(effects, _events(msgs)):
            event_id = f"risk:{e['exec_id']}"
            await js.publish(bus.subject("T2T_NOTIFICATIONS", e["user_id"]), bus.encode(
                {"event_id": event_id, "user_id": e["user_id"], "kind": "risk_alert",
                 "payload": alert}), headers={"Nats-Msg-Id": event_id}, timeout=5)
    return handle


class HistoryWriter:
    """The history worker's effect: bus messages into a ``History`` (made with
    ``background=False``: only ``apply`` writes it), each stream's position kept with
    the rows."""

    def __init__(self, history) -> None:
        self.history = history
        self.lock = asyncio.Lock()     # one batch at a time: the buffers are shared
        self._next_compact = time.monotonic() + (history.compact_interval or 0)

    def apply(self, msgs) -> int:
        """Record and write the messages not applied before; returns how many were."""
        marks: dict[str, int] = {}
        applied = 0
        for m in msgs:
            stream, seq = m.metadata.stream, m.metadata.sequence.stream
            key = f"bus:{stream}"
            done = marks.get(key) or self.history.mark(key) or 0
            if seq <= done:
                continue
            marks[key] = seq
            applied += 1
            self._record(stream, json.loads(m.data))
        if marks:
            self.history.flush(marks=marks)
        interval = self.history.compact_interval
        if interval and time.monotonic() >= self._next_compact:
            self._next_compact = time.monotonic() + interval
            self.history.compact()
        return applied

    def _record(self, stream: str, e: dict) -> None:
        h = self.history
        if stream == "T2T_TRADES":
            h.record_trade(Trade(e["symbol"], e["price"], e["size"],
                                 datetime.fromisoformat(e["ts"]), e["seq"], e["side"],
                                 e["match"]))
        elif stream == "T2T_BOOK" and e.get("bbo") is not None:
            bid, bid_size, ask, ask_size = e["bbo"]
            h.record_quote(Quote(e["symbol"], bid, bid_size, ask, ask_size,
                                 ts=datetime.fromisoformat(e["ts"])))
        elif stream == "T2T_EXECUTIONS":
            h.record_fill(e["order_id"], e["user_id"], e["symbol"], e["side"], e["qty"],
                          e["price"], datetime.fromisoformat(e["ts"]))

    def handler(self) -> Handler:
        async def handle(msgs) -> None:
            async with self.lock:
                await asyncio.to_thread(self.apply, msgs)
        return handle


def run(name: str, url: str, *, db_url: str | None = None, history_path: Path | None = None,
        history_options: dict | None = None, smtp: notify.SmtpConfig | None = None,
        webhooks: notify.WebhookPolicy | None = None, batch: int = 100,
        ack_wait: float = 30.0, ready: Callable[[], None] = lambda: None) -> None:
    """Run worker ``name`` (one of ``WORKERS``) until SIGTERM or SIGINT."""
    asyncio.run(_run(name, url, db_url, history_path, history_options or {}, smtp,
                     webhooks, batch, ack_wait, ready))


async def _run(name, url, db_url, history_path, history_options, smtp, webhooks, batch,
               ack_wait, ready) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=-1)
    js = nc.jetstream()
    await bus.ensure_streams(js)
    closers = []
    if name == "history":
        from tick2trade.host.services.history import History

        history = History(history_path, background=False, **history_options)
        closers.append(history.close)
        handle = HistoryWriter(history).handler()
    else:
        engine = make_engine(db_url)
        upgrade(engine)
        sessions = session_factory(engine)
        closers.append(engine.dispose)
        if name == "notifier":
            dispatcher = notify.Dispatcher(sessions, smtp, webhooks=webhooks)
            dispatcher.start()
            closers.insert(0, dispatcher.stop)
            handle = notifier(sessions, nc)
        else:
            handle = risk_monitor(sessions, js)
    try:
        tasks = [asyncio.ensure_future(consume(js, durable, handle, stop, batch=batch,
                                               ack_wait=ack_wait))
                 for durable in WORKERS[name]]
        ready()
        await asyncio.gather(*tasks)
    finally:
        # the acknowledgements out, then close (a drain would wait out the pull
        # subscriptions' drain timeout)
        try:
            await nc.flush(timeout=5)
        finally:
            await nc.close()
        for close in closers:
            close()
