"""The multiplexed status LEDs against ``models.platforms.led_mux``: random function states every
cycle, the select and lit lines compared cycle by cycle over several rounds of turns."""

import pytest

from tick2trade.gateware.models.platforms.led_mux import led_mux
from tick2trade.gateware.platforms.board_top import WIDE_CORE_HZ
from tick2trade.gateware.platforms.led_mux import SLOT_BITS, LedMux

from tick2trade.testing.simtools import SEED, rng_for, run


@pytest.mark.parametrize("n,slot_bits", [(3, 2), (3, 0), (1, 3), (7, 1)])
def test_each_led_takes_its_turn_lit_by_its_own_function(n, slot_bits):
    rng = rng_for(f"led_mux_{n}_{slot_bits}")
    dut = LedMux(n, slot_bits)
    cycles = 4 * n << slot_bits
    # states held for a few cycles, sometimes across a turn's edge, sometimes one cycle
    states = []
    while len(states) < cycles:
        held = [rng.random() < 0.5 for _ in range(n)]
        states += [held] * rng.randint(1, 5)
    seen, want = [], []

    async def tb(ctx):
        for cycle, held in enumerate(states[:cycles]):
            ctx.set(dut.states, sum(on << i for i, on in enumerate(held)))
            seen.append((ctx.get(dut.select), ctx.get(dut.lit)))
            want.append(led_mux(cycle, held, slot_bits))
            await ctx.tick()

    run(dut, tb)
    for cycle, (got, expected) in enumerate(zip(seen, want)):
        assert got == expected, f"cycle {cycle}: (select, lit) {got} != {expected}, seed {SEED}"


def test_a_round_of_turns_is_faster_than_the_eye_on_the_slowest_core_clock():
    refresh_hz = WIDE_CORE_HZ / (3 << SLOT_BITS)
    assert refresh_hz > 200
