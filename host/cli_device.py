"""``t2t`` commands of the control plane: the register map, the virtual FPGA process,
and the operator's view of a device (status, counters, config, risk, kill, book,
latency). Registered into ``host.cli.main`` by ``register``."""

from __future__ import annotations

from pathlib import Path

import click

FORMATS = ("json", "md", "c")


def top_params(width: int, symbols: int, locates: int) -> dict:
    return {"data_width": width, "symbols": symbols, "locates": locates}


def build_options(f):
    """The build parameters that shape the register map (and the Verilator model)."""
    f = click.option("--locates", type=click.IntRange(2, 65536), default=16384,
                     show_default=True, help="Locate table depth of the build.")(f)
    f = click.option("--symbols", type=click.IntRange(1, 1024), default=64,
                     show_default=True, help="Instruments of the build.")(f)
    f = click.option("--width", type=click.Choice(("64", "8")), default="64",
                     show_default=True, help="Bits per beat of the build.")(f)
    return f


def render_map(regmap, fmt: str) -> str:
    import json

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
    from gateware.top import register_map

    text = render_map(register_map(**top_params(int(width), symbols, locates)), fmt)
    if out:
        out.write_text(text)
    else:
        click.echo(text, nl=False)


@click.command()
@click.option("--endpoint", default="tcp://127.0.0.1:5555", show_default=True,
              envvar="T2T_SIM", help="ZeroMQ endpoint to bind (tcp://HOST:PORT or "
              "ipc://PATH).")
@build_options
def sim(endpoint: str, width: str, symbols: int, locates: int) -> None:
    """Run the virtual FPGA: the whole top level in Verilator, serving the control
    protocol, feed frames in and order/event frames out over ZeroMQ until Ctrl-C.

    The first start of a configuration builds the model (about a minute; cached under
    build/verilator/). Clients may come and go; the device keeps its state.
    """
    from sim.device import run

    stats = run(endpoint, int(width), symbols, locates,
                echo=lambda line: click.echo(line, err=False))
    click.echo(f"t2t sim: stopped after {stats['cycles']:,} cycles, {stats['requests']:,} "
               f"requests, {stats['frames_in']:,} frames in", err=True)


def register(main: click.Group) -> None:
    for command in (regmap, sim):
        main.add_command(command)
