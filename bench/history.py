"""History benchmark (``make bench``; alone: ``python -m tick2trade.bench.history``): the
embedded store of host/services/history.py on a busy day. Figures, never pass/fail.

The day: one busy symbol with ``--prints`` trade prints (2,000,000 by default) and
``--others`` quieter symbols with a quarter of that each, over a 6.5-hour session, in
time order and interleaved as a feed delivers them, one BBO change per print; recorded
through ``record_trade``/``record_quote`` from one thread, the writer thread flushing
as it does in the platform. Then, on the file it wrote:

- insert rate: prints (and BBO changes) recorded and written per second of wall time,
  until the last flush is on disk;
- 1 s bars of the busy symbol's whole day (23,400 bars), 1 m bars of the day, a page
  of 1,000 prints at mid-day, the median and the worst of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from tick2trade.host.services.history import History
from tick2trade.host.services.marketdata import Quote, Trade

OPEN = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
SESSION = timedelta(hours=6, minutes=30)


def busy_day(prints: int, others: int, seed: int = 1):
    """(symbol, µs offset, price, size) columns of the day, in time order."""
    rng = np.random.default_rng(seed)
    counts = [prints] + [prints // 4] * others
    symbols = np.concatenate([np.full(n, i, dtype=np.int32) for i, n in enumerate(counts)])
    offsets = rng.integers(0, SESSION // timedelta(microseconds=1), len(symbols))
    order = np.argsort(offsets, kind="stable")
    symbols, offsets = symbols[order], offsets[order]
    # a random walk per symbol, around $100, in ticks of $0.0001
    steps = rng.integers(-50, 51, len(symbols))
    price = np.empty(len(symbols), dtype=np.int64)
    for i in range(len(counts)):
        mask = symbols == i
        price[mask] = 1_000_000 + np.cumsum(steps[mask])
    size = rng.integers(1, 10, len(symbols)) * 100
    return ["BUSY"] + [f"SYM{i}" for i in range(1, others + 1)], symbols, offsets, price, size


def timed(fn, repeat: int) -> tuple[float, float, int]:
    times, n = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = len(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, max(times) * 1e3, n


def run(prints: int, others: int, repeat: int, path: Path) -> dict:
    names, symbols, offsets, price, size = busy_day(prints, others)
    total = len(symbols)
    h = History(path)
    trades = [Trade(names[s], int(p), int(q), OPEN + timedelta(microseconds=int(o)),
                    side="buy" if k & 1 else "sell", match=k)
              for k, (s, o, p, q) in enumerate(zip(symbols.tolist(), offsets.tolist(),
                                                  price.tolist(), size.tolist()))]
    quotes = [Quote(t.symbol, t.price - 100, 300, t.price + 100, 200 + t.match % 7 * 100,
                    ts=t.ts) for t in trades]
    t0 = time.perf_counter()
    # as fast as the writer sustains: a recorder that outran it by a whole buffer would
    # only measure how many rows the bound drops (counted, never silent)
    for k, (t, q) in enumerate(zip(trades, quotes)):
        if k % 10_000 == 0:
            while h.buffered > h.max_buffer // 2:
                time.sleep(0.001)
        h.record_trade(t, source="feed")
        h.record_quote(q)
    h.flush()
    insert = time.perf_counter() - t0
    # 8 million recorded objects alive would make the queries pay for full garbage
    # collections that a platform (which keeps none of them) never runs
    del trades, quotes
    gc.collect()
    dropped = sum(h.dropped.values())
    counts = h.counts()
    end = OPEN + timedelta(days=1)
    day = OPEN.replace(hour=0)
    mid = OPEN + SESSION / 2
    results = {
        "prints": total, "busy_symbol_prints": prints, "symbols": 1 + others,
        "bbo_changes": counts["quotes"], "dropped": dropped, "flushes": h.flushes,
        "fragments_1s": counts["bars_1s"],
        "insert_rows_per_s": round((counts["trades"] + counts["quotes"]) / insert),
        "insert_prints_per_s": round(counts["trades"] / insert),
        "file_mb": round(path.stat().st_size / 1e6, 1),
    }
    for name, fn in (("bars_1s_day", lambda: h.bars("BUSY", day, end, "1s")),
                     ("bars_1m_day", lambda: h.bars("BUSY", day, end, "1m")),
                     ("trades_page", lambda: h.trades("BUSY", mid, end, 1000))):
        med, worst, n = timed(fn, repeat)
        results[name] = {"median_ms": round(med, 1), "max_ms": round(worst, 1), "rows": n}
    h.close()
    # a reopened file answers as fast (nothing cached from the writes)
    h = History(path)
    med, worst, n = timed(lambda: h.bars("BUSY", day, end, "1s"), repeat)
    results["bars_1s_day_reopened"] = {"median_ms": round(med, 1), "max_ms": round(worst, 1),
                                       "rows": n}
    h.close()
    return results


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prints", type=int, default=2_000_000,
                    help="prints of the busy symbol in the day")
    ap.add_argument("--others", type=int, default=4,
                    help="other symbols, a quarter as busy each")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        r = run(args.prints, args.others, args.repeat, Path(tmp) / "history.duckdb")
    if args.json:
        print(json.dumps(r, indent=2))
        return
    t = Table(title=f"History (DuckDB): a day of {r['prints']:,} prints over "
                    f"{r['symbols']} symbols, {r['busy_symbol_prints']:,} on the busy one")
    t.add_column("measure")
    t.add_column("figure", justify="right")
    t.add_row("insert (prints + BBO changes)", f"{r['insert_rows_per_s']:,} rows/s")
    t.add_row("insert (prints)", f"{r['insert_prints_per_s']:,} prints/s")
    t.add_row("dropped", str(r["dropped"]))
    t.add_row("file", f"{r['file_mb']} MB")
    for key, label in (("bars_1s_day", "1 s bars of the day"),
                       ("bars_1m_day", "1 m bars of the day"),
                       ("trades_page", "page of 1,000 prints"),
                       ("bars_1s_day_reopened", "1 s bars, reopened file")):
        x = r[key]
        t.add_row(label, f"{x['median_ms']} ms median, {x['max_ms']} max ({x['rows']:,} rows)")
    Console().print(t)


if __name__ == "__main__":
    main()
