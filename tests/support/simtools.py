"""Amaranth-simulator helpers shared by the stage tests: a beat source with random idle
cycles, a sink with random backpressure, and a runner that prints the seed on failure."""

from __future__ import annotations

import os
import random

from amaranth.lib import data
from amaranth.sim import Simulator

SEED = int(os.environ.get("T2T_SEED", random.randrange(1 << 32)))


def rng_for(name: str) -> random.Random:
    """A per-test RNG derived from the session seed (printed by pytest on failure)."""
    return random.Random(f"{SEED}:{name}")


def run(dut, *testbenches, processes=(), deadline_cycles: int | None = None) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in testbenches:
        sim.add_testbench(tb)
    for p in processes:
        sim.add_process(p)
    if deadline_cycles is None:
        sim.run()
    else:
        sim.run_until(deadline_cycles * 1e-8)


def as_dict(beat) -> dict:
    """A model beat (dataclass) as a payload dict for ``ctx.set``."""
    return {k: int(v) for k, v in vars(beat).items()}


async def send(ctx, port, beats, rng: random.Random | None = None, idle: float = 0.0,
               between: tuple[int, int] = (0, 0), packets: bool = True) -> None:
    """Drive ``beats`` (payload dicts) into a stream port.

    ``idle`` is the chance of an idle cycle before any beat (``valid`` gaps mid-packet);
    ``between`` draws idle cycles before each beat with ``first`` set. Honors ``ready``
    unless the port is always-ready.
    """
    rng = rng or random.Random(0)
    always_ready = port.signature.always_ready
    for b in beats:
        gap = rng.randint(*between) if packets and b.get("first") else 0
        while gap or (idle and rng.random() < idle):
            ctx.set(port.valid, 0)
            await ctx.tick()
            gap = max(0, gap - 1)
        ctx.set(port.payload, b)
        ctx.set(port.valid, 1)
        if always_ready:
            await ctx.tick()
        else:
            await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


def collect(port, out: list, rng: random.Random | None = None, stall: float = 0.0):
    """A process that records every payload taken from ``port``; with ``stall`` > 0 it
    withholds ``ready`` at random (ports with backpressure only)."""
    rng = rng or random.Random(0)
    always_ready = port.signature.always_ready

    async def process(ctx):
        if always_ready:
            async for _clk, _rst, valid, payload in ctx.tick().sample(port.valid,
                                                                       port.payload):
                if valid:
                    out.append(payload)
        else:
            ctx.set(port.ready, 1)
            async for _clk, _rst, valid, ready, payload in ctx.tick().sample(
                    port.valid, port.ready, port.payload):
                if valid and ready:
                    out.append(payload)
                ctx.set(port.ready, 0 if (stall and rng.random() < stall) else 1)

    return process


def const_to_dict(value) -> dict:
    """A sampled struct (data.Const) as {field: int}."""
    if isinstance(value, data.Const):
        return {name: const_to_dict(getattr(value, name))
                for name, _ in value.shape()} if isinstance(value.shape(),
                                                            data.StructLayout) else value
    return int(value)
