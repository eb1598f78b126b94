"""Click options and parameter types shared by the ``t2t`` commands of every floor."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import click

from tick2trade.gateware.profiles import SHIPPED
from tick2trade.protocol.moldudp64 import DEFAULT_LINE_A

WIDTHS = ("64", "8")


class GroupPort(click.ParamType):
    """``GROUP:PORT``: an IPv4 destination address and UDP port."""

    name = "GROUP:PORT"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        group, sep, port = str(value).rpartition(":")
        try:
            if not sep:
                raise ValueError
            group = str(ipaddress.IPv4Address(group))
            port = int(port)
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            self.fail(f"{value!r} is not GROUP:PORT (an IPv4 address and a UDP port "
                      f"1-65535, e.g. {DEFAULT_LINE_A[0]}:{DEFAULT_LINE_A[1]})", param, ctx)
        return group, port


def parse_stocks(ctx, param, values: tuple[str, ...]) -> tuple[str, ...]:
    """Callback of a repeatable stock option: comma-separated, upper-cased, each a valid
    ITCH stock."""
    stocks = tuple(s.strip().upper() for v in values for s in v.split(",") if s.strip())
    for s in stocks:
        if len(s) > 8 or not s.isascii() or not s.isprintable():
            raise click.BadParameter(f"{s!r}: an ITCH stock is 1-8 printable ASCII "
                                     f"characters", ctx, param)
    return stocks


def top_params(width: int, symbols: int, locates: int) -> dict:
    return {"data_width": width, "symbols": symbols, "locates": locates}


def build_options(f):
    """The build parameters that shape the register map (and the Verilator model)."""
    f = click.option("--locates", type=click.IntRange(2, 65536), default=SHIPPED.locates,
                     show_default=True, help="Locate table depth of the build.")(f)
    f = click.option("--symbols", type=click.IntRange(1, 1024), default=SHIPPED.symbols,
                     show_default=True, help="Instruments of the build.")(f)
    f = click.option("--width", type=click.Choice(WIDTHS), default="64",
                     show_default=True, help="Bits per beat of the build.")(f)
    return f


def device_options(f):
    """Which device a command talks to: the virtual FPGA, or a board and its map."""
    f = click.option("--timeout", type=click.FloatRange(0.01), default=1.0,
                     show_default=True, help="Seconds to wait for each try of a request.")(f)
    f = click.option("--map", "map_path", type=click.Path(exists=True, dir_okay=False,
                                                          path_type=Path),
                     help="Register map JSON of the board's bitstream (`t2t regmap`); "
                     "needed with --board.")(f)
    f = click.option("--board", metavar="HOST:PORT", envvar="T2T_BOARD",
                     help="A board's control endpoint (UDP) instead of the virtual FPGA.")(f)
    f = click.option("--sim", "endpoint", default="tcp://127.0.0.1:5555", show_default=True,
                     envvar="T2T_SIM", help="ZeroMQ endpoint of `t2t sim`.")(f)
    return f


def mail_and_webhooks(smtp: str, webhook_allow) -> tuple[str, int]:
    """Check ``--smtp HOST:PORT`` and every ``--webhook-allow`` network (the options of
    the commands that deliver notifications); the SMTP host and port."""
    host, _, port = smtp.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter("expected HOST:PORT", param_hint="--smtp")
    for net in webhook_allow:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise click.BadParameter(f"{net!r} is not a network (e.g. 10.1.2.0/24)",
                                     param_hint="--webhook-allow") from None
    return host, int(port)
