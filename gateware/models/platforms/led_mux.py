"""What ``gateware.platforms.led_mux.LedMux`` shows in a given cycle: used by its test to
state, cycle by cycle, which LED is selected and which one is lit."""

from __future__ import annotations


def led_mux(cycle: int, states: list[bool], slot_bits: int) -> tuple[int, int]:
    """(select, lit) in ``cycle`` (counted from reset) with the functions in ``states``:
    LED ``i`` is selected for 2**slot_bits cycles in turn, one-hot in ``select``, and
    lit (its bit in ``lit``) while selected if its function is on."""
    slot = (cycle >> slot_bits) % len(states)
    select = 1 << slot
    return select, select if states[slot] else 0
