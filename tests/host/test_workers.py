"""Several `t2t api` processes over one PostgreSQL database and one Redis server
(host/services/shared.py, host/api/workers.py): each test starts real processes and
checks that what one of them did holds on the other."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tick2trade.host.services.auth import RECHECK
from tick2trade.testing.apiproc import start_api, stop_api

PASSWORD = "correct horse battery"
ORDER = {"symbol": "AAPL", "side": "buy", "type": "limit", "qty": 10, "price": "100.00"}


@pytest.fixture
def shared_env(tmp_path, pg_url, redis_url):
    """What makes two processes one service: the database, Redis, one state folder."""
    return {"T2T_DATABASE_URL": pg_url, "T2T_REDIS_URL": redis_url,
            "T2T_VAR_DIR": str(tmp_path / "var")}


@pytest.fixture
def two(tmp_path, shared_env):
    """Two API processes, A and B, on ports of their own (so a test picks which one it
    talks to); B starts once A has migrated the schema and made the secret."""
    procs = []
    try:
        for _ in range(2):
            procs.append(start_api(tmp_path, "--venue", "off", "--no-history",
                                   env=shared_env))
        yield [base for _, base in procs]
    finally:
        outs = [stop_api(p) for p, _ in procs]
        for out in outs:
            assert "Traceback" not in out, out


def register(base: str, name: str) -> None:
    r = httpx.post(f"{base}/auth/register", json={"username": name, "password": PASSWORD,
                                                  "email": f"{name}@example.com"})
    assert r.status_code == 201, r.text


def login(base: str, name: str) -> dict:
    r = httpx.post(f"{base}/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()


def bearer(tokens: dict) -> dict:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def test_a_socket_on_b_receives_the_events_of_an_order_placed_on_a(two):
    from websockets.sync.client import connect

    a, b = two
    register(a, "ws1")
    tokens = login(a, "ws1")
    url = b.replace("http://", "ws://") + "/ws"
    with connect(url, subprotocols=["bearer", tokens["access_token"]]) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        r = httpx.post(f"{a}/orders", json=ORDER, headers=bearer(tokens))
        assert r.status_code == 201, r.text
        order_id = r.json()["id"]
        r = httpx.delete(f"{a}/orders/{order_id}", headers=bearer(tokens))
        assert r.status_code in (200, 202), r.text
        seen = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "canceled" not in seen:
            msg = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg["type"] == "notification" and msg["kind"] == "order_status" and \
                    msg["payload"].get("order_id") == order_id:
                seen.append(msg["payload"]["status"])
    # every event of the order, in the order A published them
    assert seen[0] == "accepted" and seen[-1] == "canceled", seen


def test_login_throttle_holds_across_processes(two):
    a, b = two
    register(a, "thr")
    for base in (a, a, a, b, b):    # 5 failures in 5 minutes is the limit, 3 on A, 2 on B
        r = httpx.post(f"{base}/auth/login", json={"username": "thr", "password": "wrong"})
        assert r.status_code == 401, r.text
    # B saw two failures itself; the sixth attempt, right password or not, is refused
    r = httpx.post(f"{b}/auth/login", json={"username": "thr", "password": PASSWORD})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0, r.text
    assert httpx.post(f"{a}/auth/login", json={"username": "thr", "password": PASSWORD}
                      ).status_code == 429


def test_rate_limit_holds_across_processes(two):
    """Anonymous calls: 20 a second per address (``Limits.anonymous``). 12 on A and then
    12 on B within the second: B refuses at least 4 of its own, which alone it would
    not. A round that took a second or more (a busy machine) proves nothing: again."""
    a, b = two
    for _attempt in range(4):
        time.sleep(1.1)             # the window of the previous round is empty
        start = time.monotonic()
        with httpx.Client() as ca, httpx.Client() as cb:
            codes_a = [ca.post(f"{a}/auth/refresh", json={"refresh_token": "x"}).status_code
                       for _ in range(12)]
            codes_b = [cb.post(f"{b}/auth/refresh", json={"refresh_token": "x"}).status_code
                       for _ in range(12)]
        if time.monotonic() - start < 0.9:
            break
    else:
        pytest.fail("24 requests never fitted in a second")
    assert 429 not in codes_a, codes_a
    assert codes_b.count(429) >= 4 and set(codes_b) <= {401, 429}, codes_b


def test_logout_on_a_revokes_the_token_on_b(two):
    a, b = two
    register(a, "out")
    for _attempt in range(3):
        tokens = login(a, "out")
        cached = time.monotonic()
        assert httpx.get(f"{b}/users/me", headers=bearer(tokens)).status_code == 200
        # B now answers this token from its cache, for RECHECK seconds unless told
        r = httpx.post(f"{a}/auth/logout", json={"refresh_token": tokens["refresh_token"]},
                       headers=bearer(tokens))
        assert r.status_code in (200, 204), r.text
        deadline = time.monotonic() + 0.5
        while (code := httpx.get(f"{b}/users/me", headers=bearer(tokens)).status_code) \
                == 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        if time.monotonic() - cached < RECHECK:
            break       # else B would have re-read the token anyway: no proof, again
    else:
        pytest.fail(f"logout and the check never fitted in {RECHECK} s")
    assert code == 401


def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _wait_children(pid: int, n: int, timeout: float = 60.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = _children(pid)
        if len(kids) >= n:
            return kids
        time.sleep(0.1)
    raise AssertionError(f"the supervisor has {len(_children(pid))} workers, not {n}")


def test_workers_refused_without_postgres_and_redis(tmp_path):
    from click.testing import CliRunner

    from tick2trade.cli import main

    r = CliRunner().invoke(main, ["api", "--workers", "2", "--venue", "off", "--db",
                                  f"sqlite:///{tmp_path / 'x.db'}"])
    assert r.exit_code == 2
    assert "--workers needs a PostgreSQL database" in r.output
    assert "and Redis (server.redis_url or $T2T_REDIS_URL" in r.output


def test_kill_9_of_a_worker_in_an_order_storm_loses_no_acknowledged_order(
        tmp_path, shared_env, pg_url):
    """`t2t api --workers 2`; four clients place orders as fast as they are answered;
    one worker is killed with SIGKILL a second in. Every order answered 201 is in the
    database afterwards; the supervisor starts a new worker and the service goes on."""
    proc, base = start_api(tmp_path, "--venue", "off", "--workers", "2", env=shared_env)
    try:
        workers = _wait_children(proc.pid, 2)
        users = [f"storm{i}" for i in range(4)]
        for name in users:
            register(base, name)
        tokens = {name: login(base, name) for name in users}
        acked: list[int] = []
        failed = []
        stop = threading.Event()

        def storm(name: str) -> None:
            client = httpx.Client(headers=bearer(tokens[name]), timeout=10)
            while not stop.is_set():
                try:
                    r = client.post(f"{base}/orders", json=ORDER)
                except httpx.TransportError as exc:
                    failed.append(type(exc).__name__)
                    client.close()  # a new connection: to a worker that is alive
                    client = httpx.Client(headers=bearer(tokens[name]), timeout=10)
                    continue
                if r.status_code == 201:
                    acked.append(r.json()["id"])
            client.close()

        threads = [threading.Thread(target=storm, args=(n,)) for n in users]
        for t in threads:
            t.start()
        time.sleep(1.0)
        before = len(acked)
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join(30)
        after = len(acked) - before
        replaced = _wait_children(proc.pid, 2)
        assert victim not in replaced
    finally:
        out = stop_api(proc)
    assert before > 0 and after > 0, (before, after, failed, out[-3000:])
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        stored = set(conn.execute(text("SELECT id FROM orders")).scalars())
    engine.dispose()
    missing = sorted(set(acked) - stored)
    assert not missing, f"{len(missing)} acknowledged orders are not stored: {missing[:20]}"
    assert len(set(acked)) == len(acked)
    print(f"storm: {len(acked)} orders acknowledged ({before} before the kill), "
          f"{len(failed)} requests failed in transport: {sorted(set(failed))}")
    assert f"worker 0 (pid {victim}) ended with code -9" in out or \
        f"worker 1 (pid {victim}) ended with code -9" in out, out[-3000:]


def test_notification_recipients_are_shared_with_a_ttl_and_dropped_on_a_change(
        pg_url, redis_url):
    """Two platforms in this process over one database and Redis: an order event on the
    first keeps its user's recipients in Redis for RECIPIENTS_TTL; a preference change
    on the second deletes them, and the first's next event follows the new preference."""
    import redis
    from fastapi.testclient import TestClient

    from tick2trade.host.api import create_app
    from tick2trade.host.services.platform import Platform
    from tick2trade.host.services.shared import RECIPIENTS_TTL

    from tests.host.conftest import SECRET, fresh_limits, register_login

    one = Platform(pg_url, SECRET, limits=fresh_limits(), redis_url=redis_url)
    two = Platform(pg_url, SECRET, limits=fresh_limits(), redis_url=redis_url)
    r = redis.Redis.from_url(redis_url)
    try:
        with TestClient(create_app(one)) as c1, TestClient(create_app(two)) as c2:
            headers = register_login(c1, "prefs")
            key = one.shared.key("recipients", c1.get("/users/me", headers=headers
                                                     ).json()["id"])

            def notifications() -> int:
                return c1.get("/notifications", headers=headers).json()["total"]

            assert c1.post("/orders", json=ORDER, headers=headers).status_code == 201
            assert 0 < r.ttl(key) <= RECIPIENTS_TTL
            before = notifications()
            assert before >= 1
            off = {"preferences": [{"kind": "order_status", "channel": "in_app",
                                    "enabled": False}]}
            assert c2.put("/notifications/preferences", json=off,
                          headers=headers).status_code == 200
            assert not r.exists(key)
            assert c1.post("/orders", json=ORDER, headers=headers).status_code == 201
            assert notifications() == before
            # read again from the database, and kept again
            assert one.shared.recipients(int(key.rsplit(":", 1)[1]))[0][
                ("order_status", "in_app")] is False
    finally:
        r.close()
        one.close()
        two.close()


def test_redis_down_at_a_request_is_a_503_that_names_no_address(tmp_path):
    """Counted in a Redis that does not answer (a closed loopback port), a rate-limited
    request and a login answer 503 with a reason, not 500 or Redis's own error text."""
    from fastapi.testclient import TestClient

    from tick2trade.host.api import create_app
    from tick2trade.host.services.localvenue import free_port
    from tick2trade.host.services.platform import Limits, Platform
    from tick2trade.host.services.shared import Shared, SharedUnavailable

    dead = f"redis://127.0.0.1:{free_port()}/0"
    storage = Shared(dead, "sqlite://").limits_storage()
    p = Platform(f"sqlite:///{tmp_path / 'down.db'}", "s" * 40,
                 limits=Limits(storage=storage))
    try:
        with TestClient(create_app(p)) as c:
            for r in (c.post("/auth/refresh", json={"refresh_token": "x"}),
                      c.post("/auth/login", json={"username": "x", "password": "y"})):
                assert r.status_code == 503, r.text
                assert "Redis, which does not answer" in r.json()["detail"]
                assert "127.0.0.1" not in r.text
        # the login throttle itself (behind the anonymous limit above)
        with pytest.raises(SharedUnavailable, match="does not answer"):
            p.users.login("x", "y", "192.0.2.1")
    finally:
        p.close()
