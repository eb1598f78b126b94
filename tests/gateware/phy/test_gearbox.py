"""Width converters between the MAC's bytes and a wide core, against ``frame_beats``:
random frames with idle cycles (and, into ``Narrow``'s output, stalls)."""

import pytest
from amaranth import Module
from amaranth.lib import fifo

from tick2trade.gateware.phy.gearbox import Narrow, Widen
from tick2trade.gateware.models.stream import beats_to_frames, frame_beats

from tick2trade.testing.simtools import SEED, as_dict, collect, rng_for, run, send


def byte_beats(frame: bytes, abort: bool) -> list[dict]:
    beats = [dict(as_dict(b), abort=0) for b in frame_beats(frame, 1)]
    beats[-1]["abort"] = int(abort)
    return beats


def plain(payload) -> tuple:
    return (int(payload.data), int(payload.be), int(payload.first), int(payload.last))


@pytest.mark.parametrize("width", [64, 32])
def test_widen_packs_lane_preserving_beats(width):
    rng = rng_for(f"widen_{width}")
    n = width // 8
    frames = [rng.randbytes(rng.randint(1, 3 * n + 5)) for _ in range(40)]
    aborts = [rng.random() < 0.3 for _ in frames]
    dut = Widen(width, abort=1)
    out = []

    async def tb(ctx):
        for frame, abort in zip(frames, aborts):
            await send(ctx, dut.bytes_in, byte_beats(frame, abort), rng, idle=0.3,
                       between=(0, 3))
        await ctx.tick().repeat(4)

    run(dut, tb, processes=[collect(dut.beats, out)])
    want = [(b.data, b.be, int(b.first), int(b.last)) for f in frames for b in frame_beats(f, n)]
    assert [plain(p) for p in out] == want, f"seed {SEED}"
    assert [int(p.abort) for p in out if p.last] == [int(a) for a in aborts]


def test_widen_drops_a_frame_left_open_by_a_new_first_byte():
    dut = Widen(64, abort=1)
    out = []

    async def tb(ctx):
        await send(ctx, dut.bytes_in, byte_beats(b"abc", False)[:2])  # never ends
        await send(ctx, dut.bytes_in, byte_beats(b"xyz", False))
        await ctx.tick().repeat(3)

    run(dut, tb, processes=[collect(dut.beats, out)])
    assert [plain(p) for p in out] == [(int.from_bytes(b"xyz", "little"), 0b111, 1, 1)]


@pytest.mark.parametrize("width", [64, 16])
def test_narrow_sends_every_enabled_lane_in_order(width):
    rng = rng_for(f"narrow_{width}")
    n = width // 8
    frames = [rng.randbytes(rng.randint(1, 3 * n + 5)) for _ in range(40)]
    dut = Narrow(width)
    out = []

    async def tb(ctx):
        for frame in frames:
            await send(ctx, dut.beats, [as_dict(b) for b in frame_beats(frame, n)], rng,
                       idle=0.2)
        await ctx.tick().repeat(8 * n)

    run(dut, tb, processes=[collect(dut.bytes_out, out, rng, stall=0.3)])
    done, open_ = beats_to_frames(map(plain, out), 1)
    assert done == frames and not open_, f"seed {SEED}"
    # beats_to_frames forgives a missing first flag after a last one; a MAC may not
    assert [int(p.first) for p in out] == [int(k == 0) for f in frames for k in range(len(f))]


def test_narrow_takes_a_beat_without_lanes_and_sends_nothing_for_it():
    rng = rng_for("narrow_empty_beats")
    frames = [rng.randbytes(rng.randint(1, 20)) for _ in range(30)]
    empty = {"data": 0xFFFF_FFFF_FFFF_FFFF, "be": 0, "first": 0, "last": 0}
    dut = Narrow(64)
    out = []

    async def tb(ctx):
        for frame in frames:
            beats = [empty] * rng.randint(0, 2) + [as_dict(b) for b in frame_beats(frame, 8)]
            await send(ctx, dut.beats, beats, rng, idle=0.2)
        await ctx.tick().repeat(64)

    run(dut, tb, processes=[collect(dut.bytes_out, out, rng, stall=0.3)])
    assert b"".join(bytes([int(p.data)]) for p in out) == b"".join(frames), f"seed {SEED}"
    done, open_ = beats_to_frames(map(plain, out), 1)
    assert done == frames and not open_, f"seed {SEED}"


def test_widen_then_narrow_is_the_identity():
    rng = rng_for("gearbox_round_trip")
    frames = [rng.randbytes(rng.randint(1, 40)) for _ in range(30)]
    m = Module()
    m.submodules.widen = widen = Widen(64)
    m.submodules.narrow = narrow = Narrow(64)
    # as on a board, a FIFO holds the wide beats while the narrow side sends their bytes
    width = len(widen.beats.payload.as_value())
    m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=width, depth=4)
    m.d.comb += [q.w_data.eq(widen.beats.payload.as_value()), q.w_en.eq(widen.beats.valid),
                 narrow.beats.valid.eq(q.r_rdy), narrow.beats.payload.eq(q.r_data),
                 q.r_en.eq(narrow.beats.ready)]
    out = []

    async def tb(ctx):
        for frame in frames:
            await send(ctx, widen.bytes_in, [as_dict(b) for b in frame_beats(frame, 1)], rng,
                       idle=0.2)
        await ctx.tick().repeat(20)

    run(m, tb, processes=[collect(narrow.bytes_out, out)])
    done, _ = beats_to_frames(map(plain, out), 1)
    assert done == frames, f"seed {SEED}"
