"""Fixtures shared by tests/gateware and tests/host."""

import pytest

# The RxPath configuration the Verilator tests share: small tables keep the build quick
# and let random traffic hit the locate table often. Builds are cached on disk by hash,
# so pytest-xdist workers asking at once build it once (see sim/verilator.py).
RX_PARAMS = {"data_width": 64, "symbols": 8, "locates": 64}


@pytest.fixture(scope="session")
def rx_build():
    """Build (or find) the Verilator model of RxPath once per session; returns the
    parameters to open it with (``RxSim(**rx_build, config=...)``)."""
    from sim.rxsim import build_rx_path

    build_rx_path(**RX_PARAMS)
    return dict(RX_PARAMS)
