"""Fixtures shared by tests/gateware and tests/host."""

import os
import random

import pytest

from tick2trade.gateware.profiles import SHIPPED, SMALL_BOOK

# One random seed per session, chosen here (before pytest-xdist starts its workers, which
# inherit the environment) so every worker uses it and the header can name it.
os.environ.setdefault("T2T_SEED", str(random.randrange(1 << 32)))



@pytest.fixture(autouse=True)
def _state_folder(tmp_path, monkeypatch):
    """Every test's state folder (the host's database, JWT secret, venue files) is its
    own, never the default one in the home directory (host/settings.py)."""
    monkeypatch.setenv("T2T_VAR_DIR", str(tmp_path / "var"))
    for name in ("T2T_CONFIG", "T2T_REDIS_URL", "T2T_JWT_SECRET", "T2T_JWT_SECRET_FILE"):
        monkeypatch.delenv(name, raising=False)


# The RxPath configuration the Verilator tests share: small tables keep the build quick
# and let random traffic hit the locate table often. Builds are cached on disk by hash,
# so pytest-xdist workers asking at once build it once (see sim/verilator.py).
RX_PARAMS = {"data_width": 64, "symbols": 8, "locates": 64}


@pytest.fixture(scope="session")
def rx_build():
    """Build (or find) the Verilator model of RxPath once per session; returns the
    parameters to open it with (``RxSim(**rx_build, config=...)``)."""
    from tick2trade.sim.rxsim import build_rx_path

    build_rx_path(**RX_PARAMS)
    return dict(RX_PARAMS)


# The book configurations the Verilator tests share: the shipped default, and a small one
# whose tables overflow under random flow.
BOOK_DEFAULT = SHIPPED.book_kwargs()
BOOK_SMALL = SMALL_BOOK.book_kwargs()


@pytest.fixture(scope="session")
def book_builds():
    """Both book builds, once per session: {"default": params, "small": params}."""
    from tick2trade.sim.booksim import build_book

    build_book(**BOOK_DEFAULT)
    build_book(**BOOK_SMALL)
    return {"default": dict(BOOK_DEFAULT), "small": dict(BOOK_SMALL)}


def pytest_report_header(config):
    """The session's random seed, so any failure can be rerun with T2T_SEED=…"""
    return f"T2T_SEED={os.environ['T2T_SEED']}"
