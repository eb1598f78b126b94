"""API orders through the FPGA: HTTP (the ASGI app) → OMS → ``EngineBroker`` →
``strategy.inject`` → risk gate → OUCH → venue → answers parsed on-chip → engine →
OMS. The golden models stand in for the FPGA (``ModelFpga``), in the loop ``t2t run``
drives, with the demo configuration's strategy trading alongside."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tick2trade.sim.cli.run import loop_config
from tick2trade.host.config import ConfigError, load, parse
from tick2trade.host.engine import CLIENT_TAGS, HOST_TAG
from tick2trade.host.engine_broker import EngineBroker
from tick2trade.host.engine_db import EngineStore
from tick2trade.host.engine_device import EngineDevice
from tick2trade.host.services import db
from tick2trade.host.api import create_app
from tick2trade.host.services.money import px
from tick2trade.host.services.platform import Platform
from tick2trade.sim.loop import Loop
from tick2trade.sim.modelfpga import ModelFpga
from tick2trade.sim.topsim import top_map
from tests.host.conftest import SECRET, fresh_limits, register_login

DEMO = Path(__file__).resolve().parents[2] / "docs" / "demo.toml"
SYMBOLS = 8
SYMBOL = "BTC-USD"  # the demo's one symbol without a trigger: the gate's position is ours


@dataclass
class Rig:
    loop: Loop
    broker: EngineBroker
    platform: Platform
    client: TestClient
    trader: dict
    store: EngineStore

    def step(self, n: int = 1) -> None:
        """``n`` iterations, each after the broker's pump (injections see the gate's
        state the test saw)."""
        for _ in range(n):
            self.broker.pump(self.loop.now)
            self.loop.step()
        self.broker.pump(self.loop.now)
        self.broker.settle()

    def place(self, **order) -> dict:
        r = self.client.post("/orders", headers=self.trader,
                             json={"symbol": SYMBOL, "side": "buy", "type": "limit", **order})
        assert r.status_code == 201, r.text
        return r.json()

    def operator(self, method: str, path: str, headers: dict, **kw):
        """A request whose handler waits for the loop's thread (the device's): sent from
        another thread while this one pumps, as t2t run's loop does between iterations
        (the loop itself stands still meanwhile)."""
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(self.client.request, method, path, headers=headers, **kw)
            while not answer.done():
                self.broker.pump(self.loop.now)
                time.sleep(0.001)
            return answer.result()

    def order(self, order_id: int) -> dict:
        return self.client.get(f"/orders/{order_id}", headers=self.trader).json()

    def until(self, order_id: int, statuses: tuple[str, ...], steps: int = 40) -> dict:
        for _ in range(steps):
            o = self.order(order_id)
            if o["status"] in statuses:
                return o
            self.step()
        raise AssertionError(f"order {order_id} still {o['status']} after {steps} steps")

    def venue_fills(self) -> list[tuple[int, int]]:
        """(quantity, price) of the venue's Executed messages for orders in ``SYMBOL``
        (only the API's trade it): the venue's word, not the engine's."""
        ours = {m["user_ref"] for kind, _c, m in self.loop.wire
                if kind == "sent" and m["type"] == "O" and m["symbol"] == SYMBOL}
        return [(m["quantity"], m["price"]) for kind, _c, m in self.loop.wire
                if kind == "answer" and m["type"] == "E" and m["user_ref"] in ours]


@pytest.fixture(scope="module")
def regmap():
    return top_map(64, SYMBOLS, 64)


@pytest.fixture
def rig(regmap, tmp_path):
    cfg = load(DEMO, symbols=SYMBOLS)
    fpga = ModelFpga(cfg, regmap, SYMBOLS)
    loop = Loop(fpga, fpga, cfg, loop_config(seed=3, rate=200_000.0, flatten_at=500))
    broker = EngineBroker(loop.engine, cfg.limits())
    platform = Platform(f"sqlite:///{tmp_path / 't2t.db'}", SECRET, broker=broker,
                        device=EngineDevice(broker, loop), limits=fresh_limits())
    store = EngineStore(platform.engine)
    broker.fpga_orders = store.user_ref
    with TestClient(create_app(platform)) as client:
        r = Rig(loop, broker, platform, client, register_login(client, "trader1"), store)
        # the venue's book fills in (a few levels a side), the FPGA's with it, and the
        # gate has a reference price (the mid) for the collar
        r.step(300)
        market = fpga.strategy.market[cfg.watch.index(SYMBOL)]
        while market.bid is None or market.ask is None:
            r.step()
        yield r
    platform.close()


def touch(rig: Rig) -> tuple[int, int]:
    book = rig.loop.venue.engine.books[SYMBOL]
    return book.best_bid(), book.best_ask()


def test_api_order_fills_through_the_fpga(rig):
    _bid, ask = touch(rig)
    limit = ask + 2_000_000  # 200.00 through the offer (the book moves before the order
    # reaches it), inside the gate's 1% collar
    o = rig.place(qty=2, price=px(limit), tif="ioc")
    assert o["status"] == "pending"
    o = rig.until(o["id"], ("filled", "canceled", "rejected"))
    fills = rig.venue_fills()
    assert o["status"] == "filled", o["reason"]
    assert sum(q for q, _p in fills) == o["filled_qty"] == 2
    cost = sum(q * p for q, p in fills)
    assert all(p <= limit for _q, p in fills)
    assert o["avg_fill_price"] == px(cost // 2)
    with rig.platform.sessions() as s:
        row = s.get(db.Order, o["id"])
        assert (row.status, row.filled_qty, row.filled_notional) == ("filled", 2, cost)
        execs = s.scalars(select(db.Execution).where(db.Execution.order_id == o["id"])).all()
        assert sorted((e.qty, e.price) for e in execs) == sorted(fills)
    pos = rig.client.get("/portfolio/positions", headers=rig.trader).json()["positions"]
    assert [(p["symbol"], p["qty"], p["avg_price"]) for p in pos] == \
        [(SYMBOL, 2, px(cost // 2))]
    # the order went through the gate as a host injection with a client tag
    eng = rig.loop.engine
    ours = [x for x in eng.orders.values() if x.client]
    assert len(ours) == 1 and ours[0].tag in CLIENT_TAGS and ours[0].tif == "3"
    assert eng.counters["host_refused_max_shares"] == 0
    assert SYMBOL not in eng.positions  # the user's position, not the FPGA account's
    assert rig.broker.counts["injected"] == 1 and rig.broker.counts["fills"] == len(fills)


def test_gate_refusal_comes_back_with_the_check(rig):
    bid, _ask = touch(rig)
    o = rig.place(qty=600, price=px(bid))  # the demo's gate takes at most 500 shares
    o = rig.until(o["id"], ("rejected", "accepted", "filled"))
    assert o["status"] == "rejected"
    assert o["reason"] == ("FPGA risk gate: max_shares: quantity above the gate's maximum "
                           "of 500 shares")
    eng = rig.loop.engine
    assert eng.counters["host_refused_max_shares"] == 1
    assert not [x for x in eng.orders.values() if x.client]  # nothing left the FPGA
    assert rig.broker.counts["refused_by_gate"] == 1 and rig.broker.in_flight() == 0


def test_cancel_of_a_resting_limit_order(rig):
    bid, _ask = touch(rig)
    o = rig.place(qty=3, price=px(bid - 2_000_000), tif="gtc")  # 200 below, in the collar
    o = rig.until(o["id"], ("accepted", "rejected"))
    assert o["status"] == "accepted", o["reason"]
    rig.step(100)  # longer than the host's stale-order policy: a user's order stays
    assert rig.order(o["id"])["status"] == "accepted"
    r = rig.client.delete(f"/orders/{o['id']}", headers=rig.trader)
    assert r.status_code == 202, r.text  # on its way: the venue answers at a pump
    o = rig.until(o["id"], ("canceled",))
    assert (o["reason"], o["filled_qty"]) == ("canceled by the venue: user requested", 0)
    eng = rig.loop.engine
    [ours] = [x for x in eng.orders.values() if x.client]
    assert (ours.state, ours.canceled, ours.cancel_sent) == ("canceled", 3, True)
    assert rig.loop.fpga.risk.state[eng.sym_of[SYMBOL]].open_buy == 0


def test_orders_the_gate_cannot_take_are_rejected_with_why(rig):
    r = rig.client.post("/orders", headers=rig.trader, json={
        "symbol": "GOOG", "side": "buy", "type": "limit", "qty": 1, "price": "100"})
    assert r.status_code == 201 and r.json()["status"] == "rejected"
    assert r.json()["reason"].startswith("GOOG is not traded by this FPGA build "
                                         "(its watch list: AAPL, MSFT, BTC-USD,")
    assert rig.broker.counts["rejected_here"] == 1 and rig.broker.counts["injected"] == 0


def test_a_stop_waits_in_the_oms_and_goes_through_the_gate_when_triggered(rig):
    _bid, ask = touch(rig)
    stop = ask + 5_000_000
    o = rig.place(type="stop", qty=1, stop_price=px(stop))
    assert o["status"] == "accepted" and not o["triggered"]
    rig.step(5)
    assert rig.broker.counts["injected"] == 0     # held by the OMS, nothing at the FPGA
    # the platform's market reaches the stop (under t2t run --api the FPGA's book feeds
    # it; here the test does)
    rig.platform.market.update(SYMBOL, bid=stop - 100, bid_size=5, ask=stop, ask_size=5)
    o = rig.until(o["id"], ("filled", "canceled", "rejected"))
    assert o["triggered"] and rig.broker.counts["injected"] == 1
    [ours] = [x for x in rig.loop.engine.orders.values() if x.client]
    assert ours.tif == "3"          # released as a market order: an IOC at the touch
    assert o["status"] == "filled", o["reason"]
    execs = rig.client.get(f"/orders/{o['id']}/executions", headers=rig.trader).json()
    assert [e["venue"] for e in execs] == ["T2TV"] * len(execs)
    assert sum(e["qty"] for e in execs) == 1 and execs[0]["liquidity"] == "removed"


def test_market_order_goes_as_ioc_at_the_touch(rig):
    seen = rig.loop.engine.book(SYMBOL).ask  # what the broker prices it at (next pump)
    o = rig.place(type="market", qty=1)
    o = rig.until(o["id"], ("filled", "canceled", "rejected"))
    [ours] = [x for x in rig.loop.engine.orders.values() if x.client]
    assert (ours.price, ours.tif, ours.qty) == (seen, "3", 1)
    fills = rig.venue_fills()
    assert o["status"] == "filled", o["reason"]
    assert o["filled_qty"] == sum(q for q, _p in fills) == 1
    assert o["avg_fill_price"] == px(fills[0][1]) and fills[0][1] <= seen


@pytest.mark.parametrize("tag", [HOST_TAG, CLIENT_TAGS.start, CLIENT_TAGS.stop - 1])
def test_a_trigger_may_not_use_the_hosts_tags(tag):
    """A strategy order with a client tag would be taken for a user's order."""
    text = DEMO.read_text().replace('tif = "ioc"', f'tif = "ioc"\ntag = {tag}', 1)
    with pytest.raises(ConfigError, match=rf"trigger\[0\]\.tag: {tag:#06x} is the host's"):
        parse(text, symbols=SYMBOLS)
    assert parse(text.replace(f"tag = {tag}", "tag = 7"), symbols=SYMBOLS).triggers[0].tag == 7


def test_cancel_of_an_order_still_on_its_way_waits_for_its_enter(rig):
    bid, _ask = touch(rig)
    o = rig.place(qty=3, price=px(bid - 2_000_000), tif="day")
    r = rig.client.delete(f"/orders/{o['id']}", headers=rig.trader)  # before any pump
    assert r.status_code == 202 and r.json()["status"] == "pending"
    o = rig.until(o["id"], ("canceled",))
    assert o["reason"] == "canceled by the venue: user requested"
    [ours] = [u for u, x in rig.loop.engine.orders.items() if x.client]
    sent = [m["type"] for kind, _c, m in rig.loop.wire
            if kind == "sent" and m["user_ref"] == ours]
    assert sent == ["O", "X"]  # the Enter, then its Cancel: both through the FPGA


def test_an_injection_nothing_is_heard_of_times_out(rig, monkeypatch):
    """The last resort: the gate refused it, and its decision record was lost."""
    monkeypatch.setattr(rig.loop.fpga, "drain_fifo", lambda name: [])
    rig.broker.timeout = 10_000
    bid, _ask = touch(rig)
    o = rig.place(qty=600, price=px(bid))
    rig.step(3)
    assert rig.order(o["id"])["status"] == "pending"  # 6,144 cycles: not yet
    o = rig.until(o["id"], ("rejected",), steps=5)
    assert o["reason"].startswith("no word from the FPGA within 10,000 cycles")
    assert rig.broker.counts["timed_out"] == 1 and rig.broker.in_flight() == 0


def test_closing_cancels_what_is_open(rig):
    bid, _ask = touch(rig)
    resting = rig.place(qty=3, price=px(bid - 2_000_000), tif="gtc")
    rig.until(resting["id"], ("accepted",))
    unsent = rig.place(qty=1, price=px(bid - 2_000_000))
    rig.broker.close()
    assert rig.order(resting["id"])["status"] == "canceled"
    assert rig.order(resting["id"])["reason"].startswith("t2t run ended")
    assert (rig.order(unsent["id"])["status"], rig.order(unsent["id"])["reason"]) == \
        ("rejected", "t2t run ended before it was sent")


def test_kill_switch_reaches_the_fpga(rig):
    """Under t2t run --api the operator's kill switch also sets the gate's: no Enter
    leaves, the user's and the strategy's open orders are canceled through the gate."""
    eng, fpga = rig.loop.engine, rig.loop.fpga
    op = register_login(rig.client, "op1", "operator", rig.platform)
    bid, _ask = touch(rig)
    resting = rig.until(rig.place(qty=3, price=px(bid - 2_000_000), tif="gtc")["id"],
                        ("accepted",))
    rig.store.sync(eng)
    with rig.platform.sessions() as s:
        fpga_rows = {o.id: rig.store.user_ref(o.id) for o in s.scalars(
            select(db.Order).where(db.Order.user_id == rig.store.user_id,
                                   db.Order.status.in_(("pending", "accepted",
                                                        "partially_filled"))))}
    rig.step(20)  # the strategy sends more, which the database does not know yet
    fpga_open = [o for o in eng.orders.values() if not o.client and o.state not in
                 ("filled", "canceled", "rejected")]
    r = rig.operator("PUT", "/operator/kill-switch", op, json={"engaged": True})
    # the cancels go through the gate at the loop's next pump: none is closed yet
    assert r.json() == {"engaged": True, "orders_canceled": 0,
                        "orders_cancel_pending": 1 + len(fpga_rows),
                        "orders_cancel_failed": 0, "device": "set"}
    assert fpga.risk.limits.kill and rig.loop.cfg.risk["limits.kill"] == 1
    killed_at = len(rig.loop.wire)
    o = rig.until(resting["id"], ("canceled",))
    assert o["reason"] == "canceled by the venue: user requested"
    rig.step(30)
    rig.store.sync(eng)
    assert [m for kind, _c, m in rig.loop.wire[killed_at:]
            if kind == "sent" and m["type"] == "O"] == []
    # every order of the FPGA account's open at the kill ended; a Cancel went through
    # the gate for each resting (day) one, known to the database or not (the venue
    # cancels IOCs itself)
    assert {o.state for o in fpga_open} <= {"canceled", "filled"}
    day = [o for o in fpga_open if o.tif == "0"]
    assert len(day) > len([o for o in day if o.user_ref in fpga_rows.values()]) > 0
    assert all(o.cancel_sent for o in day)
    with rig.platform.sessions() as s:
        assert {s.get(db.Order, i).status for i in fpga_rows} <= {"canceled", "filled"}
        # their end is the engine's word (written by the store), not a broker's guess
        assert s.scalars(select(db.AuditRecord.subject).where(
            db.AuditRecord.actor == "broker",
            db.AuditRecord.subject.in_([f"order:{i}" for i in fpga_rows]))).all() == []
    device = rig.operator("GET", "/operator/device", op).json()
    assert (device["killed"], device["kill_causes"], device["open_orders"]) == \
        (True, ["host"], 0)
    counters = rig.operator("GET", "/operator/counters", op).json()
    assert counters["risk"]["kill"] == fpga.risk.counters["kill"]
    assert counters["risk"]["cancels"] == fpga.risk.counters["cancels"] >= 1 + len(fpga_open)
    r = rig.client.put("/operator/config", headers=op, json={"config": {"risk": {}}})
    assert r.status_code == 409 and "pushes its --config file once" in r.json()["detail"]
    rig.operator("PUT", "/operator/kill-switch", op, json={"engaged": False})
    assert not fpga.risk.limits.kill
    released_at = len(rig.loop.wire)
    rig.step(200)
    assert [m for kind, _c, m in rig.loop.wire[released_at:]
            if kind == "sent" and m["type"] == "O"] != []  # the strategy trades again


def test_venue_reject_comes_back_with_its_reason(rig):
    """The gate has no tick size; the venue has (0.01): its Rejected reaches the OMS."""
    bid, _ask = touch(rig)
    o = rig.place(qty=1, price=px(bid - 2_000_050))
    o = rig.until(o["id"], ("rejected", "accepted"))
    assert o["status"] == "rejected"
    assert o["reason"] == ("rejected by the venue: invalid price (zero, negative, above the "
                           "maximum, or not a multiple of the tick)")
    [ours] = [x for x in rig.loop.engine.orders.values() if x.client]
    assert ours.state == "rejected" and rig.loop.engine.counters["venue_reject_3"] == 1
    assert rig.loop.fpga.risk.open_orders == sum(
        x.state not in ("filled", "canceled", "rejected")
        for x in rig.loop.engine.orders.values())  # the gate let go of it


def test_a_modify_through_the_gate_is_refused_and_the_order_stands(rig):
    bid, _ask = touch(rig)
    o = rig.place(qty=3, price=px(bid - 500_000), tif="gtc")
    o = rig.until(o["id"], ("accepted", "rejected"))
    assert o["status"] == "accepted", o["reason"]
    r = rig.client.patch(f"/orders/{o['id']}", headers=rig.trader, json={"qty": 2})
    assert r.status_code == 409 and "cancel and place again" in r.json()["detail"]
    assert (rig.order(o["id"])["qty"], rig.order(o["id"])["status"]) == (3, "accepted")
