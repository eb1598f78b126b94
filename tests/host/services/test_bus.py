"""The event bus (host/services/bus.py) and its workers (host/services/workers.py) against
a real NATS JetStream server on loopback (the ``bus_url`` fixture)."""

import json
import os
import select
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select as sql_select

from tick2trade.host.services import bus, notify, risk
from tick2trade.host.services.auth import Users
from tick2trade.host.services.db import (AuditRecord, Execution, Notification, Order,
                                         make_engine, session_factory, upgrade)
from tick2trade.host.services.history import History
from tick2trade.host.services.orders import NewOrder
from tick2trade.host.services.platform import Platform
from tick2trade.host.services.workers import HistoryWriter

from tests.host.conftest import ROOT, SECRET, fresh_limits, wait_for


def open_db(url):
    engine = make_engine(url)
    upgrade(engine)
    return engine, session_factory(engine)


def add_user(sessions, name="alice") -> int:
    return Users(sessions, SECRET).register(name, f"{name}@example.com",
                                            "correct horse battery").id


def stored(sessions) -> tuple[int, int]:
    """(notifications, distinct event ids) in the database."""
    with sessions() as s:
        return s.execute(sql_select(func.count(Notification.id),
                                    func.count(func.distinct(Notification.event_id)))).one()


def start_worker(name: str, *args: str) -> subprocess.Popen:
    """`t2t worker NAME ARGS` from this checkout; returns once it consumes."""
    proc = subprocess.Popen([sys.executable, "-m", "tick2trade.cli", "worker", name, *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready and "consuming from" in proc.stdout.readline():
            return proc
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"t2t worker {name} did not start: {proc.stderr.read()[-3000:]}")


def stop_worker(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_token_keeps_subjects_one_token_per_key():
    assert bus.token("AAPL") == "AAPL"
    assert bus.token("BRK.A") == "BRK%2EA"
    assert bus.token("A B*>") == "A%20B%2A%3E"
    assert bus.subject("T2T_BOOK", "BRK.A") == "t2t.book.BRK%2EA"


def test_publish_consume_round_trip_in_order_once_per_message_id(bus_url):
    b = bus.Bus(bus_url)
    try:
        n = 500
        for i in range(n):
            assert b.publish(bus.subject("T2T_TRADES", "BRK.A"), {"i": i}, f"t{i}")
        b.publish(bus.subject("T2T_TRADES", "BRK.A"), {"i": 7}, "t7")   # a retry
        assert b.flush(30)
        assert b.stats()["published"] == n + 1 and b.stats()["duplicates"] == 1

        async def consume():
            sub = await bus.pull(b.js, "history-trades")
            got = []
            while len(got) < n:
                got += await sub.fetch(100, timeout=5)
            lag_before = (await bus.consumer_lag(b.js))["history-trades"]
            for m in got:
                await m.ack()
            await b.nc.flush()
            return got, lag_before
        msgs, lag_before = b.call(consume())
        assert [json.loads(m.data)["i"] for m in msgs] == list(range(n))
        assert {m.subject for m in msgs} == {"t2t.trades.BRK%2EA"}
        assert lag_before == n            # fetched, not yet acknowledged
        assert wait_for(lambda: b.consumer_lag_messages() == {"history-trades": 0}, 10)
    finally:
        b.close()


def test_store_events_stores_a_redelivered_event_once(db_url):
    engine, sessions = open_db(db_url)
    try:
        uid = add_user(sessions)
        events = [{"event_id": f"e{i}", "user_id": uid, "kind": "order_status",
                   "payload": {"order_id": i}} for i in range(5)]
        pushed = notify.store_events(sessions, events)
        assert [m["payload"]["order_id"] for _, m in pushed] == list(range(5))
        assert all(m["id"] and m["type"] == "notification" for _, m in pushed)
        # the same batch again, and a batch overlapping it
        assert notify.store_events(sessions, events) == []
        again = notify.store_events(sessions, events[3:] + [{**events[0], "event_id": "e5"}])
        assert len(again) == 1
        assert stored(sessions) == (6, 6)
    finally:
        engine.dispose()


def test_notifier_killed_mid_stream_stores_every_notification_once(bus_url, db_url):
    engine, sessions = open_db(db_url)
    n = 3000
    b = bus.Bus(bus_url)
    try:
        uid = add_user(sessions)
        for i in range(n):
            notify.publish(b, uid, "order_status", {"order_id": i}, event_id=f"ev-{i}")
        assert b.flush(60)
        args = ["--bus", bus_url, "--db", db_url, "--batch", "5", "--ack-wait", "1"]
        proc = start_worker("notifier", *args)
        assert wait_for(lambda: stored(sessions)[0] >= n // 10, 60)
        proc.kill()                       # SIGKILL: no clean shutdown, acks may be lost
        proc.wait()
        at_kill = stored(sessions)[0]
        assert at_kill < n, "the worker finished before it was killed: not mid-stream"
        proc = start_worker("notifier", *args)
        try:
            assert wait_for(lambda: b.consumer_lag_messages().get("notifier") == 0, 120)
            time.sleep(1.5)               # past ack_wait: a redelivery would show now
        finally:
            stop_worker(proc)
        assert stored(sessions) == (n, n)
        with sessions() as s:
            got = sorted(p["order_id"] for p in s.execute(
                sql_select(Notification.payload)).scalars())
        assert got == list(range(n))
    finally:
        b.close()
        engine.dispose()


def _fetch(b: bus.Bus, durable: str, count: int, ack: bool):
    async def go():
        sub = await bus.pull(b.js, durable, ack_wait=1)
        got = []
        while len(got) < count:
            got += await sub.fetch(count - len(got), timeout=5)
        if ack:
            for m in got:
                await m.ack()
            await b.nc.flush()
        return got
    return b.call(go())


def test_history_writer_applies_a_redelivered_batch_once(bus_url, tmp_path):
    b = bus.Bus(bus_url)
    t0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    try:
        for seq in range(1, 41):
            b.publish(bus.subject("T2T_TRADES", "AAPL"), {
                "symbol": "AAPL", "seq": seq, "price": 1_000_000 + seq, "size": 10,
                "side": "buy", "match": seq, "ts": (t0 + timedelta(seconds=seq // 10)
                                                    ).isoformat()}, f"trade:r:AAPL:{seq}")
        b.publish(bus.subject("T2T_BOOK", "AAPL"), {
            "symbol": "AAPL", "seq": 1, "ts": t0.isoformat(),
            "bbo": [999_000, 100, 1_001_000, 200]}, "book:r:AAPL:1")
        assert b.flush(30)
        path = tmp_path / "h.duckdb"
        trades = _fetch(b, "history-trades", 40, ack=False)
        book = _fetch(b, "history-book", 1, ack=False)
        with History(path, background=False) as h:
            w = HistoryWriter(h)
            assert w.apply(trades[:25]) == 25
            assert w.apply(trades) == 15          # the first 25 again, and 15 new
            assert w.apply(book) == 1
            assert w.apply(trades + book) == 0
        # a restarted worker (a new process: the marks come from the file) that gets the
        # batch again after ack_wait
        redelivered = _fetch(b, "history-trades", 40, ack=True)
        assert [m.metadata.num_delivered for m in redelivered[:1]] == [2]
        with History(path, background=False) as h:
            assert HistoryWriter(h).apply(redelivered) == 0
            counts = h.counts()
            assert counts["trades"] == 40 and counts["quotes"] == 1
            bars = h.bars("AAPL", t0, t0 + timedelta(minutes=1), "1s")
            assert sum(bar.volume for bar in bars) == 400
            assert [bar.trades for bar in bars] == [9, 10, 10, 10, 1]
    finally:
        b.close()


def add_fill(s, user_id: int, side: str, qty: int, exec_id: str) -> None:
    """A filled order and its execution, as the OMS stores them."""
    order = Order(user_id=user_id, symbol="AAPL", side=side, type="limit", tif="day",
                  qty=qty, price=1_000_000, filled_qty=qty, filled_notional=qty * 1_000_000,
                  status="filled")
    s.add(order)
    s.flush()
    s.execute(insert(Execution), {
        "order_id": order.id, "user_id": user_id, "symbol": "AAPL", "side": side,
        "qty": qty, "price": 1_000_000, "realized_pnl": 0, "ts": datetime.now(UTC),
        "exec_id": exec_id})


def test_risk_monitor_engages_the_kill_switch_once_per_breach(db_url):
    engine, sessions = open_db(db_url)
    try:
        uid = add_user(sessions)
        with sessions.begin() as s:
            risk.set_limits(s, "AAPL", {"max_position": 100})
            for i, (side, qty) in enumerate([("buy", 80), ("buy", 40), ("sell", 10)]):
                add_fill(s, uid, side, qty, f"X-{i}")
        first = {"exec_id": "X-0", "user_id": uid, "symbol": "AAPL"}
        breach = {"exec_id": "X-2", "user_id": uid, "symbol": "AAPL"}
        with sessions.begin() as s:
            assert risk.exposure(s, uid, "AAPL") == 110
            assert risk.monitor_execution(s, {**first, "symbol": "MSFT"}) is None
        for _ in range(2):                # the same execution delivered twice
            with sessions.begin() as s:
                alert = risk.monitor_execution(s, breach)
            assert alert["level"] == "breached" and "110" in alert["detail"]
        with sessions() as s:
            assert risk.kill_switch(s)
            assert s.execute(sql_select(func.count()).select_from(AuditRecord).where(
                AuditRecord.action == "risk.kill_switch")).scalar_one() == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_risk_worker_alerts_once_through_the_notifier(bus_url, db_url):
    engine, sessions = open_db(db_url)
    b = bus.Bus(bus_url)
    try:
        uid = add_user(sessions)
        with sessions.begin() as s:
            risk.set_limits(s, "AAPL", {"max_position": 50})
            add_fill(s, uid, "buy", 60, "V-1-0")
        event = {"exec_id": "V-1-0", "user_id": uid, "symbol": "AAPL", "side": "buy",
                 "qty": 60, "price": 1_000_000}
        subject = bus.subject("T2T_EXECUTIONS", uid)
        b.publish(subject, event, "V-1-0")
        b.publish(subject, event, "V-1-0-again")   # a second copy the dedup cannot see
        assert b.flush(30)
        workers = [start_worker("risk", "--bus", bus_url, "--db", db_url),
                   start_worker("notifier", "--bus", bus_url, "--db", db_url)]
        try:
            assert wait_for(lambda: stored(sessions)[0] >= 1, 30)
            assert wait_for(lambda: all(v == 0 for v in b.consumer_lag_messages().values()),
                            30)
        finally:
            for w in workers:
                stop_worker(w)
        with sessions() as s:
            rows = s.execute(sql_select(Notification)).scalars().all()
            assert risk.kill_switch(s)
        assert [(r.kind, r.event_id, r.payload["kill_switch"]) for r in rows] == [
            ("risk_alert", "risk:V-1-0", True)]
    finally:
        b.close()
        engine.dispose()


def stream_events(b: bus.Bus, stream: str) -> list[tuple[str, dict]]:
    """Every message a stream holds: (subject, event)."""
    async def read():
        info = await b.js.stream_info(stream)
        return [await b.js.get_msg(stream, seq)
                for seq in range(info.state.first_seq, info.state.last_seq + 1)
                if info.state.messages]
    return [(m.subject, json.loads(m.data)) for m in b.call(read())]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_platform_with_a_bus_publishes_its_events_and_stores_no_notification(bus_url,
                                                                             db_url):
    b = bus.Bus(bus_url)
    p = Platform(db_url, SECRET, limits=fresh_limits(), bus=b)
    try:
        uid = add_user(p.sessions, "ola")
        p.market.apply("BRK.A", bids=[(999_000, 100)], asks=[(1_001_000, 200)])
        p.market.trade("BRK.A", 1_000_000, 50, side="sell", match=7)
        placed = p.orders.place(uid, "ola", NewOrder("BRK.A", "buy", "market", 10))
        assert wait_for(lambda: p.orders.get(uid, placed.id).status == "filled", 10)
        assert b.flush(10)
        book = stream_events(b, "T2T_BOOK")
        assert [(s, e["seq"], e["bids"], e["bbo"]) for s, e in book] == [
            ("t2t.book.BRK%2EA", 1, [[999_000, 100, 0]], [999_000, 100, 1_001_000, 200])]
        trades = stream_events(b, "T2T_TRADES")
        assert [(s, e["price"], e["size"], e["side"], e["match"]) for s, e in trades][0] == (
            "t2t.trades.BRK%2EA", 1_000_000, 50, "sell", 7)
        orders = stream_events(b, "T2T_ORDERS")
        assert {s for s, _ in orders} == {f"t2t.orders.{uid}"}
        assert [e["status"] for _, e in orders][-1] == "filled"
        assert {e["id"] for _, e in orders} == {placed.id}
        (subject, execution), = stream_events(b, "T2T_EXECUTIONS")
        assert subject == f"t2t.executions.{uid}"
        assert (execution["order_id"], execution["qty"], execution["price"]) == (
            placed.id, 10, 1_001_000)
        notes = stream_events(b, "T2T_NOTIFICATIONS")
        assert notes and {e["kind"] for _, e in notes} == {"order_status"}
        assert notes[-1][1]["payload"]["status"] == "filled"
        assert len({e["event_id"] for _, e in notes}) == len(notes)
        assert stored(p.sessions) == (0, 0)      # the notifier's job, not the API's
    finally:
        p.close()


def test_history_worker_killed_mid_stream_records_every_print_once(bus_url, tmp_path):
    n = 3000
    t0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    b = bus.Bus(bus_url)
    try:
        for seq in range(1, n + 1):
            b.publish(bus.subject("T2T_TRADES", "AAPL"), {
                "symbol": "AAPL", "seq": seq, "price": 1_000_000, "size": seq, "side": None,
                "match": seq, "ts": (t0 + timedelta(milliseconds=seq)).isoformat()},
                f"trade:r:AAPL:{seq}")
        assert b.flush(60)
        path = tmp_path / "h.duckdb"
        args = ["--bus", bus_url, "--history", str(path), "--batch", "5", "--ack-wait", "1"]
        proc = start_worker("history", *args)
        assert wait_for(lambda: b.consumer_lag_messages().get("history-trades", n)
                        <= n * 0.9, 60)
        proc.kill()
        proc.wait()
        assert b.consumer_lag_messages()["history-trades"] > 0, "not killed mid-stream"
        proc = start_worker("history", *args)
        try:
            assert wait_for(lambda: b.consumer_lag_messages()["history-trades"] == 0, 120)
            time.sleep(1.5)               # past ack_wait: a redelivery would show now
        finally:
            stop_worker(proc)
        with History(path, read_only=True) as h:
            assert h.counts()["trades"] == n
            got = h.trades("AAPL", t0, t0 + timedelta(minutes=1), limit=n + 1)
            assert [p.size for p in got] == list(range(1, n + 1))
            bars = h.bars("AAPL", t0, t0 + timedelta(minutes=1), "1s")
            assert sum(bar.volume for bar in bars) == n * (n + 1) // 2
    finally:
        b.close()
