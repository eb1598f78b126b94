"""The host engine: order lifecycle by UserRefNum, positions and P&L, the reports that
keep the risk gate informed — alone against hand-made answers, and in the whole loop
with the golden models standing in for the FPGA (no Verilator)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from tick2trade.gateware.models.trade import strategy as trade

from tick2trade.gateware.models.trade.risk import REASONS
from tick2trade.host.config import load, parse
from tick2trade.host.engine import CLIENT_TAGS, HostEngine
from tick2trade.host.services.status import TERMINAL, OrderStatus
from tick2trade.host.services.portfolio import PositionState, apply_fill
from tick2trade.sim.loop import Loop, LoopConfig
from tick2trade.sim.modelfpga import ModelFpga
from tick2trade.sim.topsim import top_map

DEMO = Path(__file__).resolve().parents[2] / "docs" / "demo.toml"
SYMBOLS = 8


@pytest.fixture(scope="module")
def regmap():
    return top_map(64, SYMBOLS, 64)


@pytest.fixture
def model(regmap):
    cfg = load(DEMO, symbols=SYMBOLS)
    return cfg, ModelFpga(cfg, regmap, SYMBOLS)


def enter(ur, symbol="AAPL", side="B", qty=300, price=1_900_000, tif="3"):
    return {"type": "O", "user_ref": ur, "side": side, "quantity": qty, "symbol": symbol,
            "price": price, "tif": tif}


def test_lifecycle_reports_and_position(model):
    cfg, fpga = model
    eng = HostEngine(cfg.watch, fpga)
    fpga.risk.check(trade.Intent(0, 0, 1_900_000, 300, ord("3"), 0, 1_900_000, "event"), 0)
    eng.on_sent(enter(1), 10)
    assert eng.orders[1].state == OrderStatus.PENDING
    eng.on_response({"type": "A", "user_ref": 1, "order_ref": 77}, 20)
    assert (eng.orders[1].state, eng.orders[1].venue_ref) == (OrderStatus.ACCEPTED, 77)
    eng.on_response({"type": "E", "user_ref": 1, "quantity": 100, "price": 1_899_900,
                     "match": 5}, 30)
    assert eng.orders[1].state == OrderStatus.PARTIALLY_FILLED
    eng.on_response({"type": "C", "user_ref": 1, "quantity": 200, "reason": "I"}, 30)
    assert eng.orders[1].state == OrderStatus.CANCELED and eng.orders[1].remaining == 0
    assert [(r.filled, r.canceled, r.closed, r.released) for r in eng.reports] == \
        [(100, 0, 0, 100 * 1_900_000), (0, 200, 1, 200 * 1_900_000)]
    assert eng.flush_reports() == 2
    st = fpga.risk.state[0]
    assert (st.position, st.open_buy, fpga.risk.open_orders, fpga.risk.gross) == (100, 0, 0, 0)
    assert eng.positions["AAPL"] == PositionState(100, 100 * 1_899_900, 0, 100 * 1_899_900)
    eng.mark("AAPL", 1_900_000, 1_900_200)
    assert eng.pnl()["AAPL"]["unrealized"] == 100 * (1_900_100 - 1_899_900)


def test_rejected_and_bad_answers_are_counted_not_applied(model):
    cfg, fpga = model
    eng = HostEngine(cfg.watch, fpga)
    eng.on_sent(enter(1, side="S", qty=50), 0)
    eng.on_sent(enter(2, qty=10), 0)
    eng.on_response({"type": "J", "user_ref": 1, "reason": 3}, 1)
    assert eng.orders[1].state == OrderStatus.REJECTED
    assert (eng.reports[0].side, eng.reports[0].canceled, eng.reports[0].closed) == (1, 50, 1)
    eng.on_response({"type": "E", "user_ref": 99, "quantity": 1, "price": 1, "match": 1}, 2)
    eng.on_response({"type": "A", "user_ref": 2, "order_ref": 3}, 2)
    eng.on_response({"type": "E", "user_ref": 2, "quantity": 11, "price": 1, "match": 2}, 3)
    eng.on_response({"type": "E", "user_ref": 2, "quantity": 10, "price": 1_900_000,
                     "match": 3}, 3)
    eng.on_response({"type": "J", "user_ref": 2, "reason": 7}, 4)  # our late Cancel
    eng.on_response({"type": "C", "user_ref": 2, "quantity": 1, "reason": "U"}, 4)
    eng.on_sent(enter(2), 5)
    eng.on_sent(enter(3, symbol="NOPE"), 5)
    assert eng.orders[2].state == OrderStatus.FILLED
    assert {k: eng.counters[k] for k in ("unknown_user_ref", "bad_execution",
                                         "cancel_rejected", "bad_cancel",
                                         "duplicate_user_ref", "unknown_symbol")} == \
        dict.fromkeys(("unknown_user_ref", "bad_execution", "cancel_rejected", "bad_cancel",
                       "duplicate_user_ref", "unknown_symbol"), 1)
    assert eng.positions == {"AAPL": PositionState(10, 19_000_000, 0, 19_000_000)}


def test_an_accepted_order_never_seen_leaving_is_taken_from_the_answer(model):
    cfg, fpga = model
    eng = HostEngine(cfg.watch, fpga)
    eng.on_response({"type": "A", "user_ref": 4, "side": "S", "quantity": 70,
                     "symbol": "MSFT", "price": 4_200_000, "tif": "0", "order_ref": 9,
                     "clordid": "T000000000004"}, 5)
    order = eng.orders[4]
    assert (order.state, order.symbol, order.side, order.qty, order.price, order.venue_ref) \
        == (OrderStatus.ACCEPTED, "MSFT", "S", 70, 4_200_000, 9)
    assert eng.counters["unseen_orders"] == 1


def test_realized_pnl_round_trip():
    eng = HostEngine(["X"], dev=None)
    eng.on_sent(enter(1, "X", "B", 100, 500_000), 0)
    eng.on_sent(enter(2, "X", "S", 150, 490_000), 0)
    for ur, px in ((1, 500_000), (2, 510_000)):
        eng.on_response({"type": "A", "user_ref": ur, "order_ref": ur}, 1)
        qty = eng.orders[ur].qty
        eng.on_response({"type": "E", "user_ref": ur, "quantity": qty, "price": px,
                         "match": ur}, 2)
    eng.mark("X", 505_000, 507_000)
    row = eng.pnl()["X"]
    assert (row["position"], row["realized"]) == (-50, 100 * 10_000)
    assert row["unrealized"] == -50 * 506_000 + 50 * 510_000


def run_model_loop(cfg, fpga, **kw) -> Loop:
    lc = LoopConfig(seed=kw.pop("seed", 11), one_message_per_packet=True, idle=40,
                    telemetry=False, **kw)
    loop = Loop(fpga, fpga, cfg, lc)
    loop.run(1_500_000)
    return loop


def venue_positions(loop: Loop) -> dict[str, PositionState]:
    """Positions from the venue's executions of our orders, independently of the
    engine's bookkeeping."""
    side = {m["user_ref"]: m["side"] for kind, _c, m in loop.wire
            if kind == "sent" and m["type"] == "O"}
    out: dict[str, PositionState] = defaultdict(PositionState)
    symbol = {m["user_ref"]: m["symbol"] for kind, _c, m in loop.wire
              if kind == "sent" and m["type"] == "O"}
    for kind, _c, m in loop.wire:
        if kind == "answer" and m["type"] == "E":
            q = m["quantity"] if side[m["user_ref"]] == "B" else -m["quantity"]
            out[symbol[m["user_ref"]]], _ = apply_fill(out[symbol[m["user_ref"]]], q,
                                                       m["price"])
    return dict(out)


def test_loop_keeps_the_gate_informed(model):
    """After a run with the models as the FPGA, the gate's view (position, open exposure,
    open orders, gross) equals the engine's, which equals the venue's."""
    cfg, fpga = model
    loop = run_model_loop(cfg, fpga, stale_after=100_000, flatten_at=500)
    eng = loop.engine
    assert len(eng.fills) > 20 and eng.counters["cancels_asked"] > 0, eng.counters
    assert eng.counters["injected"] > 0 and any(p.realized for p in eng.positions.values())
    assert eng.positions == venue_positions(loop)
    open_orders = [o for o in eng.orders.values() if o.state not in TERMINAL]
    for i, symbol in enumerate(cfg.watch):
        st = fpga.risk.state[i]
        assert st.position == eng.positions.get(symbol, PositionState()).qty, symbol
        assert st.open_buy == sum(o.remaining for o in open_orders
                                  if o.symbol == symbol and o.side == "B"), symbol
        assert st.open_sell == sum(o.remaining for o in open_orders
                                   if o.symbol == symbol and o.side == "S"), symbol
    assert fpga.risk.open_orders == len(open_orders)
    assert fpga.risk.gross == sum(o.remaining * o.price for o in open_orders)
    assert fpga.risk.counters["position"] > 0  # the limit was reached, and held
    assert not {k for k in eng.counters if k.startswith(("bad_", "unknown_"))}


def test_loop_is_deterministic_per_seed(regmap):
    cfg = load(DEMO, symbols=SYMBOLS)
    a = run_model_loop(cfg, ModelFpga(cfg, regmap, SYMBOLS), seed=4)
    b = run_model_loop(cfg, ModelFpga(cfg, regmap, SYMBOLS), seed=4)
    c = run_model_loop(cfg, ModelFpga(cfg, regmap, SYMBOLS), seed=5)
    assert a.wire == b.wire and a.engine.pnl() == b.engine.pnl()
    assert a.wire != c.wire


def test_model_refuses_registers_it_does_not_model(regmap):
    cfg = parse('[symbols]\nwatch = ["AAPL"]\n[venue]\nip = "10.0.0.3"\nport = 1\n'
                'mac = "02:00:00:00:00:0a"\n', symbols=SYMBOLS)
    with pytest.raises(KeyError, match="rx.watch"):
        ModelFpga(cfg, regmap, SYMBOLS).write("rx.watch[0].enable", 1)


def test_store_writes_orders_executions_positions(model, tmp_path):
    from sqlalchemy import func, select

    from tick2trade.host.engine_db import EngineStore
    from tick2trade.host.services import audit, db

    cfg, fpga = model
    lc = LoopConfig(seed=11, one_message_per_packet=True, idle=40, telemetry=False,
                    stale_after=100_000, flatten_at=500)
    loop = Loop(fpga, fpga, cfg, lc)
    store = EngineStore.open(f"sqlite:///{tmp_path / 't2t.db'}")
    loop.run(700_000)
    written = store.sync(loop.engine)
    loop.run(700_000)
    written += (more := store.sync(loop.engine))
    assert more > 0
    assert store.sync(loop.engine) == 0  # nothing new: nothing written twice
    eng = loop.engine
    with store.sessions() as s:
        orders = s.scalars(select(db.Order).where(db.Order.user_id == store.user_id)).all()
        assert sorted((o.status, o.filled_qty) for o in orders) == \
            sorted((o.state, o.filled) for o in eng.orders.values())
        assert s.scalar(select(func.sum(db.Execution.qty))) == sum(f.qty for f in eng.fills)
        assert s.scalar(select(func.sum(db.Execution.realized_pnl))) == \
            sum(p.realized for p in eng.positions.values())
        pos = {p.symbol: p.qty for p in s.scalars(select(db.Position)).all()}
        assert pos == {k: p.qty for k, p in eng.positions.items()}
        # one audit record per row written: the operators' view of the FPGA's trading
        actions = s.scalars(select(db.AuditRecord.action)
                            .where(db.AuditRecord.actor == "fpga")).all()
        assert len(actions) == written
        assert actions.count("order.executed") == len(eng.fills)
        assert actions.count("order.filled") == sum(o.status == "filled" for o in orders)
        assert audit.verify(s).ok
    assert len(orders) > 20


def test_decision_records_are_matched_to_injections_in_order(model):
    """Records of the strategy's intents are skipped even when their fields are an
    injection's; an injection whose record never came is dropped when a later one's
    arrives; a refused client injection reaches the listener with the gate's reason."""
    cfg, fpga = model
    refused = []

    class Listener:
        def injection_refused(self, injection):
            refused.append(injection)

    eng = HostEngine(cfg.watch, fpga, listener=Listener(), track_decisions=True)
    lost = eng.inject("AAPL", "B", 100, 1_900_000, tag=CLIENT_TAGS.start)
    big = eng.inject("AAPL", "B", 600, 1_900_000, tag=CLIENT_TAGS.start + 1)
    fine = eng.inject("AAPL", "S", 100, 1_900_100, tag=CLIENT_TAGS.start + 2)

    def record(source, reason, side, qty, price):
        return {"sym": 0, "side": side, "source": trade.SOURCES.index(source),
                "cancel": 0, "reason": REASONS.index(reason), "price": price,
                "quantity": qty, "t_decide": 0}
    eng.on_decisions([
        record("fast", "position", 0, 600, 1_900_000),  # the strategy's, same fields
        record("host", "max_shares", 0, 600, 1_900_000),
        record("host", "pass", 1, 100, 1_900_100),
    ])
    assert (lost.reason, big.reason, fine.reason) == (None, "max_shares", "pass")
    assert refused == [big] and not eng.awaiting
    assert (eng.counters["decisions"], eng.counters["decision_missing"],
            eng.counters["host_refused_max_shares"]) == (3, 1, 1)


def test_store_positions_are_the_executions_across_runs_and_a_crash(regmap, db_url):
    """Issue 25, items 14 and 15: each run adds to the account's positions (they were
    replaced by the last run's); a run that ends closes what it left open with a reason;
    a store opened after a run that was killed (never closed) closes that run's."""
    from sqlalchemy import func, select

    from tick2trade.host.engine_db import ENDED, LEFT_OPEN, EngineStore
    from tick2trade.host.services import audit, db, ledger
    from tick2trade.host.services.status import OPEN

    cfg = load(DEMO, symbols=SYMBOLS)
    seeds = [11, 12, 13]
    totals: dict[str, int] = defaultdict(int)
    for i, seed in enumerate(seeds):
        fpga = ModelFpga(cfg, regmap, SYMBOLS)
        loop = Loop(fpga, fpga, cfg, LoopConfig(seed=seed, one_message_per_packet=True,
                                                idle=40, telemetry=False, flatten_at=500))
        store = EngineStore.open(db_url)
        if i == 2:  # after the killed run: its open orders are closed, with the reason
            assert store.reconciled == left_open > 0
        loop.run(500_000)
        store.sync(loop.engine)
        loop.run(500_000)
        for f in loop.engine.fills:
            totals[f.symbol] += f.qty if f.side == "B" else -f.qty
        if i == 1:  # killed: the last sync is all the database has
            store.sync(loop.engine)
            left_open = sum(o.state in OPEN for o in loop.engine.orders.values()
                            if not o.client)
        else:
            closed = store.close(loop.engine)
            assert closed == sum(o.state in OPEN for o in loop.engine.orders.values())
        with store.sessions() as s:
            stored = {p.symbol: p.qty for p in s.scalars(
                select(db.Position).where(db.Position.user_id == store.user_id))}
            assert {k: v for k, v in stored.items() if v} == \
                {k: v for k, v in totals.items() if v}
            assert ledger.problems(s) == [] and audit.verify(s).ok
            still = s.scalar(select(func.count()).select_from(db.Order).where(
                db.Order.status.in_(OPEN)))
            assert still == (left_open if i == 1 else 0)
            if i != 1:
                assert s.scalar(select(func.count()).select_from(db.Order).where(
                    db.Order.reason.in_((ENDED, LEFT_OPEN)))) > 0
        store.sql.dispose()
    assert len([v for v in totals.values() if v]) > 0
