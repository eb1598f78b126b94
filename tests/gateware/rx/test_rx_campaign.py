"""A CI-sized sample of the receive path's reliability campaign (bench/rx_campaign.py):
malformed and random frames through the RTL, then a clean feed with forgeries mixed in."""

import pytest

from tick2trade.bench import rx_campaign
from tick2trade.testing.simtools import SEED

pytestmark = pytest.mark.verilator


@pytest.mark.parametrize("width,frames", [(64, 6000), (8, 1500)])
def test_malformed_frames_neither_wedge_the_path_nor_blind_the_feed(rx_build, width, frames):
    res = rx_campaign.run(width, frames, messages=1500, forged=0.05, seed=SEED,
                          batch=frames // 3, symbols=rx_build["symbols"],
                          locates=rx_build["locates"])
    msg = f"seed {SEED}: {res.as_dict()}"
    assert res.malformed == frames and set(res.kinds) == set(rx_campaign.MALFORMED), msg
    assert res.wedges == 0 and res.miscounted_batches == 0, msg
    assert res.matches_model and res.events_match, msg
    # every message of the clean feed decoded, but for a first packet held aside (at
    # most one packet's worth, reported in the gap) when junk left a session provisional
    assert res.decoded + res.held == res.clean_messages > 1000 and res.held <= 20, msg
    eth, mold = res.counters["eth_rx"], res.counters["moldudp"]
    # the campaign reached what it is meant to
    assert eth["bad_udp_checksum"] and eth["wrong_source"] and mold["unconfirmed"], msg
