"""Every order type of the OMS through the API, against the paper broker filling on the
quotes and prints the tests publish; on SQLite and PostgreSQL (the ``client`` fixture).

Stops, stop-limits, trailing stops and icebergs are the OMS's synthetic orders
(``synthetic``), OCO and brackets follow their legs (``contingent``), a modify is
``PATCH /orders/{id}``, and a restart of the platform resumes what was working."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tick2trade.host.api import create_app
from tick2trade.host.services.db import AuditRecord, Order, utcnow
from tick2trade.host.services.platform import Platform

from tests.host.conftest import LOOPBACK_WEBHOOKS, SECRET, SEED, fresh_limits, register_login

T = 10_000


def quote(platform, bid, ask, bid_size=100, ask_size=100, sym="AAPL"):
    platform.market.update(sym, bid=round(bid * T), bid_size=bid_size, ask=round(ask * T),
                           ask_size=ask_size)


def place(client, h, **order):
    r = client.post("/orders", headers=h, json={"symbol": "AAPL", "qty": 10, **order})
    assert r.status_code == 201, r.text
    return r.json()


def get(client, h, order_id):
    return client.get(f"/orders/{order_id}", headers=h).json()


@pytest.fixture
def trader(client):
    return register_login(client, "trader1")


def test_stop_limit_triggers_on_a_falling_market_and_rests_as_a_limit(client, platform, trader):
    quote(platform, 100.0, 100.1)
    o = place(client, trader, side="sell", type="stop_limit", stop_price="99.5", price="99.4")
    assert (o["status"], o["triggered"]) == ("accepted", False)
    quote(platform, 99.6, 99.7)                  # above the stop: held
    assert get(client, trader, o["id"])["triggered"] is False
    quote(platform, 99.3, 99.4)                  # through the stop, under the limit
    o = get(client, trader, o["id"])
    assert (o["triggered"], o["status"], o["filled_qty"]) == (True, "accepted", 0)
    quote(platform, 99.4, 99.5, bid_size=4)      # the limit is reached
    o = get(client, trader, o["id"])
    assert (o["status"], o["filled_qty"], o["avg_fill_price"]) == \
        ("partially_filled", 4, "99.4000")


def test_buy_stop_triggers_on_a_rising_market_only(client, platform, trader):
    quote(platform, 100.0, 100.1)
    o = place(client, trader, side="buy", type="stop", stop_price="101")
    quote(platform, 99.0, 99.1)
    assert get(client, trader, o["id"])["status"] == "accepted"
    quote(platform, 100.9, 101.0)
    o = get(client, trader, o["id"])
    assert (o["status"], o["avg_fill_price"], o["triggered"]) == ("filled", "101.0000", True)


def test_trailing_stop_by_amount_follows_the_bid_up_and_never_loosens(client, platform,
                                                                     trader):
    quote(platform, 100.0, 100.1)
    o = place(client, trader, side="sell", type="trailing_stop", trail_amount="0.5")
    assert get(client, trader, o["id"])["stop_price"] == "99.5000"
    for bid, expected in ((100.4, "99.9000"), (101.0, "100.5000"), (100.6, "100.5000"),
                          (100.8, "100.5000")):
        quote(platform, bid, bid + 0.1)
        o = get(client, trader, o["id"])
        assert (o["stop_price"], o["status"]) == (expected, "accepted")
    quote(platform, 100.5, 100.6, bid_size=50)
    o = get(client, trader, o["id"])
    assert (o["status"], o["avg_fill_price"]) == ("filled", "100.5000")


def test_trailing_stop_by_bps_on_last_trade_ignores_the_quote(client, platform, trader):
    quote(platform, 99.9, 100.0)
    o = place(client, trader, side="buy", type="trailing_stop", trail_bps=100,
              trail_ref="last")
    assert get(client, trader, o["id"])["stop_price"] is None   # no trade yet
    platform.market.trade("AAPL", 100 * T, 5)
    assert get(client, trader, o["id"])["stop_price"] == "101.0000"
    platform.market.trade("AAPL", 98 * T, 5)       # a buy's trail falls with the market
    assert get(client, trader, o["id"])["stop_price"] == "98.9800"
    quote(platform, 99.0, 99.1)                    # the offer crosses it: not its reference
    assert get(client, trader, o["id"])["status"] == "accepted"
    platform.market.trade("AAPL", 99 * T, 5)       # the last trade does
    o = get(client, trader, o["id"])
    assert (o["status"], o["triggered"], o["avg_fill_price"]) == ("filled", True, "99.1000")


@pytest.mark.parametrize("jitter", [0, 7])
def test_iceberg_shows_one_slice_at_a_time(client, platform, trader, jitter):
    rng = random.Random(SEED + jitter)
    platform.broker.rng = random.Random(SEED)
    quote(platform, 99.0, 101.0)
    o = place(client, trader, side="buy", type="iceberg", qty=200, price="100",
              display_qty=30, display_jitter=jitter or None, tif="gtc")
    assert (o["status"], o["display_qty"]) == ("accepted", 30)
    for _ in range(60):
        quote(platform, 99.0, 100.0, ask_size=rng.randint(1, 80))
        if get(client, trader, o["id"])["status"] == "filled":
            break
    o = get(client, trader, o["id"])
    assert (o["status"], o["filled_qty"]) == ("filled", 200), f"seed {SEED}"
    execs = client.get(f"/orders/{o['id']}/executions", headers=trader).json()
    assert sum(e["qty"] for e in execs) == 200
    # no fill ever took more than a slice: what the venue saw was display ± jitter
    assert max(e["qty"] for e in execs) <= 30 + jitter, f"seed {SEED}"
    assert platform.broker.counters["slices"] >= 200 // (30 + jitter)


def test_oco_first_fill_cancels_the_other_leg(client, platform, trader):
    quote(platform, 100.0, 100.1)
    r = client.post("/orders/oco", headers=trader, json={"legs": [
        {"symbol": "AAPL", "side": "sell", "type": "limit", "qty": 10, "price": "101",
         "tif": "gtc"},
        {"symbol": "AAPL", "side": "sell", "type": "stop", "qty": 10, "stop_price": "99",
         "tif": "gtc"}]})
    assert r.status_code == 201, r.text
    tp, sl = r.json()
    assert tp["group_id"] == sl["group_id"] == tp["id"]
    quote(platform, 101.0, 101.1, bid_size=3)     # the take-profit starts to fill
    assert platform.contingent.settle()
    tp, sl = get(client, trader, tp["id"]), get(client, trader, sl["id"])
    assert (tp["status"], tp["filled_qty"]) == ("partially_filled", 3)
    assert sl["status"] == "canceled"
    quote(platform, 98.0, 98.1)                   # the stop would have fired: it is gone
    assert get(client, trader, sl["id"])["filled_qty"] == 0


def test_bracket_places_its_exits_for_what_executed_and_one_cancels_the_other(
        client, platform, trader):
    quote(platform, 100.0, 100.1, ask_size=6)
    entry = place(client, trader, side="buy", type="limit", price="100.1", tif="ioc",
                  take_profit="102", stop_loss="99")
    assert (entry["status"], entry["filled_qty"]) == ("canceled", 6)
    assert platform.contingent.settle()
    orders = client.get("/orders", headers=trader).json()["items"]
    exits = {o["type"]: o for o in orders if o["parent_id"] == entry["id"]}
    assert set(exits) == {"limit", "stop"}
    assert all((o["side"], o["qty"], o["tif"], o["status"]) == ("sell", 6, "gtc", "accepted")
               for o in exits.values())
    assert (exits["limit"]["price"], exits["stop"]["stop_price"]) == ("102.0000", "99.0000")
    quote(platform, 98.9, 99.0)                   # the stop-loss fires
    assert platform.contingent.settle()
    assert get(client, trader, exits["stop"]["id"])["status"] == "filled"
    assert get(client, trader, exits["limit"]["id"])["status"] == "canceled"
    pos = client.get("/portfolio/positions", headers=trader).json()["positions"]
    assert [p["qty"] for p in pos] == [0]


def test_bracket_entry_that_executes_nothing_gets_no_exits(client, platform, trader):
    quote(platform, 100.0, 100.5)
    entry = place(client, trader, side="buy", type="limit", price="100", tif="ioc",
                  take_profit="102", stop_loss="99")
    assert (entry["status"], entry["filled_qty"]) == ("canceled", 0)
    assert platform.contingent.settle()
    assert client.get("/orders", headers=trader).json()["total"] == 1


def test_modify_reports_the_venues_priority_rules(client, platform, trader):
    quote(platform, 100.0, 100.5)
    o = place(client, trader, side="buy", type="limit", price="99", qty=50, tif="gtc")

    def patch(**body):
        return client.patch(f"/orders/{o['id']}", headers=trader, json=body)

    r = patch(qty=40)
    assert r.status_code == 200, r.text
    assert (r.json()["qty"], r.json()["priority"]) == (40, "kept")
    assert patch(qty=45).json()["priority"] == "lost"
    assert patch(stop_price="90").status_code == 422   # a limit has no stop
    r = patch(price="99.5")
    assert (r.json()["price"], r.json()["priority"]) == ("99.5000", "lost")
    quote(platform, 99.0, 99.5, ask_size=10)
    assert get(client, trader, o["id"])["filled_qty"] == 10
    r = patch(qty=10)                             # not above what executed
    assert r.status_code == 422 and "already executed" in r.json()["detail"]
    quote(platform, 99.0, 100.0)
    r = patch(price="100.5")                      # crosses: executes as it lands
    assert r.status_code == 200 and r.json()["status"] == "filled"
    assert patch(qty=60).status_code == 409       # finished
    assert patch().status_code == 422
    with platform.sessions() as s:
        actions = list(s.execute(select(AuditRecord.action).where(
            AuditRecord.subject == f"order:{o['id']}")).scalars())
    assert actions.count("order.modified") == 4
    assert actions.count("order.modify_request") == 4   # the refused ones never got far


def test_modify_of_a_held_stop_changes_its_trigger(client, platform, trader):
    quote(platform, 100.0, 100.1)
    o = place(client, trader, side="sell", type="stop", stop_price="95")
    r = client.patch(f"/orders/{o['id']}", headers=trader, json={"stop_price": "99.5",
                                                                "qty": 4})
    assert r.status_code == 200, r.text
    assert (r.json()["stop_price"], r.json()["qty"], r.json()["priority"]) == \
        ("99.5000", 4, "none")
    quote(platform, 99.5, 99.6)
    o = get(client, trader, o["id"])
    assert (o["status"], o["filled_qty"]) == ("filled", 4)


def test_executions_carry_id_venue_liquidity_and_fee(client, platform, trader):
    quote(platform, 100.0, 100.1, ask_size=5)
    o = place(client, trader, side="buy", type="limit", price="100.1", qty=8)
    quote(platform, 100.0, 100.1, ask_size=5)
    execs = client.get(f"/orders/{o['id']}/executions", headers=trader).json()
    assert [(e["qty"], e["liquidity"], e["venue"], e["fee"]) for e in execs] == \
        [(5, "removed", "PAPER", "0.0000"), (3, "added", "PAPER", "0.0000")]
    assert len({e["exec_id"] for e in execs}) == 2
    other = register_login(client, "trader2")
    assert client.get(f"/orders/{o['id']}/executions", headers=other).status_code == 404


@pytest.mark.parametrize("body, why", [
    ({"type": "iceberg", "price": "10", "display_qty": 11}, "more than the order's qty"),
    ({"type": "iceberg", "price": "10", "display_qty": 5, "display_jitter": 5},
     "display_jitter"),
    ({"type": "iceberg", "price": "10", "display_qty": 5, "tif": "ioc"}, "rests"),
    ({"type": "iceberg", "display_qty": 5}, "needs price"),
    ({"type": "trailing_stop"}, "one of trail_amount or trail_bps"),
    ({"type": "trailing_stop", "trail_amount": "1", "trail_bps": 10}, "one of"),
    ({"type": "trailing_stop", "trail_amount": "0"}, "greater than 0"),
    ({"type": "trailing_stop", "trail_bps": 0}, "greater than 0"),
    ({"type": "trailing_stop", "trail_bps": 10_000}, "less than or equal"),
    ({"type": "trailing_stop", "trail_bps": 10, "price": "9"}, "takes no price"),
    ({"type": "stop_limit", "stop_price": "9"}, "needs price"),
    ({"type": "limit", "price": "10", "display_qty": 5}, "takes no display_qty"),
    ({"type": "limit", "price": "10", "take_profit": "11"}, "both take_profit and stop_loss"),
    ({"type": "limit", "price": "10", "take_profit": "9", "stop_loss": "8"},
     "stop_loss must be below the entry"),
    ({"type": "limit", "price": "10", "take_profit": "11", "stop_loss": "12"},
     "stop_loss must be below its take_profit"),
    ({"type": "limit", "side": "sell", "price": "10", "take_profit": "11",
      "stop_loss": "12"}, "take_profit must be below the entry"),
    ({"type": "market", "take_profit": "99", "stop_loss": "98"}, "below the entry"),
    ({"type": "stop", "stop_price": "9", "take_profit": "11", "stop_loss": "8"},
     "takes no stop_loss"),
])
def test_bad_combinations_are_422_with_a_reason(client, platform, trader, body, why):
    quote(platform, 100.0, 100.1)
    r = client.post("/orders", headers=trader, json={"symbol": "AAPL", "side": "buy",
                                                     "qty": 10, **body})
    assert r.status_code == 422, r.text
    assert why in r.text, r.text
    assert client.get("/orders", headers=trader).json()["total"] == 0


@pytest.mark.parametrize("legs, why", [
    ([{"symbol": "AAPL"}, {"symbol": "MSFT"}], "on one symbol"),
    ([{}, {"type": "market", "price": None}], "executes at once"),
    ([{}, {"take_profit": "12", "stop_loss": "8"}], "bracket"),
    ([{}], "at least 2"),
])
def test_bad_oco_groups_are_422(client, trader, legs, why):
    base = {"symbol": "AAPL", "side": "sell", "type": "limit", "qty": 5, "price": "10"}
    body = {"legs": [{k: v for k, v in {**base, **leg}.items() if v is not None}
                     for leg in legs]}
    r = client.post("/orders/oco", headers=trader, json=body)
    assert r.status_code == 422 and why in r.text, r.text
    assert client.get("/orders", headers=trader).json()["total"] == 0


def test_a_restart_resumes_every_working_order(db_url):
    def start():
        p = Platform(db_url, SECRET, limits=fresh_limits(), webhooks=LOOPBACK_WEBHOOKS)
        return p, TestClient(create_app(p))

    p, c = start()
    with c:
        h = register_login(c, "trader1")
        quote(p, 100.0, 100.1)
        stop = place(c, h, side="sell", type="stop", stop_price="98", tif="gtc")
        trail = place(c, h, side="sell", type="trailing_stop", trail_amount="1", tif="gtc")
        quote(p, 102.0, 102.1)                    # the trail moves up to 101
        ice = place(c, h, symbol="MSFT", side="buy", type="iceberg", qty=50, price="100",
                    display_qty=20, tif="gtc")
        # 20 of the first slice and 5 of a second
        quote(p, 99.0, 100.0, ask_size=25, sym="MSFT")
        limit = place(c, h, side="buy", type="limit", price="90", tif="gtc")
        old_day = place(c, h, side="buy", type="limit", price="90")
        today = place(c, h, side="buy", type="stop_limit", stop_price="120", price="121")
        with p.engine.begin() as conn:            # placed yesterday: its session is over
            conn.execute(update(Order).where(Order.id == old_day["id"]).values(
                created_at=utcnow() - timedelta(days=1)))
        assert get(c, h, ice["id"])["filled_qty"] == 25
        assert get(c, h, trail["id"])["stop_price"] == "101.0000"
    p.close()

    p, c = start()
    with c:
        r = c.post("/auth/login", json={"username": "trader1",
                                        "password": "correct horse battery"})
        h = {"Authorization": f"Bearer {r.json()['access_token']}"}
        counts = p.orders.resume(resubmit=True)
        assert counts == {"armed": 4, "resubmitted": 1, "expired": 1}
        assert get(c, h, old_day["id"])["status"] == "canceled"
        quote(p, 100.6, 100.7)                    # above the stop, under the trail's 101
        assert get(c, h, trail["id"])["status"] == "filled"      # not loosened to 99.6
        assert get(c, h, stop["id"])["status"] == "accepted"
        quote(p, 97.0, 100.0)                     # the stop fires
        quote(p, 99.0, 100.0, ask_size=40, sym="MSFT")   # the iceberg goes on
        for order, status, filled in ((stop, "filled", 10), (ice, "filled", 50),
                                      (today, "accepted", 0), (limit, "accepted", 0)):
            o = get(c, h, order["id"])
            assert (o["status"], o["filled_qty"]) == (status, filled), o
        quote(p, 89.0, 90.0)                      # the GTC limit is working again
        assert get(c, h, limit["id"])["status"] == "filled"
        quote(p, 121.0, 121.0)
        assert get(c, h, today["id"])["status"] == "filled"
    p.close()


def test_oco_legs_that_fill_on_the_same_quote_both_keep_their_fills(client, platform, trader):
    quote(platform, 100.0, 100.1)
    r = client.post("/orders/oco", headers=trader, json={"legs": [
        {"symbol": "AAPL", "side": "sell", "type": "limit", "qty": 5, "price": "101"},
        {"symbol": "AAPL", "side": "buy", "type": "limit", "qty": 5, "price": "99"}]})
    sell, buy = r.json()
    quote(platform, 101.0, 99.0)        # a crossed touch (two venues' worth) fills both
    assert platform.contingent.settle()
    sell, buy = get(client, trader, sell["id"]), get(client, trader, buy["id"])
    assert (sell["status"], buy["status"]) == ("filled", "filled")
    pos = client.get("/portfolio/positions", headers=trader).json()["positions"]
    assert [(p["qty"], p["realized"]) for p in pos] == [(0, "10.0000")]


@pytest.mark.parametrize("offset", range(3))
def test_cancel_racing_iceberg_fills_loses_nothing(client, platform, trader, offset):
    import threading

    rng = random.Random(SEED + offset)
    quote(platform, 99.0, 101.0)
    o = place(client, trader, side="buy", type="iceberg", qty=1_000, price="100",
              display_qty=rng.randrange(5, 50), tif="gtc")
    go = threading.Event()

    def market():
        go.wait()
        for _ in range(200):
            quote(platform, 99.0, 100.0, ask_size=rng.randint(1, 40))

    feeder = threading.Thread(target=market)
    feeder.start()
    go.set()
    r = client.delete(f"/orders/{o['id']}", headers=trader)
    feeder.join()
    assert r.status_code in (200, 409), r.text
    o = get(client, trader, o["id"])
    execs = client.get(f"/orders/{o['id']}/executions", headers=trader).json()
    assert o["status"] in ("canceled", "filled"), f"seed {SEED}"
    assert sum(e["qty"] for e in execs) == o["filled_qty"], f"seed {SEED}"
    # nothing of it works anywhere any more: no slice at the paper broker, none held
    assert o["id"] not in platform.broker.inner.resting()
    quote(platform, 99.0, 100.0, ask_size=1_000)
    assert get(client, trader, o["id"])["filled_qty"] == o["filled_qty"], f"seed {SEED}"
