"""``risk`` against ``models.trade.risk``, cycle by cycle (Amaranth simulator).

The tests offer random intents near every limit, with host reports, heartbeats and
resets, and compare every decision record and the final state with ``run_risk``; each
limit is also checked exactly at its value and one over.
"""

from __future__ import annotations

import random

import pytest

from tick2trade.gateware.models.trade import strategy as model
from tick2trade.gateware.models.trade import risk as risk_model
from tick2trade.gateware.models.book import BUY, SELL
from tick2trade.gateware.trade.risk import Risk

from tick2trade.testing.simtools import SEED, rng_for, run

S = 8
MID = 1_000_000  # $100.0000
TICK = 100


def random_intent(rng: random.Random, sym: int) -> model.Intent:
    ref = 0 if rng.random() < 0.05 else MID + TICK * rng.randint(-5, 5)
    return model.Intent(sym, rng.choice((BUY, SELL)), MID + TICK * rng.randint(-60, 60),
                        rng.choice((0, 1, 100, 100, 200, 500, 999, 1000, 1001)),
                        ord("3"), rng.randrange(1 << 16), ref, rng.choice(model.SOURCES),
                        cancel=rng.random() < 0.03, user_ref=rng.randrange(1 << 20))


def limits_payload(lim: risk_model.Limits) -> dict:
    return {k: int(v) for k, v in vars(lim).items() if k != "restricted"}


def run_risk_case(rng: random.Random, lim: risk_model.Limits, cycles: int, density: float,
                  report_rate: float = 0.05, heartbeat_every: int = 0,
                  resets: set[int] = frozenset()):
    offered, prev = {}, None
    for c in range(5, cycles):
        if rng.random() < density:
            repeat = prev is not None and rng.random() < 0.15  # the duplicate window's prey
            offered[c] = prev = prev if repeat else random_intent(rng, rng.randrange(S))
    reports = {c: risk_model.Report(rng.randrange(S), rng.choice((BUY, SELL)),
                               filled=rng.randint(0, 300), canceled=rng.randint(0, 300),
                               closed=rng.random() < 0.3, released=rng.randint(0, 10**7))
               for c in range(5, cycles) if rng.random() < report_rate}
    beats = set(range(5, cycles, heartbeat_every)) if heartbeat_every else set()
    risk, cancel_all, _ = check_risk(lim, offered, cycles, reports, beats, resets)
    return risk, cancel_all


def check_risk(lim: risk_model.Limits, offered: dict, cycles: int, reports=None,
               beats=frozenset(), resets=frozenset()):
    """Offer ``offered[cycle]`` intents (and host reports, heartbeats, kill resets) to
    the gate and to the model; every decision, its cycle and reason, the status and the
    counters must agree. Returns (model, cancel-all cycles, the reasons in order)."""
    reports = reports or {}
    dut = Risk(S)
    got, watch = [], {}
    cancel_all = []

    async def bench(ctx):
        ctx.set(dut.limits, limits_payload(lim))
        ctx.set(dut.restricted, sum(1 << s for s in lim.restricted))
        for s in range(S):
            watch[s] = int.from_bytes(f"SYM{s}".ljust(8).encode(), "big")
            ctx.set(dut.watch[s].stock, watch[s])
        ctx.set(dut.orders.ready, 1)
        ctx.set(dut.decisions.ready, 1)
        for c in range(cycles + 10):
            ctx.set(dut.now, c)
            it = offered.get(c)
            ctx.set(dut.intents.valid, it is not None)
            if it is not None:
                ctx.set(dut.intents.payload, {
                    "sym": it.sym, "side": it.side, "price": it.price,
                    "quantity": it.quantity, "tif": it.tif, "tag": it.tag, "ref": it.ref,
                    "source": model.SOURCES.index(it.source), "cancel": int(it.cancel),
                    "user_ref": it.user_ref, "t_in": c, "t_event": c})
            r = reports.get(c)
            ctx.set(dut.report_stb, r is not None)
            if r is not None:
                ctx.set(dut.report, vars(r))
            ctx.set(dut.heartbeat, c in beats)
            ctx.set(dut.kill_reset, c in resets)
            if ctx.get(dut.decisions.valid):
                d = ctx.get(dut.decisions.payload)
                got.append((int(d.t_decide), int(d.sym), int(d.side), int(d.price),
                            int(d.quantity), int(d.cancel), risk_model.REASONS[int(d.reason)]))
            if ctx.get(dut.cancel_all):
                cancel_all.append(c)
            await ctx.tick()
        status = ctx.get(dut.status)
        counters = ctx.get(dut.counters)
        got.append(("status", int(status.open_orders), int(status.gross) & ((1 << 64) - 1),
                    int(status.tripped)))
        got.append(("counters", {k: int(getattr(counters, k)) for k in risk_model.RISK_COUNTERS}))

    run(dut, bench)
    risk = risk_model.Risk(S, lim)
    want = risk_model.run_risk(risk, sorted(offered.items()), reports, beats, resets,
                          until=cycles + 9)
    decisions = [(t, it.sym, it.side, it.price, it.quantity, int(it.cancel), why)
                 for t, it, why in want]
    assert got[:-2] == decisions, SEED
    tripped = risk.tripped | int(lim.kill)
    assert got[-2] == ("status", risk.open_orders & 0xFFFF, risk.gross & ((1 << 64) - 1),
                       tripped), SEED
    assert got[-1][1] == risk.counters, SEED
    return risk, cancel_all, [why for _t, _it, why in want]


def order_at(price: int, quantity: int, side: int = BUY, sym: int = 1) -> model.Intent:
    return model.Intent(sym, side, price, quantity, ord("3"), 0, MID, "event")


def spaced(*intents: model.Intent, every: int = 6, start: int = 5) -> dict:
    return {start + every * k: it for k, it in enumerate(intents)}


# Each limit exactly at its value and one over (or one cycle early), through the RTL and
# the model together: (limits, {cycle: intent}, the reasons in order).
EDGES = {
    "max_shares": (risk_model.Limits(max_shares=500),
                   spaced(order_at(MID, 500), order_at(MID, 501)), ["pass", "max_shares"]),
    "max_notional": (risk_model.Limits(max_notional=300 * MID),
                     spaced(order_at(MID, 300), order_at(MID, 301)),
                     ["pass", "max_notional"]),
    "collar_bps": (risk_model.Limits(collar_bps=300),  # 3 % of 100.00 is 3.00
                   spaced(order_at(MID + 30_000, 1), order_at(MID + 30_001, 1),
                          order_at(MID - 30_000, 1, SELL), order_at(MID - 30_001, 1, SELL)),
                   ["pass", "collar", "pass", "collar"]),
    "collar_price": (risk_model.Limits(collar_price=40 * TICK),
                     spaced(order_at(MID - 40 * TICK, 1), order_at(MID - 40 * TICK - 1, 1)),
                     ["pass", "collar"]),
    "position": (risk_model.Limits(position_limit=1000),
                 spaced(order_at(MID, 600), order_at(MID + 1, 400), order_at(MID + 2, 1),
                        order_at(MID, 1000, SELL), order_at(MID + 1, 1, SELL)),
                 ["pass", "pass", "position", "pass", "position"]),
    "gross": (risk_model.Limits(max_gross=2 * 100 * MID),
              spaced(order_at(MID, 100), order_at(MID, 100), order_at(1, 1)),
              ["pass", "pass", "gross"]),
    "open_orders": (risk_model.Limits(max_open_orders=3),
                    spaced(*(order_at(MID + k, 1) for k in range(4))),
                    ["pass", "pass", "pass", "open_orders"]),
    # GCRA, 10 cycles per order, burst 2: two back to back, the third refused; the bucket
    # lets the next one through 10 cycles after the first, not a cycle earlier
    "rate_global": (risk_model.Limits(rate_interval=10, rate_tolerance=10),
                    {5: order_at(MID, 1), 6: order_at(MID + 1, 1), 7: order_at(MID + 2, 1),
                     14: order_at(MID + 3, 1), 15: order_at(MID + 4, 1)},
                    ["pass", "pass", "rate_global", "rate_global", "pass"]),
    "rate_symbol": (risk_model.Limits(sym_rate_interval=10, sym_rate_tolerance=0),
                    {5: order_at(MID, 1), 6: order_at(MID, 1, sym=2), 7: order_at(MID + 1, 1),
                     14: order_at(MID + 2, 1), 15: order_at(MID + 3, 1)},
                    ["pass", "pass", "rate_symbol", "rate_symbol", "pass"]),
    "duplicate": (risk_model.Limits(dup_window=50),
                  {5: order_at(MID, 7), 54: order_at(MID, 7), 55: order_at(MID, 7),
                   56: order_at(MID, 7, SELL)},
                  ["pass", "duplicate", "pass", "pass"]),
    "kill_after": (risk_model.Limits(max_shares=10, kill_after=3),
                   spaced(order_at(MID, 11), order_at(MID, 11), order_at(MID, 5),
                          order_at(MID, 11), order_at(MID + 1, 5)),
                   ["max_shares", "max_shares", "pass", "max_shares", "kill"]),
}


@pytest.mark.parametrize("check", sorted(EDGES))
def test_risk_edges_at_the_limit_and_one_over(check):
    lim, offered, want = EDGES[check]
    _risk, _cancel_all, reasons = check_risk(lim, offered, max(offered) + 10)
    assert reasons == want, (check, reasons)


def test_risk_every_limit_matches_model():
    rng = rng_for("risk-limits")
    lim = risk_model.Limits(max_shares=999, max_notional=900 * MID, collar_bps=300,
                       collar_price=40 * TICK, position_limit=1500, max_gross=10**10,
                       max_open_orders=40, rate_interval=9, rate_tolerance=18,
                       sym_rate_interval=20, sym_rate_tolerance=20, dup_window=60,
                       restricted=frozenset({3}))
    risk, _ = run_risk_case(rng, lim, 4000, density=0.5, report_rate=0.08)
    # the per-symbol bucket sits behind every other check, so with all limits on it bites
    # only on some seeds: a second case with it alone makes sure it is compared too
    alone, _ = run_risk_case(rng, risk_model.Limits(sym_rate_interval=200, sym_rate_tolerance=200),
                             1500, density=0.3)
    assert alone.counters["rate_symbol"] > 0, alone.counters
    # the position check also sits behind the size, notional and collar checks; on some
    # seeds (T2T_SEED=988869840) nothing reached it, so it gets a case of its own too
    alone, _ = run_risk_case(rng, risk_model.Limits(position_limit=150), 1500, density=0.3)
    assert alone.counters["position"] > 0, alone.counters
    c = risk.counters
    for reason in risk_model.REASONS:
        if reason not in ("kill", "tx_busy", "rate_symbol", "position"):
            assert c[reason] > 0, (reason, c)


def test_risk_breaches_trip_the_kill_switch_and_reset_rearms():
    rng = rng_for("risk-breach")
    lim = risk_model.Limits(max_shares=150, kill_after=25)
    risk, _ = run_risk_case(rng, lim, 1500, density=0.4, resets={700})
    assert risk.counters["kill"] > 50 and risk.counters["pass"] > 10


def test_watchdog_trips_without_heartbeat_and_cancels_all():
    rng = rng_for("risk-watchdog")
    lim = risk_model.Limits(watchdog=300, watchdog_cancel=True)
    risk, cancel_all = run_risk_case(rng, lim, 1200, density=0.2, heartbeat_every=0)
    assert cancel_all == [301], cancel_all  # heartbeat time 0: late once now - 0 > 300
    assert risk.tripped & 4 and risk.counters["kill"] > 50


def test_heartbeats_keep_the_watchdog_quiet():
    rng = rng_for("risk-heartbeat")
    lim = risk_model.Limits(watchdog=100, watchdog_cancel=True)
    risk, cancel_all = run_risk_case(rng, lim, 1500, density=0.2, heartbeat_every=90)
    assert cancel_all == [] and not risk.tripped and risk.counters["kill"] == 0
