"""``t2t verilog`` and ``t2t regmap``: what the gateware generates for other tools —
the receive path as Verilog, the register map as JSON, Markdown or a C header."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tick2trade.host.cli.options import WIDTHS, build_options, top_params

FORMATS = ("json", "md", "c")


@click.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write rx_path.v into (created if missing).")
@click.option("--width", type=click.Choice(WIDTHS), default="64", show_default=True,
              help="Bits per beat: 64 for 10GbE, 8 for 1GbE.")
@click.option("--symbols", type=click.IntRange(1, 1024), default=64, show_default=True,
              help="Instruments traded (watch-list entries).")
@click.option("--locates", type=click.IntRange(2, 65536), default=16384, show_default=True,
              help="Depth of the locate table.")
def verilog(out_dir: Path, width: str, symbols: int, locates: int) -> None:
    """Write the receive path (eth_rx → moldudp → itch → event FIFO) as Verilog."""
    from tick2trade.gateware.export import to_verilog
    from tick2trade.gateware.rx.rx_path import RxPath

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "rx_path.v"
    path.write_text(to_verilog(RxPath(int(width), symbols=symbols, locates=locates),
                               "rx_path"))
    click.echo(f"wrote {path}")


def render_map(regmap, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(regmap.to_json(), indent=2) + "\n"
    if fmt == "md":
        return regmap.to_markdown()
    return regmap.to_c_header()


@click.command()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="json",
              show_default=True, help="JSON for programs, Markdown for people, a C header "
              "for firmware.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here instead of stdout.")
@build_options
def regmap(fmt: str, out: Path | None, width: str, symbols: int, locates: int) -> None:
    """Print the register map generated from the gateware (docs/registers.md is
    `t2t regmap --format md` of the default build)."""
    from tick2trade.gateware.top import register_map

    text = render_map(register_map(**top_params(int(width), symbols, locates)), fmt)
    if out:
        out.write_text(text)
    else:
        click.echo(text, nl=False)
