"""The stream bench of ``tests/support/stream.py`` on a FIFO: packets go through whole
under idle cycles and backpressure, and a DUT that breaks the handshake fails loudly."""

from __future__ import annotations

import pytest
from amaranth import Module, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from tick2trade.gateware.stream import beat_layout
from tick2trade.testing.simtools import SEED, rng_for
from tick2trade.testing.stream import (StreamSink, StreamSource, pattern_pauses,
                                       random_pauses)

LANES = 4


class Fifo(wiring.Component):
    """A 4-deep FIFO of packet beats; ``flaw`` makes its output break the handshake every
    8 cycles: "valid" drops it, "payload" flips a data bit."""

    def __init__(self, flaw: str | None = None):
        self.flaw = flaw
        layout = beat_layout(8 * LANES)
        super().__init__({"i": In(stream.Signature(layout)),
                          "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=self.i.payload.shape().size,
                                                      depth=4)
        m.d.comb += [q.w_data.eq(self.i.payload), q.w_en.eq(self.i.valid),
                     self.i.ready.eq(q.w_rdy), self.o.payload.eq(q.r_data),
                     self.o.valid.eq(q.r_rdy), q.r_en.eq(self.o.ready)]
        tick = Signal(3)
        m.d.sync += tick.eq(tick + 1)
        if self.flaw == "valid":
            m.d.comb += self.o.valid.eq(q.r_rdy & (tick != 0))
        elif self.flaw == "payload":
            m.d.comb += self.o.payload.data.eq(q.r_data[:8 * LANES] ^ (tick == 0))
        return m


def through(dut: Fifo, frames: list[bytes], source: StreamSource, sink: StreamSink):
    async def tb(ctx):
        await source.send_frames(ctx, frames, LANES)
        await sink.wait(ctx, len(source.sent))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.add_process(sink.process)
    sim.run()
    return sink.frames(LANES)


def random_frames(rng, n: int) -> list[bytes]:
    return [rng.randbytes(rng.randint(1, 30)) for _ in range(n)]


@pytest.mark.parametrize("idle,stall", [(None, None), ("random", "random"),
                                        ("pattern", "pattern")])
def test_packets_arrive_whole_under_idle_cycles_and_backpressure(idle, stall):
    rng = rng_for(f"bench-{idle}-{stall}")
    frames = random_frames(rng, 40)
    dut = Fifo()
    source = StreamSource(dut.i, {"random": random_pauses(rng, 0.3),
                                  "pattern": pattern_pauses(".x")}.get(idle),
                          gap=(0, 3), rng=rng)
    sink = StreamSink(dut.o, {"random": random_pauses(rng, 0.4),
                              "pattern": pattern_pauses("..xx")}.get(stall), framed=True)
    assert through(dut, frames, source, sink) == (frames, b""), SEED


@pytest.mark.parametrize("flaw,what", [("valid", "valid withdrawn"),
                                       ("payload", "changed")])
def test_a_broken_handshake_fails_the_test(flaw, what):
    rng = rng_for(f"bench-{flaw}")
    dut = Fifo(flaw)
    with pytest.raises(AssertionError, match=what):
        through(dut, random_frames(rng, 20), StreamSource(dut.i),
                StreamSink(dut.o, pattern_pauses("xx."), name="fifo.o"))


def test_an_always_ready_port_cannot_be_stalled():
    port = stream.Signature(8, always_ready=True).create()
    with pytest.raises(ValueError, match="always-ready"):
        StreamSink(port, pattern_pauses("x"))
