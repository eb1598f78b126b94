"""``t2t history``: bars and prints from a store's file, as JSON and as a table, and
the clear errors of a missing file, a file another process holds and a bad time."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from tick2trade.cli import main
from tick2trade.host.services.history import History
from tick2trade.host.services.marketdata import Trade

T0 = datetime(2026, 1, 2, 14, 30, tzinfo=UTC)


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "history.duckdb"
    with History(p) as h:
        for s, price in [(0, 100), (0.5, 105), (59, 95), (60, 101)]:
            h.record_trade(Trade("AAPL", price * 10_000, 10, T0 + timedelta(seconds=s),
                                 side="buy"), source="feed")
    return p


def run(*args):
    return CliRunner().invoke(main, ["history", *args])


def test_bars_and_trades_as_json(path):
    r = run("AAPL", "--from", "2026-01-02T14:30:00Z", "--to", "2026-01-02T14:32:00",
            "--path", str(path), "--json")
    assert r.exit_code == 0, r.output
    bars = json.loads(r.output)["bars"]
    assert [(b["open"], b["high"], b["low"], b["close"], b["volume"], b["trades"])
            for b in bars] == [(100, 105, 95, 95, 30, 3), (101, 101, 101, 101, 10, 1)]
    r = run("aapl", "--from", "2026-01-02T14:30:00Z", "--to", "2026-01-02T15:00:00Z",
            "--trades", "--limit", "2", "--path", str(path), "--json")
    trades = json.loads(r.output)["trades"]
    assert [(t["price"], t["side"], t["source"]) for t in trades] == [
        (100, "buy", "feed"), (105, "buy", "feed")]


def test_table(path):
    r = run("AAPL", "--from", "2026-01-02T14:30:00Z", "--to", "2026-01-02T14:31:00Z",
            "--interval", "1s", "--path", str(path))
    assert r.exit_code == 0, r.output
    assert "AAPL: 2 1s bars" in r.output and "105.0000" in r.output


def test_errors_say_what_is_wrong(path, tmp_path):
    r = run("AAPL", "--path", str(tmp_path / "none.duckdb"))
    assert r.exit_code == 2 and "no history store at" in r.output
    r = run("AAPL", "--from", "yesterday", "--path", str(path))
    assert r.exit_code == 2 and "not an ISO 8601 time" in r.output
    r = run("AAPL", "--from", "2026-01-02T15:00:00Z", "--to", "2026-01-02T14:00:00Z",
            "--path", str(path))
    assert r.exit_code == 2 and "must be before" in r.output
    r = run("AAPL", "--interval", "5m", "--path", str(path))
    assert r.exit_code == 2


def test_a_file_another_process_writes_is_refused_clearly(path):
    hold = ("import sys, duckdb; c = duckdb.connect(sys.argv[1]); "
            "print('ready', flush=True); sys.stdin.read()")
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        r = run("AAPL", "--path", str(path))
        assert r.exit_code == 2 and "open in another process" in r.output, r.output
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
