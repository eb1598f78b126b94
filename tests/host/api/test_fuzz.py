"""Schema-driven fuzz of the whole API (schemathesis): generated valid and invalid
requests to every operation in the published OpenAPI document, on SQLite and
PostgreSQL, as an operator with market data and a (fake) device present. The check:
no 5xx, ever — a bad request is the client's error and must be answered 4xx.

The number of examples per operation is bounded (``T2T_FUZZ_EXAMPLES``, default 12)
so CI spends about a minute here; raise it for a deeper local run.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tick2trade.host.api import create_app
from tick2trade.host.services.platform import Limits, Platform

from tests.host.conftest import SECRET, FakeDevice

EXAMPLES = int(os.environ.get("T2T_FUZZ_EXAMPLES", "12"))


@pytest.fixture
def fuzzed(db_url):
    platform = Platform(db_url, SECRET, limits=Limits(requests="100000/second",
                                                      anonymous="100000/second",
                                                      login_failures="100000/minute"))
    platform.device = FakeDevice()
    platform.users.register("fuzzer", "fuzz@example.com", "correct horse battery",
                            role="operator")
    token = platform.users.login("fuzzer", "correct horse battery", "fuzz").access_token
    for sym in ("AAPL", "A", "BTC-USD"):
        platform.market.set_book(sym, [(1_000_000, 10)], [(1_001_000, 10)])
        platform.market.trade(sym, 1_000_500, 5)
    app = create_app(platform)
    app.state.fuzz_token = token
    yield app
    platform.close()


class Switch:
    """An ASGI app that forwards to the app of the current test: schemathesis loads the
    document once, at import, while each test (one per operation and database) gets a
    fresh platform."""

    def __init__(self) -> None:
        self.app = None

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)


def _document_app():
    """An app over a throwaway SQLite database, only to publish the OpenAPI document."""
    import tempfile
    from pathlib import Path
    tmp = Path(tempfile.mkdtemp(prefix="t2t-openapi-"))
    return create_app(Platform(f"sqlite:///{tmp / 'doc.db'}", SECRET))


SWITCH = Switch()
SWITCH.app = _document_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", SWITCH)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, fuzzed):
    SWITCH.app = fuzzed
    headers = {"Authorization": f"Bearer {fuzzed.state.fuzz_token}"}
    response = case.call(headers=headers)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} → {response.status_code}: {response.text[:500]}")
    case.validate_response(response, checks=[not_a_server_error])


def test_the_fuzz_figure_in_a_sample():
    """``bench/fuzz_api.py`` (the "Reliability" figure of bench/README.md) at one example
    per operation and mode, and every hostile case: served by uvicorn on loopback, no
    server error, and every kind of answer it counts is there."""
    from tick2trade.bench import fuzz_api

    figures, errors = fuzz_api.fuzz(examples=1)
    assert errors == [] and figures["server_errors"] == 0
    assert figures["operations"] >= 30 and figures["hostile_cases"] >= 60
    assert {401, 413, 422}.issubset(figures["status"])
