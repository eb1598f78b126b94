"""Market-data history, embedded: trade prints, BBO changes and fills in DuckDB.

``History`` records what ``MarketData`` sees (``attach``) and the platform's fills, and
answers OHLCV bars (``bars``) and pages of prints (``trades``) for the API, ``t2t
history`` and backtests. Nothing to start: a DuckDB file (or memory, ``path=None``).

Design decisions
----------------
- **Recording never waits for the disk.** ``record_*`` append a tuple to an in-memory
  buffer under a short lock; a background thread takes the whole buffer every
  ``flush_interval`` seconds (sooner once ``flush_rows`` rows wait) and writes it with
  one bulk insert per table (a dict of NumPy columns that DuckDB scans: about 2.5x
  faster than building a pyarrow table from the same rows, and 700x faster than
  ``executemany``). The buffer holds at most ``max_buffer`` rows of all kinds together
  (default 500,000, some 60-80 MB); a row recorded while it is full is dropped and
  counted in ``dropped`` — the writer is then hopelessly behind, and the feed must not
  wait for it.
- **Queries flush first**, so whatever was recorded before the call is in the answer.
- **Bars come from 1-second fragments.** Each flush also folds its prints into one row
  per (symbol, second) in ``bars_1s``: open, high, low, close, volume, count, and the
  (ts, n) of the first and last print (``n`` is the order prints were recorded in, so
  prints of the same microsecond keep their order). A second that spans two flushes has
  two fragments, which combine exactly (the open of the earliest first print, the close
  of the latest last print), so no row is ever updated. A day of 1 s bars reads ~50,000
  fragments instead of millions of prints.
- **Compaction.** Prints and fragments older than ``raw_days`` (cut at a minute
  boundary) are folded into ``bars_1m`` (same columns, one row per symbol and minute)
  and deleted; 1 m, 1 h and 1 d bars read both tables, so they are unchanged, while 1 s
  bars and prints exist only after ``raw_since()`` (``Unavailable`` for a 1 s query
  before it). Retention deletes every row older than ``retention_days``. The writer
  thread runs ``compact`` every ``compact_interval`` seconds (hourly).
- Times are stored as UTC ``TIMESTAMP`` (microseconds); the API takes and returns UTC.
  Prices are integer ticks, as in ``MarketData``.
- **Over the event bus** (``t2t worker history``) the worker records a batch of the
  bus's messages and writes it with ``flush(marks=…)``: the last stream sequence it
  applied per stream goes into ``meta`` in the same transaction, so a batch delivered
  again after a crash (the consumer acknowledges only after the flush) is recognised
  by its sequences and skipped — no print is counted twice, in ``trades`` or in a
  ``bars_1s`` fragment, which an upsert of the prints alone would not prevent.
- One process owns the file: DuckDB refuses a second opener (``t2t history`` while
  ``t2t api`` runs on the same file gets ``HistoryInUse``; ask the API instead).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Self

import duckdb
import numpy as np

from tick2trade.host.services.db import utcnow
from tick2trade.host.services.marketdata import Bar, MarketData, Quote, Trade

log = logging.getLogger(__name__)

INTERVALS = {"1s": 1, "1m": 60, "1h": 3600, "1d": 86400}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_MINUTE_US = 60_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trades (
    symbol VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, n BIGINT NOT NULL,
    price BIGINT NOT NULL, size BIGINT NOT NULL, side VARCHAR, match BIGINT,
    source VARCHAR);
CREATE TABLE IF NOT EXISTS quotes (
    symbol VARCHAR NOT NULL, ts TIMESTAMP NOT NULL, bid BIGINT, bid_size BIGINT,
    ask BIGINT, ask_size BIGINT);
CREATE TABLE IF NOT EXISTS fills (
    order_id BIGINT, user_id BIGINT, symbol VARCHAR NOT NULL, side VARCHAR,
    ts TIMESTAMP NOT NULL, qty BIGINT NOT NULL, price BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT);
"""
_BAR_COLUMNS = """
    symbol VARCHAR NOT NULL, start TIMESTAMP NOT NULL,
    first_ts TIMESTAMP NOT NULL, first_n BIGINT NOT NULL,
    last_ts TIMESTAMP NOT NULL, last_n BIGINT NOT NULL,
    open BIGINT NOT NULL, high BIGINT NOT NULL, low BIGINT NOT NULL, close BIGINT NOT NULL,
    volume BIGINT NOT NULL, trades BIGINT NOT NULL"""

# fragments of a set of prints (or of finer fragments) per symbol and bucket of $step µs
_FOLD = """
SELECT symbol, make_timestamp(epoch_us({start}) // {step} * {step}) AS start,
       min({first_ts}) AS first_ts,
       arg_min({first_n}, ({first_ts}, {first_n})) AS first_n,
       max({last_ts}) AS last_ts,
       arg_max({last_n}, ({last_ts}, {last_n})) AS last_n,
       arg_min({open}, ({first_ts}, {first_n})) AS open, max({high}) AS high,
       min({low}) AS low, arg_max({close}, ({last_ts}, {last_n})) AS close,
       sum({volume})::BIGINT AS volume, sum({count})::BIGINT AS trades
FROM {source} GROUP BY ALL"""
_FOLD_PRINTS = {"start": "ts", "first_ts": "ts", "first_n": "n", "last_ts": "ts",
                "last_n": "n", "open": "price", "high": "price", "low": "price",
                "close": "price", "volume": "size", "count": "1"}
_FOLD_BARS = {"start": "start", "first_ts": "first_ts", "first_n": "first_n",
              "last_ts": "last_ts", "last_n": "last_n", "open": "open", "high": "high",
              "low": "low", "close": "close", "volume": "volume", "count": "trades"}


class Unavailable(ValueError):
    """The data asked for is not kept at that resolution (1 s bars of compacted time)."""


class HistoryInUse(RuntimeError):
    """The DuckDB file is open in another process."""


@dataclass
class HistoryBar(Bar):
    trades: int = 0


@dataclass(frozen=True)
class Print:
    symbol: str
    ts: datetime
    price: int
    size: int
    side: str | None = None
    match: int | None = None
    source: str | None = None


def to_us(ts: datetime) -> int:
    """Microseconds since the epoch; a time without a zone is taken to be UTC."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - _EPOCH) // _US


def from_us(us: int) -> datetime:
    seconds, micro = divmod(int(us), 1_000_000)
    t = datetime.fromtimestamp(seconds, UTC)   # exact for whole seconds, and quick
    return t.replace(microsecond=micro) if micro else t


_MIN_US = (datetime(1, 1, 1) - datetime(1970, 1, 1)) // _US
_MAX_US = (datetime(9999, 12, 31, 23, 59, 59) - datetime(1970, 1, 1)) // _US


def _naive(us: int) -> datetime:
    """A bound for DuckDB: naive UTC, clamped to what a datetime holds (a bucket edge
    rounded past 9999-12-31 would not fit)."""
    return datetime(1970, 1, 1) + timedelta(microseconds=int(min(max(us, _MIN_US),
                                                                  _MAX_US)))


class History:
    """The store; see the module's docstring. ``clock`` is what compaction and retention
    take as now (tests move it)."""

    def __init__(self, path: Path | str | None = None, *, retention_days: float = 365,
                 raw_days: float = 7, flush_interval: float = 0.5,
                 flush_rows: int = 50_000, max_buffer: int = 500_000,
                 compact_interval: float | None = 3600.0, source: str | None = None,
                 clock: Callable[[], datetime] = utcnow, background: bool = True,
                 read_only: bool = False) -> None:
        if raw_days > retention_days:
            raise ValueError(f"raw_days ({raw_days}) must not exceed retention_days "
                             f"({retention_days})")
        self.path = Path(path) if path is not None else None
        self.retention_days, self.raw_days = retention_days, raw_days
        self.flush_interval, self.flush_rows = flush_interval, flush_rows
        self.max_buffer, self.compact_interval = max_buffer, compact_interval
        self.source, self.clock = source, clock
        if read_only and (self.path is None or not self.path.exists()):
            raise FileNotFoundError(f"no history store at {self.path}")
        if self.path is not None and not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = duckdb.connect(str(self.path) if self.path else ":memory:",
                                      read_only=read_only)
        except (duckdb.IOException, duckdb.ConnectionException) as e:
            # another process holds the file's lock, or this one has it open otherwise
            if "lock" in str(e).lower() or "different configuration" in str(e):
                raise HistoryInUse(f"{self.path} is open in another process (t2t api?): "
                                   f"query that process's API instead ({e})") from None
            raise
        if read_only:    # a reader: nothing recorded, nothing compacted
            background = False
            self.max_buffer = 0
        else:
            self._db.execute(_SCHEMA)
            for table in ("bars_1s", "bars_1m"):
                self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} ({_BAR_COLUMNS})")
        last = self._db.execute(
            "SELECT greatest((SELECT max(n) FROM trades), (SELECT max(last_n) FROM bars_1s),"
            " (SELECT max(last_n) FROM bars_1m))").fetchone()[0]
        self._n = itertools.count((last or 0) + 1)
        self._lock = threading.Lock()          # the buffers
        self._write = threading.RLock()        # the writer connection
        self._trades: list[tuple] = []
        self._quotes: list[tuple] = []
        self._fills: list[tuple] = []
        self._bbo: dict[str, tuple] = {}
        self.dropped = {"trade": 0, "quote": 0, "fill": 0}
        self.written = {"trade": 0, "quote": 0, "fill": 0}
        self.flushes = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._market: MarketData | None = None
        self._thread = None
        if background:
            self._thread = threading.Thread(target=self._run, name="t2t-history", daemon=True)
            self._thread.start()

    # --- recording ------------------------------------------------------------------------

    def _buffered(self) -> int:
        return len(self._trades) + len(self._quotes) + len(self._fills)

    @property
    def buffered(self) -> int:
        """Rows recorded and not yet written (at most ``max_buffer``)."""
        with self._lock:
            return self._buffered()

    def _append(self, kind: str, buf_name: str, row: tuple) -> bool:
        with self._lock:
            if self._closed or self._buffered() >= self.max_buffer:
                self.dropped[kind] += 1
                return False
            buf = getattr(self, buf_name)
            buf.append(row)
            full = len(buf) >= self.flush_rows
        if full:
            self._wake.set()
        return True

    def record_trade(self, trade: Trade, source: str | None = None) -> bool:
        """Buffer a print; False when it was dropped (buffer full or closed)."""
        return self._append("trade", "_trades", (
            trade.symbol, to_us(trade.ts), next(self._n), trade.price, trade.size,
            trade.side, trade.match, source or getattr(trade, "source", None) or self.source))

    def record_quote(self, quote: Quote) -> bool:
        """Buffer a BBO change; a quote whose BBO equals the last one recorded for its
        symbol (a print only moved ``last``) is not a change and is skipped (True)."""
        bbo = (quote.bid, quote.bid_size, quote.ask, quote.ask_size)
        with self._lock:
            # a print before any book: an empty BBO is no change either
            if self._bbo.get(quote.symbol, (None, 0, None, 0)) == bbo:
                return True
            self._bbo[quote.symbol] = bbo
        return self._append("quote", "_quotes", (
            quote.symbol, to_us(quote.ts or utcnow()), *bbo))

    def record_fill(self, order_id: int | None, user_id: int | None, symbol: str, side: str,
                    qty: int, price: int, ts: datetime | None = None) -> bool:
        return self._append("fill", "_fills", (order_id, user_id, symbol, side,
                                                to_us(ts or utcnow()), qty, price))

    def attach(self, market: MarketData) -> None:
        """Record every print and BBO change ``market`` sees from now on."""
        market.listen("trade", self.record_trade)
        market.subscribe(self.record_quote)
        self._market = market

    def detach(self) -> None:
        if self._market is not None:
            self._market.unlisten("trade", self.record_trade)
            self._market.unsubscribe(self.record_quote)
            self._market = None

    # --- writing --------------------------------------------------------------------------

    def flush(self, marks: dict[str, int] | None = None) -> int:
        """Write what is buffered; returns the rows written. ``marks`` (name → value) go
        into ``meta`` in the same transaction (``mark`` reads them), and a failure then
        raises instead of counting the rows dropped: the caller has them again."""
        with self._write:
            with self._lock:
                trades, self._trades = self._trades, []
                quotes, self._quotes = self._quotes, []
                fills, self._fills = self._fills, []
            if not (trades or quotes or fills or marks):
                return 0
            db = self._db
            db.execute("BEGIN")
            try:
                if trades:
                    c = list(zip(*trades))
                    batch = {"symbol": np.array(c[0], dtype=object),  # noqa: F841 (scanned)
                             "ts": np.array(c[1], dtype=np.int64),
                             "n": np.array(c[2], dtype=np.int64),
                             "price": np.array(c[3], dtype=np.int64),
                             "size": np.array(c[4], dtype=np.int64),
                             "side": np.array(c[5], dtype=object),
                             "match": np.array([-1 if m is None else m for m in c[6]],
                                               dtype=np.int64),
                             "source": np.array(c[7], dtype=object)}
                    db.execute("CREATE OR REPLACE TEMP TABLE _batch AS SELECT symbol, "
                               "make_timestamp(ts) AS ts, n, price, size, side, "
                               "nullif(match, -1) AS match, source FROM batch")
                    db.execute("INSERT INTO trades SELECT * FROM _batch")
                    db.execute("INSERT INTO bars_1s " + _FOLD.format(
                        step=1_000_000, source="_batch", **_FOLD_PRINTS))
                    db.execute("DROP TABLE _batch")
                if quotes:
                    c = list(zip(*quotes))
                    qb = {"symbol": np.array(c[0], dtype=object),  # noqa: F841 (scanned)
                          "ts": np.array(c[1], dtype=np.int64),
                          **{name: np.array([-1 if v is None else v for v in c[i]],
                                            dtype=np.int64)
                             for i, name in enumerate(("bid", "bid_size", "ask",
                                                       "ask_size"), start=2)}}
                    db.execute("INSERT INTO quotes SELECT symbol, make_timestamp(ts), "
                               "nullif(bid, -1), bid_size, nullif(ask, -1), ask_size FROM qb")
                if fills:
                    db.executemany("INSERT INTO fills VALUES (?, ?, ?, ?, make_timestamp(?), "
                                   "?, ?)", fills)
                for key, value in (marks or {}).items():
                    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])
                db.execute("COMMIT")
            except Exception:
                db.execute("ROLLBACK")
                if marks:
                    raise
                log.exception("history flush failed: %d prints, %d quotes, %d fills lost",
                              len(trades), len(quotes), len(fills))
                with self._lock:
                    self.dropped["trade"] += len(trades)
                    self.dropped["quote"] += len(quotes)
                    self.dropped["fill"] += len(fills)
                return 0
            self.written["trade"] += len(trades)
            self.written["quote"] += len(quotes)
            self.written["fill"] += len(fills)
            self.flushes += 1
            return len(trades) + len(quotes) + len(fills)

    def compact(self, now: datetime | None = None) -> dict[str, int]:
        """Fold prints older than ``raw_days`` into 1-minute bars, then delete everything
        older than ``retention_days``; returns the rows each step removed."""
        now_us = to_us(now or self.clock())
        cut = (now_us - int(self.raw_days * 86400e6)) // _MINUTE_US * _MINUTE_US
        keep = (now_us - int(self.retention_days * 86400e6)) // _MINUTE_US * _MINUTE_US
        cut_ts, keep_ts = _naive(cut), _naive(keep)
        done = {}
        with self._write:
            self.flush()
            db = self._db
            db.execute("BEGIN")
            try:
                src = f"(SELECT * FROM bars_1s WHERE start < '{cut_ts.isoformat()}')"
                db.execute("INSERT INTO bars_1m " + _FOLD.format(
                    step=_MINUTE_US, source=src, **_FOLD_BARS))
                done["bars_1s"] = db.execute("DELETE FROM bars_1s WHERE start < ?",
                                             [cut_ts]).fetchone()[0]
                done["trades"] = db.execute("DELETE FROM trades WHERE ts < ?",
                                            [cut_ts]).fetchone()[0]
                old = self._meta(db, "raw_since")
                if old is None or cut > old:
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('raw_since', ?)", [cut])
                for table, col in (("bars_1m", "start"), ("quotes", "ts"), ("fills", "ts")):
                    done[table] = db.execute(f"DELETE FROM {table} WHERE {col} < ?",
                                             [keep_ts]).fetchone()[0]
                db.execute("COMMIT")
            except Exception:
                db.execute("ROLLBACK")
                raise
        return done

    def mark(self, key: str) -> int | None:
        """A value ``flush(marks=…)`` stored (None: never)."""
        with self._write, self._db.cursor() as cur:
            return self._meta(cur, key)

    @staticmethod
    def _meta(db, key: str) -> int | None:
        row = db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def _run(self) -> None:
        next_compact = time.monotonic() + (self.compact_interval or 0)
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
                if self.compact_interval and time.monotonic() >= next_compact:
                    next_compact = time.monotonic() + self.compact_interval
                    self.compact()
            except Exception:
                log.exception("history writer pass failed")

    def close(self) -> None:
        """Stop recording, write what is buffered, close the file."""
        self.detach()
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- queries --------------------------------------------------------------------------

    def raw_since(self) -> datetime | None:
        """Prints and 1 s bars before this time were compacted (None: nothing was)."""
        self.flush()
        with self._db.cursor() as cur:
            us = self._meta(cur, "raw_since")
        return None if us is None else from_us(us)

    @staticmethod
    def buckets(start: datetime, end: datetime, interval: str) -> int:
        """How many bars of ``interval`` start in [start, end)."""
        step = INTERVALS[interval] * 1_000_000
        lo, hi = -(-to_us(start) // step), -(-to_us(end) // step)
        return max(0, hi - lo)

    def bars(self, symbol: str, start: datetime, end: datetime,
             interval: str = "1m") -> list[HistoryBar]:
        """OHLCV bars of ``interval`` whose start is in [start, end), oldest first; each
        covers every print of its bucket (UTC buckets: seconds, minutes, hours, days)."""
        if interval not in INTERVALS:
            raise ValueError(f"unknown interval {interval!r} (accepted: "
                             f"{', '.join(INTERVALS)})")
        step = INTERVALS[interval] * 1_000_000
        lo = -(-to_us(start) // step) * step
        hi = -(-to_us(end) // step) * step
        if hi <= lo:
            return []
        self.flush()
        with self._db.cursor() as cur:
            raw_since = self._meta(cur, "raw_since")
            if interval == "1s" and raw_since is not None and lo < raw_since:
                raise Unavailable(
                    f"1 s bars before {from_us(raw_since).isoformat()} were compacted into "
                    f"1-minute bars (raw_days={self.raw_days:g}); ask for 1m, 1h or 1d, or "
                    f"a range from then on")
            where = "symbol = $symbol AND start >= $lo AND start < $hi"
            source = f"(SELECT * FROM bars_1s WHERE {where}"
            if interval != "1s":
                source += f" UNION ALL SELECT * FROM bars_1m WHERE {where}"
            source += ")"
            rows = cur.execute(
                "SELECT epoch_us(start), open, high, low, close, volume, trades FROM ("
                + _FOLD.format(step=step, source=source, **_FOLD_BARS) + ") ORDER BY start",
                {"symbol": symbol, "lo": _naive(lo), "hi": _naive(hi)}).fetchall()
        return [HistoryBar(from_us(r[0]), *r[1:]) for r in rows]

    def trades(self, symbol: str, start: datetime, end: datetime,
               limit: int = 1000) -> list[Print]:
        """Prints in [start, end), oldest first (ties in the order recorded), at most
        ``limit``. Prints before ``raw_since()`` are gone (compacted)."""
        self.flush()
        with self._db.cursor() as cur:
            rows = cur.execute(
                "SELECT epoch_us(ts), price, size, side, match, source FROM trades "
                "WHERE symbol = ? AND ts >= ? AND ts < ? ORDER BY ts, n LIMIT ?",
                [symbol, _naive(to_us(start)), _naive(to_us(end)), limit]).fetchall()
        return [Print(symbol, from_us(r[0]), *r[1:]) for r in rows]

    def quotes(self, symbol: str, start: datetime, end: datetime,
               limit: int = 1000) -> list[Quote]:
        self.flush()
        with self._db.cursor() as cur:
            rows = cur.execute(
                "SELECT epoch_us(ts), bid, bid_size, ask, ask_size FROM quotes "
                "WHERE symbol = ? AND ts >= ? AND ts < ? ORDER BY ts LIMIT ?",
                [symbol, _naive(to_us(start)), _naive(to_us(end)), limit]).fetchall()
        return [Quote(symbol, bid=r[1], bid_size=r[2], ask=r[3], ask_size=r[4],
                      ts=from_us(r[0])) for r in rows]

    def fills(self, start: datetime, end: datetime, symbol: str | None = None,
              user_id: int | None = None) -> list[dict]:
        self.flush()
        with self._db.cursor() as cur:
            rows = cur.execute(
                "SELECT order_id, user_id, symbol, side, epoch_us(ts), qty, price FROM fills "
                "WHERE ts >= $lo AND ts < $hi AND ($symbol::VARCHAR IS NULL OR symbol = $symbol) "
                "AND ($user::BIGINT IS NULL OR user_id = $user) ORDER BY ts",
                {"lo": _naive(to_us(start)), "hi": _naive(to_us(end)), "symbol": symbol,
                 "user": user_id}).fetchall()
        return [{"order_id": r[0], "user_id": r[1], "symbol": r[2], "side": r[3],
                 "ts": from_us(r[4]), "qty": r[5], "price": r[6]} for r in rows]

    def counts(self) -> dict[str, int]:
        """Rows held per table (written ones; the buffer is flushed first)."""
        self.flush()
        with self._db.cursor() as cur:
            return {t: cur.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                    for t in ("trades", "quotes", "fills", "bars_1s", "bars_1m")}
