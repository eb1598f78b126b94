"""Group commit (``host/services/writer.py``): jobs that wait together share one
transaction; a batch that fails fails all of its callers and nothing else; an order that
was acknowledged is stored, even when the process is killed right after; concurrent
placements and other writers still form one audit chain that ``t2t audit verify``
accepts."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select

from tick2trade.cli import main
from tick2trade.host.services import audit, risk
from tick2trade.host.services.db import AuditRecord, Order, Setting
from tick2trade.host.services.orders import NewOrder
from tick2trade.host.services.writer import WriteFailed

from tests.host.conftest import SECRET, SEED, register_login

ROOT = Path(__file__).resolve().parents[2]


def _setting(key: str, actor: str = "test"):
    """A job that stores one settings row and appends one audit record."""
    def job(b):
        b.conn.execute(insert(Setting).values(key=key, value="1"))
        b.chain.append(actor, "test.write", key)
        return key
    return job


class Caller(threading.Thread):
    """A thread that runs one job through the writer and keeps what it got back."""

    def __init__(self, writer, job) -> None:
        super().__init__(daemon=True)
        self.writer, self.job, self.value, self.error = writer, job, None, None
        self.start()

    def run(self) -> None:
        try:
            self.value = self.writer.run(self.job)
        except Exception as exc:  # noqa: BLE001 — the test looks at it
            self.error = exc

    def result(self):
        self.join(30)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error
        return self.value


def _held_batch(writer):
    """Occupy the writer with one job until the returned event is set; returns that
    caller, the event, and a function that queues jobs behind it (each from its own
    thread), returning once all of them wait — so they form the next batch."""
    running, release = threading.Event(), threading.Event()

    def blocker(b):
        running.set()
        assert release.wait(30)
        return _setting("blocker")(b)

    first = Caller(writer, blocker)
    assert running.wait(30)

    def queue(*jobs):
        callers = [Caller(writer, job) for job in jobs]
        deadline = time.monotonic() + 30
        while writer.waiting < len(jobs):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        return callers

    return first, release, queue


def _keys(platform) -> set[str]:
    with platform.sessions() as s:
        return set(s.execute(select(Setting.key)).scalars())


def _verdict(platform):
    with platform.sessions() as s:
        return audit.verify(s)


def test_jobs_waiting_together_share_one_commit(platform):
    first, release, queue = _held_batch(platform.writer)
    before = platform.writer.batches
    waiting = queue(*[_setting(f"k{i}") for i in range(5)])
    release.set()
    assert [c.result() for c in waiting] == [f"k{i}" for i in range(5)]
    assert first.result() == "blocker"
    # the blocker's batch, then one batch for all five
    assert platform.writer.batches == before + 2
    with platform.sessions() as s:
        subjects = list(s.execute(select(AuditRecord.subject).order_by(AuditRecord.seq))
                        .scalars())
    assert subjects[0] == "blocker" and sorted(subjects[1:]) == [f"k{i}" for i in range(5)]
    assert _verdict(platform).ok


def test_a_job_that_raises_fails_alone(platform):
    """One job of a batch raises: it fails, and the rest of its batch is committed
    (retried without it), in their order, as one chain."""
    def boom(b):
        b.chain.append("test", "test.write", "boom")
        raise RuntimeError("disk on fire")

    first, release, queue = _held_batch(platform.writer)
    a, bad, c = queue(_setting("a"), boom, _setting("c"))
    release.set()
    assert first.result() == "blocker"
    with pytest.raises(WriteFailed) as err:
        bad.result()
    assert "disk on fire" in str(err.value)
    assert (a.result(), c.result()) == ("a", "c")
    assert platform.writer.run(_setting("after")) == "after"
    assert _keys(platform) == {"blocker", "a", "c", "after"}
    v = _verdict(platform)
    assert v.ok, v.problems
    assert v.records == v.head_seq == 4


def test_a_database_error_fails_only_its_job_and_names_no_sql(platform):
    """A job whose statement the database refuses (a foreign key to a user who is gone,
    as a deleted user's placement was) fails alone; the reason names no SQL."""
    rng = random.Random(SEED)

    def orphan(b):
        b.conn.execute(insert(Order).values(
            user_id=10_000 + rng.randrange(1000), symbol="AAPL", side="buy", type="market",
            tif="day", qty=1, status="pending"))
        b.chain.append("ghost", "order.place", "order:?")

    first, release, queue = _held_batch(platform.writer)
    jobs = [_setting(f"k{i}") for i in range(8)]
    bad_at = sorted(rng.sample(range(len(jobs) + 3), 3))
    for i in bad_at:
        jobs.insert(i, orphan)
    callers = queue(*jobs)
    release.set()
    first.result()
    for job, caller in zip(jobs, callers, strict=True):
        if job is orphan:
            with pytest.raises(WriteFailed) as err:
                caller.result()
            text = str(err.value)
            assert "INSERT" not in text and "orders" not in text and "[SQL" not in text
            assert "IntegrityError" in text
        else:
            assert caller.result().startswith("k")
    assert _keys(platform) == {"blocker"} | {f"k{i}" for i in range(8)}
    v = _verdict(platform)
    assert v.ok, v.problems


def test_a_job_that_waits_for_the_writer_fails_instead_of_hanging(platform):
    def nested(b):
        return platform.writer.run(_setting("inner"))

    with pytest.raises(WriteFailed, match="cannot wait for the writer"):
        Caller(platform.writer, nested).result()
    assert _keys(platform) == set()


def test_a_batch_whose_audit_write_fails_is_split_until_the_culprit_fails_alone(platform):
    """Every job runs fine, then writing the batch's audit records fails (a record was
    slipped in under the chain's next number): nothing of that attempt is stored, the
    batch is retried in parts, and only the job that slipped the record in fails."""
    def squatter(b):
        b.conn.execute(insert(AuditRecord).values(
            seq=b.chain.seq + 1, ts=audit.utcnow(), actor="x", action="x", subject="x",
            detail="{}", prev_hash=audit.GENESIS, hash="f" * 64))
        return _setting("squatter")(b)

    first, release, queue = _held_batch(platform.writer)
    good, bad = queue(_setting("a"), squatter)
    release.set()
    first.result()
    assert good.result() == "a"
    with pytest.raises(WriteFailed, match="rolled back"):
        bad.result()
    assert _keys(platform) == {"blocker", "a"}
    assert _verdict(platform).ok


def test_a_failed_placement_answers_503_and_stores_nothing(client, platform, monkeypatch):
    h = register_login(client, "tom")
    platform.market.update("AAPL", bid=1_000_000, bid_size=100, ask=1_001_000, ask_size=100)

    def broken(conn):
        raise ConnectionError("database went away")

    monkeypatch.setattr(risk, "kill_switch", broken)
    r = client.post("/orders", headers=h, json={"symbol": "AAPL", "side": "buy",
                                                 "type": "market", "qty": 1})
    assert r.status_code == 503
    assert "not stored" in r.json()["detail"] and "database went away" in r.json()["detail"]
    monkeypatch.undo()
    with platform.sessions() as s:
        assert s.execute(select(Order)).first() is None
    r = client.post("/orders", headers=h, json={"symbol": "AAPL", "side": "buy",
                                                 "type": "market", "qty": 1})
    assert r.status_code == 201 and r.json()["status"] == "filled"


def test_concurrent_placements_form_one_chain(platform, db_url):
    """Eight threads place orders (some fill, some rest, some are rejected by a limit)
    while two more append audit records through ordinary sessions; afterwards the chain
    verifies, from the CLI too, and each order's records are in lifecycle order."""
    rng = random.Random(SEED)
    users = [platform.users.register(f"u{k}", f"u{k}@example.com", "correct horse battery")
             for k in range(8)]
    platform.market.update("AAPL", bid=1_000_000, bid_size=10**6, ask=1_001_000,
                           ask_size=10**6)
    with platform.sessions.begin() as s:
        risk.set_limits(s, "AAPL", {"max_order_qty": 90})
    plans = [[(rng.choice(["market", "limit"]), rng.randint(1, 100)) for _ in range(20)]
             for _ in users]

    def trader(k):
        out = []
        for kind, qty in plans[k]:
            price = 990_000 if kind == "limit" else None
            o = platform.orders.place(users[k].id, users[k].username,
                                      NewOrder("AAPL", "buy", kind, qty, "gtc", price))
            out.append((o.id, o.status))
        return out

    def bystander(k):
        for i in range(20):
            with platform.sessions.begin() as s:
                audit.append(s, f"other{k}", "test.other", f"{k}:{i}")

    with ThreadPoolExecutor(10) as pool:
        placed = pool.map(trader, range(8))
        others = [pool.submit(bystander, k) for k in range(2)]
        placed = [o for per_user in placed for o in per_user]
        for f in others:
            f.result()

    expected = {"filled": ["order.place", "order.accepted", "order.executed"],
                "accepted": ["order.place", "order.accepted"],
                "rejected": ["order.place"]}
    assert {status for _, status in placed} == set(expected)
    with platform.sessions() as s:
        records = list(s.execute(select(AuditRecord.subject, AuditRecord.action)
                                 .order_by(AuditRecord.seq)))
        stored = dict(s.execute(select(Order.id, Order.status)).all())
    assert stored == dict(placed)
    actions = defaultdict(list)
    for subject, action in records:
        actions[subject].append(action)
    for order_id, status in placed:
        assert actions[f"order:{order_id}"] == expected[status]
    v = _verdict(platform)
    assert v.ok, v.problems
    assert v.records == len(records) == 8 + 40 + sum(len(expected[st]) for _, st in placed)
    r = CliRunner().invoke(main, ["audit", "verify", "--db", db_url, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["ok"] is True


PLACER = """
import sys
from tick2trade.host.services.orders import NewOrder
from tick2trade.host.services.platform import Platform
p = Platform(sys.argv[1], sys.argv[2])
user = p.users.register("crash", "crash@example.com", "correct horse battery")
p.market.update("AAPL", bid=1_000_000, bid_size=100, ask=1_001_000, ask_size=100)
print("ready", flush=True)
for i in range(100_000):
    o = p.orders.place(user.id, "crash", NewOrder("AAPL", "buy", "limit", 1, "gtc", 990_000))
    print(o.id, o.status, flush=True)
"""


def test_what_was_acknowledged_survives_a_kill(platform, db_url):
    """A process placing orders as fast as it can is killed with SIGKILL mid-stream:
    every order it had acknowledged is stored as acknowledged, and the chain it left,
    cut wherever the kill fell, still verifies."""
    platform.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", PLACER, db_url, SECRET], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, text=True)
    acked = {}
    try:
        assert proc.stdout.readline().strip() == "ready"
        while len(acked) < 60:
            order_id, status = proc.stdout.readline().split()
            acked[int(order_id)] = status
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert set(acked.values()) == {"accepted"}
    from tick2trade.host.services.platform import Platform
    after = Platform(db_url, SECRET)
    try:
        with after.sessions() as s:
            stored = dict(s.execute(select(Order.id, Order.status)).all())
            v = audit.verify(s)
        assert all(stored.get(order_id) == "accepted" for order_id in acked)
        assert v.ok, v.problems
    finally:
        after.close()


def test_a_placement_the_paper_broker_answers_is_one_commit(platform):
    """With an in-process broker the order, its accept (or fill) and their audit records
    are written by one batch: one commit per placement, the answer after it."""
    user = platform.users.register("one", "one@example.com", "correct horse battery")
    platform.market.update("AAPL", bid=1_000_000, bid_size=100, ask=1_001_000, ask_size=100)
    before = platform.writer.batches
    resting = platform.orders.place(user.id, "one", NewOrder("AAPL", "buy", "limit", 5, "gtc",
                                                             990_000))
    filled = platform.orders.place(user.id, "one", NewOrder("AAPL", "buy", "market", 5))
    assert platform.writer.batches == before + 2
    assert (resting.status, filled.status, filled.filled_qty) == ("accepted", "filled", 5)
    with platform.sessions() as s:
        actions = list(s.execute(select(AuditRecord.subject, AuditRecord.action)
                                 .where(AuditRecord.subject.like("order:%"))
                                 .order_by(AuditRecord.seq)))
    assert actions == [(f"order:{resting.id}", "order.place"),
                       (f"order:{resting.id}", "order.accepted"),
                       (f"order:{filled.id}", "order.place"),
                       (f"order:{filled.id}", "order.accepted"),
                       (f"order:{filled.id}", "order.executed")]
    assert _verdict(platform).ok


def test_a_rolled_back_placement_is_withdrawn_from_the_paper_broker(platform):
    """The paper broker saw the order inside a job that then failed: its caller gets
    WriteFailed, nothing of it is stored, the broker no longer holds the order (a later
    quote that would have filled it reports nothing), and the batch's other placement,
    run again without it, rests at the broker once."""
    user = platform.users.register("back", "back@example.com", "correct horse battery")
    platform.market.update("AAPL", bid=1_000_000, bid_size=100, ask=1_001_000, ask_size=100)

    def place(b, qty):
        return platform.orders._place_in_batch(
            b, user.id, "back", NewOrder("AAPL", "buy", "limit", qty, "gtc", 990_000), 990_000)

    def place_then_fail(b):
        place(b, 5)
        raise RuntimeError("disk on fire")

    first, release, queue = _held_batch(platform.writer)
    good, bad = queue(lambda b: place(b, 7), place_then_fail)
    release.set()
    first.result()
    with pytest.raises(WriteFailed, match="disk on fire"):
        bad.result()
    kept = good.result()
    assert platform.broker.resting() == [kept.id]
    platform.market.update("AAPL", bid=980_000, bid_size=100, ask=985_000, ask_size=100)
    with platform.sessions() as s:
        orders = s.execute(select(Order)).scalars().all()
    assert [(o.id, o.qty, o.filled_qty) for o in orders] == [(kept.id, 7, 7)]
    assert _keys(platform) == {"blocker"}
    assert _verdict(platform).ok


def test_cached_limits_follow_a_change_made_elsewhere(platform):
    """The writer keeps the kill switch and limits between batches only while the audit
    head is the one it left: a change made in another transaction (which appends its
    audit record) is seen by the next placement."""
    user = platform.users.register("lim", "lim@example.com", "correct horse battery")
    platform.market.update("AAPL", bid=1_000_000, bid_size=100, ask=1_001_000, ask_size=100)

    def place(qty):
        return platform.orders.place(user.id, "lim", NewOrder("AAPL", "buy", "limit", qty,
                                                              "gtc", 990_000)).status

    assert [place(50), place(50)] == ["accepted", "accepted"]
    with platform.sessions.begin() as s:
        risk.set_limits(s, "AAPL", {"max_order_qty": 10})
        audit.append(s, "ops", "risk.limits", "symbol:AAPL", {"max_order_qty": 10})
    assert [place(50), place(5)] == ["rejected", "accepted"]
    with platform.sessions.begin() as s:
        risk.set_kill_switch(s, True)
        audit.append(s, "ops", "risk.kill_switch", "platform", {"engaged": True})
    assert place(5) == "rejected"


def test_a_batch_writes_its_notifications_together_and_each_finds_its_own(platform):
    """Placements of several users in one batch: their notifications are inserted
    together at the end of the batch, yet each outbox row points at its own user's
    notification, and each in-app push carries the id that was stored."""
    from tick2trade.host.services import notify
    from tick2trade.host.services.db import Notification, OutboxEntry, User

    users = [platform.users.register(f"n{k}", f"n{k}@example.com", "correct horse battery")
             for k in range(4)]
    with platform.sessions.begin() as s:
        for u in users:
            s.get(User, u.id).webhook_url = f"https://hooks.example.com/{u.username}"
            notify.set_preferences(s, u.id, [("order_status", "webhook", True)])
    platform.market.update("AAPL", bid=1_000_000, bid_size=100, ask=1_001_000, ask_size=100)
    pushed = []
    platform.orders.push = lambda user_id, message: pushed.append((user_id, message))

    def placement(u, qty):
        return lambda b: platform.orders._place_in_batch(
            b, u.id, u.username, NewOrder("AAPL", "buy", "limit", qty, "gtc", 990_000), None)

    first, release, queue = _held_batch(platform.writer)
    callers = queue(*[placement(u, k + 1) for k, u in enumerate(users)])
    before = platform.writer.batches
    release.set()
    first.result()
    orders = {c.result().user_id: c.result() for c in callers}
    assert platform.writer.batches == before + 2      # the blocker's batch, then all four
    with platform.sessions() as s:
        stored = {n.id: n for n in s.execute(select(Notification)).scalars()}
        outbox = list(s.execute(select(OutboxEntry)).scalars())
    by_user = {u.id: u for u in users}
    assert len(stored) == len(outbox) == len(pushed) == 4
    for row in outbox:
        n = stored[row.notification_id]
        assert row.target == f"https://hooks.example.com/{by_user[n.user_id].username}"
        assert n.payload["order_id"] == orders[n.user_id].id
        assert n.payload["qty"] == orders[n.user_id].qty
    for user_id, message in pushed:
        assert stored[message["id"]].user_id == user_id
        assert message["payload"]["order_id"] == orders[user_id].id


def test_placements_and_feed_fills_from_other_threads_stay_consistent(platform):
    """Four threads place orders (the paper broker answers inside their batches) while a
    feed thread moves the offer, so resting orders fill from the feed's thread through
    the writer: no deadlock, one verifying chain, each order's records in lifecycle
    order, and fills, orders and positions that agree with each other."""
    from tick2trade.host.services.db import Execution, Position

    rng = random.Random(SEED)
    users = [platform.users.register(f"f{k}", f"f{k}@example.com", "correct horse battery")
             for k in range(4)]
    platform.market.update("AAPL", bid=990_000, bid_size=50, ask=1_001_000, ask_size=50)
    plans = [[(rng.choice(["market", "limit"]), rng.randint(1, 30)) for _ in range(15)]
             for _ in users]
    placing = threading.Event()

    def trader(k):
        for kind, qty in plans[k]:
            price = 1_000_000 if kind == "limit" else None
            platform.orders.place(users[k].id, users[k].username,
                                  NewOrder("AAPL", "buy", kind, qty, "gtc", price))

    def feed():
        i = 0
        while placing.is_set() or i < 10:
            ask = 999_000 if i % 2 else 1_001_000    # below the limits every other quote
            platform.market.update("AAPL", bid=990_000, bid_size=50, ask=ask, ask_size=40)
            i += 1
            time.sleep(0.002)

    placing.set()
    with ThreadPoolExecutor(5) as pool:
        quotes = pool.submit(feed)
        for f in [pool.submit(trader, k) for k in range(4)]:
            f.result(timeout=120)
        placing.clear()
        quotes.result(timeout=120)

    with platform.sessions() as s:
        orders = {o.id: o for o in s.execute(select(Order)).scalars()}
        fills = list(s.execute(select(Execution)).scalars())
        positions = {p.user_id: p.qty for p in s.execute(select(Position)).scalars()}
        records = list(s.execute(select(AuditRecord.subject, AuditRecord.action)
                                 .where(AuditRecord.subject.like("order:%"))
                                 .order_by(AuditRecord.seq)))
    assert len(orders) == 60
    actions = defaultdict(list)
    for subject, action in records:
        actions[int(subject.split(":")[1])].append(action)
    filled_by_order = defaultdict(int)
    for e in fills:
        filled_by_order[e.order_id] += e.qty
    for order_id, o in orders.items():
        steps = actions[order_id]
        assert steps[:2] == ["order.place", "order.accepted"], steps
        rest = steps[2:]
        executed = rest.count("order.executed")
        assert rest == ["order.executed"] * executed + ["order.canceled"] * (len(rest) - executed)
        assert o.filled_qty == filled_by_order[order_id]
        assert o.status == ("filled" if o.filled_qty == o.qty else
                            "canceled" if "order.canceled" in rest else
                            "partially_filled" if o.filled_qty else "accepted")
    for u in users:
        assert positions.get(u.id, 0) == sum(e.qty for e in fills if e.user_id == u.id)
    assert any(o.type == "limit" and o.filled_qty for o in orders.values())
    v = _verdict(platform)
    assert v.ok, v.problems
