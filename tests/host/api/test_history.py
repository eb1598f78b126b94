"""/market/{symbol}/history and /market/{symbol}/trades answered from the history store
(on SQLite and PostgreSQL, as every platform test), the 422s of a bad request, fills
reaching the store, and the in-memory answer kept for a platform without a store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tick2trade.host.api import create_app
from tick2trade.host.services.history import History
from tick2trade.host.services.platform import Platform

from tests.host.conftest import LOOPBACK_WEBHOOKS, SECRET, fresh_limits, register_login

T = 10_000
T0 = datetime(2026, 1, 2, 14, 30, tzinfo=UTC)


@pytest.fixture
def store():
    return History(None, raw_days=2, retention_days=30)


@pytest.fixture
def hplatform(db_url, store):
    p = Platform(db_url, SECRET, limits=fresh_limits(), webhooks=LOOPBACK_WEBHOOKS,
                 history=store)
    yield p
    p.close()


@pytest.fixture
def hclient(hplatform):
    with TestClient(create_app(hplatform)) as c:
        yield c


@pytest.fixture
def trader(hclient):
    return register_login(hclient, "trader1")


def _prints(platform):
    # (seconds after T0, price): three in the first minute (two in its first second)
    for s, p in [(0, 100), (0.5, 105), (59, 95), (60, 101), (130, 99)]:
        platform.market.trade("AAPL", p * T, 10, T0 + timedelta(seconds=s), side="sell")


def test_bars_and_trades_from_the_store(hclient, hplatform, trader):
    _prints(hplatform)
    r = hclient.get("/market/AAPL/history", headers=trader, params={
        "from": "2026-01-02T14:30:00Z", "to": "2026-01-02T14:33:00Z", "interval": "1m"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["source"], body["interval"], body["interval_seconds"]) == ("history",
                                                                            "1m", 60)
    assert [(b["start"], b["open"], b["high"], b["low"], b["close"], b["volume"],
             b["trades"]) for b in body["bars"]] == [
        ("2026-01-02T14:30:00+00:00", "100.0000", "105.0000", "95.0000", "95.0000", 30, 3),
        ("2026-01-02T14:31:00+00:00", "101.0000", "101.0000", "101.0000", "101.0000", 10, 1),
        ("2026-01-02T14:32:00+00:00", "99.0000", "99.0000", "99.0000", "99.0000", 10, 1)]
    one = hclient.get("/market/AAPL/history", headers=trader, params={
        "from": "2026-01-02T14:30:00", "to": "2026-01-02T14:30:02", "interval": "1s"}).json()
    assert [(b["open"], b["close"], b["trades"]) for b in one["bars"]] == [
        ("100.0000", "105.0000", 2)]
    page = hclient.get("/market/AAPL/trades", headers=trader, params={
        "from": "2026-01-02T14:30:00Z", "to": "2026-01-02T15:00:00Z", "limit": 2}).json()
    assert page["truncated"] is True
    assert [(t["price"], t["size"], t["side"]) for t in page["trades"]] == [
        ("100.0000", 10, "sell"), ("105.0000", 10, "sell")]
    rest = hclient.get("/market/AAPL/trades", headers=trader, params={
        "from": "2026-01-02T14:30:59Z", "to": "2026-01-02T15:00:00Z"}).json()
    assert [t["price"] for t in rest["trades"]] == ["95.0000", "101.0000", "99.0000"]
    assert rest["truncated"] is False and rest["raw_since"] is None
    empty = hclient.get("/market/MSFT/history", headers=trader, params={
        "from": "2026-01-02T14:30:00Z", "to": "2026-01-02T14:33:00Z"}).json()
    assert empty["bars"] == []


@pytest.mark.parametrize("params, says", [
    ({"interval": "5m"}, "not one of 1s, 1m, 1h, 1d"),
    ({"from": "2026-01-02T15:00:00Z", "to": "2026-01-02T15:00:00Z"}, "must be before"),
    ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-03T00:00:00Z", "interval": "1s"},
     "86400 bars of 1s"),
    ({"to": "0001-01-01T00:10:00Z", "interval": "1d"}, "too early"),
])
def test_bad_history_requests_are_422(hclient, trader, params, says):
    r = hclient.get("/market/AAPL/history", headers=trader, params=params)
    assert r.status_code == 422 and says in r.json()["detail"], r.text


def test_one_second_bars_of_compacted_time_are_422(hclient, hplatform, store, trader):
    _prints(hplatform)
    store.compact(T0 + timedelta(days=3))
    q = {"from": "2026-01-02T14:30:00Z", "to": "2026-01-02T14:35:00Z"}
    r = hclient.get("/market/AAPL/history", headers=trader, params={**q, "interval": "1s"})
    assert r.status_code == 422 and "compacted into 1-minute bars" in r.json()["detail"]
    minute = hclient.get("/market/AAPL/history", headers=trader,
                         params={**q, "interval": "1m"}).json()
    assert [b["trades"] for b in minute["bars"]] == [3, 1, 1]
    assert minute["raw_since"] == "2026-01-03T14:30:00+00:00"
    page = hclient.get("/market/AAPL/trades", headers=trader, params=q).json()
    assert page["trades"] == [] and page["raw_since"] == minute["raw_since"]
    bad = hclient.get("/market/AAPL/trades", headers=trader, params={"limit": 0})
    assert bad.status_code == 422


def test_fills_reach_the_store(hclient, hplatform, store, trader):
    hplatform.market.update("AAPL", bid=100 * T, bid_size=100, ask=101 * T, ask_size=100)
    r = hclient.post("/orders", headers=trader, json={"symbol": "AAPL", "qty": 30,
                                                      "side": "buy", "type": "market"})
    assert r.status_code == 201 and r.json()["status"] == "filled", r.text
    fills = store.fills(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC)
                        + timedelta(minutes=1), symbol="AAPL")
    assert [(f["order_id"], f["side"], f["qty"], f["price"]) for f in fills] == [
        (r.json()["id"], "buy", 30, 101 * T)]
    quotes = store.quotes("AAPL", datetime.now(UTC) - timedelta(hours=1),
                          datetime.now(UTC) + timedelta(minutes=1))
    assert [(q.bid, q.ask) for q in quotes][:1] == [(100 * T, 101 * T)]


def test_without_a_store_the_memory_bars_answer(client, platform):
    h = register_login(client, "trader1")
    assert client.get("/market/AAPL/history", headers=h).status_code == 404
    _prints(platform)
    body = client.get("/market/AAPL/history", headers=h).json()
    assert body["source"] == "memory" and [b["volume"] for b in body["bars"]] == [30, 10, 10]
    same = client.get("/market/AAPL/history", headers=h, params={"interval": "1m"})
    assert same.status_code == 200
    other = client.get("/market/AAPL/history", headers=h, params={"interval": "1s"})
    assert other.status_code == 422 and "no history store" in other.json()["detail"]
    assert client.get("/market/AAPL/trades", headers=h).status_code == 404
