"""The board's path between MAC and core (``CoreBridge``) in three clocks: the PHY's
receive clock, the MAC's 125 MHz transmit clock at another phase and, for a wide core,
the core's 25 MHz. The core is a loopback (a FIFO from its receive beats to its transmit
beats), so every frame the MAC delivers must come back out to the MAC, byte for byte and
in order, whatever idle time separates the bytes on the wire."""

import pytest
from amaranth import Module, Signal
from amaranth.hdl import DomainRenamer
from amaranth.lib import fifo
from amaranth.sim import Simulator

from tick2trade.gateware.models.stream import beats_to_frames, frame_beats
from tick2trade.gateware.platforms.bridge import CoreBridge

from tick2trade.testing.simtools import SEED, rng_for

MAC_NS, CORE_NS = 8, 40


def loopback(width: int):
    m = Module()
    core = "core" if width > 8 else "sync"
    m.submodules.bridge = bridge = CoreBridge(width, core)
    # the core's loopback: its transmit side has backpressure, its receive side none
    beat = len(bridge.tx_beats.payload.as_value())
    loop = fifo.SyncFIFOBuffered(width=beat, depth=64)
    m.submodules.loop = DomainRenamer(core)(loop)
    m.d.comb += [loop.w_data.eq(bridge.rx_beats.payload.as_value()[:beat]),
                 loop.w_en.eq(bridge.rx_beats.valid),
                 bridge.tx_beats.valid.eq(loop.r_rdy),
                 bridge.tx_beats.payload.eq(loop.r_data),
                 loop.r_en.eq(bridge.tx_beats.ready)]
    return m, bridge, loop


@pytest.mark.parametrize("width", [64, 8])
def test_frames_cross_to_the_core_and_back_unchanged(width):
    rng = rng_for(f"bridge_{width}")
    frames = [rng.randbytes(rng.randint(1, 90)) for _ in range(25)]
    m, bridge, loop = loopback(width)
    overflow = Signal()
    core = "core" if width > 8 else "sync"
    m.d.comb += overflow.eq(bridge.rx_beats.valid & ~loop.w_rdy)
    out, lost = [], []
    sim = Simulator(m)
    sim.add_clock(MAC_NS * 1e-9, domain="eth_rx")
    sim.add_clock(MAC_NS * 1e-9, domain="sync", phase=3e-9)
    if width > 8:
        sim.add_clock(CORE_NS * 1e-9, domain="core")

    async def wire(ctx):
        for frame in frames:
            await ctx.tick("eth_rx").repeat(rng.randint(12, 30))  # gap and preamble
            for b in frame_beats(frame, 1):
                ctx.set(bridge.rx_bytes.payload, {**vars(b), "abort": 0})
                ctx.set(bridge.rx_bytes.valid, 1)
                await ctx.tick("eth_rx")
            ctx.set(bridge.rx_bytes.valid, 0)
        await ctx.tick("sync").repeat(100 * len(frames))

    async def mac_tx(ctx):
        ctx.set(bridge.tx_bytes.ready, 1)
        async for _clk, _rst, valid, payload in ctx.tick("sync").sample(
                bridge.tx_bytes.valid, bridge.tx_bytes.payload):
            if valid:
                out.append((int(payload.data), int(payload.be), int(payload.first),
                            int(payload.last)))

    async def watch(ctx):
        async for _clk, _rst, full in ctx.tick(core).sample(overflow):
            if full:
                lost.append(1)

    sim.add_testbench(wire)
    sim.add_process(mac_tx)
    sim.add_process(watch)
    sim.run()
    done, open_ = beats_to_frames(out, 1)
    assert not lost
    assert done == frames and not open_, f"seed {SEED}"


def test_a_frame_the_core_sends_reaches_the_mac_without_a_gap():
    """``MacTx`` cannot wait mid-frame (a missing byte ends the frame with TX_ER), so
    once a frame's first byte is out the rest must follow every cycle, while the core
    gives its beats one a cycle at 25 MHz (as ``TxArbiter`` does, whole frames) and the
    MAC sometimes holds ``ready`` low between frames."""
    rng = rng_for("bridge_tx_gaps")
    frames = [rng.randbytes(rng.randint(1, 120)) for _ in range(30)]
    m = Module()
    m.submodules.bridge = bridge = CoreBridge(64, "core")
    sim = Simulator(m)
    sim.add_clock(MAC_NS * 1e-9, domain="eth_rx")
    sim.add_clock(MAC_NS * 1e-9, domain="sync", phase=3e-9)
    sim.add_clock(CORE_NS * 1e-9, domain="core")
    out, gaps = [], []

    async def core(ctx):
        for frame in frames:
            for b in frame_beats(frame, 8):
                ctx.set(bridge.tx_beats.payload, vars(b))
                ctx.set(bridge.tx_beats.valid, 1)
                await ctx.tick("core").until(bridge.tx_beats.ready)
            ctx.set(bridge.tx_beats.valid, 0)
            await ctx.tick("core").repeat(rng.randint(1, 4))
        await ctx.tick("sync").repeat(200 * len(frames))

    async def mac(ctx):
        in_frame, idle = False, 0
        async for _clk, _rst, valid, payload, taken in ctx.tick("sync").sample(
                bridge.tx_bytes.valid, bridge.tx_bytes.payload, bridge.tx_bytes.ready):
            ready = rng.random() < 0.5
            if valid and taken:
                out.append((int(payload.data), int(payload.be), int(payload.first),
                            int(payload.last)))
                in_frame = not payload.last
                idle = 0
            elif in_frame:
                gaps.append(len(out))
            else:
                idle += 1
            # like MacTx: ready throughout a frame, at will between frames
            ctx.set(bridge.tx_bytes.ready, 1 if in_frame else int(ready or idle >= 2))

    sim.add_testbench(core)
    sim.add_process(mac)
    sim.run()
    done, open_ = beats_to_frames(out, 1)
    assert done == frames and not open_, f"seed {SEED}"
    assert not gaps, f"the MAC waited mid-frame after byte(s) {gaps[:5]}; seed {SEED}"


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_a_byte_wide_core_must_share_the_transmit_clock():
    with pytest.raises(ValueError, match="transmit clock"):
        CoreBridge(8, "core")
