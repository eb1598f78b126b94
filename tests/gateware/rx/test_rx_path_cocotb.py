"""The whole receive path, Verilator build, driven by cocotb (≥ 10k messages per width)."""

import os

import pytest

from tick2trade.sim.cocotb_build import build_rx_path, run_cocotb

from tick2trade.testing.simtools import SEED


@pytest.mark.verilator
@pytest.mark.parametrize("width,messages", [(64, 12000), (8, 3000)])
def test_rx_path_in_verilator_matches_model(width, messages):
    params = {"width": width, "symbols": 8, "locates": 64}
    build = build_rx_path(**params)
    env = {"T2T_WIDTH": str(width), "T2T_SYMBOLS": "8", "T2T_LOCATES": "64",
           "T2T_MESSAGES": str(messages), "T2T_SEED": str(SEED)}
    tests, failed = run_cocotb(build, "tests.gateware.rx.cocotb.rx_path_tb", env)
    assert tests == 1 and failed == 0, f"cocotb reported a failure (seed {SEED}); see log"


@pytest.mark.slow
@pytest.mark.verilator
def test_rx_path_in_verilator_long_sweep():
    build = build_rx_path(width=64, symbols=8, locates=64)
    env = {"T2T_WIDTH": "64", "T2T_SYMBOLS": "8", "T2T_LOCATES": "64",
           "T2T_MESSAGES": os.environ.get("T2T_SWEEP_MESSAGES", "200000"),
           "T2T_SEED": str(SEED)}
    tests, failed = run_cocotb(build, "tests.gateware.rx.cocotb.rx_path_tb", env)
    assert tests == 1 and failed == 0
