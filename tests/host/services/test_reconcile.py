"""Open orders across a restart of the platform (issue 25, item 14): the start puts the
resting orders back to work at the paper broker (``Orders.resume``) and they keep
trading; a cancel or a kill switch says what it actually did."""

from __future__ import annotations

import random

from fastapi.testclient import TestClient
from sqlalchemy import select

from tick2trade.host.api import create_app
from tick2trade.host.services import ledger
from tick2trade.host.services.db import Order
from tick2trade.host.services.marketdata import MarketData
from tick2trade.host.services.orders import NOT_AT_BROKER
from tick2trade.host.services.paper import PaperBroker
from tick2trade.host.services.platform import Platform
from tick2trade.host.services.status import OPEN

from tests.host.conftest import LOOPBACK_WEBHOOKS, SECRET, SEED, fresh_limits, register_login

T = 10_000


def _platform(db_url, **kw) -> Platform:
    return Platform(db_url, SECRET, limits=fresh_limits(), webhooks=LOOPBACK_WEBHOOKS, **kw)


def _quote(p, bid, ask, size=1_000):
    p.market.update("AAPL", bid=bid, bid_size=size, ask=ask, ask_size=size)


def _login(c, p, name="trader1", role=None):
    r = c.post("/auth/login", json={"username": name, "password": "correct horse battery"})
    if r.status_code != 200:
        return register_login(c, name, role, p)
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _resting(c, h, rng, n):
    """``n`` resting buys below a 100.00 bid, a stop among them; their ids."""
    ids = []
    for i in range(n):
        body = {"symbol": "AAPL", "side": "buy", "qty": rng.randint(1, 50), "tif": "gtc",
                "type": "limit", "price": str(round(rng.uniform(90, 99.9), 2))}
        if i % 7 == 3:
            body = {**body, "type": "stop", "tif": "day", "stop_price": "101", "price": None}
            del body["price"]
        r = c.post("/orders", headers=h, json=body)
        assert r.status_code == 201 and r.json()["status"] == "accepted", r.text
        ids.append(r.json()["id"])
    return ids


def _statuses(p, ids):
    with p.sessions() as s:
        return {o.id: (o.status, o.filled_qty, o.reason)
                for o in s.execute(select(Order).where(Order.id.in_(ids))).scalars()}


def test_resting_paper_orders_keep_working_after_a_restart(db_url):
    rng = random.Random(SEED)
    first = _platform(db_url)
    with TestClient(create_app(first)) as c:
        h = _login(c, first)
        _quote(first, 100 * T, 100 * T + 1_000)
        ids = _resting(c, h, rng, rng.randint(8, 20))
    first.close()

    again = _platform(db_url)
    try:
        # what t2t api does at a start with the paper broker (it starts empty)
        counts = again.orders.resume(resubmit=True)
        stops = sum(1 for i in range(len(ids)) if i % 7 == 3)
        assert counts == {k: v for k, v in (("resubmitted", len(ids) - stops),
                                            ("armed", stops)) if v}
        # the market falls through every limit and rises through the stop: all fill
        _quote(again, 80 * T, 80 * T + 100)
        _quote(again, 102 * T, 102 * T + 100)
        got = _statuses(again, ids)
        assert {s for s, _f, _r in got.values()} == {"filled"}, got
        with again.sessions() as s:
            assert ledger.problems(s) == []
    finally:
        again.close()


def test_cancel_and_kill_switch_after_a_restart_say_what_happened(db_url):
    rng = random.Random(SEED ^ 1)
    first = _platform(db_url)
    with TestClient(create_app(first)) as c:
        h = _login(c, first)
        _login(c, first, "op1", "operator")
        _quote(first, 100 * T, 100 * T + 1_000)
        ids = _resting(c, h, rng, rng.randint(4, 10))
    first.close()

    # a paper broker handed in from outside starts empty and is not given the orders
    # back: the store has them open, nothing works them
    market = MarketData()
    again = _platform(db_url, broker=PaperBroker(market), market=market)
    try:
        with TestClient(create_app(again)) as c:
            h, op = _login(c, again), _login(c, again, "op1")
            r = c.delete(f"/orders/{ids[0]}", headers=h)
            assert r.status_code == 200, r.text
            assert (r.json()["status"], r.json()["reason"]) == ("canceled", NOT_AT_BROKER)
            r = c.put("/operator/kill-switch", headers=op, json={"engaged": True})
            assert r.json() == {"engaged": True, "orders_canceled": len(ids) - 1,
                                "orders_cancel_pending": 0, "orders_cancel_failed": 0,
                                "device": "not attached"}
            assert all(s == "canceled" for s, _f, _r in _statuses(again, ids).values())
            with again.sessions() as s:
                assert s.scalar(select(Order.id).where(Order.status.in_(OPEN))) is None
                assert ledger.problems(s) == []
    finally:
        again.close()


class SilentBroker:
    """A venue that accepts at once and answers cancels later (never, here)."""

    def attach(self, events):
        self.events, self.cancels = events, []

    def submit(self, ticket):
        self.events.on_accepted(ticket.order_id)

    def cancel(self, order_id):
        self.cancels.append(order_id)


def test_kill_switch_counts_cancels_still_on_their_way_apart(db_url):
    broker = SilentBroker()
    p = _platform(db_url, broker=broker)
    try:
        with TestClient(create_app(p)) as c:
            h, op = _login(c, p), _login(c, p, "op1", "operator")
            ids = [c.post("/orders", headers=h, json={
                "symbol": "AAPL", "side": "sell", "type": "limit", "qty": 5, "tif": "gtc",
                "price": f"{101 + i}"}).json()["id"] for i in range(3)]
            r = c.put("/operator/kill-switch", headers=op, json={"engaged": True})
            assert (r.json()["orders_canceled"], r.json()["orders_cancel_pending"]) == (0, 3)
            assert broker.cancels == ids
            r = c.delete(f"/orders/{ids[0]}", headers=h)
            assert r.status_code == 202 and r.json()["status"] == "accepted"
            broker.events.on_canceled(ids[0], "user requested")
            assert c.get(f"/orders/{ids[0]}", headers=h).json()["status"] == "canceled"
    finally:
        p.close()
