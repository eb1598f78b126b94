"""Order types and modifies against the venue simulator (a child process, over OUCH on
SoupBinTCP, its ITCH feed read back into the market data): what the venue's book shows
is the venue's word, not the OMS's. On SQLite and PostgreSQL."""

from __future__ import annotations

import random

import pytest
from fastapi.testclient import TestClient

from tick2trade.host.api import create_app
from tick2trade.host.services.live import open_live
from tick2trade.host.services.money import px
from tick2trade.host.services.platform import Platform

from tests.host.conftest import (LOOPBACK_WEBHOOKS, SECRET, SEED, fresh_limits, register_login,
                                 wait_for)

SYMBOL = "MSFT"


@pytest.fixture
def rig(venue, db_url, tmp_path):
    p = venue.ports
    live = open_live(tmp_path, p.orders, line_a=p.line_a, line_b=p.line_b,
                     retransmit=p.retransmit, username=f"O{random.randrange(10**5)}")
    platform = Platform(db_url, SECRET, limits=fresh_limits(), webhooks=LOOPBACK_WEBHOOKS,
                        market=live.market, broker=live.broker)
    try:
        assert live.broker.wait_connected(10)
        assert wait_for(lambda: (q := live.market.quote(SYMBOL)) and q.bid and q.ask)
        with TestClient(create_app(platform)) as client:
            yield platform, client, register_login(client, "trader1")
    finally:
        live.close()
        platform.close()


def level(platform, side: str, price: int) -> int:
    """Shares the venue's feed shows at ``price`` on ``side``."""
    view = platform.market.book_view(SYMBOL)
    return next((x.size for x in (view.bids if side == "bid" else view.asks)
                 if x.price == price), 0)


def far_below(platform, rng) -> int:
    """A bid price no one else uses: well under the market, whole cents (the venue's
    flow may empty the bid side for a moment: the next bid it shows)."""
    bids = []
    assert wait_for(lambda: bids.append(platform.market.quote(SYMBOL).bid) or bids[-1])
    return (bids[-1] // 2 // 100 - rng.randrange(1, 500)) * 100


def test_an_iceberg_shows_one_slice_and_a_replace_keeps_or_loses_priority(rig):
    platform, client, h = rig
    rng = random.Random(SEED)
    price = far_below(platform, rng)
    r = client.post("/orders", headers=h, json={
        "symbol": SYMBOL, "side": "buy", "type": "iceberg", "qty": 500, "price": px(price),
        "display_qty": 100, "tif": "day"})
    assert r.status_code == 201, r.text
    o = r.json()
    assert wait_for(lambda: level(platform, "bid", price) == 100), f"seed {SEED}"
    # the iceberg's live slice is at the venue: a smaller slice keeps its place
    r = client.patch(f"/orders/{o['id']}", headers=h, json={"qty": 150})
    assert r.status_code == 200, r.text
    assert (r.json()["qty"], r.json()["priority"]) == (150, "kept")
    r = client.patch(f"/orders/{o['id']}", headers=h, json={"price": px(price - 100)})
    assert (r.json()["price"], r.json()["priority"]) == (px(price - 100), "lost")
    assert wait_for(lambda: level(platform, "bid", price - 100) == 100
                    and level(platform, "bid", price) == 0), f"seed {SEED}"
    r = client.delete(f"/orders/{o['id']}", headers=h)
    # the cancel is on its way to the venue (202, still open), or the venue's answer on
    # loopback was back before the response was read (200, canceled)
    assert (r.status_code, r.json()["status"] == "canceled") in ((202, False), (200, True)), \
        r.text
    assert wait_for(lambda: client.get(f"/orders/{o['id']}", headers=h).json()["status"]
                    == "canceled")
    assert wait_for(lambda: level(platform, "bid", price - 100) == 0)


def test_a_limit_replace_at_the_venue_and_a_refused_one(rig):
    platform, client, h = rig
    rng = random.Random(SEED + 1)
    price = far_below(platform, rng)
    o = client.post("/orders", headers=h, json={
        "symbol": SYMBOL, "side": "buy", "type": "limit", "qty": 300, "price": px(price),
        "tif": "gtc"}).json()
    assert wait_for(lambda: client.get(f"/orders/{o['id']}", headers=h).json()["status"]
                    == "accepted")
    r = client.patch(f"/orders/{o['id']}", headers=h, json={"qty": 200})
    assert r.json()["priority"] == "kept"
    assert wait_for(lambda: level(platform, "bid", price) == 200)
    r = client.patch(f"/orders/{o['id']}", headers=h, json={"qty": 400})
    assert r.json()["priority"] == "lost"
    r = client.patch(f"/orders/{o['id']}", headers=h, json={"price": px(price + 1)})
    assert r.status_code == 409 and "price" in r.json()["detail"]    # off the venue's tick
    got = client.get(f"/orders/{o['id']}", headers=h).json()
    assert (got["qty"], got["price"], got["status"]) == (400, px(price), "accepted")
    assert wait_for(lambda: level(platform, "bid", price) == 400)
    client.delete(f"/orders/{o['id']}", headers=h)


def test_a_triggered_stop_limit_is_released_to_the_venue(rig):
    platform, client, h = rig
    bid = platform.market.quote(SYMBOL).bid
    price = (bid * 3 // 2 // 100) * 100             # far above: it rests once released
    o = client.post("/orders", headers=h, json={
        "symbol": SYMBOL, "side": "sell", "type": "stop_limit", "qty": 100,
        "stop_price": px(bid * 2), "price": px(price)}).json()   # the bid is under the stop
    assert wait_for(lambda: level(platform, "ask", price) == 100)
    got = client.get(f"/orders/{o['id']}", headers=h).json()
    assert (got["triggered"], got["status"]) == (True, "accepted")
    client.delete(f"/orders/{o['id']}", headers=h)


def test_executions_at_the_venue_carry_the_liquidity_flag_and_the_fee(rig):
    _platform, client, h = rig
    for _ in range(50):
        o = client.post("/orders", headers=h, json={
            "symbol": SYMBOL, "side": "buy", "type": "market", "qty": 10}).json()
        o = wait_for(lambda o=o: (x := client.get(f"/orders/{o['id']}", headers=h).json())
                     ["status"] in ("filled", "canceled", "rejected") and x)
        if o["filled_qty"]:
            break
        time.sleep(0.1)
    execs = client.get(f"/orders/{o['id']}/executions", headers=h).json()
    assert sum(e["qty"] for e in execs) == o["filled_qty"] > 0
    for e in execs:
        assert (e["venue"], e["liquidity"]) == ("T2TV", "removed")
        assert e["fee"] == px(30 * e["qty"])        # the taker's $0.0030 a share
