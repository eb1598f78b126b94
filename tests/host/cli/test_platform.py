"""The platform's t2t commands: db upgrade, users set-role, audit on a real file, and
`t2t api` serving on loopback."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import httpx
from click.testing import CliRunner

from tick2trade.cli import main
from tick2trade.testing.apiproc import start_api, stop_api
from tick2trade.host.services.auth import Users
from tick2trade.host.services.db import make_engine, session_factory


def test_db_upgrade_and_set_role(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade", "--db", url]).exit_code == 0
    engine = make_engine(url)
    users = Users(session_factory(engine), "s" * 32)
    users.register("root", "root@example.com", "correct horse battery")
    r = runner.invoke(main, ["users", "set-role", "root", "admin", "--db", url])
    assert r.exit_code == 0, r.output
    assert users.get(1).role == "admin"
    r = runner.invoke(main, ["users", "set-role", "ghost", "admin", "--db", url])
    assert r.exit_code == 2 and "no user 'ghost'" in r.output
    r = runner.invoke(main, ["audit", "verify", "--db", url])
    assert r.exit_code == 0 and "intact" in r.output and "2 records" in r.output
    engine.dispose()


def login(base: str, name: str) -> dict:
    r = httpx.post(f"{base}/auth/register", json={"username": name, "password": "x" * 12,
                                                  "email": f"{name}@example.com"})
    assert r.status_code == 201, r.text
    r = httpx.post(f"{base}/auth/login", json={"username": name, "password": "x" * 12})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def poll(fn, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_t2t_api_trades_out_of_the_box(tmp_path):
    """No options: a venue starts, its feed fills a full-depth book, a market order
    fills at the venue over OUCH, the trade prints move the last price."""
    proc, base = start_api(tmp_path)
    try:
        h = login(base, "trader1")
        quote = poll(lambda: (r := httpx.get(f"{base}/market/AAPL/quote", headers=h))
                     .status_code == 200 and r.json()["ask"] and r.json()["bid"] and r.json())
        assert Decimal(quote["bid"]) < Decimal(quote["ask"])
        book = poll(lambda: (b := httpx.get(f"{base}/market/AAPL/book", headers=h).json())
                    ["seq"] and len(b["bids"]) > 1 and len(b["asks"]) > 1 and b)
        assert book["source"] == "feed" and book["stale"] is False
        listed = httpx.get(f"{base}/market", headers=h).json()["symbols"]
        assert {"AAPL", "MSFT", "BTC-USD"} <= {x["symbol"] for x in listed}
        assert all(x["source"] == "feed" for x in listed)
        r = httpx.post(f"{base}/orders", headers=h, json={"symbol": "AAPL", "side": "buy",
                                                          "type": "market", "qty": 100})
        assert r.status_code == 201, r.text
        order_id = r.json()["id"]
        done = poll(lambda: (o := httpx.get(f"{base}/orders/{order_id}", headers=h).json())
                    ["status"] in ("filled", "partially_filled", "canceled") and o)
        assert done["status"] in ("filled", "canceled") and done["filled_qty"] > 0, done
        held = httpx.get(f"{base}/portfolio/positions", headers=h).json()
        assert any(p["symbol"] == "AAPL" and p["qty"] == done["filled_qty"]
                   for p in held["positions"]), held
        # the venue's trade prints (ours among them) reach the market data and history
        poll(lambda: httpx.get(f"{base}/market/AAPL/quote", headers=h).json()["last"])
        bars = poll(lambda: httpx.get(f"{base}/market/AAPL/history", headers=h,
                                      params={"interval": "1s"}).json()["bars"])
        assert bars[0]["volume"] > 0
        prints = httpx.get(f"{base}/market/AAPL/trades", headers=h).json()["trades"]
        assert sum(p["size"] for p in prints) >= sum(b["volume"] for b in bars)  # later: more
        # an operator sees where the market comes from and the feed's counters
        assert httpx.get(f"{base}/operator/market", headers=h).status_code == 403
        r = CliRunner().invoke(main, ["users", "set-role", "trader1", "operator", "--db",
                                      f"sqlite:///{tmp_path / 'api.db'}"])
        assert r.exit_code == 0, r.output
        token = httpx.post(f"{base}/auth/login", json={"username": "trader1",
                                                       "password": "x" * 12}).json()
        m = httpx.get(f"{base}/operator/market", headers={
            "Authorization": f"Bearer {token['access_token']}"}).json()
        assert m["live"] and m["order_session"] == "connected" and m["venue"]
        assert m["feed"]["packets"] > 0 and m["feed"]["malformed"] == 0
        assert m["feed_status"]["gap_open"] is False and m["orders"]["executions"] >= 1
    finally:
        out = stop_api(proc)
    assert "OUCH 5.0 over SoupBinTCP" in out and "Traceback" not in out, out
    # what was recorded outlives the server: t2t history reads the file
    r = CliRunner().invoke(main, ["history", "AAPL", "--interval", "1s", "--json",
                                  "--path", str(tmp_path / "var" / "history.duckdb")])
    assert r.exit_code == 0, r.output
    assert sum(b["volume"] for b in json.loads(r.stdout)["bars"]) >= \
        sum(b["volume"] for b in bars)


def test_t2t_api_serves_openapi_and_register(tmp_path):
    proc, base = start_api(tmp_path, "--venue", "off")
    try:
        r = httpx.get(f"{base}/openapi.json")
        assert r.status_code == 200
        paths = r.json()["paths"]
        for path in ("/auth/register", "/auth/login", "/users/me", "/market/{symbol}/quote",
                     "/orders", "/orders/{order_id}", "/portfolio/positions",
                     "/portfolio/transactions", "/risk/limits", "/notifications",
                     "/notifications/preferences", "/operator/kill-switch"):
            assert path in paths, path
        assert httpx.get(f"{base}/docs").status_code == 200
        r = httpx.post(f"{base}/auth/register", json={"username": "zed", "password": "x" * 12,
                                                      "email": "z@example.com"})
        assert r.status_code == 201
        # the JWT secret is created once, private to its owner
        assert (tmp_path / "var" / "jwt-secret").stat().st_mode & 0o077 == 0
    finally:
        stop_api(proc)
