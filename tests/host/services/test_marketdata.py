"""The market-data store: per-symbol sequences, deltas against snapshots, the quote
following the top, listeners, against a plain dict model under random changes."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime

import pytest

from tick2trade.host.services.marketdata import Level, MarketData


def test_deltas_snapshots_and_quote():
    md = MarketData()
    seen = {"book": [], "quote": [], "trade": [], "bar": []}
    for kind in seen:
        md.listen(kind, lambda *a, k=kind: seen[k].append(a))
    u = md.apply("AAPL", bids=[(100, 5, 1), (99, 7, 2)], asks=[(101, 3)])
    assert (u.seq, u.kind, u.source) == (1, "delta", "feed")
    assert md.quote("AAPL").bid == 100 and md.quote("AAPL").ask_size == 3
    md.apply("AAPL", bids=[(98, 1)])              # below the top: no new quote
    assert len(seen["quote"]) == 1
    md.apply("AAPL", bids=[(100, 0)])             # the best bid leaves
    assert md.quote("AAPL").bid == 99 and len(seen["quote"]) == 2
    view = md.book_view("AAPL")
    assert view.seq == 3 and view.bids == [Level(99, 7, 2), Level(98, 1)]
    assert md.book_view("AAPL", depth=1).bids == [Level(99, 7, 2)]
    s = md.snapshot("AAPL", [(50, 1)], [], source="fpga", depth=8)
    assert (s.seq, s.kind, s.depth) == (4, "snapshot", 8)
    assert md.quote("AAPL").ask is None and md.book("AAPL") == ([(50, 1)], [])
    assert [a[0].seq for a in seen["book"]] == [1, 2, 3, 4]
    md.trade("AAPL", 50, 10, datetime(2026, 1, 2, 14, 30, tzinfo=UTC), side="buy")
    assert seen["trade"][0][0].seq == 1 and seen["bar"][0][1].volume == 10
    assert md.apply("AAPL") is None
    with pytest.raises(ValueError):
        md.listen("nope", print)


def test_a_failing_listener_does_not_stop_the_others():
    md = MarketData()
    got = []
    md.listen("book", lambda u: 1 / 0)
    md.listen("book", got.append)
    md.apply("X", asks=[(5, 5)])
    assert len(got) == 1


def test_random_changes_match_a_dict_model():
    seed = int(os.environ.get("T2T_SEED", random.randrange(1 << 30)))
    print("T2T_SEED", seed)
    rng = random.Random(seed)
    md = MarketData()
    model = {"bid": {}, "ask": {}}
    replayed = MarketData()                       # built from the deltas alone
    md.listen("book", lambda u: (replayed.snapshot(u.symbol, u.bids, u.asks)
                                 if u.kind == "snapshot" else
                                 replayed.apply(u.symbol, u.bids, u.asks)))
    for _ in range(3000):
        side = rng.choice(("bid", "ask"))
        if rng.random() < 0.01:
            model = {"bid": {p: s for p, s in model["bid"].items() if rng.random() < .5},
                     "ask": dict(model["ask"])}
            md.snapshot("S", sorted(model["bid"].items(), reverse=True),
                        sorted(model["ask"].items()))
            continue
        price, size = rng.randrange(100, 400), rng.choice((0, 0, *range(1, 50)))
        if size:
            model[side][price] = size
        else:
            model[side].pop(price, None)
        md.apply("S", **{side + "s": [(price, size)]})
        bids, asks = md.book("S")
        assert bids == sorted(model["bid"].items(), reverse=True)
        assert asks == sorted(model["ask"].items())
        q = md.quote("S")
        assert q.bid == (bids[0][0] if bids else None)
        assert q.ask == (asks[0][0] if asks else None)
    assert replayed.book("S") == md.book("S")
