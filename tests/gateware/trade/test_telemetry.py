"""Telemetry in Amaranth's simulator against models.trade.telemetry, cycle by cycle.

Every cycle the bench drives ``now``, ``frame_start``, ``sent``, ``stamps``,
``hist_shift`` and ``records.ready`` and compares every output (``t_in``,
``t_in_early``, the record offered, the 32 bins, ``ttt_min``/``ttt_max``, the counters)
with the model's. Random traffic in bursts with backpressure on the records, and named
cases: bin edges, the last bin, tick-to-trade across the cycle counter's wrap, bins and
counters wrapping, back-to-back orders into a full queue, cancels, the delay line.
"""

from __future__ import annotations

import random
from dataclasses import asdict, replace

import pytest
from amaranth.hdl import Fragment

from tick2trade.gateware.models.trade import telemetry as model
from tick2trade.gateware.models.trade.telemetry import (BINS, MASK, Inputs, Record,
                                                        TelemetryModel)
from tick2trade.gateware.trade import telemetry as gateware
from tick2trade.gateware.trade.telemetry import Telemetry

from tick2trade.testing.simtools import SEED, rng_for, run

SYMBOLS = 8


def counter_registers(frag: Fragment) -> dict:
    """The counters' registers (``n_<counter>``), which drive ``counters`` combinationally;
    a testbench can preset them to test the wrap."""
    found = {}
    for stmt in frag.statements["comb"]:
        name = getattr(getattr(stmt, "rhs", None), "name", "")
        if name.startswith("n_") and name[2:] in model.COUNTERS:
            found[name[2:]] = stmt.rhs
    assert set(found) == set(model.COUNTERS)
    return found


def observe(ctx, dut: Telemetry) -> model.Outputs:
    record = None
    if ctx.get(dut.records.valid):
        p = ctx.get(dut.records.payload)
        record = Record(**{f: int(getattr(p, f)) for f in Record.__dataclass_fields__})
    hist = ctx.get(dut.histogram)
    counters = ctx.get(dut.counters)
    return model.Outputs(t_in=ctx.get(dut.t_in), t_in_early=ctx.get(dut.t_in_early),
                         record=record, histogram=tuple(int(hist[i]) for i in range(BINS)),
                         ttt_min=ctx.get(dut.ttt_min), ttt_max=ctx.get(dut.ttt_max),
                         counters={c: int(getattr(counters, c)) for c in model.COUNTERS})


def simulate(cycles: list[Inputs], depth: int = 64, *, bins: dict[int, int] | None = None,
             counters: dict[str, int] | None = None) -> tuple[TelemetryModel, list]:
    """Run ``cycles`` through the component and the model, comparing every output in every
    cycle and once more after the last; ``bins``/``counters`` preset both first. Returns
    the model and the outputs seen, one per cycle plus the final ones."""
    dut = Telemetry(SYMBOLS, depth)
    frag = Fragment.get(dut, None)
    registers = counter_registers(frag)
    ref = TelemetryModel(depth)
    ref.histogram = [(bins or {}).get(b, 0) for b in range(BINS)]
    ref.counters.update(counters or {})
    seen = []

    async def bench(ctx):
        for b, value in (bins or {}).items():
            ctx.set(dut.histogram[b], value)
        for c, value in (counters or {}).items():
            ctx.set(registers[c], value)
        for n, x in enumerate(cycles + [Inputs(now=cycles[-1].now + 1 if cycles else 0)]):
            ctx.set(dut.now, x.now)
            ctx.set(dut.frame_start, x.frame_start)
            ctx.set(dut.sent, {"stb": x.stb, "user_ref": x.user_ref, "sym": x.sym,
                               "cancel": x.cancel})
            ctx.set(dut.stamps, {"t_in": x.t_in, "t_event": x.t_event,
                                 "t_decide": x.t_decide})
            ctx.set(dut.hist_shift, x.hist_shift)
            ctx.set(dut.records.ready, x.ready)
            got, want = observe(ctx, dut), ref.outputs()
            for name, value in asdict(want).items():
                assert getattr(got, name) == getattr(want, name), \
                    f"{name} in cycle {n} of {len(cycles)}, inputs {x} (seed {SEED})"
            seen.append(got)
            ref.clock(x)
            await ctx.tick()

    run(frag, bench)
    return ref, seen


def order(now: int, ttt: int, **kw) -> Inputs:
    """An order sent at ``now`` whose frame came in ``ttt`` cycles earlier."""
    return Inputs(now=now & MASK, stb=1, t_in=(now - ttt) & MASK, **kw)


def random_cycles(rng: random.Random, count: int) -> list[Inputs]:
    """Bursts of a few dozen cycles, each with its own rates: frame starts, orders (up to
    one every cycle), cancels, the host's reading of records (0 fills the queue); ``now``
    counts up and sometimes jumps, once to just before its wrap; stamps near, on and far
    from the bin edges, and after ``now``."""
    cycles, now, shift = [], rng.getrandbits(32), 0
    while len(cycles) < count:
        p_frame, p_order, p_ready = (rng.choice([0.0, 0.2, 1.0]), rng.choice([0.05, 0.5, 1.0]),
                                     rng.choice([0.0, 0.3, 1.0]))
        if rng.random() < 0.2:
            now = rng.choice([rng.getrandbits(32), MASK - rng.randrange(20)])
        if rng.random() < 0.3:
            shift = rng.choice([0, 0, 1, 2, 4, rng.randrange(32), 31])
        for _ in range(rng.randint(5, 60)):
            edge = rng.randint(1, BINS) << shift
            ttt = rng.choice([0, rng.randrange(300), edge - 1, edge, edge + 1,
                              rng.getrandbits(32), MASK - rng.randrange(3)])
            x = Inputs(now=now, frame_start=int(rng.random() < p_frame),
                       hist_shift=shift, ready=int(rng.random() < p_ready))
            if rng.random() < p_order:
                x = replace(order(now, ttt, user_ref=rng.getrandbits(32),
                                  sym=rng.randrange(SYMBOLS),
                                  cancel=int(rng.random() < 0.2),
                                  t_event=rng.getrandbits(32), t_decide=rng.getrandbits(32)),
                            frame_start=x.frame_start, hist_shift=shift, ready=x.ready)
            cycles.append(x)
            now = (now + 1) & MASK
    return cycles


def test_model_constants_are_the_components():
    assert (model.RX_TAP_LATENCY, model.EARLY_TAP_LATENCY, model.BINS, model.COUNTERS) == (
        gateware.RX_TAP_LATENCY, gateware.EARLY_TAP_LATENCY, gateware.BINS,
        gateware.COUNTERS)


@pytest.mark.parametrize("depth,count", [(64, 3000), (4, 1500), (2, 600), (1, 600)])
def test_random_traffic_matches_the_model_every_cycle(depth, count):
    ref, _ = simulate(random_cycles(rng_for(f"telemetry{depth}"), count), depth)
    # the stimulus reached every corner it was meant to
    assert ref.counters["records_lost"] > 0 and ref.counters["orders_out"] > count // 4
    assert ref.histogram[0] and ref.histogram[BINS - 1] and sum(ref.histogram[1:-1])


def test_tick_to_trade_at_the_bin_edges():
    # bin width 8: 7 | 8 .. 15 | 16 ... 247 | 248 and beyond in the last bin
    ttts = [0, 7, 8, 15, 16, 30 * 8 - 1, 30 * 8, 31 * 8 - 1, 31 * 8, 31 * 8 + 1, MASK]
    cycles = [order(1000 + i, t, hist_shift=3) for i, t in enumerate(ttts)]
    ref, _ = simulate(cycles)
    want = [0] * BINS
    for b in (0, 0, 1, 1, 2, 29, 30, 30, 31, 31, 31):
        want[b] += 1
    assert ref.histogram == want
    assert (ref.ttt_min, ref.ttt_max) == (0, MASK)


def test_widest_bins_and_no_shift():
    # hist_shift 31: bin 0 below 2**31, bin 1 above; hist_shift 0: a bin per cycle
    cycles = [order(50, t, hist_shift=31) for t in ((1 << 31) - 1, 1 << 31, MASK)]
    cycles += [order(60 + t, t) for t in (0, 1, 30, 31, 32)]
    ref, _ = simulate(cycles)
    assert ref.histogram[:3] == [2, 3, 0] and ref.histogram[30:] == [1, 2]


def test_tick_to_trade_across_the_cycle_counter_wrap():
    # the frame came in 4 cycles before the counter wrapped, the order left 5 after
    ref, _ = simulate([order(5, 10), Inputs(now=6), order(MASK, MASK)])
    assert (ref.ttt_min, ref.ttt_max) == (10, MASK) and ref.histogram[10] == 1


def test_bins_and_counters_wrap_at_32_bits():
    cycles = [Inputs(now=1, frame_start=1), order(2, 5), order(3, 6, cancel=1)]
    ref, _ = simulate(cycles, depth=1, bins={5: MASK, 6: MASK},
                      counters=dict.fromkeys(model.COUNTERS, MASK))
    assert ref.histogram[5:7] == [0, MASK]  # the cancel counts no bin
    assert ref.counters == {"frames_in": 0, "orders_out": 1, "records_lost": 0}


@pytest.mark.parametrize("depth,kept", [(4, [0, 1, 2, 3]), (2, [0, 2]), (1, [0]),
                                        (0, [])])
def test_back_to_back_orders_into_an_unread_queue(depth, kept):
    # one order a cycle and nobody reading: depth 2 loses the second order, since its
    # one-entry store is still full in the cycle its entry moves to the output register
    cycles = [order(100 + i, i, user_ref=i) for i in range(10)]
    cycles += [Inputs(now=110 + i, ready=1) for i in range(12)]
    ref, seen = simulate(cycles, depth)
    drained = [s.record.user_ref for s, x in zip(seen, cycles) if x.ready and s.record]
    assert drained == kept[:len(drained)] == kept
    assert ref.counters["records_lost"] == 10 - len(kept) and ref.counters["orders_out"] == 10


def test_a_record_shows_two_cycles_after_its_order_and_leaves_when_read():
    cycles = [order(7, 3, user_ref=42, sym=5, t_event=5, t_decide=6)]
    cycles += [Inputs(now=8 + i, ready=int(i == 3)) for i in range(5)]
    _, seen = simulate(cycles)
    assert [s.record is not None for s in seen] == [False, False, True, True, True, False,
                                                    False]
    assert seen[2].record == Record(42, 5, 0, 4, 5, 6, 7)


def test_cancels_make_records_but_stay_out_of_the_histogram():
    cycles = [order(10, 3, cancel=1, ready=1), order(11, 9, ready=1)]
    cycles += [Inputs(now=12 + i, ready=1) for i in range(3)]
    ref, seen = simulate(cycles)
    assert [s.record.cancel for s in seen if s.record] == [1, 0]
    assert sum(ref.histogram) == 1 and (ref.ttt_min, ref.ttt_max) == (9, 9)


def test_frame_starts_reach_t_in_after_the_tap_latency():
    starts = {3, 10, 11, 20}
    cycles = [Inputs(now=1000 + c, frame_start=int(c in starts)) for c in range(30)]
    ref, seen = simulate(cycles)

    def last_start(c):
        return max((1000 + s for s in starts if s <= c), default=0)

    assert [s.t_in for s in seen[:30]] == [last_start(c - model.RX_TAP_LATENCY)
                                           for c in range(30)]
    assert [s.t_in_early for s in seen[:30]] == [last_start(c - model.EARLY_TAP_LATENCY)
                                                 for c in range(30)]
    assert ref.counters["frames_in"] == len(starts)


def test_min_and_max_start_at_the_first_order():
    ref, seen = simulate([Inputs(now=1), order(2, 1000), order(3, 2000), order(4, 500)])
    assert [(s.ttt_min, s.ttt_max) for s in seen] == [(0, 0), (0, 0), (1000, 1000),
                                                      (1000, 2000), (500, 2000)]
