"""A CI-sized sample of the crash campaign (bench/crash.py, bench/README.md
"Reliability"): ``kill -9`` of ``t2t api`` during an order storm, twice; the same for
``t2t run --api`` in the long sweep (``make test-all``). After every kill nothing
acknowledged is missing, positions are the executions, the audit chain and the rows
verify, and no order is left open without a reason."""

from __future__ import annotations

import pytest

from tick2trade.bench.crash import campaign, totals

from tests.host.conftest import SEED

CLEAN = {"missing": 0, "lost_fills": 0, "reopened": 0, "position_problems": 0,
         "audit_failures": 0, "open_without_reason": 0}


def _sample(target: str, kills: int) -> None:
    got = totals(campaign(target, kills, SEED, (0.5, 1.5)))
    assert got["kills"] == kills and got["acked"] > 0, got
    assert {k: got[k] for k in CLEAN} == CLEAN, got


def test_kill_9_of_t2t_api_during_a_storm_loses_nothing():
    _sample("api", 2)


@pytest.mark.slow
def test_kill_9_of_t2t_run_api_during_a_storm_loses_nothing():
    _sample("run", 2)
