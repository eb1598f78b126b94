"""``t2t history SYMBOL``: bars or trade prints from the history store's DuckDB file
(host/services/history.py), as a table or ``--json``.

The file is opened read-only. DuckDB lets one process own a file, so while the platform
that writes it runs, this command says so (exit 2) and the same answers come from that
platform's API (``/market/SYMBOL/history``, ``/market/SYMBOL/trades``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from tick2trade.host.services.history import INTERVALS, History, HistoryInUse, Unavailable

EXIT_STORE = 2


def _when(ctx, param, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time (e.g. "
                                 f"2026-01-02T14:30:00Z; no zone means UTC)") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def query(path: Path, symbol: str, start: datetime | None, end: datetime | None,
          interval: str, trades: bool, limit: int) -> dict:
    """What the command prints, as data (``--json`` prints exactly this)."""
    end = end or datetime.now(UTC)
    start = start or end - (timedelta(hours=1) if trades
                            else timedelta(seconds=INTERVALS[interval] * 1000))
    if start >= end:
        raise click.BadParameter(f"--from ({start.isoformat()}) must be before --to "
                                 f"({end.isoformat()})")
    with History(path, read_only=True) as store:
        raw_since = store.raw_since()
        out = {"symbol": symbol, "from": start.isoformat(), "to": end.isoformat(),
               "raw_since": raw_since.isoformat() if raw_since else None}
        if trades:
            page = store.trades(symbol, start, end, limit)
            out["trades"] = [{"ts": p.ts.isoformat(), "price": p.price / 10_000,
                              "size": p.size, "side": p.side, "match": p.match,
                              "source": p.source} for p in page]
        else:
            out["interval"] = interval
            out["bars"] = [{"start": b.start.isoformat(), "open": b.open / 10_000,
                            "high": b.high / 10_000, "low": b.low / 10_000,
                            "close": b.close / 10_000, "volume": b.volume,
                            "trades": b.trades}
                           for b in store.bars(symbol, start, end, interval)]
    return out


@click.command()
@click.argument("symbol")
@click.option("--from", "start", callback=_when, metavar="TIME",
              help="Start, ISO 8601 (default: 1,000 bars, or an hour of prints, before --to)")
@click.option("--to", "end", callback=_when, metavar="TIME", help="End, exclusive (default: now)")
@click.option("--interval", type=click.Choice(list(INTERVALS)), default="1m", show_default=True)
@click.option("--trades", is_flag=True, help="Trade prints instead of bars")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True,
              help="Prints at most (with --trades)")
@click.option("--path", type=click.Path(path_type=Path), default=None,
              help="The history store's DuckDB file (default: history.duckdb in the state "
                   "folder, $T2T_VAR_DIR or ~/.local/state/tick2trade)")
@click.option("--json", "as_json", is_flag=True)
def history(symbol, start, end, interval, trades, limit, path, as_json) -> None:
    """OHLCV bars (or --trades, the prints) of SYMBOL from the history store."""
    if path is None:
        from tick2trade.host.settings import load as load_settings

        path = load_settings().var_dir / "history.duckdb"
    try:
        out = query(path, symbol.upper(), start, end, interval, trades, limit)
    except (HistoryInUse, FileNotFoundError, Unavailable) as e:
        click.echo(f"t2t history: {e}", err=True)
        raise SystemExit(EXIT_STORE) from None
    if as_json:
        from tick2trade.host.cli.connect import print_json
        print_json(out)
        return
    from rich.console import Console
    from rich.table import Table

    rows = out["trades"] if trades else out["bars"]
    what = "prints" if trades else f"{interval} bars"
    table = Table(title=f"{out['symbol']}: {len(rows)} {what} from {out['from']} to "
                        f"{out['to']}", show_edge=False)
    columns = (["ts", "price", "size", "side", "match", "source"] if trades else
               ["start", "open", "high", "low", "close", "volume", "trades"])
    for c in columns:
        table.add_column(c, justify="left" if c in ("ts", "start", "side", "source")
                         else "right")
    for r in rows:
        table.add_row(*("" if r[c] is None else f"{r[c]:.4f}" if isinstance(r[c], float)
                        else str(r[c]) for c in columns))
    console = Console()
    console.print(table)
    if out["raw_since"]:
        console.print(f"prints and 1 s bars before {out['raw_since']} were compacted into "
                      f"1-minute bars")
