"""A running virtual FPGA (`t2t sim`) for the host tests: one process per pytest
worker, on an ipc:// endpoint in a temporary directory, with the small build of
tests/conftest.py's RX_PARAMS (built once per machine, cached)."""

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import RX_PARAMS

ROOT = Path(__file__).resolve().parents[2]
SIM_ARGS = ["--width", str(RX_PARAMS["data_width"]), "--symbols", str(RX_PARAMS["symbols"]),
            "--locates", str(RX_PARAMS["locates"])]


def start_sim(endpoint: str, timeout: float = 600.0) -> subprocess.Popen:
    """`python -m tick2trade.host sim` from this checkout; returns once it says it is ready."""
    proc = subprocess.Popen([sys.executable, "-m", "tick2trade.host", "sim", "--endpoint", endpoint,
                             *SIM_ARGS], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _w, _x = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            if "ready on" in line:
                return proc
            if not line and proc.poll() is not None:
                break
    proc.kill()
    raise RuntimeError(f"t2t sim did not start: {proc.stderr.read()[-3000:]}")


def stop_sim(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        _out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    return err


@pytest.fixture(scope="session")
def sim_endpoint(tmp_path_factory):
    from tick2trade.sim.topsim import build_top

    build_top(**RX_PARAMS)  # build (or find) it here, where a failure shows its log
    endpoint = f"ipc://{tmp_path_factory.mktemp('sim')}/device"
    proc = start_sim(endpoint)
    yield endpoint
    stop_sim(proc)
