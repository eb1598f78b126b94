"""Requests for quote against the venue simulator (a child process: its RFQ port for the
quotes and accepts, its OUCH port and ITCH feed as ``t2t api`` has them): quotes stream
to the user within their time to live, an accept fills at the quoted price and moves the
position through the OMS's execution path, an expired quote is 410, of two accepts at
once exactly one wins, and bad requests are 422 saying why. On SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from fastapi.testclient import TestClient

from tick2trade.host.api import create_app
from tick2trade.host.api.ws import BEARER
from tick2trade.host.services import ledger
from tick2trade.host.services.live import open_live
from tick2trade.host.services.db import RfqQuote, utcnow
from tick2trade.host.services.localvenue import LocalVenue, VenuePorts, free_port
from tick2trade.host.services.platform import Platform
from tick2trade.host.services.rfq import RfqClient
from tick2trade.testing.apiproc import start_api, stop_api

from tests.host.cli.test_platform import login, poll
from tests.host.conftest import (LOOPBACK_WEBHOOKS, SECRET, fresh_limits, register_login,
                                 wait_for)

SYMBOL = "MSFT"
LONG_TTL_MS, SHORT_TTL_MS = 20_000, 150


def _venue(tmp_path_factory, ttl_ms: int):
    v = LocalVenue(tmp_path_factory.mktemp("venue"), VenuePorts.ephemeral(), rate=200,
                   quote_ttl_ms=ttl_ms)
    v.start()
    return v


@pytest.fixture(scope="module")
def long_venue(tmp_path_factory):
    v = _venue(tmp_path_factory, LONG_TTL_MS)
    yield v
    assert v.stop() == 0, v._log_tail()


@pytest.fixture(scope="module")
def short_venue(tmp_path_factory):
    v = _venue(tmp_path_factory, SHORT_TTL_MS)
    yield v
    assert v.stop() == 0, v._log_tail()


def _rig(venue, db_url, tmp_path):
    p = venue.ports
    live = open_live(tmp_path, p.orders, line_a=p.line_a, line_b=p.line_b,
                     retransmit=p.retransmit, rfq=p.rfq,
                     username=f"R{random.randrange(10**5)}")
    platform = Platform(db_url, SECRET, limits=fresh_limits(), webhooks=LOOPBACK_WEBHOOKS,
                        market=live.market, broker=live.broker, rfq_venues=live.rfq)
    assert live.rfq and live.rfq[0].wait_connected(10)
    return live, platform


@pytest.fixture
def rig(long_venue, db_url, tmp_path):
    live, platform = _rig(long_venue, db_url, tmp_path)
    try:
        with TestClient(create_app(platform)) as client:
            yield platform, client, register_login(client, "trader1")
    finally:
        live.close()
        platform.close()


@pytest.fixture
def short_rig(short_venue, db_url, tmp_path):
    live, platform = _rig(short_venue, db_url, tmp_path)
    try:
        with TestClient(create_app(platform)) as client:
            yield platform, client, register_login(client, "trader2")
    finally:
        live.close()
        platform.close()


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def held(client, h) -> list[tuple[int, str]]:
    """(qty, average price) of the caller's position in the symbol, if any."""
    return [(p["qty"], p["avg_price"]) for p in
            client.get("/portfolio/positions", headers=h).json()["positions"]
            if p["symbol"] == SYMBOL]


def past_all(rfq: dict) -> None:
    """Wait until every quote of ``rfq`` has expired (by the host's clock)."""
    last = max(_ts(q["expires_at"]) for q in rfq["quotes"])
    assert wait_for(lambda: datetime.now(last.tzinfo) > last)


def _instants(quote: dict) -> dict:
    return {k: _ts(v) if k.endswith("_at") else v for k, v in quote.items()}


def ask_and_wait(client, h, quantity=100, side=None, quotes=2) -> dict:
    body = {"symbol": SYMBOL, "quantity": quantity, **({"side": side} if side else {})}
    r = client.post("/rfq", headers=h, json=body)
    assert r.status_code == 201, r.text
    rfq = r.json()
    assert rfq["venues"] == [{"venue": "T2TV", "status": "asked", "providers": 2,
                              "reason": None}]
    got = wait_for(lambda: (x := client.get(f"/rfq/{rfq['id']}", headers=h).json())
                   and len(x["quotes"]) >= quotes and x)
    assert got, f"rfq {rfq['id']}: fewer than {quotes} quotes came"
    return got


def test_quotes_stream_over_the_websocket_within_their_ttl(rig):
    _platform, client, h = rig
    with client.websocket_connect("/ws", subprotocols=[BEARER, h["Authorization"][7:]]) as ws:
        assert ws.receive_json()["type"] == "hello"
        sent = time.monotonic()
        rfq = ask_and_wait(client, h, 300, "buy")
        took = time.monotonic() - sent
        streamed = []
        while len(streamed) < 2:
            m = ws.receive_json()
            if m["type"] == "rfq_quote":
                streamed.append(m)
    assert [m["rfq_id"] for m in streamed] == [rfq["id"], rfq["id"]]
    # the same quotes as GET lists (times as instants: the two encode UTC differently)
    assert [_instants(m["quote"]) for m in streamed] == [_instants(q) for q in rfq["quotes"]]
    created = _ts(rfq["created_at"])
    for q in rfq["quotes"]:
        assert q["status"] == "open" and q["bid_size"] == q["ask_size"] == 300
        assert Decimal(q["bid"]) < Decimal(q["ask"])
        received, expires = _ts(q["received_at"]), _ts(q["expires_at"])
        assert (expires - received).total_seconds() * 1000 == pytest.approx(LONG_TTL_MS)
        assert (received - created).total_seconds() * 1000 < LONG_TTL_MS
    assert took * 1000 < LONG_TTL_MS
    assert {q["provider"] for q in rfq["quotes"]} == {"LP1", "LP2"}


def test_an_accept_fills_at_the_quoted_price_and_moves_the_position(rig):
    platform, client, h = rig
    rfq = ask_and_wait(client, h, 200, "buy")
    best = min(rfq["quotes"], key=lambda q: Decimal(q["ask"]))
    r = client.post(f"/rfq/{rfq['id']}/accept", headers=h,
                    json={"quote_id": best["id"], "side": "buy"})
    assert r.status_code == 200, r.text
    fill = r.json()
    assert (fill["price"], fill["qty"], fill["side"]) == (best["ask"], 200, "buy")
    order = fill["order"]
    assert (order["status"], order["filled_qty"], order["avg_fill_price"]) == (
        "filled", 200, best["ask"])
    [execution] = fill["executions"]
    assert (execution["price"], execution["qty"], execution["venue"],
            execution["liquidity"]) == (best["ask"], 200, "T2TV", "removed")
    assert held(client, h) == [(200, best["ask"])]
    got = client.get(f"/rfq/{rfq['id']}", headers=h).json()
    assert got["status"] == "filled"
    assert {q["id"]: q["status"] for q in got["quotes"]}[best["id"]] == "filled"
    # the RFQ traded: its other quote cannot be taken too
    other = next(q for q in rfq["quotes"] if q["id"] != best["id"])
    r = client.post(f"/rfq/{rfq['id']}/accept", headers=h,
                    json={"quote_id": other["id"], "side": "buy"})
    assert r.status_code == 409 and "filled" in r.json()["detail"], r.text
    # the OMS's tables agree with the audit chain and each other
    with platform.sessions() as s:
        assert ledger.problems(s) == []


def test_of_two_accepts_at_once_exactly_one_wins(rig):
    platform, client, h = rig
    rfq = ask_and_wait(client, h, 100)
    quote = rfq["quotes"][0]
    start = threading.Barrier(2)
    answers = []

    def accept():
        start.wait()
        r = client.post(f"/rfq/{rfq['id']}/accept", headers=h,
                        json={"quote_id": quote["id"], "side": "sell"})
        answers.append((r.status_code, r.json()))

    threads = [threading.Thread(target=accept) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    codes = sorted(code for code, _ in answers)
    assert codes == [200, 409], answers
    won = next(body for code, body in answers if code == 200)
    assert won["price"] == quote["bid"]
    assert held(client, h) == [(-100, quote["bid"])]
    orders = client.get("/orders", headers=h).json()
    assert [o["status"] for o in orders["items"]] == ["filled"]


def test_an_expired_quote_is_refused_saying_so(short_rig):
    _platform, client, h = short_rig
    rfq = ask_and_wait(client, h, 100)
    quote = rfq["quotes"][0]
    past_all(rfq)
    r = client.post(f"/rfq/{rfq['id']}/accept", headers=h,
                    json={"quote_id": quote["id"], "side": "buy"})
    assert r.status_code == 410 and "expired" in r.json()["detail"], r.text
    got = client.get(f"/rfq/{rfq['id']}", headers=h).json()
    assert got["status"] == "open"
    assert all(q["status"] == "expired" for q in got["quotes"])
    assert client.get("/orders", headers=h).json()["items"] == []


def test_bad_requests_are_422_and_others_rfqs_are_404(rig):
    platform, client, h = rig
    for body, says in (({"symbol": SYMBOL, "quantity": 0}, "quantity"),
                       ({"symbol": SYMBOL, "quantity": -5}, "quantity"),
                       ({"symbol": "ZZZZ", "quantity": 100}, "unknown symbol 'ZZZZ'"),
                       ({"symbol": SYMBOL, "quantity": 10**8}, "quantity 100000000"),
                       ({"symbol": SYMBOL, "quantity": 5, "side": "short"}, "side")):
        r = client.post("/rfq", headers=h, json=body)
        assert r.status_code == 422 and says in r.text, (body, r.text)
    rfq = ask_and_wait(client, h, 100, "sell")
    quote = rfq["quotes"][0]
    r = client.post(f"/rfq/{rfq['id']}/accept", headers=h,
                    json={"quote_id": quote["id"], "side": "buy"})
    assert r.status_code == 422 and "side sell" in r.json()["detail"]
    r = client.post(f"/rfq/{rfq['id']}/accept", headers=h,
                    json={"quote_id": 10**9, "side": "sell"})
    assert r.status_code == 404
    other = register_login(client, "trader9")
    assert client.get(f"/rfq/{rfq['id']}", headers=other).status_code == 404
    r = client.post(f"/rfq/{rfq['id']}/accept", headers=other,
                    json={"quote_id": quote["id"], "side": "sell"})
    assert r.status_code == 404
    assert client.get(f"/rfq/{10**9}", headers=h).status_code == 404


def test_without_a_venue_that_quotes_an_rfq_is_409(client):
    h = register_login(client, "loner")
    r = client.post("/rfq", headers=h, json={"symbol": SYMBOL, "quantity": 1})
    assert r.status_code == 409 and "no venue takes requests for quote" in r.json()["detail"]


def test_several_venues_are_asked_and_one_that_is_down_is_said_so(long_venue, short_venue,
                                                                  db_url):
    clients = [RfqClient(long_venue.ports.rfq, name="VENUEA").start(),
               RfqClient(short_venue.ports.rfq, name="VENUEB").start(),
               RfqClient(("127.0.0.1", free_port()), name="DOWN").start()]
    platform = Platform(db_url, SECRET, limits=fresh_limits(), rfq_venues=clients)
    try:
        assert clients[0].wait_connected(10) and clients[1].wait_connected(10)
        with TestClient(create_app(platform)) as client:
            h = register_login(client, "trader3")
            r = client.post("/rfq", headers=h, json={"symbol": SYMBOL, "quantity": 50})
            assert r.status_code == 201, r.text
            rfq = r.json()
            answers = {a["venue"]: a for a in rfq["venues"]}
            assert (answers["VENUEA"]["status"], answers["VENUEA"]["providers"]) == (
                "asked", 2)
            assert answers["VENUEB"]["status"] == "asked"
            assert answers["DOWN"]["status"] == "unavailable"
            assert "not connected" in answers["DOWN"]["reason"]
            got = wait_for(lambda: (x := client.get(f"/rfq/{rfq['id']}", headers=h).json())
                           and len(x["quotes"]) == 4 and x)
            assert got and sorted(q["venue"] for q in got["quotes"]) == [
                "VENUEA", "VENUEA", "VENUEB", "VENUEB"]
            quote = next(q for q in got["quotes"] if q["venue"] == "VENUEA")
            r = client.post(f"/rfq/{rfq['id']}/accept", headers=h,
                            json={"quote_id": quote["id"], "side": "sell"})
            assert r.status_code == 200, r.text
            assert r.json()["executions"][0]["venue"] == "VENUEA"
            assert held(client, h) == [(-50, quote["bid"])]
    finally:
        for c in clients:
            c.close()
        platform.close()


def test_a_quote_the_venue_says_has_expired_rejects_the_order_and_reopens_the_rfq(
        short_rig):
    # the host's clock may still hold a quote valid that the venue's has ended: the
    # venue decides, here with the host's expiry pushed an hour out
    platform, client, h = short_rig
    rfq = ask_and_wait(client, h, 100)
    quote = rfq["quotes"][0]
    past_all(rfq)
    with platform.sessions.begin() as s:
        s.get(RfqQuote, quote["id"]).expires_at = utcnow() + timedelta(hours=1)
    r = client.post(f"/rfq/{rfq['id']}/accept", headers=h,
                    json={"quote_id": quote["id"], "side": "buy"})
    assert r.status_code == 410 and "expired at venue T2TV" in r.json()["detail"], r.text
    [order] = client.get("/orders", headers=h).json()["items"]
    assert order["status"] == "rejected" and "expired" in order["reason"]
    got = client.get(f"/rfq/{rfq['id']}", headers=h).json()
    assert got["status"] == "open"
    assert {q["id"]: q["status"] for q in got["quotes"]}[quote["id"]] == "expired"
    assert held(client, h) == []
    with platform.sessions() as s:
        assert ledger.problems(s) == []


def test_an_accept_the_risk_limits_refuse_leaves_the_quote_open(rig):
    platform, client, h = rig
    op = register_login(client, "op1", role="operator", platform=platform)
    r = client.put(f"/risk/limits/{SYMBOL}", headers=op, json={"max_order_qty": 100})
    assert r.status_code == 200, r.text
    rfq = ask_and_wait(client, h, 500)
    quote = rfq["quotes"][0]
    r = client.post(f"/rfq/{rfq['id']}/accept", headers=h,
                    json={"quote_id": quote["id"], "side": "buy"})
    assert r.status_code == 422 and "exceeds max_order_qty 100" in r.json()["detail"], r.text
    got = client.get(f"/rfq/{rfq['id']}", headers=h).json()
    assert got["status"] == "open" and got["quotes"][0]["status"] == "open"
    assert held(client, h) == []


def test_t2t_api_takes_rfqs_from_its_local_venue(tmp_path):
    """``t2t api`` as shipped: its local venue's RFQ port (a free one: --local-ports of
    four) is asked and an accept fills."""
    proc, base = start_api(tmp_path, "--no-history")
    try:
        h = login(base, "trader4")
        r = httpx.post(f"{base}/rfq", headers=h, json={"symbol": "AAPL", "quantity": 10})
        assert r.status_code == 201, r.text
        rfq_id = r.json()["id"]
        got = poll(lambda: (x := httpx.get(f"{base}/rfq/{rfq_id}", headers=h).json())
                   and len(x["quotes"]) == 2 and x)
        quote = got["quotes"][1]
        r = httpx.post(f"{base}/rfq/{rfq_id}/accept", headers=h,
                       json={"quote_id": quote["id"], "side": "buy"})
        assert r.status_code == 200, r.text
        assert r.json()["price"] == quote["ask"]
    finally:
        out = stop_api(proc)
    assert "requests for quote: 127.0.0.1:" in out and "Traceback" not in out, out


def test_an_accept_answered_after_its_caller_gave_up_still_settles(rig):
    platform, client, h = rig
    rfq = ask_and_wait(client, h, 100)
    quote = rfq["quotes"][0]
    platform.rfqs.accept_timeout = 0.0      # nobody waits: the answer comes later
    r = client.post(f"/rfq/{rfq['id']}/accept", headers=h,
                    json={"quote_id": quote["id"], "side": "buy"})
    assert r.status_code == 503 and "settles when it does" in r.json()["detail"], r.text
    got = wait_for(lambda: (x := client.get(f"/rfq/{rfq['id']}", headers=h).json())
                   ["status"] == "filled" and x)
    assert got, "the venue's late fill was never settled"
    [order] = client.get("/orders", headers=h).json()["items"]
    assert (order["status"], order["avg_fill_price"]) == ("filled", quote["ask"])
    assert held(client, h) == [(100, quote["ask"])]
