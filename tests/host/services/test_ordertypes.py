"""The order types' trigger arithmetic (``ordertypes``) on random markets: a trailing
stop only tightens and triggers exactly when the reference crosses it, a stop triggers
at its level from either side, iceberg slices stay within display ± jitter."""

from __future__ import annotations

import random

import pytest

from tick2trade.host.services import ordertypes
from tick2trade.host.services.orders import NewOrder

from tests.host.conftest import SEED


def walk(rng: random.Random, start: int, steps: int) -> list[int]:
    """A price path in whole cents with jumps (gaps happen) and flat stretches."""
    prices, p = [], start
    for _ in range(steps):
        p = max(100, p + rng.choice((-1, 1)) * rng.choice((0, 100, 100, 300, 2_500)))
        prices.append(p)
    return prices


@pytest.mark.parametrize("side", ["buy", "sell"])
@pytest.mark.parametrize("offset", range(5))
def test_trailing_stop_only_tightens_and_triggers_when_crossed(side, offset):
    rng = random.Random(SEED + offset)
    amount = rng.choice((None, rng.randrange(100, 5_000)))
    bps = None if amount else rng.randrange(1, 500)
    stop, best = None, None
    for price in walk(rng, 1_000_000, 400):
        new = ordertypes.trail_stop(side, price, amount, bps, stop)
        if stop is not None:
            assert (new >= stop) if side == "sell" else (new <= stop), f"seed {SEED}"
        best = price if best is None else (max(best, price) if side == "sell"
                                           else min(best, price))
        distance = amount if amount else best * bps // 10_000
        # the level is the best reference seen, one trail away (bps of the best)
        assert new == (max(1, best - distance) if side == "sell" else best + distance), \
            f"seed {SEED}"
        stop = new
        hit = ordertypes.stop_hit(side, stop, price if side == "sell" else None,
                                  price if side == "buy" else None, None)
        assert hit == ((price <= stop) if side == "sell" else (price >= stop))
        if hit:
            break


def test_stop_hit_on_either_reference():
    assert ordertypes.stop_hit("sell", 100, 100, None, None)
    assert ordertypes.stop_hit("sell", 100, 101, None, 99)
    assert not ordertypes.stop_hit("sell", 100, 101, 99, 101)   # a sell ignores the offer
    assert ordertypes.stop_hit("buy", 100, None, 100, None)
    assert not ordertypes.stop_hit("buy", 100, 101, 99, None)   # a buy ignores the bid
    assert not ordertypes.stop_hit("buy", 100, None, None, None)


@pytest.mark.parametrize("offset", range(5))
def test_iceberg_slices_stay_within_display_and_jitter(offset):
    rng = random.Random(SEED + offset)
    display = rng.randrange(1, 500)
    jitter = rng.randrange(0, display)
    left, sizes = rng.randrange(display, 50_000), []
    while left:
        size = ordertypes.slice_qty(display, jitter, left, rng)
        assert 1 <= size <= min(left, display + jitter), f"seed {SEED}"
        assert size >= min(left, display - jitter), f"seed {SEED}"
        sizes.append(size)
        left -= size
    if jitter and len(sizes) > 10:
        assert len(set(sizes[:-1])) > 1, f"seed {SEED}"   # the refresh size varies


VALID = {"market": {}, "limit": {"price": 1_000}, "stop": {"stop_price": 900},
         "stop_limit": {"stop_price": 900, "price": 1_000},
         "trailing_stop": {"trail_bps": 10}, "iceberg": {"price": 1_000, "display_qty": 5}}


def test_each_type_refuses_the_fields_it_does_not_take():
    assert set(VALID) == set(ordertypes.TYPES)
    for name, rule in ordertypes.TYPES.items():
        ordertypes.validate(NewOrder("AAPL", "buy", name, 10, **VALID[name]))
        for field in set(ordertypes.OPTIONAL_FIELDS) - rule.allowed:
            value = "last" if field == "trail_ref" else 1
            bad = NewOrder("AAPL", "buy", name, 10, **{**VALID[name], field: value})
            with pytest.raises(ordertypes.Invalid, match=f"takes no {field}"):
                ordertypes.validate(bad)
        for field in rule.required:
            bad = NewOrder("AAPL", "buy", name, 10, **{**VALID[name], field: None})
            with pytest.raises(ordertypes.Invalid, match=f"needs {field}"):
                ordertypes.validate(bad)
