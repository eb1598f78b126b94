"""Orders, portfolio, risk, market data and operator endpoints through the API, with
the paper broker filling against quotes the tests publish."""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict

import pytest
from sqlalchemy import select

from tick2trade.host.services import audit
from tick2trade.host.services.db import Execution, Notification, Order
from tick2trade.host.services.portfolio import PositionState, apply_fill

from tests.host.conftest import SEED, FakeDevice, register_login

T = 10_000  # ticks per currency unit


def quote(platform, sym="AAPL", bid=100.0, ask=100.1, bid_size=100, ask_size=100):
    platform.market.update(sym, bid=round(bid * T), bid_size=bid_size, ask=round(ask * T),
                           ask_size=ask_size)


def place(client, h, **order):
    r = client.post("/orders", headers=h, json={"symbol": "AAPL", "qty": 10, **order})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def trader(client):
    return register_login(client, "trader1")


def test_market_order_fills_at_the_offer(client, platform, trader):
    quote(platform)
    o = place(client, trader, side="buy", type="market", qty=30)
    assert (o["status"], o["filled_qty"], o["avg_fill_price"]) == ("filled", 30, "100.1000")
    pos = client.get("/portfolio/positions", headers=trader).json()["positions"]
    assert pos == [{"symbol": "AAPL", "qty": 30, "avg_price": "100.1000", "mark": "100.0500",
                    "market_value": "3001.5000", "unrealized": "-1.5000",
                    "realized": "0.0000"}]


def test_market_order_without_a_quote_is_rejected(client, trader):
    o = place(client, trader, side="buy", type="market")
    assert o["status"] == "rejected" and "no opposite quote" in o["reason"]


def test_limit_rests_then_fills_partially_then_fully(client, platform, trader):
    quote(platform)
    o = place(client, trader, side="buy", type="limit", price="99.5", qty=50, tif="gtc")
    assert o["status"] == "accepted"
    quote(platform, bid=99.0, ask=99.5, ask_size=20)
    assert client.get(f"/orders/{o['id']}", headers=trader).json()["status"] == "partially_filled"
    quote(platform, bid=99.0, ask=99.4, ask_size=100)
    got = client.get(f"/orders/{o['id']}", headers=trader).json()
    assert got["status"] == "filled" and got["filled_qty"] == 50
    # 20 @ 99.5 + 30 @ 99.4
    assert got["avg_fill_price"] == "99.4400"
    kinds = [n["payload"]["status"] for n in
             client.get("/notifications", headers=trader).json()["items"]
             if n["kind"] == "order_status"]
    assert kinds == ["filled", "partially_filled", "accepted"]


def test_ioc_fills_what_it_can_and_fok_all_or_nothing(client, platform, trader):
    quote(platform, ask_size=15)
    ioc = place(client, trader, side="buy", type="limit", price="100.1", qty=40, tif="ioc")
    assert (ioc["status"], ioc["filled_qty"]) == ("canceled", 15)
    quote(platform, ask_size=15)
    fok = place(client, trader, side="buy", type="limit", price="100.1", qty=40, tif="fok")
    assert (fok["status"], fok["filled_qty"]) == ("canceled", 0)
    fok2 = place(client, trader, side="buy", type="limit", price="100.1", qty=15, tif="fok")
    assert (fok2["status"], fok2["filled_qty"]) == ("filled", 15)


def test_displayed_size_is_not_filled_twice(client, platform, trader):
    quote(platform, ask_size=25)
    a = place(client, trader, side="buy", type="market", qty=20)
    b = place(client, trader, side="buy", type="market", qty=20)
    assert (a["filled_qty"], b["filled_qty"]) == (20, 5)


def test_stop_loss_triggers_on_the_bid(client, platform, trader):
    quote(platform)
    place(client, trader, side="buy", type="market", qty=10)
    stop = place(client, trader, side="sell", type="stop", stop_price="95", qty=10)
    assert stop["status"] == "accepted"
    quote(platform, bid=96, ask=96.1)
    assert client.get(f"/orders/{stop['id']}", headers=trader).json()["status"] == "accepted"
    quote(platform, bid=94.9, ask=95.0)
    got = client.get(f"/orders/{stop['id']}", headers=trader).json()
    assert (got["status"], got["avg_fill_price"]) == ("filled", "94.9000")
    perf = client.get("/portfolio/performance", headers=trader).json()
    assert perf["realized"] == "-52.0000"  # (94.9 - 100.1) * 10


def test_cancel(client, platform, trader):
    quote(platform)
    o = place(client, trader, side="buy", type="limit", price="90", tif="gtc")
    r = client.delete(f"/orders/{o['id']}", headers=trader)
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    assert client.delete(f"/orders/{o['id']}", headers=trader).status_code == 409
    assert client.delete("/orders/999999", headers=trader).status_code == 404
    other = register_login(client, "someone")
    o2 = place(client, trader, side="buy", type="limit", price="90", tif="gtc")
    assert client.get(f"/orders/{o2['id']}", headers=other).status_code == 404
    assert client.delete(f"/orders/{o2['id']}", headers=other).status_code == 404


@pytest.mark.parametrize("body", [
    {"side": "buy", "type": "limit"},                              # no price
    {"side": "buy", "type": "market", "price": "10"},              # market with a price
    {"side": "buy", "type": "stop"},                               # no stop price
    {"side": "buy", "type": "limit", "price": "10", "stop_price": "9"},
    {"side": "buy", "type": "limit", "price": "10.00001"},         # 5 decimal places
    {"side": "buy", "type": "limit", "price": "-1"},
    {"side": "buy", "type": "limit", "price": "1e400"},
    {"side": "hold", "type": "market"},
    {"side": "buy", "type": "market", "qty": 0},
    {"side": "buy", "type": "market", "qty": 10**12},
    {"side": "buy", "type": "market", "tif": "forever"},
    {"side": "buy", "type": "market", "symbol": "aapl"},
    {"side": "buy", "type": "market", "symbol": "TOOLONGSYM"},
    {"side": "buy", "type": "market", "extra": 1},
])
def test_order_validation(client, trader, body):
    r = client.post("/orders", headers=trader, json={"symbol": "AAPL", "qty": 10, **body})
    assert r.status_code == 422, r.text
    assert r.json()["detail"]


def test_risk_limits_reject_and_alert(client, platform, trader):
    op = register_login(client, "op1", "operator", platform)
    assert client.put("/risk/limits/*", headers=op, json={"max_order_qty": 100}).status_code == 200
    assert client.put("/risk/limits/AAPL", headers=op, json={"max_position": 50,
                                                             "max_notional": "4000"}
                      ).status_code == 200
    limits = client.get("/risk/limits", headers=trader).json()
    assert limits["limits"] == [
        {"symbol": "*", "max_order_qty": 100, "max_notional": None, "max_position": None},
        {"symbol": "AAPL", "max_order_qty": None, "max_notional": "4000.0000",
         "max_position": 50}]
    quote(platform)
    big = place(client, trader, side="buy", type="market", qty=101, symbol="MSFT")
    assert big["status"] == "rejected" and "max_order_qty" in big["reason"]
    notional = place(client, trader, side="buy", type="limit", price="100", qty=41)
    assert notional["status"] == "rejected" and "max_notional" in notional["reason"]
    ok = place(client, trader, side="buy", type="market", qty=30)
    assert ok["status"] == "filled", ok["reason"]
    near = place(client, trader, side="buy", type="market", qty=16)   # reaches 46 of 50
    assert near["status"] == "filled"
    over = place(client, trader, side="buy", type="market", qty=5)     # would be 51
    assert over["status"] == "rejected" and "max_position" in over["reason"]
    # selling reduces the position: allowed
    assert place(client, trader, side="sell", type="market", qty=39)["status"] == "filled"
    alerts = [n["payload"]["level"] for n in client.get(
        "/notifications", headers=trader).json()["items"] if n["kind"] == "risk_alert"]
    assert alerts.count("breached") == 3 and alerts.count("near") == 1


def test_kill_switch_cancels_and_blocks(client, platform, trader):
    op = register_login(client, "op2", "operator", platform)
    quote(platform)
    resting = place(client, trader, side="buy", type="limit", price="90", tif="gtc")
    r = client.put("/operator/kill-switch", headers=op, json={"engaged": True,
                                                              "reason": "drill"})
    assert r.json() == {"engaged": True, "orders_canceled": 1, "orders_cancel_pending": 0,
                        "orders_cancel_failed": 0, "device": "not attached"}
    assert client.get(f"/orders/{resting['id']}", headers=trader).json()["status"] == "canceled"
    blocked = place(client, trader, side="buy", type="market")
    assert blocked["status"] == "rejected" and "kill switch" in blocked["reason"]
    assert client.get("/risk/limits", headers=trader).json()["kill_switch"] is True
    client.put("/operator/kill-switch", headers=op, json={"engaged": False})
    assert place(client, trader, side="buy", type="market")["status"] == "filled"
    kinds = [n["payload"].get("level") for n in client.get(
        "/notifications", headers=trader).json()["items"] if n["kind"] == "risk_alert"]
    assert kinds.count("kill_switch") == 2


def test_device_endpoints_say_no_device(client, platform):
    op = register_login(client, "op3", "operator", platform)
    for path in ("/operator/device", "/operator/counters"):
        r = client.get(path, headers=op)
        assert r.status_code == 503 and "no FPGA device" in r.json()["detail"]
    r = client.put("/operator/config", headers=op, json={"config": {"a": 1}})
    assert r.status_code == 503


def test_device_endpoints_with_a_fake_device(client, platform):
    platform.device = FakeDevice()
    op = register_login(client, "op4", "operator", platform)
    assert client.get("/operator/device", headers=op).json()["link"] == "up"
    assert client.get("/operator/counters", headers=op).json() == {"eth_rx": {"frames": 7}}
    assert client.put("/operator/config", headers=op, json={"config": {"a": 1}}
                      ).json() == {"written": 1}
    assert client.put("/operator/kill-switch", headers=op, json={"engaged": True}
                      ).json()["device"] == "set"
    assert platform.device.kill is True and platform.device.configs == [{"a": 1}]
    with platform.sessions() as s:
        assert audit.verify(s).ok


def test_market_data_endpoints(client, platform, trader):
    assert client.get("/market/AAPL/quote", headers=trader).status_code == 404
    platform.market.set_book("AAPL", [(1_000_000, 5), (999_000, 7)], [(1_001_000, 3)])
    q = client.get("/market/AAPL/quote", headers=trader).json()
    assert (q["bid"], q["bid_size"], q["ask"], q["ask_size"]) == ("100.0000", 5, "100.1000", 3)
    b = client.get("/market/AAPL/book", headers=trader).json()
    assert b["bids"] == [{"price": "100.0000", "size": 5, "orders": 0},
                         {"price": "99.9000", "size": 7, "orders": 0}]
    assert b["seq"] == 1 and b["source"] == "manual"
    top = client.get("/market/AAPL/book", headers=trader, params={"depth": 1}).json()
    assert [x["price"] for x in top["bids"]] == ["100.0000"]
    assert client.get("/market/AAPL/history", headers=trader).status_code == 404
    from datetime import UTC, datetime, timedelta
    t0 = datetime(2026, 1, 2, 14, 30, tzinfo=UTC)
    prices = [(0, 100), (10, 105), (59, 95), (60, 101), (130, 99)]
    for s, p in prices:
        platform.market.trade("AAPL", p * T, 10, t0 + timedelta(seconds=s))
    bars = client.get("/market/AAPL/history", headers=trader).json()["bars"]
    assert [(b["open"], b["high"], b["low"], b["close"], b["volume"]) for b in bars] == [
        ("100.0000", "105.0000", "95.0000", "95.0000", 30),
        ("101.0000", "101.0000", "101.0000", "101.0000", 10),
        ("99.0000", "99.0000", "99.0000", "99.0000", 10)]
    r = client.get("/market/AAPL/history", headers=trader,
                   params={"from": "2026-01-02T14:31:00", "to": "2026-01-02T14:32:00Z"})
    assert [b["open"] for b in r.json()["bars"]] == ["101.0000"]
    assert client.get("/market/aapl/quote", headers=trader).status_code == 422


def test_pagination(client, platform, trader):
    for i in range(7):
        place(client, trader, side="buy", type="limit", price=str(50 + i), tif="gtc")
    page = client.get("/orders", headers=trader, params={"limit": 3, "offset": 2}).json()
    assert page["total"] == 7 and page["limit"] == 3
    assert [o["price"] for o in page["items"]] == ["54.0000", "53.0000", "52.0000"]
    assert client.get("/orders", headers=trader, params={"limit": 0}).status_code == 422
    assert client.get("/orders", headers=trader, params={"limit": 201}).status_code == 422
    assert client.get("/orders", headers=trader, params={"status": "filled"}).json()["total"] == 0


def test_transactions_csv_and_pdf(client, platform, trader):
    quote(platform)
    place(client, trader, side="buy", type="market", qty=10)
    quote(platform, bid=101, ask=101.1)
    place(client, trader, side="sell", type="market", qty=4)
    r = client.get("/portfolio/transactions", headers=trader, params={"format": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(x["side"], x["qty"], x["price"], x["realized_pnl"]) for x in rows] == [
        ("buy", "10", "100.1000", "0.0000"), ("sell", "4", "101.0000", "3.6000")]
    pdf = client.get("/portfolio/transactions", headers=trader, params={"format": "pdf"})
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and len(pdf.content) > 500
    assert client.get("/portfolio/transactions", headers=trader,
                      params={"format": "xls"}).status_code == 422


def test_rate_limit_answers_429(platform):
    from fastapi.testclient import TestClient

    from tick2trade.host.api import create_app

    platform.limits.requests = "5/minute"
    platform.limits.anonymous = "3/minute"
    with TestClient(create_app(platform)) as c:
        codes = [c.post("/auth/login", json={"username": "x", "password": "y"}).status_code
                 for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        platform.users.register("rl", "rl@example.com", "correct horse battery")
        token = platform.users.login("rl", "correct horse battery", "elsewhere").access_token
        h = {"Authorization": f"Bearer {token}"}
        codes = [c.get("/users/me", headers=h).status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]
        r = c.get("/users/me", headers=h)
        assert int(r.headers["Retry-After"]) >= 1


def test_random_order_flow_matches_a_replay_of_executions(client, platform, trader):
    """Random quotes and orders of every type; afterwards the stored positions must equal
    the executions replayed through ``apply_fill``, each order's fills must add up, and
    every status change must have a notification and an audit record."""
    rng = random.Random(SEED)
    where = f"seed {SEED} (T2T_SEED={SEED} to repeat)"
    for symbol in ("AAPL", "MSFT"):
        quote(platform, symbol)
    for _ in range(120):
        sym = rng.choice(["AAPL", "MSFT"])
        if rng.random() < 0.4:
            mid = rng.uniform(95, 105)
            quote(platform, sym, bid=round(mid - 0.05, 2), ask=round(mid + 0.05, 2),
                  bid_size=rng.randint(0, 50), ask_size=rng.randint(0, 50))
            continue
        kind = rng.choice(["market", "limit", "stop"])
        body = {"symbol": sym, "side": rng.choice(["buy", "sell"]), "type": kind,
                "qty": rng.randint(1, 40), "tif": rng.choice(["day", "gtc", "ioc", "fok"])}
        if kind == "limit":
            body["price"] = f"{rng.uniform(95, 105):.2f}"
        if kind == "stop":
            body["stop_price"] = f"{rng.uniform(95, 105):.2f}"
        place(client, trader, **body)
        if rng.random() < 0.1:
            open_ = client.get("/orders", headers=trader, params={"status": "accepted"}).json()
            if open_["items"]:
                client.delete(f"/orders/{rng.choice(open_['items'])['id']}", headers=trader)
    with platform.sessions() as s:
        execs = list(s.execute(select(Execution).order_by(Execution.id)).scalars())
        orders = list(s.execute(select(Order)).scalars())
        notes = list(s.execute(select(Notification)).scalars())
        assert audit.verify(s).ok
    expected: dict[str, PositionState] = defaultdict(PositionState)
    for e in execs:
        expected[e.symbol], gained = apply_fill(expected[e.symbol],
                                                e.qty if e.side == "buy" else -e.qty, e.price)
        assert gained == e.realized_pnl, where
    assert execs, f"the random flow should have traded ({where})"
    assert platform.positions(platform.users.authenticate(
        trader["Authorization"][7:]).user_id) == dict(expected), where
    by_order = defaultdict(int)
    for e in execs:
        by_order[e.order_id] += e.qty
    for o in orders:
        assert o.filled_qty == by_order[o.id] <= o.qty, where
        assert (o.status == "filled") == (o.filled_qty == o.qty), where
        statuses = [n.payload["status"] for n in notes if n.kind == "order_status"
                    and n.payload["order_id"] == o.id]
        assert statuses[-1] == o.status, where


class DownBroker:
    """A broker whose connection is gone: every submit raises."""

    def attach(self, events):
        self.events = events

    def submit(self, ticket):
        raise ConnectionError("venue session down")

    def cancel(self, order_id):
        raise ConnectionError("venue session down")


def test_a_broker_failure_rejects_the_stored_order(db_url):
    from fastapi.testclient import TestClient

    from tick2trade.host.api import create_app
    from tick2trade.host.services.platform import Platform

    from tests.host.conftest import SECRET, fresh_limits
    p = Platform(db_url, SECRET, broker=DownBroker(), limits=fresh_limits())
    try:
        with TestClient(create_app(p)) as c:
            h = register_login(c, "unlucky")
            r = c.post("/orders", headers=h, json={"symbol": "AAPL", "side": "buy",
                                                   "type": "market", "qty": 1})
            assert r.status_code == 201
            assert r.json()["status"] == "rejected"
            assert r.json()["reason"] == "broker unavailable: ConnectionError"
            with p.sessions() as s:
                assert audit.verify(s).ok
                assert [o.status for o in s.execute(select(Order)).scalars()] == ["rejected"]
            # a resting order whose cancel cannot reach the broker: 503, and it stays open
            with p.sessions.begin() as s:
                s.add(Order(user_id=1, symbol="AAPL", side="buy", type="limit", tif="gtc",
                            qty=1, price=10_000, status="accepted"))
            r = c.delete("/orders/2", headers=h)
            assert r.status_code == 503 and "did not reach the broker" in r.json()["detail"]
            assert c.get("/orders/2", headers=h).json()["status"] == "accepted"
    finally:
        p.close()


def test_a_failing_listener_does_not_stop_the_feed(platform):
    seen = []

    def broken(quote):
        raise RuntimeError("listener bug")

    platform.market.subscribe(broken)
    platform.market.subscribe(seen.append)
    platform.market.update("AAPL", bid=1, bid_size=1, ask=2, ask_size=1)
    assert [q.symbol for q in seen] == ["AAPL"]


def _ws_answer(ws, ref):
    """The answer to the placement ``ref``, skipping notifications and quotes."""
    while True:
        m = ws.receive_json()
        if m.get("ref") == ref:
            return m


def test_websocket_order_entry_answers_as_post_does(client, platform, trader):
    """Orders placed over the WebSocket are the same placements as POST /orders: stored
    before the answer, refused for the same reasons with the same status codes, and in
    the same audit chain."""
    quote(platform)
    token = trader["Authorization"][7:]
    with client.websocket_connect(f"/ws?token={token}") as ws:
        assert ws.receive_json()["type"] == "hello"
        ws.send_json({"op": "place", "ref": "a", "order": {
            "symbol": "AAPL", "side": "buy", "type": "market", "qty": 30}})
        filled = _ws_answer(ws, "a")
        ws.send_json({"op": "place", "ref": 2, "order": {
            "symbol": "AAPL", "side": "buy", "type": "limit", "tif": "gtc", "qty": 5,
            "price": "99.5"}})
        resting = _ws_answer(ws, 2)
        ws.send_json({"op": "place", "ref": 3, "order": {
            "symbol": "AAPL", "side": "buy", "type": "limit", "qty": 5}})
        invalid = _ws_answer(ws, 3)
        ws.send_json({"op": "place", "ref": 4, "order": "buy 5"})
        malformed = ws.receive_json()
        # an order-entry connection that leaves notifications to another: only answers
        ws.send_json({"op": "notifications", "enabled": False})
        assert ws.receive_json() == {"type": "notifications", "enabled": False}
        ws.send_json({"op": "place", "ref": 5, "order": {
            "symbol": "AAPL", "side": "buy", "type": "limit", "tif": "gtc", "qty": 1,
            "price": "99"}})
        quiet = ws.receive_json()
    assert filled["type"] == "order"
    assert (filled["order"]["status"], filled["order"]["filled_qty"],
            filled["order"]["avg_fill_price"]) == ("filled", 30, "100.1000")
    assert resting["type"] == "order"
    assert (resting["order"]["status"], resting["order"]["price"]) == ("accepted", "99.5000")
    assert invalid["type"] == "error" and invalid["status"] == 422
    assert "price" in invalid["detail"]
    assert malformed["type"] == "error" and "place" in malformed["detail"]
    assert (quiet["type"], quiet["ref"], quiet["order"]["status"]) == ("order", 5, "accepted")
    for answer in (filled, resting):
        over_http = client.get(f"/orders/{answer['order']['id']}", headers=trader).json()
        assert over_http == answer["order"]
    with platform.sessions() as s:
        assert len(s.execute(select(Order)).all()) == 3
        assert audit.verify(s).ok


def test_websocket_order_entry_is_rate_limited(platform):
    from fastapi.testclient import TestClient

    from tick2trade.host.api import create_app

    platform.limits.requests = "3/minute"
    quote(platform)
    platform.users.register("wsrl", "wsrl@example.com", "correct horse battery")
    token = platform.users.login("wsrl", "correct horse battery", "here").access_token
    with TestClient(create_app(platform)) as c, \
            c.websocket_connect(f"/ws?token={token}") as ws:
        assert ws.receive_json()["type"] == "hello"
        answers = []
        for ref in range(5):
            ws.send_json({"op": "place", "ref": ref, "order": {
                "symbol": "AAPL", "side": "buy", "type": "limit", "qty": 1, "price": "99"}})
            answers.append(_ws_answer(ws, ref))
    assert [a["type"] for a in answers] == ["order"] * 3 + ["error"] * 2
    assert {a["status"] for a in answers[3:]} == {429}
    with platform.sessions() as s:
        assert len(s.execute(select(Order)).all()) == 3
