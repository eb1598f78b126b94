"""The receive path built by Verilator and driven through RxSim (sim/rxsim.py), compared
with RxPathModel event by event, gap by gap and counter by counter."""

import pytest

from tick2trade.protocol import itch
from tick2trade.gateware.models.stream import min_message_frame_payload
from tick2trade.gateware.models.rx.eth_rx import LINE_A, RxConfig
from tick2trade.gateware.models.rx.rx_path import RxPathModel
from tick2trade.sim.rxsim import RxSim
from tick2trade.sim.venue.config import SYMBOLS
from tick2trade.testing.traffic import FeedScenario
from tick2trade.gateware.models.rx.eth_rx import feed_frame

from tick2trade.testing.simtools import SEED, rng_for

pytestmark = pytest.mark.verilator


def scenario_config() -> RxConfig:
    cfg = RxConfig.default(watch=SYMBOLS[:5])
    cfg.locate_map = {1: 6, 2: 7, 1000: 3}  # host-written, one beyond a 64-entry table
    return cfg


def run_both(params: dict, cfg: RxConfig, frames: list[bytes], name: str):
    """Frames through RxSim in batches of random size with random idle cycles between
    frames (neither may change what comes out), and through the model."""
    rng = rng_for(name)
    model = RxPathModel(cfg, locates=params["locates"])
    for fr in frames:
        model.process(fr)
    sim = RxSim(**params, config=cfg)
    pos = 0
    while pos < len(frames):
        n = rng.randint(1, 800)
        sim.feed(frames[pos:pos + n], idle=rng.choice([0, 0, 1, 3]))
        pos += n
    sim.close()
    return sim, model


def assert_same(sim: RxSim, model: RxPathModel) -> None:
    msg = f"seed {SEED}"
    assert len(sim.events) == len(model.events), msg
    for i, (got, want) in enumerate(zip(sim.events, model.events)):
        assert got == want, f"event {i} differs ({msg})"
    assert sim.gaps == model.gaps, msg
    assert sim.ctl == model.ctl, msg
    counters = sim.counters()
    for stage, want in model.counters().items():
        assert counters[stage] == want, f"{stage} counters differ ({msg})"
    assert counters["fifo"] == {"event_overflow": 0, "gap_overflow": 0, "hold_overflow": 0,
                                "held_skipped": model.held_skipped}, msg


@pytest.mark.parametrize("width,messages", [(64, 12000), (8, 3000)])
def test_random_feed_on_lines_a_and_b_matches_model(rx_build, width, messages):
    params = {**rx_build, "data_width": width}
    cfg = scenario_config()
    frames = FeedScenario(rng_for(f"feed{width}"), cfg, messages=messages,
                          locates=params["locates"], junk=0.05, ctl=0.02).frames()
    sim, model = run_both(params, cfg, frames, f"feed{width}")
    assert_same(sim, model)
    # the scenario exercised what it is meant to
    mold, eth = model.mold.counters, model.eth.counters
    assert mold["dup_b"] > 0 and mold["gaps"] > 0 and mold["sessions"] == 2
    assert eth["filtered"] + eth["bad_ip_checksum"] + eth["truncated"] > 0
    assert model.itch.counters["untraded"] > 0 and len(model.events) > messages // 10
    assert model.ctl


def test_every_locate_traded_by_the_host(rx_build):
    cfg = RxConfig.default()
    cfg.locate_map = {loc: loc % rx_build["symbols"] for loc in range(rx_build["locates"])}
    frames = FeedScenario(rng_for("all"), cfg, messages=3000,
                          locates=rx_build["locates"] + 8).frames()
    sim, model = run_both(rx_build, cfg, frames, "all")
    assert_same(sim, model)
    assert model.itch.counters["untraded"] > 0  # the locates past the table


def test_back_to_back_minimum_messages_keep_up(rx_build):
    """Full-size frames of 12-byte messages with no idle cycle between frames: every
    message comes out, nothing is dropped at the event FIFO."""
    cfg = RxConfig.default()
    per_frame, count = 95, 60
    frames = [feed_frame(cfg, LINE_A, min_message_frame_payload(per_frame, seq=1 + k * per_frame))
              for k in range(count)]
    with RxSim(**rx_build, config=cfg) as sim:
        sim.feed(frames, idle=0)
        counters = sim.counters()
        assert len(sim.events) == per_frame * count
        assert counters["fifo"]["event_overflow"] == 0
        assert counters["itch_by_type"][itch.MESSAGES["S"].name] == per_frame * count
        assert sim.cycles == sum(-(-len(f) // 8) for f in frames)
