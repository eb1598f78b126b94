"""``t2t venue``: run the venue simulator, or write a synthetic feed capture."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table


def _config(path: Path | None, **overrides):
    from tick2trade.sim.venue.config import ConfigError, load_config

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from None
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    return cfg


def _counters_table(title: str, counters: dict[str, dict]) -> Table:
    table = Table(title=title, show_edge=False)
    table.add_column("section", style="bold")
    table.add_column("counter")
    table.add_column("value", justify="right")
    for section, values in counters.items():
        for i, (name, value) in enumerate(sorted(values.items())):
            table.add_row(section if i == 0 else "", name, f"{value:,}")
        table.add_section()
    return table


CONFIG = click.option("--config", "config_path",
                      type=click.Path(exists=True, dir_okay=False, path_type=Path),
                      help="venue.toml: instruments, feed lines, order entry, flow "
                           "(defaults for everything not given).")


@click.group(invoke_without_command=True)
@CONFIG
@click.option("--rate", type=click.FloatRange(min=0, min_open=True),
              help="Synthetic order-flow actions per second (default 1000, or the "
                   "config's flow.rate).")
@click.option("--seed", type=int, help="Seed of the synthetic flow (default: config / 1).")
@click.option("--record", type=click.Path(dir_okay=False, path_type=Path),
              help="Record what is sent over UDP as pcap: feed packets on both lines, "
                   "retransmissions, OUCH answers over UDP.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True),
              help="Seconds to run (default: until Ctrl-C).")
@click.option("--json", "as_json", is_flag=True, help="Print the final counters as JSON.")
@click.pass_context
def venue(ctx, config_path, rate, seed, record, duration, as_json) -> None:
    """Run the venue simulator: matching engine, ITCH 5.0 over MoldUDP64 on lines A and
    B with a retransmission server, OUCH 5.0 order entry over SoupBinTCP (TCP and UDP),
    and synthetic participants trading at --rate."""
    if ctx.invoked_subcommand is not None:
        return
    from tick2trade.sim.venue.run import run_venue

    cfg = _config(config_path, rate=rate, seed=seed)
    console = Console(stderr=as_json)

    def ready(listening: dict) -> None:
        console.print(f"venue session {cfg.session}: {len(cfg.instruments)} instruments, "
                      f"flow {cfg.rate:,.0f}/s seed {cfg.seed}; feed A "
                      f"{cfg.line_a[0]}:{cfg.line_a[1]}, B {cfg.line_b[0]}:{cfg.line_b[1]}",
                      highlight=False)
        for name, (host, port) in listening.items():
            console.print(f"  {name} on {host}:{port}", highlight=False)

    async def until_stopped():
        # Ctrl-C (or SIGTERM) ends the day properly: DAY orders cancelled and published,
        # end of session on the feed and on every order connection.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_venue(cfg, duration=duration, record=record, ready=ready,
                               stop=stop)

    try:
        stats = asyncio.run(until_stopped())
    except OSError as exc:
        raise click.ClickException(f"cannot open the venue's sockets: {exc}") from None
    if as_json:
        click.echo(json.dumps({"seconds": round(stats.seconds, 3), "actions": stats.actions,
                               "messages": stats.messages, "counters": stats.counters}))
        return
    console.print(_counters_table("venue counters", stats.counters))
    console.print(f"{stats.actions:,} flow actions, {stats.messages:,} ITCH messages in "
                  f"{stats.seconds:.1f} s", highlight=False)


@venue.command()
@CONFIG
@click.option("--messages", type=click.IntRange(1), required=True,
              help="ITCH messages to publish (the last order's messages are kept "
                   "whole, so a few more may be written).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Capture to write (pcap, Ethernet).")
@click.option("--seed", type=int, help="Seed of the synthetic flow (default: config / 1).")
def gen(config_path, messages, out, seed) -> None:
    """Write a synthetic feed capture: the venue's ITCH on lines A and B, reproducible
    from the seed, ready for `t2t replay`."""
    from tick2trade.sim.venue.run import generate_capture

    cfg = _config(config_path)
    try:
        info = generate_capture(cfg, out, messages, seed)
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror}") from None
    kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(info["by_type"].items()))
    click.echo(f"wrote {out}: {info['frames']:,} frames, {info['messages']:,} messages "
               f"({kinds}) from {info['actions']:,} flow actions")

