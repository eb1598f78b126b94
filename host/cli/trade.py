"""``t2t risk show|set``, ``t2t kill on|off`` and ``t2t latency``: the trade path's
operator commands, on the registers of ``risk`` and ``telemetry``."""

from __future__ import annotations

import click

from tick2trade.host.cli.connect import device_errors, open_device, print_json, risk_state
from tick2trade.host.cli.options import device_options


@click.group()
def risk() -> None:
    """Pre-trade risk limits on the FPGA."""


@risk.command("show")
@device_options
@click.option("--json", "as_json", is_flag=True)
@device_errors
def risk_show(endpoint, board, map_path, timeout, as_json) -> None:
    """The risk limits (0: check off), kill state and rejects by reason."""
    from rich.console import Console
    from rich.table import Table

    st = risk_state(open_device(endpoint, board, map_path, timeout))
    if as_json:
        print_json(st)
        return
    console = Console()
    killed = f"ON ({', '.join(st['kill_causes'])})" if st["killed"] else "off"
    console.print(f"kill switch: {killed}; {st['open_orders']} open orders, gross "
                  f"{st['gross'] / 10_000:,.2f}; {st['passed']:,} passed")
    table = Table(show_edge=False)
    table.add_column("limit")
    table.add_column("value", justify="right")
    for k, v in st["limits"].items():
        table.add_row(k, f"{v:,}" if v else "off")
    console.print(table)
    rejects = Table(show_edge=False)
    rejects.add_column("reject reason")
    rejects.add_column("count", justify="right")
    for k, v in st["rejects"].items():
        rejects.add_row(k, f"{v:,}")
    console.print(rejects)


@risk.command("set")
@device_options
@click.argument("name")
@click.argument("value", type=click.IntRange(0))
@device_errors
def risk_set(endpoint, board, map_path, timeout, name, value) -> None:
    """Set risk limit NAME (a risk.limits field, as `risk show` names them) to VALUE
    (raw register units: 1/10000 for prices, cycles for times)."""
    dev = open_device(endpoint, board, map_path, timeout)
    dev.require("risk", "risk limits")
    reg = f"risk.limits.{name}"
    if reg not in dev.map:
        known = sorted(e.name.removeprefix("risk.limits.") for e in dev.map.entries
                       if e.name.startswith("risk.limits."))
        raise click.BadParameter(f"{name!r}; one of {', '.join(known)}", param_hint="NAME")
    width = dev.map[reg].width
    if value >= 1 << width:
        raise click.BadParameter(f"{value} does not fit {name}'s {width} bits",
                                 param_hint="VALUE")
    dev.write(reg, value)
    click.echo(f"{name} = {value}")


@click.command()
@device_options
@click.argument("state", type=click.Choice(("on", "off")))
@device_errors
def kill(endpoint, board, map_path, timeout, state) -> None:
    """Turn the kill switch on (no order passes) or off (also clears a trip by the
    breach count or the watchdog, and sends a heartbeat)."""
    dev = open_device(endpoint, board, map_path, timeout)
    dev.require("risk", "kill switch")
    if state == "on":
        dev.write("risk.limits.kill", 1)
    else:
        dev.write_many({"risk.heartbeat": 1, "risk.kill_reset": 1, "risk.limits.kill": 0})
    st = risk_state(dev)
    click.echo("kill switch " + ("ON" if st["killed"] else "off") +
               (f" ({', '.join(st['kill_causes'])})" if st["kill_causes"] else ""))


def latency_state(dev, drain: int = 4096) -> dict:
    """The histogram registers, and the per-order records drained from the FIFO."""
    from tick2trade.gateware.trade.telemetry import BINS

    dev.require("telemetry", "latency histogram")
    names = [f"telemetry.histogram[{i}]" for i in range(BINS)]
    values = dev.read_many(names + ["telemetry.hist_shift", "telemetry.ttt_min",
                                    "telemetry.ttt_max"])
    records = []
    while len(records) < drain:
        rec = dev.pop_fifo("telemetry.records")
        if rec is None:
            break
        records.append({**rec, "tick_to_trade": (rec["t_out"] - rec["t_in"]) & 0xFFFFFFFF,
                        "decision": (rec["t_decide"] - rec["t_event"]) & 0xFFFFFFFF})
    width = 1 << values["telemetry.hist_shift"]
    hist = [values[n] for n in names]
    return {"bin_cycles": width, "histogram": hist, "orders": sum(hist),
            "min": values["telemetry.ttt_min"] if sum(hist) else None,
            "max": values["telemetry.ttt_max"] if sum(hist) else None,
            "percentiles": percentiles(hist, width), "records": records}


def percentiles(hist: list[int], width: int, qs=(50, 90, 99)) -> dict[str, int | None]:
    """Upper edge of the bin holding each percentile (the last bin is open-ended)."""
    total, out = sum(hist), {}
    for q in qs:
        if not total:
            out[f"p{q}"] = None
            continue
        need, seen = total * q / 100, 0
        for i, n in enumerate(hist):
            seen += n
            if seen >= need:
                out[f"p{q}"] = (i + 1) * width - 1
                break
    return out


@click.command()
@device_options
@click.option("--clock-mhz", type=click.FloatRange(1), default=None,
              help="Also show ns at this clock — the Fmax of your build's place-and-route "
                   "report (no default: cycles are what the gateware counts).")
@click.option("--json", "as_json", is_flag=True)
@device_errors
def latency(endpoint, board, map_path, timeout, clock_mhz, as_json) -> None:
    """Tick-to-trade histogram and percentiles in cycles (and ns with --clock-mhz), and
    the per-order records waiting in the FIFO (drained)."""
    from rich.console import Console
    from rich.table import Table

    st = latency_state(open_device(endpoint, board, map_path, timeout))
    if as_json:
        print_json(st)
        return
    console = Console()
    if not st["orders"]:
        console.print("no orders sent yet")
        return
    in_ns = (lambda c: f"{c * 1e3 / clock_mhz:.1f}") if clock_mhz else None
    console.print(f"{st['orders']:,} orders; tick-to-trade min {st['min']} / max "
                  f"{st['max']} cycles" + (f" ({in_ns(st['min'])} / {in_ns(st['max'])} ns "
                                           f"at {clock_mhz} MHz)" if in_ns else ""))
    table = Table(show_edge=False)
    for col in ("percentile", "≤ cycles") + (("≤ ns",) if in_ns else ()):
        table.add_column(col, justify="right")
    for q, v in st["percentiles"].items():
        table.add_row(q, str(v), *((in_ns(v),) if in_ns else ()))
    console.print(table)
    if st["records"]:
        console.print(f"{len(st['records'])} order records drained; last: "
                      f"user_ref {st['records'][-1]['user_ref']}, "
                      f"{st['records'][-1]['tick_to_trade']} cycles")

