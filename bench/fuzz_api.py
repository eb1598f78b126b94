"""API fuzz: schemathesis against the served OpenAPI document, plus the hostile cases of
issue 25 (``python -m tick2trade.bench.fuzz_api``; figures in bench/README.md,
"Reliability"). Counts, never pass/fail.

The API runs under uvicorn on loopback (an ephemeral port), configured as ``t2t api``
serves it (``host/api/serving.py``), over a fresh SQLite database (``--db URL`` for
another), with market data for three symbols, the paper broker, and no FPGA device.
For every operation of ``/openapi.json``, schemathesis generates ``--examples``
requests that fit the schema (positive) and as many that do not (negative), sent
with an operator's bearer token over HTTP. Then the hand-written cases: non-finite
JSON numbers, lone surrogates, deep nesting, bodies past the size bound (with and
without ``Content-Length``), extreme timestamp offsets, booleans and floats as
quantities, confusable and differently-cased usernames, a deleted user's tokens, a
reused refresh token, the old ``/ws?token=`` form and oversized WebSocket messages.

A *server error* is any 5xx answer, a connection reset, or an answer whose body
carries SQL or a Python stack trace, except the documented ``503`` of the device
routes when no device is attached (counted apart as ``no device``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import hypothesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from rich.console import Console
from rich.table import Table
from schemathesis import GenerationMode
from sqlalchemy import delete, select

from tick2trade.host.api import create_app, serving
from tick2trade.host.api.ws import BEARER
from tick2trade.host.services.db import RefreshToken, User
from tick2trade.host.services.platform import Limits, Platform

SECRET = "fuzz-" + "s" * 32
PASSWORD = "correct horse battery"
UNLIMITED = Limits(requests="1000000/second", anonymous="1000000/second",
                   login_failures="1000000/minute", login_failures_address="1000000/minute")
LEAKS = ("Traceback", 'File "', "[SQL", "SELECT ", "INSERT ", "UPDATE ", "sqlalchemy",
         "psycopg", "sqlite3.")


class Tally:
    """Answers by kind, and the first few server errors in full."""

    def __init__(self) -> None:
        self.cases = 0
        self.status: Counter[int] = Counter()
        self.no_device = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def record(self, what: str, status: int | None, body: str) -> None:
        with self.lock:
            self.cases += 1
            if status is not None:
                self.status[status] += 1
            if status == 503 and "no FPGA device" in body:
                self.no_device += 1
                return
            if status is None or status >= 500 or any(w in body for w in LEAKS):
                self.errors.append(f"{what} → {status}: {body[:300]}")


def _serve(app) -> tuple[uvicorn.Server, threading.Thread, int]:
    server = uvicorn.Server(serving.config(app, "127.0.0.1", 0, log_level="critical",
                                           access_log=False))
    thread = threading.Thread(target=server.run, name="fuzz-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return server, thread, server.servers[0].sockets[0].getsockname()[1]


def _platform(url: str) -> Platform:
    p = Platform(url, SECRET, limits=UNLIMITED)
    for sym in ("AAPL", "A", "BTC-USD"):
        p.market.set_book(sym, [(1_000_000, 10)], [(1_001_000, 10)])
        p.market.trade(sym, 1_000_500, 5)
    p.users.register("fuzzer", "fuzz@example.com", PASSWORD, role="operator")
    return p


def schema_fuzz(base: str, token: str, examples: int, tally: Tally, seed: int) -> int:
    """Every operation, positive and negative; returns the operations fuzzed."""
    import requests
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    operations = 0
    with requests.Session() as session:
        for result in schema.get_all_operations():
            op = result.ok()
            operations += 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _operation_fuzz(op, mode, examples, seed, base, headers, session, tally)()
    return operations


def _operation_fuzz(op, mode: GenerationMode, examples: int, seed: int, base: str,
                    headers: dict, session, tally: Tally):
    """A hypothesis test sending ``examples`` cases of ``op`` in ``mode``."""
    import requests

    @hypothesis.seed(seed)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case) -> None:
        what = f"{case.method} {case.formatted_path} ({mode.value})"
        try:
            r = case.call(base_url=base, headers=headers, session=session, timeout=30)
        except requests.RequestException as exc:
            tally.record(what, None, repr(exc))
            return
        # bytes, not .text: a PDF answer is not text
        tally.record(what, r.status_code, r.content.decode("utf-8", "replace"))

    return run


def hostile_cases(base: str, platform: Platform, tally: Tally) -> None:
    """The cases the schema fuzz would not find, each sent as a client would."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    def login(http, name: str) -> dict:
        return http.post("/auth/login", json={"username": name, "password": PASSWORD}).json()

    def send(http, what: str, method: str, path: str, **kw) -> httpx.Response | None:
        try:
            r = http.request(method, path, **kw)
        except httpx.TransportError as exc:
            tally.record(what, None, repr(exc))
            return None
        tally.record(what, r.status_code, r.text)
        return r

    with httpx.Client(base_url=base, timeout=60) as http:
        for name in ("hostile", "ghost"):
            http.post("/auth/register", json={"username": name, "password": PASSWORD,
                                              "email": f"{name}@example.com"})
        me = login(http, "hostile")
        h = {"Authorization": f"Bearer {me['access_token']}",
             "Content-Type": "application/json"}
        order = '{"symbol": "AAPL", "side": "buy", "type": "limit", "qty": %s, "price": %s}'
        for qty, price in (("1", "NaN"), ("1", "Infinity"), ("1", "-Infinity"),
                           ("NaN", "1"), ("true", '"99.5"'), ("1.0", '"99.5"'),
                           ('"1"', '"99.5"'), ("1e400", '"1"'), ("-0", '"1"'),
                           ("18446744073709551617", '"1"')):
            send(http, f"order qty={qty} price={price}", "POST", "/orders", headers=h,
                 content=(order % (qty, price)).encode())
        for text in (b'"x\\ud800y"', b'"\\udfff"', b'"\\ud83d\\ude00"', b'"a\\u202eb"',
                     b'"\\u0000"'):
            send(http, f"display_name {text!r}", "PATCH", "/users/me", headers=h,
                 content=b'{"display_name": ' + text + b"}")
        send(http, "nested 50k", "POST", "/auth/register", headers=h,
             content=b"[" * 50_000 + b"]" * 50_000)
        send(http, "10 MB body", "POST", "/auth/register", headers=h,
             content=b'{"username": "' + b"a" * 10_000_000 + b'"}')
        send(http, "streamed 4 MB body", "POST", "/auth/register", headers=h,
             content=(b"[" * 100_000 for _ in range(40)))
        for params in ({"from": "0001-01-01T00:00:00+23:59"},
                       {"to": "0001-01-01T00:00:00+23:59"},
                       {"to": "9999-12-31T23:59:59-23:59"},
                       {"from": "9999-12-31T23:59:59-23:59"},
                       {"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T23:59:59Z"},
                       {"from": "2026-01-01T00:00:00+99:00"}):
            for path in ("/market/AAPL/history", "/market/AAPL/trades"):
                send(http, f"{path} {params}", "GET", path, headers=h, params=params)
        for name in ("Hostile", "HOSTILE", "\uff48\uff4f\uff53\uff54\uff49\uff4c\uff45",
                     "\u202ehostile", "hos\u200btile", "\u0435vil", "x" * 40, "ab"):
            send(http, f"register {name!r}", "POST", "/auth/register",
                 json={"username": name, "password": PASSWORD, "email": "e@example.com"})
        ghost = login(http, "ghost")
        with platform.sessions.begin() as s:
            uid = s.execute(select(User.id).where(User.username == "ghost")).scalar_one()
            s.execute(delete(RefreshToken).where(RefreshToken.user_id == uid))
            s.execute(delete(User).where(User.id == uid))
        gh = {"Authorization": f"Bearer {ghost['access_token']}"}
        for _ in range(20):
            send(http, "deleted user's order", "POST", "/orders", headers=gh,
                 json={"symbol": "AAPL", "side": "buy", "type": "market", "qty": 1})
        send(http, "deleted user's refresh", "POST", "/auth/refresh",
             json={"refresh_token": ghost["refresh_token"]})
        first = login(http, "hostile")
        send(http, "refresh", "POST", "/auth/refresh",
             json={"refresh_token": first["refresh_token"]})
        send(http, "refresh reused", "POST", "/auth/refresh",
             json={"refresh_token": first["refresh_token"]})
        send(http, "forwarded spoof", "POST", "/auth/login",
             headers={"X-Forwarded-For": "not an address, [::1]:x"},
             json={"username": "=HYPERLINK(\"x\")", "password": "nope"})

        ws_base = base.replace("http://", "ws://")
        token = login(http, "hostile")["access_token"]
        for what, url, protocols, messages in (
                ("ws old ?token= form", f"{ws_base}/ws?token={token}", None, []),
                ("ws bad token", f"{ws_base}/ws", [BEARER, "nope"], []),
                ("ws big + deep messages", f"{ws_base}/ws", [BEARER, token],
                 ["x" * 200_000, "[" * 5000 + "]" * 5000, '{"op": NaN}',
                  ('{"op": "place", "ref": 1, "order": {"symbol": "AAPL", "side": "buy", '
                   '"type": "market", "qty": true}}'), '"\\ud800"'])):
            try:
                with connect(url, subprotocols=protocols, open_timeout=10,
                             max_size=None) as ws:
                    for m in messages:
                        ws.send(m)
                    answers = []
                    try:
                        while len(answers) < len(messages) + 1:
                            answers.append(ws.recv(timeout=5))
                    except ConnectionClosed as closed:
                        answers.append(f"closed {closed.rcvd}")
                    except TimeoutError:
                        pass
                tally.record(what, 101, " ".join(str(a)[:200] for a in answers))
            except Exception as exc:        # noqa: BLE001 — recorded as a server error
                tally.record(what, None, repr(exc))


def fuzz(examples: int, url: str | None = None, seed: int = 1) -> tuple[dict, list[str]]:
    """Serve the API, fuzz it and send the hostile cases; the figures and the server
    errors found (each with its request)."""
    url = url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='t2t-fuzz-')) / 'fuzz.db'}"
    platform = _platform(url)
    server, thread, port = _serve(create_app(platform))
    base = f"http://127.0.0.1:{port}"
    tally = Tally()
    started = time.monotonic()
    try:
        token = platform.users.login("fuzzer", PASSWORD, "fuzz").access_token
        operations = schema_fuzz(base, token, examples, tally, seed)
        fuzzed = tally.cases
        hostile_cases(base, platform, tally)
    finally:
        server.should_exit = True
        thread.join(30)
        platform.close()
    figures = {"operations": operations, "schema_cases": fuzzed,
               "hostile_cases": tally.cases - fuzzed, "cases": tally.cases,
               "server_errors": len(tally.errors), "no_device_503": tally.no_device,
               "status": dict(sorted(tally.status.items())),
               "seconds": round(time.monotonic() - started, 1), "examples": examples,
               "database": url.split(":")[0]}
    return figures, tally.errors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100,
                        help="requests per operation and generation mode")
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="the figures as JSON")
    args = parser.parse_args(argv)
    figures, errors = fuzz(args.examples, args.db, args.seed)
    if args.json:
        print(json.dumps({**figures, "errors": errors[:20]}, indent=1))
        return
    console = Console()
    table = Table(title="API fuzz (schemathesis + hostile cases)")
    for key in ("operations", "schema_cases", "hostile_cases", "cases", "server_errors",
                "no_device_503", "seconds"):
        table.add_row(key, str(figures[key]))
    table.add_row("answers by status", ", ".join(f"{k}: {v}" for k, v in
                                                 figures["status"].items()))
    console.print(table)
    for line in errors[:20]:
        console.print(f"[red]{line}[/red]", highlight=False, markup=False)


if __name__ == "__main__":
    main()
