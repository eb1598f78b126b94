"""The history store: nothing lost under many recording threads, bars against a plain
Python bucketing of the same prints (ties, late prints, prints split over flushes),
compaction that leaves 1-minute bars unchanged, retention, a reopened file, drops when
the buffer is full, and recording from MarketData."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest

from tick2trade.host.services.history import INTERVALS, History, Unavailable, from_us, to_us
from tick2trade.host.services.marketdata import MarketData, Trade

from tests.host.conftest import SEED

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
DAY = timedelta(days=1)


def model_bars(prints, start, end, interval):
    """(start, open, high, low, close, volume, count) per bucket: prints in the order
    recorded, ordered by time (a stable sort keeps ties in the recorded order)."""
    step = INTERVALS[interval] * 1_000_000
    buckets: dict[int, list] = {}
    for p in sorted(prints, key=lambda p: to_us(p.ts)):
        b = to_us(p.ts) // step * step
        if to_us(start) <= b < to_us(end):
            buckets.setdefault(b, []).append(p)
    return [(from_us(b), ps[0].price, max(p.price for p in ps), min(p.price for p in ps),
             ps[-1].price, sum(p.size for p in ps), len(ps))
            for b, ps in sorted(buckets.items())]


def got_bars(h, symbol, start, end, interval):
    return [(b.start, b.open, b.high, b.low, b.close, b.volume, b.trades)
            for b in h.bars(symbol, start, end, interval)]


def random_prints(rng, n, span: timedelta, symbols=("AAPL", "MSFT")):
    """Mostly in time order with bursts at one microsecond (a sweep's prints) and some
    late prints, as a feed delivers them."""
    out, now = [], T0
    for _ in range(n):
        r = rng.random()
        if r < 0.2 and out:
            ts = out[-1].ts                                   # same microsecond
        elif r < 0.25:
            ts = now - timedelta(microseconds=rng.randrange(3_000_000))  # late
        else:
            now += timedelta(microseconds=rng.randrange(2 * span // timedelta(
                microseconds=1) // n + 1))
            ts = now
        out.append(Trade(rng.choice(symbols), rng.randrange(9_990_000, 10_010_000),
                         rng.randrange(1, 1000), ts, side=rng.choice(("buy", "sell")),
                         match=rng.randrange(1 << 40)))
    return out


def test_many_recording_threads_lose_nothing():
    h = History(None, flush_interval=0.01, flush_rows=500)
    threads, per = 8, 4000

    def record(k: int) -> None:
        for i in range(per):
            h.record_trade(Trade(f"S{k}", 1000 + i, 1 + i % 7, T0 + timedelta(
                microseconds=i * 250)))
            if i % 3 == 0:
                h.record_fill(i, k, f"S{k}", "buy", 1, 1000 + i, T0)

    workers = [threading.Thread(target=record, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    h.close()
    assert h.dropped == {"trade": 0, "quote": 0, "fill": 0}
    assert h.written["trade"] == threads * per
    assert h.written["fill"] == threads * len(range(0, per, 3))
    assert h.flushes > 1  # the writer really ran alongside the recorders


def test_every_print_is_in_the_store_once():
    h = History(None, flush_interval=0.01, flush_rows=300)
    done = []

    def record(k: int) -> None:
        for i in range(2000):
            h.record_trade(Trade("AAPL", k * 10_000 + i, 1, T0 + timedelta(milliseconds=i)))
        done.append(k)

    workers = [threading.Thread(target=record, args=(k,)) for k in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    got = h.trades("AAPL", T0, T0 + DAY, limit=100_000)
    assert sorted(p.price for p in got) == sorted(k * 10_000 + i for k in range(6)
                                                  for i in range(2000))
    assert [p.ts for p in got] == sorted(p.ts for p in got)
    h.close()


@pytest.mark.parametrize("interval", list(INTERVALS))
def test_bars_match_a_python_model(interval):
    seed = SEED + list(INTERVALS).index(interval)
    print("T2T_SEED", SEED, "seed", seed)
    rng = random.Random(seed)
    span = {"1s": timedelta(seconds=40), "1m": timedelta(minutes=30),
            "1h": timedelta(hours=30), "1d": timedelta(days=9)}[interval]
    prints = random_prints(rng, 3000, span)
    h = History(None, background=False)
    for i, p in enumerate(prints):
        h.record_trade(p)
        if rng.random() < 0.01:
            h.flush()            # a bucket split over flushes must combine exactly
    start = T0 + rng.random() * span / 4   # an unaligned start: bars from the next bucket
    end = T0 + span * 1.2
    for sym in ("AAPL", "MSFT"):
        mine = [p for p in prints if p.symbol == sym]
        assert got_bars(h, sym, start, end, interval) == model_bars(mine, start, end,
                                                                     interval)
    assert h.bars("NONE", start, end, interval) == []
    h.close()


def test_trades_page_in_time_then_record_order():
    rng = random.Random(SEED)
    print("T2T_SEED", SEED)
    prints = random_prints(rng, 2000, timedelta(minutes=5), symbols=("AAPL",))
    h = History(None, background=False)
    for p in prints:
        h.record_trade(p, source="feed")
    want = sorted((p for p in prints if p.ts >= T0), key=lambda p: to_us(p.ts))
    page = h.trades("AAPL", T0, T0 + DAY, limit=500)
    assert [(p.ts, p.price, p.size, p.side, p.match) for p in page] == [
        (p.ts, p.price, p.size, p.side, p.match) for p in want[:500]]
    assert {p.source for p in page} == {"feed"}
    mid = want[700].ts
    assert h.trades("AAPL", mid, T0 + DAY, limit=1)[0].ts == mid
    h.close()


def test_compaction_keeps_minute_bars_and_retention_drops_old_rows():
    rng = random.Random(SEED)
    print("T2T_SEED", SEED)
    prints = random_prints(rng, 4000, timedelta(hours=3))
    h = History(None, background=False, raw_days=2, retention_days=30)
    for p in prints:
        h.record_trade(p)
    h.record_fill(1, 1, "AAPL", "buy", 5, 100, T0)
    window = (T0 - DAY, T0 + DAY)
    before = {iv: got_bars(h, "AAPL", *window, iv) for iv in ("1m", "1h", "1d")}
    assert h.raw_since() is None

    now = T0 + timedelta(days=2, hours=1, seconds=30)   # the first hour is past raw_days
    h.compact(now)
    cut = (now - 2 * DAY).replace(second=0)
    assert h.raw_since() == cut
    assert all(p.ts >= cut for p in h.trades("AAPL", *window, limit=100_000))
    assert h.counts()["bars_1m"] > 0
    for iv, bars in before.items():
        assert got_bars(h, "AAPL", *window, iv) == bars
    with pytest.raises(Unavailable, match="1-minute"):
        h.bars("AAPL", T0, T0 + timedelta(hours=1), "1s")
    # after the cut, 1 s bars are still there, equal to the model of the raw prints
    assert got_bars(h, "AAPL", cut, window[1], "1s") == model_bars(
        [p for p in prints if p.symbol == "AAPL"], cut, window[1], "1s")

    # a late print into a compacted minute joins that minute at the next compaction
    late = Trade("AAPL", 1, 7, T0 + timedelta(seconds=1))
    h.record_trade(late)
    h.compact(now)
    mine = [p for p in prints if p.symbol == "AAPL"] + [late]
    assert got_bars(h, "AAPL", *window, "1m") == model_bars(mine, *window, "1m")
    h.compact(now + timedelta(hours=5))
    assert got_bars(h, "AAPL", *window, "1h") == model_bars(mine, *window, "1h")

    h.compact(T0 + timedelta(days=40))                 # everything beyond retention
    assert h.counts() == {"trades": 0, "quotes": 0, "fills": 0, "bars_1s": 0,
                          "bars_1m": 0}
    h.close()


def test_reopen_keeps_data_and_record_order(tmp_path):
    path = tmp_path / "h" / "history.duckdb"
    h = History(path)
    h.record_trade(Trade("AAPL", 100, 1, T0))
    h.record_trade(Trade("AAPL", 101, 1, T0))
    h.compact(T0 + timedelta(days=30))     # n must continue from what is left after this
    h.record_trade(Trade("AAPL", 102, 1, T0 + timedelta(days=29)))
    h.close()
    h = History(path)
    h.record_trade(Trade("AAPL", 103, 1, T0 + timedelta(days=29)))  # same microsecond
    bars = h.bars("AAPL", T0 - DAY, T0 + 40 * DAY, "1m")
    assert [(b.open, b.close, b.trades) for b in bars] == [(100, 101, 2), (102, 103, 2)]
    assert [p.price for p in h.trades("AAPL", T0, T0 + 40 * DAY)] == [102, 103]
    h.close()


def test_a_full_buffer_drops_and_counts():
    h = History(None, background=False, max_buffer=10)
    assert all(h.record_trade(Trade("AAPL", 1, 1, T0)) for _ in range(10))
    assert not h.record_trade(Trade("AAPL", 1, 1, T0))
    assert not h.record_fill(1, 1, "AAPL", "buy", 1, 1)
    assert h.dropped == {"trade": 1, "quote": 0, "fill": 1}
    h.flush()
    assert h.record_trade(Trade("AAPL", 1, 1, T0))
    h.close()
    assert not h.record_trade(Trade("AAPL", 1, 1, T0))   # closed: dropped, not raised


def test_attach_records_prints_and_bbo_changes_only():
    md = MarketData()
    h = History(None, background=False)
    h.attach(md)
    md.trade("AAPL", 100, 5, T0, side="sell", match=9)    # no BBO yet: no quote row
    md.apply("AAPL", bids=[(99, 10)], asks=[(101, 4)], ts=T0)
    md.apply("AAPL", bids=[(98, 1)], ts=T0)               # below the top: no change
    md.trade("AAPL", 101, 2, T0 + timedelta(seconds=1))   # moves last only
    md.apply("AAPL", asks=[(101, 0)], ts=T0 + timedelta(seconds=2))
    quotes = h.quotes("AAPL", T0, T0 + DAY)
    assert [(q.bid, q.bid_size, q.ask, q.ask_size) for q in quotes] == [
        (99, 10, 101, 4), (99, 10, None, 0)]
    page = h.trades("AAPL", T0, T0 + DAY)
    assert [(p.price, p.size, p.side, p.match) for p in page] == [
        (100, 5, "sell", 9), (101, 2, None, None)]
    h.close()
    md.trade("AAPL", 102, 1, T0)      # detached on close: nothing raised, nothing kept


def test_bad_arguments_are_clear_errors():
    h = History(None, background=False)
    with pytest.raises(ValueError, match="accepted: 1s, 1m, 1h, 1d"):
        h.bars("AAPL", T0, T0 + DAY, "5m")
    assert h.bars("AAPL", T0 + DAY, T0, "1m") == []
    assert History.buckets(T0, T0 + DAY, "1s") == 86_400
    far = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert h.bars("AAPL", datetime(1, 1, 1, tzinfo=UTC), far, "1d") == []
    assert h.trades("AAPL", datetime(1, 1, 1, tzinfo=UTC), far) == []
    assert History.buckets(T0 + timedelta(microseconds=1), T0 + timedelta(minutes=2),
                           "1m") == 1
    h.close()
    with pytest.raises(ValueError, match="raw_days"):
        History(None, raw_days=10, retention_days=5)


def test_the_writer_thread_compacts_on_its_own():
    h = History(None, raw_days=1, retention_days=5, flush_interval=0.01,
                compact_interval=0.05, clock=lambda: T0 + timedelta(days=2))
    h.record_trade(Trade("AAPL", 100, 1, T0))
    deadline = threading.Event()
    for _ in range(200):
        if h.raw_since() is not None:
            break
        deadline.wait(0.02)
    assert h.raw_since() == T0 + DAY
    assert h.counts()["bars_1m"] == 1 and h.counts()["trades"] == 0
    h.close()
