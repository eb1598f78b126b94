"""``t2t run`` (what ``make run`` starts): the synthetic venue through the receive path."""

import random

import pytest
from click.testing import CliRunner

from gateware.models.rx import RxPathModel
from host.cli import main
from host.replay import replay_config
from sim.traffic import SYMBOLS, FeedScenario

pytestmark = pytest.mark.verilator


def test_run_reports_what_the_model_predicts():
    result = CliRunner().invoke(main, ["run", "--messages", "3000", "--seed", "5"])
    assert result.exit_code == 0, result.output
    config = replay_config(watch=SYMBOLS, all_symbols=False)
    model = RxPathModel(config)
    for fr in FeedScenario(random.Random(5), config, messages=3000, locates=256).frames():
        model.process(fr)
    assert f"{len(model.events):,} events" in result.output
    assert f"{len(model.gaps):,} gaps reported" in result.output
    assert "not built yet" in result.output
