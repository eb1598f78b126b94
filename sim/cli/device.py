"""``t2t sim``: the virtual FPGA, served over ZeroMQ to the device commands of
``tick2trade.host.cli`` (and any other client of the control protocol)."""

from __future__ import annotations

import click

from tick2trade.host.cli.options import build_options


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
    from tick2trade.sim.device import run

    stats = run(endpoint, int(width), symbols, locates,
                echo=lambda line: click.echo(line, err=False))
    click.echo(f"t2t sim: stopped after {stats['cycles']:,} cycles, {stats['requests']:,} "
               f"requests, {stats['frames_in']:,} frames in", err=True)
