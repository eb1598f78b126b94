"""What the board's path between MAC and core adds to tick-to-trade
(``python -m tick2trade.bench.bridge``; figures in docs/hardware.md).

``CoreBridge`` simulated with the board's clocks (the PHY's receive clock and the MAC's
transmit clock at 8 ns, the core's at ``1e9 / WIDE_CORE_HZ`` ns for W = 64) at random
phases to each other: how long from the clock edge that takes a frame's last byte from the
MAC to the core edge that holds the beat with it (receive), and from the core edge that
offers a frame's first beat to the MAC edge that takes its first byte (transmit). The
MAC's own cycles (``MacRx`` 6, ``MacTx``'s preamble and SFD 8) and the core's (its
counters) come on top. Figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import random
import statistics

from amaranth.sim import Simulator

from tick2trade.gateware.models.stream import frame_beats
from tick2trade.gateware.platforms.board_top import CORE_HZ, WIDE_CORE_HZ
from tick2trade.gateware.platforms.bridge import CoreBridge

MAC_PS = round(1e12 / CORE_HZ)
FRAME = 60  # the shortest frame without its FCS: an ITCH Add fits one


def crossing(width: int, phase_rx: int, phase_core: int) -> tuple[int, int]:
    """(receive ps, transmit ps) for one frame each way, clocks at the given phases
    (the time of a clock's edge ``k`` is its phase + ``k`` periods)."""
    core = "core" if width > 8 else "sync"
    sync_phase = MAC_PS // 2
    core_ps, core_phase = (round(1e12 / WIDE_CORE_HZ), phase_core) if width > 8 else \
        (MAC_PS, sync_phase)
    dut = CoreBridge(width, core)
    sim = Simulator(dut)
    sim.add_clock(MAC_PS * 1e-12, domain="eth_rx", phase=phase_rx * 1e-12)
    sim.add_clock(MAC_PS * 1e-12, domain="sync", phase=sync_phase * 1e-12)
    if width > 8:
        sim.add_clock(core_ps * 1e-12, domain="core", phase=core_phase * 1e-12)
    frame = bytes(range(FRAME))
    times = {}

    async def wire(ctx):
        edge = 0
        for b in frame_beats(frame, 1):
            ctx.set(dut.rx_bytes.payload, {**vars(b), "abort": 0})
            ctx.set(dut.rx_bytes.valid, 1)
            await ctx.tick("eth_rx")
            edge += 1
        times["rx_in"] = phase_rx + (edge - 1) * MAC_PS  # the edge that took the last byte
        ctx.set(dut.rx_bytes.valid, 0)

    async def core_side(ctx):
        edge = 0
        async for _clk, _rst, valid, last in ctx.tick(core).sample(
                dut.rx_beats.valid, dut.rx_beats.payload.last):
            if valid and last:
                break
            edge += 1
        times["rx_out"] = core_phase + edge * core_ps
        # the core answers two cycles later; its first beat is taken at the next edge
        await ctx.tick(core).repeat(2)
        times["tx_in"] = core_phase + (edge + 3) * core_ps
        for b in frame_beats(frame, width // 8):
            ctx.set(dut.tx_beats.payload, vars(b))
            ctx.set(dut.tx_beats.valid, 1)
            await ctx.tick(core).until(dut.tx_beats.ready)
        ctx.set(dut.tx_beats.valid, 0)

    async def mac_tx(ctx):
        ctx.set(dut.tx_bytes.ready, 1)
        edge = 0
        async for _clk, _rst, valid in ctx.tick("sync").sample(dut.tx_bytes.valid):
            if valid:
                times["tx_out"] = sync_phase + edge * MAC_PS
                return
            edge += 1

    sim.add_testbench(wire)
    sim.add_testbench(core_side)
    sim.add_process(mac_tx)
    sim.run_until(20e-6)
    return times["rx_out"] - times["rx_in"], times["tx_out"] - times["tx_in"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tick2trade.bench.bridge", description=__doc__)
    parser.add_argument("--runs", type=int, default=40, help="clock phases drawn")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"{'W':>3} {'core clock':>11} | {'MAC → core (ns)':>24} | {'core → MAC (ns)':>24}")
    for width in (64, 8):
        rx, tx = [], []
        for _ in range(args.runs):
            r, t = crossing(width, rng.randrange(MAC_PS), rng.randrange(round(1e12 /
                                                                            WIDE_CORE_HZ)))
            rx.append(r / 1000)
            tx.append(t / 1000)
        hz = WIDE_CORE_HZ if width > 8 else CORE_HZ

        def spread(v: list[float]) -> str:
            return f"{min(v):5.1f} / {statistics.median(v):5.1f} / {max(v):5.1f}"

        print(f"{width:>3} {hz / 1e6:>7.1f} MHz | min/median/max {spread(rx)} | "
              f"min/median/max {spread(tx)}")


if __name__ == "__main__":
    main()
