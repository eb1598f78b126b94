"""The matching engine against the brute-force reference on random order sequences:
same return values, same events (fills, prices, priorities), same books after every
step; and the rules one at a time."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tick2trade.sim.venue.engine import (ADD, CANCEL, DAY, EXEC, FOK, GTC, IOC, R_PRICE, R_QTY,
                                         R_SIDE, R_SYMBOL, R_TIF, REPLACE, Engine, Instrument)
from tests.sim.venue.reference import ReferenceEngine

INSTRUMENTS = [Instrument("AAPL", 1, tick=100, lot=1, max_qty=50),
               Instrument("BTC-USD", 2, tick=50, lot=5, max_qty=200, kind="crypto")]

GOOD_PRICES = [9800, 9900, 10000, 10100, 10200]  # on the tick of both instruments
submit_op = st.tuples(
    st.just("submit"), st.sampled_from(["AAPL", "BTC-USD"] * 6 + ["MSFT"]),
    st.sampled_from("BS" * 6 + "TEX"),
    st.one_of(*[st.integers(1, 8).map(lambda q: 5 * q)] * 6, st.integers(0, 60)),
    st.one_of(*[st.sampled_from(GOOD_PRICES)] * 8, st.none(),
              st.sampled_from([9850, 10230, 0, -100, 2 ** 32 + 100])),
    st.sampled_from([DAY] * 4 + [GTC, IOC, FOK, "9"]), st.integers(0, 2),
    st.sampled_from([False] * 5 + [True]))

@st.composite
def ops(draw):
    """60 % submits; cancels and replaces aim at references already handed out."""
    out, refs = [], 1
    for _ in range(draw(st.integers(0, 60))):
        kind = draw(st.sampled_from("sssssscccrr"))
        if kind == "s":
            out.append(draw(submit_op))
            refs += 1
            continue
        ref = draw(st.integers(1, refs + 1))
        if kind == "c":
            out.append(("cancel", ref, draw(st.sampled_from([0, 0, 0, 5, 10]))))
        else:
            out.append(("replace", ref, draw(st.integers(0, 8).map(lambda q: 5 * q)),
                        draw(st.sampled_from(GOOD_PRICES * 3 + [None, 10001, 9850]))))
            refs += 1
    return out


def apply(engine, op):
    if op[0] == "submit":
        _, sym, side, qty, price, tif, owner, hidden = op
        return engine.submit(sym, side, qty, price, tif, owner, hidden)
    if op[0] == "cancel":
        return engine.cancel(op[1], op[2])
    return engine.replace(op[1], op[2], op[3])


@pytest.mark.parametrize("smp", [None, "cancel_resting", "cancel_incoming"])
@settings(max_examples=150, deadline=None)
@given(sequence=ops(), eod=st.booleans())
def test_engine_equals_brute_force_reference(smp, sequence, eod):
    engine, ref = Engine(INSTRUMENTS, smp=smp), ReferenceEngine(INSTRUMENTS, smp=smp)
    for step, op in enumerate(sequence):
        assert apply(engine, op) == apply(ref, op), (step, op)
        assert engine.events == ref.events, (step, op)
        for sym in ("AAPL", "BTC-USD"):
            assert engine.books[sym].snapshot() == ref.snapshot(sym), (step, op)
    if eod:
        engine.end_of_day()
        ref.end_of_day()
        assert engine.events == ref.events
        assert apply(engine, ("submit", "AAPL", "B", 1, 10000, DAY, 0, False)) == -8
    for sym in ("AAPL", "BTC-USD"):
        assert engine.books[sym].snapshot() == ref.snapshot(sym)
        book = engine.books[sym]
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is None or ask is None or bid < ask  # never left crossed


def fresh():
    return Engine([Instrument("AAPL", 1), Instrument("BTC-USD", 2, tick=50, lot=5)])


def test_price_time_priority_and_partial_fills():
    e = fresh()
    a = e.submit("AAPL", "S", 100, 10100)
    b = e.submit("AAPL", "S", 100, 10000)
    c = e.submit("AAPL", "S", 100, 10000)
    e.events.clear()
    t = e.submit("AAPL", "B", 250, 10100, IOC)
    assert [(ev[2], ev[3], ev[4]) for ev in e.events if ev[0] == EXEC] == \
        [(b, 100, 10000), (c, 100, 10000), (a, 50, 10100)]
    assert e.events[-1][0] == EXEC and e.books["AAPL"].snapshot()["S"] == [(10100, [(a, 50)])]
    assert t > a


def test_market_order_sweeps_and_rest_is_cancelled():
    e = fresh()
    e.submit("AAPL", "S", 10, 10000)
    e.events.clear()
    ref = e.submit("AAPL", "B", 15, None)
    assert e.events[-1] == (CANCEL, "AAPL", ref, 5, 0, "I", False)


def test_fok_all_or_nothing():
    e = fresh()
    e.submit("AAPL", "S", 10, 10000)
    e.events.clear()
    killed = e.submit("AAPL", "B", 11, 10000, FOK)
    assert e.events == [(CANCEL, "AAPL", killed, 11, 0, "I", False)]
    e.events.clear()
    e.submit("AAPL", "B", 10, 10000, FOK)
    assert [ev[0] for ev in e.events] == [EXEC]


def test_replace_keeps_priority_only_when_price_same_and_size_not_up():
    e = fresh()
    a = e.submit("AAPL", "B", 100, 10000)
    b = e.submit("AAPL", "B", 100, 10000)
    assert e.replace(a, 50, 10000) == a  # down: keeps its place
    assert e.books["AAPL"].snapshot()["B"] == [(10000, [(a, 50), (b, 100)])]
    a2 = e.replace(a, 60, 10000)  # up: new reference, back of the queue
    assert a2 != a and e.books["AAPL"].snapshot()["B"] == [(10000, [(b, 100), (a2, 60)])]
    assert e.events[-1] == (REPLACE, "AAPL", a, a2, 60, 10000, "B", False, 50)


def test_replace_to_a_crossing_price_executes():
    e = fresh()
    s = e.submit("AAPL", "S", 30, 10100)
    b = e.submit("AAPL", "B", 100, 10000)
    e.events.clear()
    b2 = e.replace(b, 100, 10100)
    assert e.events[0] == (REPLACE, "AAPL", b, b2, 70, 10100, "B", False, 100)
    assert e.events[1][:4] == (EXEC, "AAPL", s, 30)


@pytest.mark.parametrize("args,code", [
    (("MSFT", "B", 1, 10000), R_SYMBOL), (("AAPL", "Q", 1, 10000), R_SIDE),
    (("AAPL", "B", 0, 10000), R_QTY), (("BTC-USD", "B", 7, 10000), R_QTY),
    (("AAPL", "B", 1, 10050), R_PRICE), (("AAPL", "B", 1, 0), R_PRICE),
    (("AAPL", "B", 1, -100), R_PRICE), (("AAPL", "B", 1, 10000, "9"), R_TIF),
])
def test_rejects_with_a_reason(args, code):
    e = fresh()
    assert e.submit(*args) == -code and e.events == [] and e.next_ref == 1


def test_self_match_prevention():
    e = Engine([Instrument("AAPL", 1)], smp="cancel_resting")
    mine = e.submit("AAPL", "S", 10, 10000, owner="me")
    other = e.submit("AAPL", "S", 10, 10000, owner="you")
    e.events.clear()
    e.submit("AAPL", "B", 10, 10000, owner="me")
    assert e.events[0] == (CANCEL, "AAPL", mine, 10, 0, "Q", True)
    assert e.events[1][:4] == (EXEC, "AAPL", other, 10)


def test_end_of_day_cancels_day_keeps_gtc():
    e = fresh()
    day = e.submit("AAPL", "B", 1, 10000, DAY)
    gtc = e.submit("AAPL", "B", 1, 9900, GTC)
    e.end_of_day()
    assert e.events[-1] == (CANCEL, "AAPL", day, 1, 0, "E", True)
    assert list(e.orders) == [gtc]
    assert e.events[0][0] == ADD
