"""The book's golden model: ITCH rules, exact levels, and an update stream a consumer can
rebuild the top N from."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gateware.models.book import BUY, SELL, BookModel, apply_update
from gateware.models.itch import Event

from .simtools import SEED, rng_for


def ev(t, **kw):
    return Event(type=t, sym=kw.pop("sym", 0), seq=0, locate=1, tracking=0, timestamp=0, **kw)


def add(ref, side, price, shares, sym=0, t="A"):
    return ev(t, sym=sym, order_ref=ref, side=ord(side), price=price, shares=shares)


def brute_levels(model: BookModel, sym: int, side: int) -> list[list[int]]:
    agg: dict[int, list[int]] = {}
    for o in model.orders.values():
        if (o.sym, o.side) == (sym, side):
            lv = agg.setdefault(o.price, [0, 0])
            lv[0] += o.shares
            lv[1] += 1
    return [[p, *agg[p]] for p in sorted(agg, reverse=side == BUY)]


def random_flow(rng: random.Random, n_events: int, symbols: int = 3):
    live: list[int] = []
    next_ref = 1
    for _ in range(n_events):
        r = rng.random()
        if r < 0.4 or not live:
            # few prices around a mid so levels fill, cross and empty often
            side = rng.choice("BS")
            price = 10_000 * (100 + rng.randint(-12, 12))
            yield add(next_ref, side, price, rng.randint(1, 500), sym=rng.randrange(symbols),
                      t=rng.choice("AF"))
            live.append(next_ref)
            next_ref += 1
            continue
        ref = rng.choice(live) if rng.random() > 0.03 else 10**9 + rng.randrange(10)
        if r < 0.6:
            yield ev(rng.choice("EC"), order_ref=ref, shares=rng.randint(1, 600),
                     match=rng.getrandbits(32), price=rng.randint(1, 10**7))
        elif r < 0.75:
            yield ev("X", order_ref=ref, shares=rng.randint(1, 300))
        elif r < 0.88:
            yield ev("D", order_ref=ref)
        else:
            yield ev("U", order_ref=ref, new_ref=next_ref, shares=rng.randint(1, 500),
                     price=10_000 * (100 + rng.randint(-12, 12)))
            live.append(next_ref)
            next_ref += 1
        if rng.random() < 0.02:
            yield add(live[0], "B", 1_000_000, 1)  # a live reference added again


def check_flow(events, n=4, symbols=3):
    model = BookModel(n)
    copies = {(s, side): [] for s in range(symbols) for side in (BUY, SELL)}
    for e in events:
        for up in model.apply(e):
            copies[(up.sym, up.side)] = apply_update(copies[(up.sym, up.side)], up, n)
        for key, top in copies.items():
            assert top == model.top(*key), f"seed {SEED}: after {e}"
    for s in range(symbols):
        book = model.book(s)
        assert book["bids"] == brute_levels(model, s, BUY)
        assert book["asks"] == brute_levels(model, s, SELL)
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
