"""``t2t replay``: a capture through the receive path (or the whole top level) in
Verilator, its events, books, orders and counters written out."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from tick2trade.gateware.models.book import BOOK_COUNTERS
from tick2trade.host.cli.options import WIDTHS, GroupPort, parse_stocks
from tick2trade.protocol import itch, itchfile, moldudp64
from tick2trade.protocol.moldudp64 import DEFAULT_LINE_A, DEFAULT_LINE_B
from tick2trade.sim.replay import FILE_SESSION


@click.command()
@click.argument("capture", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--events", "events_path",
              type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
              help="Write one JSON object per event here ('-' for stdout).")
@click.option("--book", "book_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also run the book stage and write the final top levels of every "
                   "traded symbol here as JSON.")
@click.option("--orders", "orders_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Run the whole top level (book and trade path too) with --config pushed "
                   "and write the order frames it sent here (pcap).")
@click.option("--config", "config_path",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --orders: the TOML configuration to push first (watch list, "
                   "triggers, risk limits, venue; feed lines from its [feed]).")
@click.option("--line-a", type=GroupPort(), default=f"{DEFAULT_LINE_A[0]}:{DEFAULT_LINE_A[1]}",
              show_default=True, help="Multicast group and UDP port of feed line A.")
@click.option("--line-b", type=GroupPort(), default=f"{DEFAULT_LINE_B[0]}:{DEFAULT_LINE_B[1]}",
              show_default=True, help="Multicast group and UDP port of feed line B.")
@click.option("--width", type=click.Choice(WIDTHS), default="64", show_default=True,
              help="Bits per beat of the simulated receive path.")
@click.option("--summary", "summary_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every counter and the run's figures as JSON here.")
@click.option("--watch", multiple=True, callback=parse_stocks, metavar="SYMBOL",
              help="Trade this stock (repeat, or comma-separate); it becomes symbol 0, 1, "
                   "... in watch order once its Stock Directory message is seen.")
@click.option("--all-symbols/--watched-only", default=None,
              help="Trade every locate (symbol = locate % SYMBOLS). Default: on when no "
                   "--watch is given, off otherwise.")
@click.option("--symbols", type=click.IntRange(1, 1024), default=64, show_default=True,
              help="Symbols of the simulated build.")
@click.option("--locates", type=click.IntRange(2, 65536), default=16384, show_default=True,
              help="Locate table depth of the simulated build; higher locates never "
                   "trade.")
@click.option("--max-payload", type=click.IntRange(moldudp64.HEADER + 2 + itch.MAX_LENGTH,
                                                   65_507),
              default=itchfile.DEFAULT_MAX_PAYLOAD, show_default=True,
              help="BinaryFILE input: largest MoldUDP64 packet (UDP payload bytes).")
@click.option("--pack-window-ns", type=click.IntRange(0), default=0, show_default=True,
              help="BinaryFILE input: a packet holds messages up to this many ns after "
                   "its first one's timestamp (0: one timestamp a packet).")
@click.option("--lines", "feed_lines", type=click.Choice(["AB", "A", "B"]), default="AB",
              show_default=True,
              help="BinaryFILE input: the lines each packet is sent on (AB: both, as a "
                   "venue publishes; the receive path keeps the first copy).")
@click.option("--session", default=FILE_SESSION, show_default=True,
              help="BinaryFILE input: the MoldUDP64 session its packets carry.")
def replay(capture: Path, events_path: Path | None, book_path: Path | None,
           orders_path: Path | None, config_path: Path | None, line_a, line_b,
           width: str, summary_path: Path | None, watch: tuple[str, ...], all_symbols: bool | None,
           symbols: int, locates: int, max_payload: int, pack_window_ns: int,
           feed_lines: str, session: str) -> None:
    """Replay CAPTURE through the receive path in Verilator: a pcap or pcapng capture
    (Ethernet), or a NASDAQ TotalView-ITCH 5.0 BinaryFILE, either plain or gzip (.gz).

    A BinaryFILE (2-byte length + message, as NASDAQ publishes its days) is streamed,
    never loaded whole, and packed into MoldUDP64 packets as a venue publishes them: in
    file order, a new packet when the timestamp moves past --pack-window-ns or the next
    message would pass --max-payload; each packet goes to LINE-A and LINE-B (--lines).

    Frames to LINE-A/LINE-B carrying MoldUDP64 are arbitrated (first copy wins), the
    ITCH messages decoded; every event of a traded instrument is written to --events
    as one JSON line, and the counters are printed at the end.

    With --book the events also go through the book stage (top 8 levels per side,
    16 tracked, 16k orders); the final book of every symbol that had order events is
    written as {"SYMBOL": {"bids": [[price, shares, orders], ...], "asks": [...]}}, best
    first, prices in 1/10000 — the levels a host rebuilds from the book's update stream.

    With --orders and --config the capture runs through the whole top level instead:
    the configuration is pushed as `t2t config push` would, and every order frame the
    gateware sent is written to --orders (pcap); --summary then holds rejects by reason
    and, per order, its tick-to-trade and decision time in cycles from the gateware's own
    counters.

    Without --watch every locate is traded (symbol = locate % SYMBOLS), so any capture
    gives events. With --watch only the watched stocks are, learned from their Stock
    Directory ('R') messages; add --all-symbols to trade everything as well. Each
    distinct --width/--symbols/--locates is its own Verilator build (about half a
    minute the first time, cached under build/verilator/).
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from tick2trade.sim.replay import BookReplay, CaptureError, read_frames, replay_config
    from tick2trade.sim.replay import replay as run_replay

    file_args = {"session": session, "max_payload": max_payload,
                 "window_ns": pack_window_ns, "lines": feed_lines}
    if orders_path or config_path:
        if not (orders_path and config_path):
            raise click.UsageError("--orders and --config go together")
        if events_path or book_path:
            raise click.UsageError("--orders runs the whole top level: give --events and "
                                   "--book in a separate run")
        return _replay_orders(capture, orders_path, config_path, width, summary_path,
                              file_args)
    if events_path is None and book_path is None:
        raise click.UsageError("nothing to write: give --events, --book, or --orders with "
                               "--config")
    if len(watch) > symbols:
        raise click.BadParameter(f"{len(watch)} stocks watched, the build has {symbols} "
                                 f"symbols (raise --symbols)", param_hint="--watch")
    config = replay_config(line_a, line_b, watch, all_symbols, symbols, locates)
    err = Console(stderr=True)
    out = err if str(events_path) == "-" else Console()
    book = None
    progress = Progress("[progress.description]{task.description}", BarColumn(),
                        DownloadColumn(), "{task.fields[frames]:,} frames",
                        "{task.fields[rate]:,.0f}/s", TimeRemainingColumn(), console=err,
                        transient=True, disable=not err.is_terminal)
    try:
        frames = _counted(read_frames(capture, config, **file_args), progress)
        err.print(f"[dim]rx_path W={width}, {symbols} symbols, {locates} locates: "
                  f"preparing the Verilator model…[/dim]")
        if book_path:
            book = BookReplay(symbols)
        sink_name = str(events_path) if events_path else os.devnull
        with click.open_file(sink_name, "w") as sink, progress:
            task = progress.add_task(capture.name, total=capture.stat().st_size,
                                     frames=0, rate=0.0)

            def write_events(events) -> None:
                if events_path:
                    sink.writelines(json.dumps(e.to_json(), separators=(",", ":")) + "\n"
                                    for e in events)
                if book:
                    book.feed(events)

            result = run_replay(frames, config, data_width=int(width), symbols=symbols,
                                locates=locates, on_events=write_events,
                                on_progress=lambda done: progress.update(task, completed=done))
    except CaptureError as exc:
        raise click.UsageError(str(exc)) from None
    if book:
        try:
            result.counters["book"] = {**book.sim.counters(), "occupancy": book.sim.occupancy}
            book_path.write_text(json.dumps(book.books(), indent=1) + "\n")
        finally:
            book.close()
        for sym, shared in book.shared.items():
            err.print(f"[yellow]symbol {sym} carries locates {shared}: its book mixes "
                      f"stocks (raise --symbols or use --watch)[/yellow]")

    build = f"built in {result.build_seconds:.1f} s" if result.build_seconds else "cached"
    err.print(f"[dim]Verilator model {build}; set-up {result.setup_seconds:.1f} s[/dim]")
    out.print(counters_table(result.counters))
    rate = result.counters["moldudp"]["messages"] / result.seconds if result.seconds else 0
    out.print(f"{result.records:,} frames, {result.events:,} events, {len(result.gaps):,} "
              f"gaps, {result.cycles:,} cycles in {result.seconds:.1f} s "
              f"({rate:,.0f} messages/s)", highlight=False)
    if summary_path:
        summary = {
            "capture": str(capture), "records": result.records,
            "empty_records": result.empty_records, "events": result.events,
            "ctl_datagrams": result.ctl_datagrams, "cycles": result.cycles,
            "seconds": round(result.seconds, 3), "sim_seconds": round(result.sim_seconds, 3),
            "config": {"width": int(width), "symbols": symbols, "locates": locates,
                       "line_a": list(line_a), "line_b": list(line_b), "watch": list(watch),
                       "all_symbols": bool(config.locate_map)},
            "gaps": [{"line": "AB"[g.line], "session": g.session.decode("latin-1").rstrip(),
                      "first": g.first, "count": g.count} for g in result.gaps],
            "counters": result.counters,
        }
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")


def _counted(frames, progress):
    """``frames`` passed through, their count and rate kept in ``progress``'s first task
    (shown with the bytes read and the time left)."""
    start, n = time.monotonic(), 0
    for item in frames:
        n += 1
        if n % 4096 == 0 and progress.tasks:
            progress.update(progress.tasks[0].id, frames=n,
                            rate=n / max(1e-9, time.monotonic() - start))
        yield item


def _feed_lines(config_path: Path):
    """The receive path's lines as the configuration's [feed] sets them (where a
    BinaryFILE's packets are sent)."""
    from tick2trade.gateware.models.rx.eth_rx import RxConfig
    from tick2trade.host.config import parse
    from tick2trade.protocol.frames import int_to_ip

    cfg = parse(config_path.read_text(), str(config_path), symbols=64)
    lines = {line: (int_to_ip(group), port) for group, port, line in cfg.feeds}
    return RxConfig.default(line_a=lines.get(0, DEFAULT_LINE_A),
                            line_b=lines.get(1, DEFAULT_LINE_B))


def _replay_orders(capture: Path, orders_path: Path, config_path: Path, width: str,
                   summary_path: Path | None, file_args: dict) -> None:
    from tick2trade.host.config import ConfigError
    from tick2trade.protocol.pcap import write_pcap
    from tick2trade.sim.replay import CaptureError, read_frames, trade_replay

    err = Console(stderr=True)
    try:
        frames = read_frames(capture, _feed_lines(config_path), **file_args)
        err.print(f"[dim]top level W={width}: preparing the Verilator model…[/dim]")
        with err.status("replaying through the trade path…", spinner="dots"):
            result = trade_replay(frames, config_path.read_text(),
                                  config_path=str(config_path), data_width=int(width))
    except CaptureError as exc:
        raise click.UsageError(str(exc)) from None
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    write_pcap(orders_path, result.order_frames)
    rejects = {k: v for k, v in result.rejects.items() if v}
    ttt = sorted(o["tick_to_trade_cycles"] for o in result.orders
                 if o["tick_to_trade_cycles"] is not None)
    Console().print(
        f"{result.frames:,} frames in, {len(result.order_frames):,} order frames out "
        f"({len(result.orders):,} enters) → {orders_path}; {result.decisions:,} decisions, "
        f"rejects: {', '.join(f'{k} {v:,}' for k, v in rejects.items()) or 'none'}"
        + (f"; tick-to-trade {ttt[0]}–{ttt[-1]} cycles, median {ttt[len(ttt) // 2]}"
           if ttt else ""), highlight=False)
    if result.records_lost:
        err.print(f"[yellow]{result.records_lost} orders without a latency record (more "
                  f"than 64 orders from one batch of 32 frames)[/yellow]")
    if summary_path:
        summary_path.write_text(json.dumps({
            "capture": str(capture), "config": str(config_path), "width": int(width),
            "frames": result.frames, "order_frames": len(result.order_frames),
            "decisions": result.decisions, "rejects": result.rejects,
            "cycles": result.cycles, "seconds": round(result.seconds, 3),
            "orders": result.orders}, indent=2) + "\n")


# How the counters are shown: (section, stage, counters); message types get their own
# section, and a counter not named here still shows, under "other".
_SECTIONS = (
    ("frames", "eth_rx", ("frames", "feed_a", "feed_b", "ctl", "filtered")),
    ("drops", "eth_rx", ("truncated", "not_ipv4", "bad_ip_header", "bad_ip_checksum",
                         "fragment", "not_udp", "bad_udp_length", "empty_payload",
                         "short_payload")),
    ("moldudp64", "moldudp", ("packets", "messages", "dup_a", "dup_b", "gaps",
                              "gap_messages", "skipped_messages", "heartbeats",
                              "end_of_session", "sessions", "wrong_session", "bad_header",
                              "runt_block")),
    ("itch", "itch", ("events", "untraded", "directory_hits", "unknown_type", "bad_length",
                      "aborted")),
    ("fifo", "fifo", ("event_overflow", "gap_overflow")),
    ("book", "book", BOOK_COUNTERS + ("occupancy",)),
)


def counters_table(counters: dict[str, dict[str, int]]) -> Table:
    """The counters for people, grouped by what they say about the capture: every
    counter of every stage (message types only when they occurred)."""
    table = Table(title="receive path counters", show_edge=False)
    table.add_column("section", style="bold")
    table.add_column("counter")
    table.add_column("value", justify="right")
    listed = {(stage, n) for _s, stage, names in _SECTIONS for n in names or ()}
    rest = tuple((stage, n) for stage, values in counters.items() for n in values
                 if (stage, n) not in listed and stage != "itch_by_type")
    by_type = tuple(("itch_by_type", n) for n, v in counters.get("itch_by_type", {}).items()
                    if v)
    groups = [(section, tuple((stage, n) for n in names or ()))
              for section, stage, names in _SECTIONS if names] + \
        [("by type", by_type), ("other", rest)]
    for section, keys in groups:
        keys = [(stage, n) for stage, n in keys if n in counters.get(stage, {})]
        for i, (stage, name) in enumerate(keys):
            value = counters[stage][name]
            style = "red" if value and section in ("drops", "fifo") else None
            table.add_row(section if i == 0 else "", name, f"{value:,}", style=style)
        if keys:
            table.add_section()
    return table
