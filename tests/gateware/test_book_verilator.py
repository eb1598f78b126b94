"""The book built by Verilator (sim/booksim.py) against BookModel: ≥ 100k events per run,
update by update, counter by counter, at the shipped size and at a size whose order
table and level rows overflow."""

from __future__ import annotations

import os

import pytest

from tick2trade.gateware.models.book import BookModel
from tick2trade.testing.bookflow import colliding_refs, random_flow
from tick2trade.sim.booksim import BookSim

from tick2trade.testing.simtools import SEED, rng_for

pytestmark = pytest.mark.verilator


def run_both(params: dict, flow, name: str, clears: float = 0.0, batch: int = 20_000) -> tuple:
    """Feed ``flow`` in batches of random size (with a host clear between some batches);
    compare each batch's updates as it comes. Returns (model, sim counters, mismatches,
    events)."""
    rng = rng_for(name)
    model = BookModel(params["n"], depth=params["depth"], capacity=params["capacity"],
                      ways=params["ways"])
    sim = BookSim(**params)
    events = 0
    flow = iter(flow)
    try:
        while True:
            chunk = [e for _, e in zip(range(rng.randint(1, batch)), flow)]
            if not chunk:
                break
            events += len(chunk)
            want = [u for e in chunk for u in model.apply(e)]
            sim.feed(chunk)
            if clears and rng.random() < clears:
                sym = rng.choice([None, rng.randrange(params["symbols"])])
                want += model.clear(sym)
                sim.clear(sym)
            got = sim.take_updates()
            for i, (g, w) in enumerate(zip(got, want)):
                assert g == w, f"seed {SEED}: after {events} events, update {i}: {g} != {w}"
            assert len(got) == len(want), f"seed {SEED}: {len(got)} updates, model {len(want)}"
        assert sim.counters() == dict(model.counters), f"seed {SEED}"
        assert sim.occupancy == model.occupancy
    finally:
        sim.close()
    return model, events


def test_shipped_size_random_flow(book_builds):
    rng = rng_for("book-v-default")
    model, events = run_both(book_builds["default"],
                             random_flow(rng, 120_000, symbols=64, other=0.05),
                             "book-v-default", clears=0.2, batch=8_000)
    c = model.counters
    assert events >= 120_000 and c["updates"] > 30_000 and c["clears"] >= 1
    assert c["level_missing"] == 0


def test_small_tables_overflow_every_way(book_builds):
    params = book_builds["small"]
    rng = rng_for("book-v-small")
    model, _ = run_both(params, random_flow(rng, 100_000, symbols=8, spread=30),
                        "book-v-small", clears=0.02)
    c = model.counters
    assert c["table_full"] and c["levels_dropped"] and c["untracked"] and c["short_side"]
    assert c["level_missing"] == 0


def test_forced_collisions(book_builds):
    rng = rng_for("book-v-collide")
    params = book_builds["default"]
    bits = (params["capacity"] // params["ways"]).bit_length() - 1
    model, _ = run_both(params, random_flow(rng, 100_000, symbols=64,
                                            refs=colliding_refs(rng, bits, buckets=64)),
                        "book-v-collide")
    assert model.counters["table_full"] > 1000


@pytest.mark.slow
def test_ten_million_events(book_builds):
    """The long sweep (``make test-all``): 10M events, 0 mismatches."""
    n = int(os.environ.get("T2T_BOOK_SWEEP", "10000000"))
    rng = rng_for("book-v-sweep")
    _, events = run_both(book_builds["default"], random_flow(rng, n, symbols=64, other=0.05),
                         "book-v-sweep", clears=0.001, batch=100_000)
    assert events >= n
