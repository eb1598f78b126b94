"""Fixtures of the platform tests: every database test runs on SQLite and PostgreSQL.

PostgreSQL comes from ``T2T_TEST_POSTGRES_URL`` (``.ci/run`` starts a server and sets
it). Without it the PostgreSQL half is skipped and says why — except under CI
(``CI=true``), where a missing server is a failure: CI must test both. Each test gets
its own schema on the server (search_path in the URL), so tests and pytest-xdist
workers never see each other's rows.
"""

from __future__ import annotations

import os
import random
import uuid

import pytest
from sqlalchemy import create_engine, text

from tick2trade.host.services.notify import WebhookPolicy
from tick2trade.host.services.platform import Limits, Platform

PG_ENV = "T2T_TEST_POSTGRES_URL"
# every random test here derives its RNG from this; rerun a failure with T2T_SEED=<seed>
SEED = int(os.environ.get("T2T_SEED", random.randrange(1 << 32)))
SECRET = "test-secret-" + "x" * 32


def _postgres_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{PG_ENV} is not set: CI must run the PostgreSQL tests "
                        f"(.ci/run starts a server)")
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. eval \"$(bash .ci/postgres.sh)\")")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 't2t.db'}"
        return
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

    from tick2trade.host.services.api import create_app

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
