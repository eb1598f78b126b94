"""Every board's top level elaborates and converts to RTLIL with its pins and clock
constraints (cheap, in the default run); the bitstream itself is a ``slow`` test."""

import json

import pytest

from tick2trade.gateware.platforms import BOARDS, board
from tick2trade.gateware.platforms.board_top import CORE_HZ, WIDE_CORE_DIV, WIDE_CORE_HZ, BoardTop
from tick2trade.gateware.profiles import SMALL_BOARD
from tick2trade.gateware.platforms.report import summarize


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_pll_makes_the_core_clock_within_the_vco_range(name):
    spec = board(name)
    assert spec.pll.output_hz(spec.clock_hz) == CORE_HZ
    assert 400e6 <= spec.pll.vco_hz(spec.clock_hz) <= 800e6
    if spec.core_width != 8:
        # the wide core's clock is CLKOS, the VCO divided by WIDE_CORE_DIV
        assert spec.pll.vco_hz(spec.clock_hz) / WIDE_CORE_DIV == pytest.approx(WIDE_CORE_HZ)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_top_elaborates_to_rtlil(name):
    spec = board(name)
    platform = spec.platform_class()()
    plan = platform.prepare(BoardTop(spec), name=f"t2t_{name}")
    check_plan(plan, name, spec)


def test_wide_core_board_top_elaborates_with_its_own_clock():
    spec = board("ecpix5")
    # CLKOS divides the VCO exactly
    assert spec.pll.vco_hz(spec.clock_hz) / WIDE_CORE_DIV == pytest.approx(WIDE_CORE_HZ)
    design = BoardTop(spec, core_width=64, **SMALL_BOARD.top_kwargs())
    plan = spec.platform_class()().prepare(design, name="t2t_wide")
    rtlil = check_plan(plan, "wide", spec)
    assert "\\widen" in rtlil and "\\narrow" in rtlil and "\\tx_cdc" in rtlil
    assert f"parameter \\CLKOS_DIV {WIDE_CORE_DIV}\n" in rtlil


def check_plan(plan, name, spec) -> str:
    rtlil = plan.files[f"t2t_{name}.il"]
    lpf = plan.files[f"t2t_{name}.lpf"]
    rtlil = rtlil if isinstance(rtlil, str) else rtlil.decode()
    assert "EHXPLLL" in rtlil
    assert "\\core" in rtlil and "\\mac_rx" in rtlil and "\\mac_tx" in rtlil
    # the oscillator (from which nextpnr derives the PLL's output) and the PHY's receive
    # clock are constrained for nextpnr
    assert f'FREQUENCY PORT "{spec.clock}_0__io" {spec.clock_hz}' in lpf
    assert f'eth_rgmii_{spec.eth}__rx_clk__io" 125000000.0 HZ' in lpf
    for resource, number, sub in spec.leds.values():
        pin = f"{resource}_{number}__{sub}__io" if sub else f"{resource}_{number}__io"
        assert pin in lpf
    if spec.led_select is not None:
        assert f"{resource}_{number}__{spec.led_select}__io" in lpf
        assert "\\led_mux" in rtlil
    return rtlil


def test_unknown_board_names_the_known_ones():
    with pytest.raises(KeyError, match="ecpix5"):
        board("nosuchboard")


def test_report_summary_flags_a_clock_below_its_target():
    report = {"utilization": {"TRELLIS_COMB": {"used": 30000, "available": 83640},
                              "DP16KD": {"used": 168, "available": 208},
                              "TRELLIS_RAMW": {"used": 10, "available": 10455}},
              "fmax": {"core_clk": {"achieved": 98.4, "constraint": 125.0},
                       "eth_rx_clk": {"achieved": 190.0, "constraint": 125.0}}}
    s = summarize(report, board="ecpix5")
    assert s["resources"]["LUT4"] == {"used": 30000, "available": 83640}
    assert "TRELLIS_RAMW" not in s["resources"]
    assert s["clocks"]["core_clk"]["met"] is False and s["clocks"]["eth_rx_clk"]["met"]
    assert s["timing_met"] is False and s["board"] == "ecpix5"
    assert s["critical_paths"] == []


def test_report_summary_of_a_packing_gives_no_timing_verdict():
    s = summarize({"utilization": {"TRELLIS_COMB": {"used": 9, "available": 83640}}})
    assert s["clocks"] == {} and s["timing_met"] is None


@pytest.mark.parametrize("width", [8, 64])
def test_mac_sides_measured_out_of_context_have_the_board_widths(width):
    from amaranth.hdl._ir import PortDirection

    from tick2trade.bench.blocks import _MacSide
    from tick2trade.gateware.export import component_ports, to_verilog
    from tick2trade.gateware.stream import beat_layout

    beat = beat_layout(width).size
    for direction, (inside, outside) in (("rx", ("gmii__data", "beats__payload")),
                                         ("tx", ("beats__payload", "gmii__data"))):
        side = _MacSide(direction, width)
        ports = component_ports(side)
        assert ports[inside][1] == PortDirection.Input
        assert ports[outside][1] == PortDirection.Output
        assert len(ports["beats__payload"][0]) == beat + (direction == "rx")  # + abort
        assert len(ports["gmii__data"][0]) == 8
        assert "module block" in to_verilog(side, "block")


def test_report_summary_splits_a_critical_path_into_logic_and_routing():
    def step(kind, delay, a, b):
        return {"type": kind, "delay": delay, "net": "n",
                "from": {"cell": a, "port": "Q"}, "to": {"cell": b, "port": "D"}}

    path = {"from": "posedge clk", "to": "posedge clk",
            "path": [step("clk-to-q", 0.5, "risk.ff", "lut1"), step("routing", 2.0, "lut1", "lut1"),
                     step("logic", 0.4, "lut1", "lut2"), step("routing", 1.5, "lut2", "lut2"),
                     step("logic", 0.4, "lut2", "book.ff"), step("setup", 0.1, "book.ff", "book.ff")]}
    (p,) = summarize({"critical_paths": [path]})["critical_paths"]
    assert p["start"] == "risk.ff" and p["end"] == "book.ff" and p["levels"] == 2
    assert (p["delay_ns"], p["logic_ns"], p["routing_ns"]) == (4.9, 1.4, 3.5)


@pytest.mark.slow
def test_reduced_core_bitstream_builds_with_a_report(tmp_path):
    """The reduced core (``SMALL_BOARD``) on the ECPIX-5 end to end through yosys, nextpnr
    and ecppack: about an hour of one core (``make test-all`` or ``-m slow``)."""
    from tick2trade.gateware.platforms.build import build, missing_tools, tool_env
    from tick2trade.gateware.top import register_map

    if missing_tools(tool_env()):
        pytest.skip("YoWASP toolchain not installed")
    summary = build("ecpix5", out=tmp_path, top=SMALL_BOARD.top_kwargs())
    assert (tmp_path / "t2t_ecpix5.bit").stat().st_size > 0
    assert 0 < summary["resources"]["LUT4"]["used"] <= summary["resources"]["LUT4"]["available"]
    # the core and the PHY's receive clock, both constrained at 125 MHz, have an Fmax
    assert sum(c["target_mhz"] == 125.0 for c in summary["clocks"].values()) >= 2
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    expected = register_map(data_width=8, **SMALL_BOARD.top_kwargs()).to_json()
    assert json.loads((tmp_path / "regmap.json").read_text()) == expected
