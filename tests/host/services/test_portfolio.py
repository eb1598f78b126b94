"""P&L arithmetic: property tests against a rational-number reference.

The reference keeps the average cost as an exact fraction and realizes exactly; ours
keeps integers and rounds the removed cost down. They must agree to within one unit per
reducing fill, and ours must satisfy the cash identity exactly.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from tick2trade.host.services.portfolio import PositionState, apply_fill, performance

fills = st.lists(st.tuples(st.integers(-10_000, 10_000).filter(bool),
                           st.integers(1, 10_000_000)), max_size=60)
marks = st.integers(1, 10_000_000)


def reference(seq):
    """Average cost with exact fractions: (qty, avg_price, realized)."""
    qty, avg, realized = 0, Fraction(0), Fraction(0)
    for q, p in seq:
        if qty == 0 or (qty > 0) == (q > 0):
            avg = (avg * qty + Fraction(p) * q) / (qty + q)
            qty += q
            continue
        closed = min(abs(q), abs(qty))
        sign = 1 if qty > 0 else -1
        realized += sign * closed * (p - avg)
        qty -= sign * closed
        rest = q + sign * closed
        if qty == 0:
            avg = Fraction(0)
        if rest:
            qty, avg = rest, Fraction(p)
    return qty, avg, realized


def run(seq):
    pos, reducing = PositionState(), 0
    for q, p in seq:
        if pos.qty and (pos.qty > 0) != (q > 0):
            reducing += 1
        pos, _ = apply_fill(pos, q, p)
    return pos, reducing


@settings(max_examples=400, deadline=None)
@given(fills, marks)
def test_cash_identity_is_exact(seq, mark):
    pos, _ = run(seq)
    cash = -sum(q * p for q, p in seq)
    assert pos.realized + pos.unrealized(mark) == cash + pos.qty * mark


@settings(max_examples=400, deadline=None)
@given(fills, marks)
def test_matches_the_rational_reference(seq, mark):
    pos, reducing = run(seq)
    qty, avg, realized = reference(seq)
    assert pos.qty == qty
    assert abs(pos.realized - realized) <= reducing
    assert abs(pos.cost - avg * qty) <= reducing
    assert abs(pos.unrealized(mark) - (mark - avg) * qty) <= reducing


@settings(max_examples=200, deadline=None)
@given(fills)
def test_flat_means_no_cost_and_realized_is_the_cash(seq):
    pos, _ = run(seq)
    if pos.qty == 0:
        assert pos.cost == 0
        assert pos.realized == -sum(q * p for q, p in seq)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 1000), st.integers(1, 10**6)), min_size=1,
                max_size=20), marks)
def test_round_trip_at_one_price_realizes_nothing(buys, mark):
    pos = PositionState()
    for q, p in buys:
        pos, _ = apply_fill(pos, q, p)
    total = sum(q for q, _ in buys)
    # selling everything at the average cost realizes at most the rounding
    avg = Fraction(sum(q * p for q, p in buys), total)
    pos2, gained = apply_fill(pos, -total, int(avg))
    assert pos2.qty == 0 and pos2.cost == 0
    assert gained == int(avg) * total - sum(q * p for q, p in buys)


def test_named_cases():
    # long 100 @ 10, sell 40 @ 12: realized 80, 60 left at 10
    pos, g = apply_fill(apply_fill(PositionState(), 100, 10)[0], -40, 12)
    assert (pos.qty, pos.cost, pos.realized, g) == (60, 600, 80, 80)
    # cross through zero: sell 100 @ 9 closes 60 (-60) and opens short 40 @ 9
    pos, g = apply_fill(pos, -100, 9)
    assert (pos.qty, pos.cost, pos.realized, g) == (-40, -360, 20, -60)
    # short gains when the price falls
    assert pos.unrealized(8) == 40
    # the remainder rounds down, and the sum stays exact
    pos, _ = apply_fill(PositionState(), 3, 10)
    pos, _ = apply_fill(pos, 1, 11)          # cost 41 for 4
    pos, g = apply_fill(pos, -1, 11)         # removes 41 // 4 = 10
    assert (pos.cost, g) == (31, 1)


@given(st.dictionaries(st.sampled_from(["A", "B", "C"]),
                       st.tuples(st.integers(-1000, 1000), st.integers(-10**6, 10**6),
                                 st.integers(-10**6, 10**6), st.integers(0, 10**7))),
       st.dictionaries(st.sampled_from(["A", "B", "C"]), marks))
def test_performance_sums_positions(raw, mark_of):
    positions = {s: PositionState(*v) for s, v in raw.items()}
    perf = performance(positions, mark_of)
    assert perf.realized == sum(p.realized for p in positions.values())
    assert perf.unrealized == sum(p.unrealized(mark_of[s]) for s, p in positions.items()
                                  if s in mark_of)
    assert perf.total_pnl == perf.realized + perf.unrealized
    deployed = sum(p.deployed for p in positions.values())
    assert perf.total_return == (perf.total_pnl / deployed if deployed else 0.0)
