"""Status lights on an LED array whose LEDs share their colour lines (the ButterStick's
seven RGB LEDs: one select pin per LED, one line per colour for all of them). Only one
LED can show its own colour at a time, so each takes a turn; fast enough, the eye sees
them all steady at a third of their brightness.
"""

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

# 2**14 cycles a turn: three LEDs refresh at 424 Hz on the 20.8 MHz wide core clock
# (2.5 kHz at 125 MHz), far above the 50..100 Hz where flicker shows
SLOT_BITS = 14


class LedMux(wiring.Component):
    """Time-multiplexes ``n`` on/off functions onto ``n`` LEDs with shared colour lines.

    LED ``i`` is selected for 2**``slot_bits`` cycles, then LED ``i + 1`` (after the
    last, LED 0 again); while selected it is lit if ``states[i]`` is. The board drives
    select pin ``i`` from ``select[i]`` and each colour line from the ``lit`` bits of
    the functions shown in that colour: the other lines stay dark, so an LED never
    shows another's colour. Golden model: ``gateware.models.led_mux.led_mux``.

    Members
    -------
    states : In(n) — function ``i`` on.
    select : Out(n) — one-hot: the LED whose turn it is.
    lit : Out(n) — ``select`` where that LED's function is on, else 0.

    Latency: 0 cycles from ``states`` to ``lit``.
    """

    def __init__(self, n: int, slot_bits: int = SLOT_BITS):
        self.n = n
        self.slot_bits = slot_bits
        super().__init__({"states": In(n), "select": Out(n), "lit": Out(n)})

    def elaborate(self, platform):
        m = Module()
        timer = Signal(self.slot_bits)
        turn = Signal(range(self.n))
        m.d.sync += timer.eq(timer + 1)
        with m.If(timer == (1 << self.slot_bits) - 1):
            with m.If(turn == self.n - 1):
                m.d.sync += turn.eq(0)
            with m.Else():
                m.d.sync += turn.eq(turn + 1)
        m.d.comb += [self.select.eq(1 << turn), self.lit.eq(self.select & self.states)]
        return m
