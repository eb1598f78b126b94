"""``t2t bitstream BOARD`` and ``t2t flash BOARD``: build and load a real board's
bitstream."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from tick2trade.gateware.platforms import BOARDS
from tick2trade.host.cli.connect import EXIT_DEVICE

EXIT_TOOL = 6        # openFPGALoader or the YoWASP toolchain is not installed
EXIT_BITSTREAM = 7   # no bitstream where one was expected
EXIT_CODES = {"tool": EXIT_TOOL, "bitstream": EXIT_BITSTREAM, "board": EXIT_DEVICE}

BOARD = click.Choice(sorted(BOARDS))


def summary_table(summary: dict) -> Table:
    table = Table(title=f"{summary['board']} ({summary['device']}), seed {summary['seed']}, "
                        f"{summary['seconds']} s")
    table.add_column("resource / clock")
    table.add_column("used / Fmax", justify="right")
    table.add_column("of / target", justify="right")
    table.add_column("")
    for name, r in summary["resources"].items():
        table.add_row(name, f"{r['used']:,}", f"{r['available']:,}",
                      f"{100 * r['used'] / r['available']:.0f} %" if r["available"] else "")
    table.add_section()
    for net, c in summary["clocks"].items():
        table.add_row(net, f"{c['fmax_mhz']:.1f} MHz", f"{c['target_mhz']:.1f} MHz",
                      "met" if c["met"] else "[red]FAILED[/red]")
    return table


@click.command()
@click.argument("board", type=BOARD)
@click.option("--seed", type=int, default=1, show_default=True, help="nextpnr's seed.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Build directory (default build/bitstream/BOARD).")
@click.option("--top", "top", metavar="JSON", help="Top parameters over the board's, e.g. "
              ''''{"symbols": 16, "book": {"capacity": 4096}}'.''')
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def bitstream(board: str, seed: int, out: Path | None, top: str | None,
              as_json: bool) -> None:
    """Build BOARD's bitstream with the YoWASP toolchain and report resources and Fmax
    (about an hour for ecpix5)."""
    from tick2trade.gateware.platforms.build import build

    try:
        params = json.loads(top) if top else None
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"not JSON: {e}", param_hint="--top") from None
    try:
        summary = build(board, seed=seed, out=out, top=params)
    except RuntimeError as e:
        click.echo(f"error: {e}", err=True)
        raise SystemExit(EXIT_TOOL) from None
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        Console().print(summary_table(summary))


@click.command()
@click.argument("board", type=BOARD)
@click.option("--bitstream", "path", type=click.Path(dir_okay=False, path_type=Path),
              help="The .bit file (default: build/bitstream/BOARD/t2t_BOARD.bit).")
@click.option("--persistent", is_flag=True,
              help="Write the SPI flash (survives power-off) instead of the FPGA's SRAM.")
@click.option("--cable", help="openFPGALoader's name of the JTAG adapter (for boards "
              "without one on board, e.g. ft232RL, dirtyJtag).")
def flash(board: str, path: Path | None, persistent: bool, cable: str | None) -> None:
    """Load a bitstream into BOARD through openFPGALoader."""
    from tick2trade.host.hardware import HardwareError
    from tick2trade.host.hardware import flash as load

    try:
        done = load(board, path, persistent, cable)
    except HardwareError as e:
        click.echo(f"error: {e}", err=True)
        raise SystemExit(EXIT_CODES[e.kind]) from None
    where = "SPI flash" if done.persistent else "FPGA"
    click.echo(f"loaded {done.bitstream} into {board}'s {where}")

