"""``t2t status``, ``counters``, ``config push|diff|show`` and ``book``: the operator's
view of a device, the virtual FPGA or a board, through the control protocol."""

from __future__ import annotations

from pathlib import Path

import click

from tick2trade.host.cli.connect import (EXIT_DIFFERENT, EXIT_NOT_IN_BITSTREAM, device_errors,
                                         open_device, print_json, risk_state)
from tick2trade.host.cli.options import device_options


def fmt_ip(value: int) -> str:
    import ipaddress

    return str(ipaddress.IPv4Address(value))


def feeds_of(values: dict[str, int]) -> list[dict]:
    out, i = [], 0
    while f"rx.feeds[{i}].enable" in values:
        if values[f"rx.feeds[{i}].enable"]:
            out.append({"line": "AB"[values[f"rx.feeds[{i}].line"]],
                        "group": fmt_ip(values[f"rx.feeds[{i}].group"]),
                        "port": values[f"rx.feeds[{i}].port"]})
        i += 1
    return out


OPTIONAL_BLOCKS = {"book": "order book", "risk": "risk checks", "strategy": "triggers",
                   "ouch_tx": "order entry", "telemetry": "latency histogram"}


def kill_of(dev) -> str:
    st = risk_state(dev)
    return f"ON ({', '.join(st['kill_causes'])})" if st["killed"] else "off"


def status_of(dev) -> dict:
    """What `t2t status` shows, as data."""
    from tick2trade.gateware.top import ALARMS

    m = dev.map
    feed_names = [e.name for e in m.entries if e.name.startswith("rx.feeds[")]
    names = feed_names + ["sys.cycles", "sys.alarms", "rx.ctl_ip", "rx.ctl_port"]
    if m.has_block("book"):
        names += ["book.occupancy", "book.busy"]
    counters = dev.counters()
    values = dev.read_many(names)
    c = {k.removeprefix("rx.counters."): v for k, v in counters.items()}
    alarms = values["sys.alarms"]

    return {
        "link": {"device": dev.name, "map_hash": f"{m.hash:#010x}",
                 "control": f"{fmt_ip(values['rx.ctl_ip'])}:{values['rx.ctl_port']}",
                 "cycles": values["sys.cycles"]},
        "feeds": [{**f, "frames": c[f"eth_rx.feed_{f['line'].lower()}"],
                   "duplicates": c[f"moldudp.dup_{f['line'].lower()}"]}
                  for f in feeds_of(values)],
        # feed datagrams refused before MoldUDP64: from another source, or counted with
        # a failing UDP checksum (still passed on: the verdict comes with the last byte)
        "rejected": {"wrong_source": c["eth_rx.wrong_source"],
                     "bad_udp_checksum": c["eth_rx.bad_udp_checksum"]},
        "sequence": {"sessions": c["moldudp.sessions"], "packets": c["moldudp.packets"],
                     "messages": c["moldudp.messages"],
                     "wrong_session": c["moldudp.wrong_session"],
                     "unconfirmed": c["moldudp.unconfirmed"]},
        "gaps": {"reported": c["moldudp.gaps"], "messages_missing": c["moldudp.gap_messages"],
                 "lost_to_full_fifo": c["fifo.gap_overflow"]},
        "alarms": [name for i, name in enumerate(ALARMS) if alarms >> i & 1],
        "book": None if not m.has_block("book") else
        f"{values['book.occupancy']:,} orders" + (", clearing" if values["book.busy"] else ""),
        "kill": None if not m.has_block("risk") else kill_of(dev),
        "not_in_bitstream": [b for b in OPTIONAL_BLOCKS if not m.has_block(b)],
    }


@click.command()
@device_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of tables.")
@device_errors
def status(endpoint, board, map_path, timeout, as_json: bool) -> None:
    """Link, feed lines, sequence, gaps, book occupancy and kill state at a glance.

    Blocks the bitstream does not have are shown as "not in this bitstream" (JSON:
    null, and listed under not_in_bitstream).
    """
    from rich.console import Console
    from rich.table import Table

    dev = open_device(endpoint, board, map_path, timeout)
    st = status_of(dev)
    if as_json:
        print_json(st)
        return
    table = Table(title="t2t status", show_edge=False, show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    link = st["link"]
    table.add_row("link", f"{link['device']} — control {link['control']}, map "
                  f"{link['map_hash']}, {link['cycles']:,} cycles")
    for f in st["feeds"]:
        table.add_row(f"feed line {f['line']}", f"{f['group']}:{f['port']} — "
                      f"{f['frames']:,} frames, {f['duplicates']:,} duplicates")
    seq = st["sequence"]
    table.add_row("sequence", f"{seq['messages']:,} messages in {seq['packets']:,} packets, "
                  f"{seq['sessions']} session(s), {seq['wrong_session']:,} wrong-session, "
                  f"{seq['unconfirmed']:,} held aside unconfirmed (a far jump)")
    rej = st["rejected"]
    table.add_row("rejected", f"{rej['wrong_source']:,} from a wrong source, "
                  f"{rej['bad_udp_checksum']:,} failing the UDP checksum")
    gaps = st["gaps"]
    missing = gaps["messages_missing"]
    from tick2trade.gateware.models.rx.moldudp import GAP_MESSAGES_MAX

    table.add_row("gaps", f"{gaps['reported']:,} reported ("
                  + ("at least 2**64 - 1" if missing == GAP_MESSAGES_MAX else f"{missing:,}")
                  + f" messages), {gaps['lost_to_full_fifo']:,} lost to a full FIFO")
    table.add_row("alarms", ", ".join(st["alarms"]) or "none")
    for key, block in (("book", "book"), ("kill", "risk")):
        table.add_row(key, "not in this bitstream" if st[key] is None else st[key],
                      style="dim" if st[key] is None else None)
    Console().print(table)


@click.command()
@device_options
@click.option("--json", "as_json", is_flag=True, help="JSON (one object per refresh).")
@click.option("--watch", "interval", type=click.FloatRange(0.1), default=None,
              help="Refresh every INTERVAL seconds until Ctrl-C, with rates.")
@click.option("--count", type=click.IntRange(1), default=None,
              help="With --watch: stop after COUNT refreshes.")
@click.option("--all", "show_all", is_flag=True, help="Show counters that are zero too.")
@device_errors
def counters(endpoint, board, map_path, timeout, as_json, interval, count, show_all) -> None:
    """Every counter of every block, read in one batch of requests."""
    import itertools
    import json
    import time

    from rich.console import Console
    from rich.table import Table

    dev = open_device(endpoint, board, map_path, timeout)
    console = Console()
    previous, then = None, None
    for n in itertools.count(1):
        values, now = dev.counters(), time.monotonic()
        rates = {k: (v - previous[k]) % (1 << dev.map[k].width) / (now - then)
                 for k, v in values.items()} if previous else {}
        if as_json:
            record = {"counters": values, **({"per_second": rates} if rates else {})}
            click.echo(json.dumps(record) if interval else json.dumps(record, indent=2))
        else:
            table = Table(title="counters", show_edge=False)
            table.add_column("counter")
            table.add_column("value", justify="right")
            if rates:
                table.add_column("per second", justify="right")
            for k, v in values.items():
                if v or show_all:
                    row = [k, f"{v:,}"] + ([f"{rates[k]:,.1f}"] if rates else [])
                    table.add_row(*row)
            console.print(table)
        if interval is None or (count is not None and n >= count):
            return
        previous, then = values, now
        try:
            time.sleep(interval)
        except KeyboardInterrupt:
            return


@click.group()
def config() -> None:
    """Push, compare and show the device configuration (one TOML file)."""


def _config_values(dev, path: Path):
    from tick2trade.host.config import load, watch_size

    cfg = load(path, symbols=watch_size(dev.map))
    return (*cfg.registers(dev.map), cfg.table_writes(dev.map))


@config.command("push")
@device_options
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--allow-missing", is_flag=True, help="Exit 0 even when sections of the "
              "file have no block in this bitstream.")
@device_errors
def config_push(endpoint, board, map_path, timeout, path: Path, allow_missing) -> None:
    """Validate PATH, then write it; nothing is written if any key is invalid."""
    from tick2trade.host.config import load

    load(path)  # a broken file fails here, before the device is even asked
    dev = open_device(endpoint, board, map_path, timeout)
    values, missing, table = _config_values(dev, path)
    dev.write_many(values)
    for name, value in table:  # staged entry, then its strobe: order matters
        dev.write(name, value)
    click.echo(f"pushed {len(values)} registers" +
               (f" and {len(table) // 2} trigger table entries" if table else "") +
               f" from {path}")
    if missing:
        click.echo(f"not pushed: {', '.join(missing)} — not in this bitstream", err=True)
        if not allow_missing:
            raise SystemExit(EXIT_NOT_IN_BITSTREAM)


@config.command("diff")
@device_options
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@device_errors
def config_diff(endpoint, board, map_path, timeout, path: Path, as_json) -> None:
    """Read the device back and compare with PATH; exit 1 when they differ."""
    from rich.console import Console
    from rich.table import Table

    from tick2trade.host.config import load

    load(path)
    dev = open_device(endpoint, board, map_path, timeout)
    values, missing, _table = _config_values(dev, path)  # the table is write-only
    device = dev.read_many(list(values))
    diff = [{"register": n, "device": device[n], "config": v}
            for n, v in values.items() if device[n] != v]
    if as_json:
        print_json({"differences": diff, "not_in_bitstream": missing})
    elif diff:
        table = Table(title=f"device vs {path}", show_edge=False)
        for col in ("register", "device", "config"):
            table.add_column(col, justify="left" if col == "register" else "right")
        for d in diff:
            table.add_row(d["register"], f"{d['device']:#x}", f"{d['config']:#x}")
        Console().print(table)
    else:
        click.echo(f"device matches {path} ({len(values)} registers)")
    if missing and not as_json:
        click.echo(f"not compared: {', '.join(missing)} — not in this bitstream", err=True)
    if diff:
        raise SystemExit(EXIT_DIFFERENT)


@config.command("show")
@device_options
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--json", "as_json", is_flag=True)
@device_errors
def config_show(endpoint, board, map_path, timeout, path: Path | None, as_json) -> None:
    """The configuration registers: of the device, or (with PATH) what PATH would write."""
    from rich.console import Console
    from rich.table import Table

    if path is not None:
        from tick2trade.gateware.top import register_map
        from tick2trade.host.config import load

        if board or map_path:
            dev = open_device(endpoint, board, map_path, timeout)
            regmap = dev.map
        else:
            regmap = register_map()
        values, missing = load(path).registers(regmap)
    else:
        dev = open_device(endpoint, board, map_path, timeout)
        names = [e.name for e in dev.map.entries if e.access == "rw"]
        values, missing = dev.read_many(names), []
    if as_json:
        print_json({"registers": values, "not_in_bitstream": missing})
        return
    table = Table(title=str(path) if path else "device configuration", show_edge=False)
    table.add_column("register")
    table.add_column("value", justify="right")
    for n, v in values.items():
        table.add_row(n, f"{v:#x}")
    Console().print(table)


@click.command()
@device_options
@click.argument("symbol")
@click.option("--levels", type=click.IntRange(1), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@device_errors
def book(endpoint, board, map_path, timeout, symbol, levels, as_json) -> None:
    """Top N levels of SYMBOL's book, read from the FPGA.

    SYMBOL is a stock on the watch list (rx.watch) or a symbol index (#3). The levels
    are the book's level rows for the symbol's two sides, read through book.peek: best
    first, prices in 1/10000; a side with a limit (levels dropped for depth) says so.
    """
    import json

    from rich.console import Console
    from rich.table import Table

    from tick2trade.host.device.book import read_book

    dev = open_device(endpoint, board, map_path, timeout)
    dev.require("book", "order book")
    sym = _symbol_index(dev, symbol)
    sides = {name: {**got, "levels": got["levels"][:levels]}
             for name, got in read_book(dev, sym).items()}
    if as_json:
        click.echo(json.dumps({"symbol": symbol, "sym": sym, **sides}, indent=2))
        return
    table = Table(title=f"{symbol} (symbol {sym})", show_edge=False)
    for col in ("bid orders", "bid shares", "bid", "ask", "ask shares", "ask orders"):
        table.add_column(col, justify="right")
    bids, asks = sides["bids"]["levels"], sides["asks"]["levels"]
    for i in range(max(len(bids), len(asks))):
        b = bids[i] if i < len(bids) else None
        a = asks[i] if i < len(asks) else None
        table.add_row(f"{b[2]:,}" if b else "", f"{b[1]:,}" if b else "",
                      f"{b[0] / 10_000:.4f}" if b else "", f"{a[0] / 10_000:.4f}" if a else "",
                      f"{a[1]:,}" if a else "", f"{a[2]:,}" if a else "")
    Console().print(table)
    for name in ("bids", "asks"):
        if sides[name]["limited"]:
            click.echo(f"{name}: levels at or beyond {sides[name]['limit'] / 10_000:.4f} are "
                       f"not tracked ({sides[name]['untracked_orders']} orders)")


def _symbol_index(dev, symbol: str) -> int:
    """A watch-list stock, or ``#N``, as the book's symbol index."""
    from tick2trade.protocol.itch import stock_int

    watch = sorted({int(e.name.split("[")[1].split("]")[0]) for e in dev.map.entries
                    if e.name.startswith("rx.watch[")})
    if symbol.startswith("#"):
        try:
            sym = int(symbol[1:])
        except ValueError:
            raise click.BadParameter(f"{symbol!r}: #N with N a number", param_hint="SYMBOL")
        if sym not in watch:
            raise click.BadParameter(f"symbol index {sym}: this bitstream has {len(watch)} "
                                     f"symbols", param_hint="SYMBOL")
        return sym
    try:
        want = stock_int(symbol.upper())
    except (UnicodeEncodeError, OverflowError):
        raise click.BadParameter(f"{symbol!r} is not an 8-character stock", param_hint="SYMBOL")
    names = [f"rx.watch[{i}].{f}" for i in watch for f in ("enable", "stock")]
    got = dev.read_many(names)
    for i in watch:
        if got[f"rx.watch[{i}].enable"] and got[f"rx.watch[{i}].stock"] == want:
            return i
    raise click.BadParameter(f"{symbol} is not on the device's watch list (rx.watch); "
                             f"give its index as #N", param_hint="SYMBOL")

