"""The book's golden model: ITCH rules, exact levels, and an update stream a consumer can
rebuild the top N from."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tick2trade.gateware.models.book import BUY, SELL, BookModel, apply_update, better, bucket_of
from tick2trade.testing.bookflow import add, colliding_refs, ev, random_flow

from tick2trade.testing.simtools import SEED, rng_for


def brute_levels(model: BookModel, sym: int, side: int) -> list[list[int]]:
    agg: dict[int, list[int]] = {}
    for o in model.orders.values():
        if (o.sym, o.side) == (sym, side):
            lv = agg.setdefault(o.price, [0, 0])
            lv[0] += o.shares
            lv[1] += 1
    return [[p, *agg[p]] for p in sorted(agg, reverse=side == BUY)]


def check_flow(events, n=4, symbols=3, **capacity):
    """Run the model; after every event each consumer copy (rebuilt from updates) equals
    the model's top, and at the end every side's tracked levels are exactly the real
    levels better than the side's limit (all of them when it has none)."""
    model = BookModel(n, **capacity)
    copies = {(s, side): [] for s in range(symbols) for side in (BUY, SELL)}
    for e in events:
        for up in model.apply(e):
            copies[(up.sym, up.side)] = apply_update(copies[(up.sym, up.side)], up, n)
        for key, top in copies.items():
            assert top == model.top(*key), f"seed {SEED}: after {e}"
    for s in range(symbols):
        book = model.book(s)
        for name, side in (("bids", BUY), ("asks", SELL)):
            limit = model._side(s, side).limit
            real = [lv for lv in brute_levels(model, s, side)
                    if limit is None or better(side, lv[0], limit)]
            assert book[name] == real, f"seed {SEED}: sym {s} {name}"
    return model


def test_update_stream_rebuilds_every_top_n():
    model = check_flow(list(random_flow(rng_for("book"), 20_000)))
    c = model.counters
    assert c["unknown_ref"] and c["overfill"] and c["duplicate_ref"] and c["updates"]


@settings(max_examples=60)
@given(st.integers(0, 1 << 32), st.integers(1, 6))
def test_update_stream_for_any_depth(seed, n):
    check_flow(list(random_flow(random.Random(seed), 300, symbols=2)), n=n, symbols=2)


def test_partial_cancel_keeps_the_order_full_execute_removes_it():
    m = BookModel()
    m.apply(add(1, "B", 100, 300))
    m.apply(ev("X", order_ref=1, shares=100))
    assert m.top(0, BUY) == [(100, 200, 1)] and 1 in m.orders
    m.apply(ev("E", order_ref=1, shares=200))
    assert m.top(0, BUY) == [] and 1 not in m.orders


def test_replace_keeps_symbol_and_side_and_moves_the_shares():
    m = BookModel()
    m.apply(add(1, "S", 500, 100, sym=2))
    ups = m.apply(ev("U", order_ref=1, new_ref=2, shares=70, price=400))
    assert m.orders[2].sym == 2 and m.orders[2].side == SELL and 1 not in m.orders
    assert m.top(2, SELL) == [(400, 70, 1)]
    assert [u.action for u in ups] == ["delete", "insert"] and all(u.bbo for u in ups)


def test_overfill_and_unknown_reference_are_counted():
    m = BookModel()
    m.apply(add(1, "B", 100, 10))
    m.apply(ev("E", order_ref=1, shares=11))
    m.apply(ev("D", order_ref=99))
    assert m.counters["overfill"] == 1 and m.counters["unknown_ref"] == 1
    assert m.top(0, BUY) == []


def test_level_below_the_top_enters_when_the_top_empties():
    m = BookModel(n=2)
    for ref, price in enumerate((103, 102, 101), 1):
        m.apply(add(ref, "B", price, 10))
    (up,) = m.apply(ev("D", order_ref=1))
    assert (up.action, up.level, up.price, up.bbo) == ("delete", 0, 101, True)
    assert m.top(0, BUY) == [(102, 10, 1), (101, 10, 1)]


def test_bounded_depth_keeps_the_levels_above_the_limit_exact():
    rng = rng_for("book-depth")
    model = check_flow(list(random_flow(rng, 20_000, spread=40)), n=4, depth=6)
    c = model.counters
    assert c["levels_dropped"] and c["untracked"] and c["short_side"]
    assert c["level_missing"] == 0


def test_untracked_orders_leaving_lift_the_limit():
    m = BookModel(n=1, depth=2)
    for ref, price in enumerate((103, 102, 101), 1):  # 101 does not fit: the limit
        m.apply(add(ref, "B", price, 10))
    assert m.counters["levels_dropped"] == 1 and m.sides[(0, BUY)].limit == 101
    m.apply(add(4, "B", 100, 5))  # beyond the limit
    assert m.sides[(0, BUY)].untracked == 2 and m.counters["untracked"] == 1
    m.apply(ev("D", order_ref=3))
    m.apply(ev("D", order_ref=4))
    assert m.sides[(0, BUY)].limit is None and m.counters["untracked"] == 3
    m.apply(ev("D", order_ref=1))
    m.apply(ev("D", order_ref=2))  # the side empties while exact: nothing short
    assert m.counters["short_side"] == 0
    m.apply(add(5, "B", 99, 1))
    assert m.top(0, BUY) == [(99, 1, 1)]


def test_full_buckets_refuse_adds_and_free_ways_are_reused():
    rng = rng_for("book-buckets")
    bits = 3
    model = check_flow(list(random_flow(rng, 5_000, refs=colliding_refs(rng, bits))),
                       capacity=4 << bits, ways=4)
    c = model.counters
    assert c["table_full"] and c["level_missing"] == 0
    assert max(model.buckets.values()) == 4
    for ref in model.orders:
        assert bucket_of(ref, bits) in model.buckets


def test_clear_forgets_one_symbol_or_all():
    m = BookModel(n=2, capacity=16, ways=4)
    m.apply(add(1, "B", 100, 10, sym=0))
    m.apply(add(2, "S", 200, 10, sym=1))
    (up,) = m.clear(0)
    assert (up.action, up.sym, up.all_syms) == ("clear", 0, False)
    assert m.top(0, BUY) == [] and m.top(1, SELL) == [(200, 10, 1)] and m.occupancy == 1
    m.apply(ev("D", order_ref=1))
    assert m.counters["unknown_ref"] == 1
    (up,) = m.clear()
    assert up.all_syms and m.occupancy == 0 and sum(m.buckets.values()) == 0
