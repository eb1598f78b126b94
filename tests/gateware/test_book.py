"""``book`` against ``models.book.BookModel``: the same updates in the same order, the same
counters and occupancy, on random and adversarial order flow (Amaranth simulator; the
Verilator runs at full size are in test_book_verilator.py)."""

from __future__ import annotations

import random

import pytest

from tick2trade.gateware.book import Book
from tick2trade.gateware.models.book import ACTIONS, BOOK_COUNTERS, BookModel, Update
from tick2trade.gateware.interfaces import event_layout
from tick2trade.testing.bookflow import add, colliding_refs, ev, random_flow

from tick2trade.testing.simtools import SEED, rng_for, run
from tick2trade.testing.stream import StreamSink, StreamSource, random_pauses

CLEAR = object()  # in a flow: the host clears (sym, or all with None)


def event_payload(e, fields) -> dict:
    out = {f: getattr(e, f) for f in fields if f != "type"}
    out["type"] = ord(e.type)
    return out


def update_of(p) -> Update:
    return Update(int(p.sym), int(p.side), ACTIONS[int(p.action)], int(p.level),
                  int(p.price), int(p.shares), int(p.orders), bool(p.bbo), bool(p.all_syms),
                  int(p.best_price), int(p.best_shares))


def expected(flow, model: BookModel) -> list[Update]:
    out = []
    for item in flow:
        if isinstance(item, tuple) and item[0] is CLEAR:
            out += model.clear(item[1])
        else:
            out += model.apply(item)
    return out


def simulate(dut: Book, flow, rng: random.Random, *, idle=0.0, stall=0.0):
    fields = list(event_layout(dut.symbols).members)
    state = {}

    events = StreamSource(dut.events, random_pauses(rng, idle))
    updates = StreamSink(dut.updates, random_pauses(rng, stall), name="updates")

    async def source(ctx):
        for item in flow:
            if isinstance(item, tuple) and item[0] is CLEAR:
                ctx.set(dut.clear, {"stb": 1, "all": item[1] is None, "sym": item[1] or 0})
                await ctx.tick()
                ctx.set(dut.clear, {"stb": 0})
            else:
                await events.send(ctx, [event_payload(item, fields)])
        # let the book finish: a clear sweep and the update FIFO
        for _ in range(dut.buckets + 2 * dut.symbols + 40):
            await ctx.tick()
        state["counters"] = {c: ctx.get(getattr(dut.counters, c)) for c in BOOK_COUNTERS}
        state["occupancy"] = ctx.get(dut.occupancy)
        state["busy"] = ctx.get(dut.busy)
        rows = {}
        for sym in range(dut.symbols):
            for side in (0, 1):
                ctx.set(dut.peek_select, {"sym": sym, "side": side})
                await ctx.tick().repeat(2)
                row = ctx.get(dut.peek)
                rows[(sym, side)] = [[int(lv.price), int(lv.shares), int(lv.orders)]
                                     for lv in list(row.levels)[:int(row.count)]]
        state["rows"] = rows

    run(dut, source, processes=[updates.process])
    return [update_of(p) for p in updates.items], state


def check(flow, *, symbols=4, capacity=64, ways=4, n=3, depth=5, seed_name="book",
          idle=0.0, stall=0.0) -> BookModel:
    flow = list(flow)
    model = BookModel(n, depth=depth, capacity=capacity, ways=ways)
    want = expected(flow, model)
    dut = Book(symbols, capacity, ways, n, depth)
    got, state = simulate(dut, flow, rng_for(seed_name), idle=idle, stall=stall)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"seed {SEED}: update {i}: gateware {g}, model {w}"
    assert len(got) == len(want), f"seed {SEED}: {len(got)} updates, model {len(want)}"
    assert state["counters"] == dict(model.counters), f"seed {SEED}"
    assert state["occupancy"] == model.occupancy and not state["busy"]
    for (sym, side), levels in state["rows"].items():  # the whole level store, via peek
        assert levels == model.book(sym)["asks" if side else "bids"], f"seed {SEED}"
    return model


def with_clears(rng, flow, p, symbols):
    for item in flow:
        if rng.random() < p:
            yield (CLEAR, rng.choice([None, rng.randrange(symbols)]))
        yield item


def test_random_flow_matches_model():
    rng = rng_for("book-random")
    model = check(random_flow(rng, 2500, symbols=4, other=0.1), capacity=256, idle=0.2,
                  stall=0.2)
    c = model.counters
    assert c["updates"] > 300 and c["duplicate_ref"] and c["unknown_ref"] and c["overfill"]


def test_deep_books_drop_levels_and_lift_limits():
    rng = rng_for("book-deep")
    model = check(random_flow(rng, 2500, symbols=2, spread=30), capacity=256, n=2, depth=3)
    c = model.counters
    assert c["levels_dropped"] and c["untracked"] and c["short_side"]
    assert c["level_missing"] == 0


def test_collisions_fill_buckets():
    rng = rng_for("book-collide")
    model = check(random_flow(rng, 1500, symbols=2, refs=colliding_refs(rng, 3, buckets=3)),
                  capacity=32, ways=4)
    assert model.counters["table_full"] > 10


def test_capacity_overflow_and_reuse():
    rng = rng_for("book-full")
    model = check(random_flow(rng, 2000, symbols=3), capacity=16, ways=2, n=2, depth=4)
    assert model.counters["table_full"] > 10


def test_clears_between_events():
    rng = rng_for("book-clear")
    flow = with_clears(rng, random_flow(rng, 1200, symbols=3), 0.01, 3)
    model = check(flow, capacity=32)
    assert model.counters["clears"] >= 3


@pytest.mark.parametrize("kind", ["adds", "deletes", "replaces"])
def test_one_event_kind_back_to_back(kind):
    """Worst-case mixes (what the throughput bench runs) are correct too."""
    rng = rng_for(f"book-{kind}")
    adds = [add(r, rng.choice("BS"), 10_000 * rng.randint(90, 110), rng.randint(1, 99),
                sym=rng.randrange(4)) for r in range(1, 41)]
    if kind == "adds":
        tail = []
    elif kind == "deletes":
        tail = [ev("D", order_ref=r) for r in rng.sample(range(1, 41), 40)]
    else:
        tail = [ev("U", order_ref=r, new_ref=r + 100, shares=5, price=10_000 * 100)
                for r in range(1, 41)]
    check(adds + tail, capacity=64, n=3, depth=8)


def test_same_level_many_orders_and_exact_bbo():
    flow = [add(r, "S", 1_000_000, r, sym=1) for r in range(1, 30)]
    flow += [ev("E", order_ref=r, shares=r) for r in range(1, 30)]
    model = check(flow, capacity=64)
    assert model.top(1, 1) == [] and model.occupancy == 0
