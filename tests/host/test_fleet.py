"""Several FPGAs under one OMS (``host.fleet``, ``sim.fleet``): each device trades its
own symbols through its own gate, the host routes the platform's orders by symbol,
sums the gates' gross against its own limit and has one kill switch for all. The golden
models stand in for the FPGAs (``ModelFpga``), as in ``test_engine_broker``: every
device has its own models, engine and venue session, all on one venue."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from rich.console import Console

from tick2trade.host.api import create_app
from tick2trade.host.config import ConfigError, parse
from tick2trade.host.engine_db import EngineStore
from tick2trade.host.fleet import FleetBroker, FleetDevice, partition
from tick2trade.host.services.money import px
from tick2trade.host.services.platform import Platform
from tick2trade.host.services.status import TERMINAL
from tick2trade.cli import main
from tick2trade.sim.cli.run import fleet_summary, open_fleet, render_fleet, trade_through
from tick2trade.sim.fleet import Fleet
from tick2trade.sim.modelfpga import ModelFpga
from tick2trade.sim.topsim import top_map
from tests.host.conftest import SECRET, fresh_limits, register_login

DEMO = Path(__file__).resolve().parents[2] / "docs" / "demo.toml"
SYMBOLS = 8
# the demo's venue, events and gate, without its triggers: the gates hold only what the
# tests send
QUIET = DEMO.read_text().split("[[trigger]]")[0].rsplit("\n#", 1)[0]
TABLES = """
[[fpga]]
name = "left"
symbols = ["AAPL", "BTC-USD"]
[[fpga]]
name = "right"
symbols = ["MSFT", "ETH-USD"]
"""


@dataclass
class Rig:
    fleet: Fleet
    broker: FleetBroker
    platform: Platform
    client: TestClient
    trader: dict
    stores: list[EngineStore]

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self.broker.pump(self.fleet.now)
            self.fleet.step()
        self.broker.pump(self.fleet.now)
        self.broker.settle()

    def place(self, symbol: str, **order) -> dict:
        r = self.client.post("/orders", headers=self.trader,
                             json={"symbol": symbol, "type": "limit", **order})
        assert r.status_code == 201, r.text
        return r.json()

    def order(self, order_id: int) -> dict:
        return self.client.get(f"/orders/{order_id}", headers=self.trader).json()

    def until(self, order_id: int, statuses: tuple[str, ...], steps: int = 40) -> dict:
        for _ in range(steps):
            o = self.order(order_id)
            if o["status"] in statuses:
                return o
            self.step()
        raise AssertionError(f"order {order_id} still {o['status']} after {steps} steps")

    def operator(self, method: str, path: str, headers: dict, **kw):
        """A request whose handler waits for the loop's thread, pumped meanwhile."""
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(self.client.request, method, path, headers=headers, **kw)
            while not answer.done():
                self.broker.pump(self.fleet.now)
                time.sleep(0.001)
            return answer.result()

    def touch(self, symbol: str) -> tuple[int, int]:
        book = self.fleet.lead.venue.engine.books[symbol]
        return book.best_bid(), book.best_ask()

    def sent(self, name: str, since: int = 0) -> list[dict]:
        """The Enters device ``name`` sent (from its ``since``-th wire entry on)."""
        return [m for kind, _c, m in self.fleet[name].wire[since:]
                if kind == "sent" and m["type"] == "O"]


@pytest.fixture(scope="module")
def regmap():
    return top_map(64, SYMBOLS, 64)


def open_rig(text: str, regmap, tmp_path, fpgas: int | None = None,
             traded: tuple[str, ...] = ()):
    def model(cfg):
        fpga = ModelFpga(cfg, regmap, SYMBOLS)
        return fpga, fpga

    path = tmp_path / "fleet.toml"
    path.write_text(text)
    fleet, total_gross = open_fleet(path, fpgas, seed=3, rate=200_000.0, flatten_at=500,
                                    device=model)
    broker, platform, stores, _left = trade_through(
        fleet, total_gross, lambda broker, device: Platform(
            f"sqlite:///{tmp_path / 't2t.db'}", SECRET, broker=broker, device=device,
            limits=fresh_limits()))
    assert isinstance(broker, FleetBroker) and isinstance(platform.device, FleetDevice)
    client = TestClient(create_app(platform))
    client.__enter__()
    r = Rig(fleet, broker, platform, client, register_login(client, "trader1"), stores)
    r.step(300)
    for symbol in traded:  # the gate of its device has a reference for the collar
        loop = next(loop for loop in fleet.loops if symbol in loop.engine.watch)
        market = loop.fpga.strategy.market[loop.engine.watch.index(symbol)]
        while market.bid is None or market.ask is None:
            r.step()
    return r


@pytest.fixture
def rigs():
    opened = []
    yield opened
    for r in opened:
        r.client.__exit__(None, None, None)
        r.platform.close()


def test_partition_deals_the_watch_list_round_robin():
    cfg = parse(DEMO.read_text(), "demo.toml")
    left, right = partition(cfg, 2, SYMBOLS)
    assert (left.name, left.cfg.watch) == ("fpga0", ["AAPL", "BTC-USD", "NVDA", "SPY"])
    assert (right.name, right.cfg.watch) == ("fpga1", ["MSFT", "ETH-USD", "QQQ", "TSLA"])
    # each device's trigger table has the triggers of its own symbols, renumbered
    for m in (left, right):
        mine = {m.cfg.watch[k]: t for k, t in m.cfg.triggers.items()}
        assert mine == {s: cfg.triggers[cfg.watch.index(s)] for s in m.cfg.watch
                        if cfg.watch.index(s) in cfg.triggers}
    assert set(left.cfg.watch) & set(right.cfg.watch) == set()
    # an order port each (the venue tells their sessions apart); the file's one
    assert [m.cfg.venue["src_port"] for m in (left, right)] == [40001, 40002]
    assert partition(cfg, 1, SYMBOLS)[0].cfg is cfg
    with pytest.raises(ConfigError, match="8 stocks for 9 FPGAs: each needs one at least"):
        partition(cfg, 9, SYMBOLS)


def test_fpga_tables_are_validated_with_their_keys():
    cfg = parse(QUIET + TABLES, "t.toml")
    assert [(t.name, t.symbols) for t in cfg.fpgas] == \
        [("left", ("AAPL", "BTC-USD")), ("right", ("MSFT", "ETH-USD"))]
    with pytest.raises(ConfigError, match="2 \\[\\[fpga\\]\\] tables, but 3 FPGAs"):
        partition(cfg, 3, SYMBOLS)
    bad = QUIET + TABLES.replace('"ETH-USD"', '"AAPL", "XYZ"') + 'src_port = 40001\n'
    with pytest.raises(ConfigError) as err:
        parse(bad, "t.toml")
    assert err.value.problems == [
        "fpga[1].symbols: 'AAPL' is traded by left already (a symbol is on one FPGA)",
        "fpga[1].symbols: 'XYZ' is not in symbols.watch"]
    # more symbols than one build holds: fine across devices, each within the build
    with pytest.raises(ConfigError, match="symbols.watch: 8 stocks; this bitstream has 4"):
        parse(QUIET, "t.toml", symbols=4)
    assert [m.cfg.watch for m in partition(parse(QUIET, "t.toml"), 2, 4)] == \
        [["AAPL", "BTC-USD", "NVDA", "SPY"], ["MSFT", "ETH-USD", "QQQ", "TSLA"]]


def test_the_strategies_of_two_fpgas_trade_their_own_symbols(regmap, tmp_path, rigs):
    rigs.append(r := open_rig(DEMO.read_text(), regmap, tmp_path, fpgas=2))
    r.step(300)
    for name, loop in zip(r.fleet.names, r.fleet.loops):
        enters = r.sent(name)
        assert enters and {m["symbol"] for m in enters} <= set(loop.engine.watch), name
        # its answers came back to it: every Enter it sent is known to its engine
        assert {m["user_ref"] for m in enters} <= set(loop.engine.orders)
        assert loop.engine.counters["unknown_user_ref"] == 0
        signed = {}
        for f in loop.engine.fills:
            signed[f.symbol] = signed.get(f.symbol, 0) + (f.qty if f.side == "B" else -f.qty)
        assert {s: p.qty for s, p in loop.engine.positions.items() if p.qty} == \
            {s: q for s, q in signed.items() if q}
    assert all(loop.engine.fills for loop in r.fleet.loops)
    # t2t run's summary: a row per device, the totals across them
    s = fleet_summary(r.fleet)
    assert [(d["name"], d["symbols"]) for d in s["devices"]] == \
        [(name, loop.engine.watch) for name, loop in zip(r.fleet.names, r.fleet.loops)]
    assert s["orders"]["enters"] == sum(len(r.sent(name)) for name in r.fleet.names)
    assert s["fills"]["count"] == sum(len(loop.engine.fills) for loop in r.fleet.loops)
    assert s["positions"] == {**r.fleet.loops[0].engine.pnl(), **r.fleet.loops[1].engine.pnl()}
    console = Console(record=True, width=200)
    console.print(render_fleet(s, "summary"))
    text = console.export_text()
    assert "2 FPGAs on one venue" in text and "AAPL, BTC-USD, NVDA, SPY" in text
    assert f"{s['orders']['enters']:,} enters" in text


def test_t2t_run_says_what_is_wrong_with_a_partition(tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_text(QUIET + TABLES)
    result = CliRunner().invoke(main, ["run", "--fpgas", "3", "--config", str(path),
                                       "--no-db", "--cycles", "1000"])
    assert result.exit_code == 1
    assert "2 [[fpga]] tables, but 3 FPGAs asked for (--fpgas)" in result.output
    result = CliRunner().invoke(main, ["run", "--fpgas", "9", "--no-db", "--cycles", "1"])
    assert result.exit_code == 1 and "8 stocks for 9 FPGAs" in result.output


def test_one_oms_routes_each_order_to_the_fpga_of_its_symbol(regmap, tmp_path, rigs):
    rigs.append(r := open_rig(QUIET + TABLES, regmap, tmp_path,
                              traded=("AAPL", "MSFT")))
    (_b, aapl_ask), (msft_bid, _a) = r.touch("AAPL"), r.touch("MSFT")
    # both placed before the loop runs: they go out in the same iteration, each
    # through its own device
    buy = r.place("AAPL", side="buy", qty=7, price=px(aapl_ask + 10_000), tif="ioc")
    sell = r.place("MSFT", side="sell", qty=5, price=px(msft_bid - 20_000), tif="ioc")
    r.step()
    assert [(m["symbol"], m["side"], m["quantity"]) for m in r.sent("left")] == \
        [("AAPL", "B", 7)]
    assert [(m["symbol"], m["side"], m["quantity"]) for m in r.sent("right")] == \
        [("MSFT", "S", 5)]
    buy = r.until(buy["id"], ("filled", "canceled", "rejected"))
    sell = r.until(sell["id"], ("filled", "canceled", "rejected"))
    assert (buy["status"], sell["status"]) == ("filled", "filled"), (buy, sell)
    # the venue's Executed messages, each to the device that sent the order
    for name, symbol, order in (("left", "AAPL", buy), ("right", "MSFT", sell)):
        loop = r.fleet[name]
        refs = {m["user_ref"] for m in r.sent(name)}
        fills = [(m["quantity"], m["price"]) for kind, _c, m in loop.wire
                 if kind == "answer" and m["type"] == "E" and m["user_ref"] in refs]
        assert sum(q for q, _p in fills) == order["filled_qty"]
        assert order["avg_fill_price"] == px(sum(q * p for q, p in fills) // sum(
            q for q, _p in fills))
    pos = r.client.get("/portfolio/positions", headers=r.trader).json()["positions"]
    assert sorted((p["symbol"], p["qty"]) for p in pos) == [("AAPL", 7), ("MSFT", -5)]
    # a symbol of the watch list on neither device: refused, saying who trades what
    o = r.place("TSLA", side="buy", qty=1, price="245.00")
    o = r.until(o["id"], ("rejected",))
    assert o["reason"] == ("TSLA is on no FPGA of this run (left trades AAPL, BTC-USD; "
                           "right trades MSFT, ETH-USD)")


def test_one_kill_switch_stops_every_fpga(regmap, tmp_path, rigs):
    rigs.append(r := open_rig(DEMO.read_text(), regmap, tmp_path, fpgas=2,
                              traded=("BTC-USD", "ETH-USD")))
    op = register_login(r.client, "op1", "operator", r.platform)
    resting = []
    for symbol, below in (("BTC-USD", 2_000_000), ("ETH-USD", 100_000)):
        bid, _ask = r.touch(symbol)
        resting.append(r.place(symbol, side="buy", qty=3, price=px(bid - below), tif="gtc"))
    for o in resting:
        assert r.until(o["id"], ("accepted", "rejected"))["status"] == "accepted"
    r.step(20)
    assert all(r.sent(name) for name in r.fleet.names)  # both strategies trade
    got = r.operator("PUT", "/operator/kill-switch", op, json={"engaged": True})
    assert got.json()["device"] == "set"
    assert all(loop.fpga.risk.limits.kill for loop in r.fleet.loops)
    at = {name: len(r.fleet[name].wire) for name in r.fleet.names}
    for o in resting:
        assert r.until(o["id"], ("canceled",))["reason"] == \
            "canceled by the venue: user requested"
    r.step(40)
    for name, loop in zip(r.fleet.names, r.fleet.loops):
        assert r.sent(name, at[name]) == [], name  # no Enter left either device
        assert [o for o in loop.engine.orders.values() if o.state not in TERMINAL] == []
    st = r.operator("GET", "/operator/device", op).json()
    assert (st["killed"], st["open_orders"], st["kill_causes"]) == (True, 0, ["host"])
    assert [(name, d["symbols"], d["killed"], d["open_orders"])
            for name, d in st["devices"].items()] == [
        ("fpga0", ["AAPL", "BTC-USD", "NVDA", "SPY"], True, 0),
        ("fpga1", ["MSFT", "ETH-USD", "QQQ", "TSLA"], True, 0)]
    counters = r.operator("GET", "/operator/counters", op).json()
    assert counters["fpga1.risk"]["kill"] == r.fleet["fpga1"].fpga.risk.counters["kill"]
    r.operator("PUT", "/operator/kill-switch", op, json={"engaged": False})
    at = {name: len(r.fleet[name].wire) for name in r.fleet.names}
    r.step(200)
    assert all(r.sent(name, at[name]) for name in r.fleet.names)  # both trade again


def test_gross_summed_over_the_fpgas_blocks_the_next_order(regmap, tmp_path, rigs):
    limit = 50_000 * 10_000  # 50,000.00
    text = QUIET.replace("[risk]\n", '[risk]\ntotal_gross_notional = "50000.00"\n') + TABLES
    rigs.append(r := open_rig(text, regmap, tmp_path, traded=("AAPL", "MSFT")))
    gates = {name: r.fleet[name].fpga.risk for name in r.fleet.names}
    aapl, msft = r.touch("AAPL")[0] - 10_000, r.touch("MSFT")[0] - 20_000
    first = r.place("AAPL", side="buy", qty=100, price=px(aapl), tif="gtc")
    second = r.place("MSFT", side="buy", qty=60, price=px(msft), tif="gtc")
    for o in (first, second):
        assert r.until(o["id"], ("accepted", "rejected"))["status"] == "accepted"
    held = {name: gate.gross for name, gate in gates.items()}
    assert held == {"left": 100 * aapl, "right": 60 * msft}
    third = 50 * aapl
    # neither device alone would breach the limit with it; both together do
    assert held["left"] + third <= limit and held["right"] + third <= limit
    assert held["left"] + held["right"] + third > limit
    o = r.until(r.place("AAPL", side="buy", qty=50, price=px(aapl), tif="gtc")["id"],
                ("accepted", "rejected"))
    assert o["status"] == "rejected"
    assert o["reason"] == (f"host limit across the FPGAs: their gates hold "
                           f"{px(held['left'] + held['right'])} gross, this order's "
                           f"{px(third)} would take it above risk.total_gross_notional "
                           f"(50000.0000)")
    assert len(r.sent("left")) == 1  # it never reached the gate
    assert {name: gate.gross for name, gate in gates.items()} == held
    # once the other device's order is gone, the same order passes
    assert r.client.delete(f"/orders/{second['id']}", headers=r.trader).status_code < 300
    r.until(second["id"], ("canceled",))
    o = r.until(r.place("AAPL", side="buy", qty=50, price=px(aapl), tif="gtc")["id"],
                ("accepted", "rejected"))
    assert o["status"] == "accepted", o["reason"]


def test_a_fleet_of_one_runs_as_the_loop_of_one(regmap, tmp_path):
    """``t2t run`` without --fpgas drives a fleet of one: the same run as one loop."""
    from tick2trade.host.config import load
    from tick2trade.sim.cli.run import loop_config, summary
    from tick2trade.sim.loop import Loop

    def model(cfg):
        fpga = ModelFpga(cfg, regmap, SYMBOLS)
        return fpga, fpga

    fleet, _ = open_fleet(DEMO, None, seed=4, rate=200_000.0, flatten_at=500, device=model)
    cfg = load(DEMO, symbols=SYMBOLS)
    fpga = ModelFpga(cfg, regmap, SYMBOLS)
    loop = Loop(fpga, fpga, cfg, loop_config(seed=4, rate=200_000.0, flatten_at=500))
    fleet.run(400_000)
    loop.run(400_000)
    got, want = fleet_summary(fleet), summary(loop)
    for key in ("feed", "orders", "gate", "positions", "pnl", "answers", "anomalies"):
        assert got[key] == want[key], key
    assert got["orders"]["enters"] > 10
