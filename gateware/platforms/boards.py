"""What differs between boards: the amaranth-boards platform, the oscillator and the PLL
that turns it into the 125 MHz core clock, which RGMII port is used, which LEDs show
what (one pin each, or an array sharing colour lines), and the largest ``Top``
parameters that fit the device."""

from dataclasses import dataclass

from tick2trade.gateware.profiles import SHIPPED, SMALL_BOARD, BuildProfile


@dataclass(frozen=True)
class Pll:
    """EHXPLLL divisors (as ``ecppll`` computes them): f_out = f_in / clki_div *
    clkfb_div, VCO = f_out * clkop_div (400..800 MHz)."""

    clki_div: int
    clkfb_div: int
    clkop_div: int

    def output_hz(self, input_hz: float) -> float:
        return input_hz / self.clki_div * self.clkfb_div

    def vco_hz(self, input_hz: float) -> float:
        return self.output_hz(input_hz) * self.clkop_div


@dataclass(frozen=True)
class Board:
    """One board.

    ``platform`` is the amaranth-boards class path (imported when needed, so the list
    costs nothing to read); ``clock`` the oscillator resource and its frequency;
    ``reset`` the reset button resource or None; ``eth`` the ``eth_rgmii`` number that
    carries feed, control and orders; ``leds`` maps a function (``link``, ``activity``,
    ``kill``) to (resource, number, subsignal or None); ``led_select``, for an LED array
    whose LEDs share their colour lines, is the subsignal of that resource with one
    select pin per LED (high selects; the board takes turns, ``led_mux``): the functions
    then take LEDs 0, 1, 2... in ``leds``' order, each entry's subsignal naming its
    colour line (high lights it); ``top`` the ``BuildProfile`` the
    bitstream is built with; ``core_width`` the core's beat width (8: the core runs
    at the MAC's 125 MHz; wider: in a slower clock of its own behind a gearbox, see
    ``board_top``)."""

    name: str
    platform: str
    clock: str
    clock_hz: float
    pll: Pll
    reset: str | None
    eth: int
    leds: dict
    top: BuildProfile = SHIPPED
    core_width: int = 8
    led_select: str | None = None
    description: str = ""

    def platform_class(self):
        module, _, cls = self.platform.rpartition(".")
        import importlib

        return getattr(importlib.import_module(module), cls)


BOARDS = {
    "ecpix5": Board(
        name="ecpix5",
        platform="amaranth_boards.ecpix5.ECPIX585Platform",
        clock="clk100", clock_hz=100e6, pll=Pll(clki_div=4, clkfb_div=5, clkop_div=5),
        reset="rst", eth=0,
        leds={"link": ("rgb_led", 0, "g"), "activity": ("rgb_led", 1, "b"),
              "kill": ("rgb_led", 2, "r")},
        # the shipped Top needs 221 block RAMs of the 208 (docs/hardware.md); the W = 8
        # core places at 34 MHz against 125, the W = 64 one at 27 MHz against 20.8
        top=SMALL_BOARD, core_width=64,
        description="LambdaConcept ECPIX-5, LFE5UM5G-85F; the reduced core at W = 64",
    ),
    "colorlight": Board(
        name="colorlight",
        platform="amaranth_boards.colorlight_5a75b_r7_0.Colorlight_5A75B_R70Platform",
        clock="clk25", clock_hz=25e6, pll=Pll(clki_div=1, clkfb_div=5, clkop_div=5),
        reset=None, eth=0,
        leds={"kill": ("led", 0, None)},
        # LFE5U-25F: 24k LUT4 and 56 EBR against the 85F's 84k and 208. Even SMALL_BOARD
        # needs more LUTs than that: the board elaborates but does not fit yet.
        top=SMALL_BOARD,
        description="Colorlight 5A-75B v7.0, LFE5U-25F; does not fit yet",
    ),
    "butterstick": Board(
        name="butterstick",
        platform="amaranth_boards.butterstick.ButterStickPlatform",
        # 30 MHz / 6 = 5 MHz at the phase detector (ECP5: >= 3.125), x 25 = 125 MHz,
        # VCO 625 MHz: the one the wide core's VCO / 30 assumes (board_top)
        clock="clk30", clock_hz=30e6, pll=Pll(clki_div=6, clkfb_div=25, clkop_div=5),
        reset="button", eth=0,
        # seven RGB LEDs: a select pin each, shared r/g/b lines, all active high as
        # amaranth-boards declares them (plain Pins); published designs for this board
        # agree (a colour line driven high lights that colour, e.g. R1 high "blue only").
        # Not checked against the schematic or on a board.
        leds={"link": ("rgb_leds_muxed", 0, "g"), "activity": ("rgb_leds_muxed", 0, "b"),
              "kill": ("rgb_leds_muxed", 0, "r")},
        led_select="leds",
        # the same LFE5UM5G-85F as the ECPIX-5 (BG381 instead of BG554), the same core
        top=SMALL_BOARD, core_width=64,
        description="Great Scott Gadgets ButterStick, LFE5UM5G-85F; the ECPIX-5's "
                    "core at W = 64, not built yet",
    ),
}


def board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise KeyError(f"unknown board {name!r}; known: {', '.join(BOARDS)}") from None
