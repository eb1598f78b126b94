"""The Verilator harness (sim/verilator.py + sim/harness.cpp) on a small stand-in component
with the same kinds of ports as the receive path: an always-ready beat stream in, an
output stream with backpressure and a payload wider than 64 bits, wide struct inputs and
a struct of 32-bit counters."""

import random

import numpy as np
import pytest
from amaranth import Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from tick2trade.gateware.stream import beat_layout
from tick2trade.sim import verilator

from tick2trade.testing.simtools import SEED, rng_for

pytestmark = pytest.mark.verilator

DIGEST = data.StructLayout({"length": 16, "sum": 32, "head": 64, "tag": 80, "index": 8})
TAG = data.StructLayout({"enable": 1, "key": 80})
COUNTERS = data.StructLayout({"frames": 32, "bytes": 32, "beats": 32})


class FrameDigest(wiring.Component):
    """Stand-in: one digest per frame (length, byte sum, first beat, a configured tag)."""

    def __init__(self, data_width: int = 64):
        self.data_width = data_width
        super().__init__({
            "mac": In(stream.Signature(beat_layout(data_width), always_ready=True)),
            "digests": Out(stream.Signature(DIGEST)),
            "tag": In(TAG),
            "counters": Out(COUNTERS),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self.data_width // 8
        beat, valid = self.mac.payload, self.mac.valid
        m.submodules.q = q = fifo.SyncFIFOBuffered(width=DIGEST.size, depth=4)
        length, total, head = Signal(16), Signal(32), Signal(64)
        index = Signal(8)
        count = sum(beat.be[i] for i in range(lanes))
        bsum = sum(Mux(beat.be[i], beat.data[8 * i:8 * i + 8], 0) for i in range(lanes))
        new_length = Mux(beat.first, 0, length) + count
        new_total = Mux(beat.first, 0, total) + bsum
        new_head = Mux(beat.first, beat.data, head)
        record = Signal(DIGEST)
        m.d.comb += [
            record.length.eq(new_length), record.sum.eq(new_total), record.head.eq(new_head),
            record.tag.eq(Mux(self.tag.enable, self.tag.key, 0)), record.index.eq(index),
            q.w_data.eq(record), q.w_en.eq(valid & beat.last),
            self.digests.payload.eq(q.r_data), self.digests.valid.eq(q.r_rdy),
            q.r_en.eq(self.digests.ready),
        ]
        with m.If(valid):
            m.d.sync += [length.eq(new_length), total.eq(new_total), head.eq(new_head),
                         self.counters.beats.eq(self.counters.beats + 1),
                         self.counters.bytes.eq(self.counters.bytes + count)]
            with m.If(beat.last):
                m.d.sync += [index.eq(index + 1),
                             self.counters.frames.eq(self.counters.frames + 1)]
        return m


@pytest.fixture(scope="module")
def digest_build():
    return verilator.build(FrameDigest(64), "frame_digest")


def open_model(build) -> verilator.Model:
    model = verilator.Model(build)
    model.bind_input("mac", beat_layout(64))
    model.bind_output("digests")
    model.reset()
    return model


def expected_digest(frame: bytes, index: int, tag: int) -> dict:
    return {"length": len(frame), "sum": sum(frame) & 0xFFFFFFFF,
            "head": int.from_bytes(frame[:8], "little"), "tag": tag, "index": index & 0xFF}


def test_ports_are_named_after_the_signature(digest_build):
    with verilator.Model(digest_build) as model:
        ports = {name: (p.width, p.output) for name, p in model.ports.items()}
    assert ports == {
        "clk": (1, False), "rst": (1, False),
        "mac__payload": (beat_layout(64).size, False), "mac__valid": (1, False),
        "digests__payload": (DIGEST.size, True), "digests__valid": (1, True),
        "digests__ready": (1, False), "tag": (TAG.size, False),
        "counters": (COUNTERS.size, True),
    }


def test_wide_ports_round_trip(digest_build):
    rng = rng_for("wide")
    with open_model(digest_build) as model:
        for _ in range(20):
            value = rng.getrandbits(TAG.size)
            model["tag"] = value
            assert model["tag"] == value
        with pytest.raises(ValueError):
            model["tag"] = 1 << TAG.size
        with pytest.raises(ValueError):
            model["counters"] = 0


def test_second_build_comes_from_the_cache(digest_build):
    again = verilator.build(FrameDigest(64), "frame_digest")
    assert again.cached and again.library == digest_build.library


@pytest.mark.parametrize("idle", [0, 3])
def test_frames_in_digests_out(digest_build, idle):
    rng = rng_for(f"frames{idle}")
    key = rng.getrandbits(80)
    frames = [rng.randbytes(rng.choice([1, 7, 8, 9, 60, rng.randint(1, 300)]))
              for _ in range(500)]
    with open_model(digest_build) as model:
        model["tag"] = TAG.const({"enable": 1, "key": key}).as_value().value
        cycles = model.run_frames(frames[:200], idle) + model.run_frames(frames[200:], idle)
        model.drain(quiet=16)
        beats = model.take("digests")
        counters = verilator.decode_columns(COUNTERS, np.array([[
            (model["counters"] >> (32 * k)) & 0xFFFFFFFF for k in range(3)]], np.uint32))
    assert cycles == sum(-(-len(f) // 8) for f in frames) + idle * len(frames)
    cols = verilator.decode_columns(DIGEST, beats)
    got = [{name: int(cols[name][i]) for name in cols} for i in range(len(beats))]
    assert got == [expected_digest(f, i, key) for i, f in enumerate(frames)], f"seed {SEED}"
    # the column decoder agrees with Amaranth's own view of the layout
    first = DIGEST.from_bits(int.from_bytes(beats[0].astype("<u4").tobytes(), "little"))
    assert {n: int(getattr(first, n)) for n, _ in DIGEST} == got[0]
    assert {k: int(v[0]) for k, v in counters.items()} == {
        "frames": len(frames), "bytes": sum(map(len, frames)),
        "beats": sum(-(-len(f) // 8) for f in frames)}


def test_reset_clears_state_and_captures_nothing(digest_build):
    with open_model(digest_build) as model:
        model.run_frames([bytes(range(20))])
        model.drain(quiet=8)
        assert len(model.take("digests")) == 1
        model.reset()
        assert model["counters"] == 0
        assert len(model.take("digests")) == 0
        model.run_frames([b"\x05"])
        model.drain(quiet=8)
        (row,) = model.take("digests")
        cols = verilator.decode_columns(DIGEST, row[None, :])
        assert int(cols["index"][0]) == 0 and int(cols["sum"][0]) == 5


def test_decode_columns_against_layout_const():
    layout = data.StructLayout({"a": 3, "b": 64, "c": 61, "d": 90, "e": 1,
                                "s": data.StructLayout({"x": 33, "y": 7})})
    rng = random.Random(SEED)
    values = [rng.getrandbits(layout.size) for _ in range(50)]
    words = (layout.size + 31) // 32
    beats = np.array([[(v >> (32 * k)) & 0xFFFFFFFF for k in range(words)] for v in values],
                     dtype=np.uint32)
    cols = verilator.decode_columns(layout, beats)
    for i, v in enumerate(values):
        const = layout.from_bits(v)
        assert int(cols["a"][i]) == int(const.a)
        assert int(cols["b"][i]) == int(const.b)
        assert int(cols["c"][i]) == int(const.c)
        assert cols["d"][i] == int(const.d)
        assert int(cols["e"][i]) == int(const.e)
        assert int(cols["s.x"][i]) == int(const.s.x)
        assert int(cols["s.y"][i]) == int(const.s.y)
