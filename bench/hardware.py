"""Resources and Fmax of the board builds (``python -m tick2trade.bench.hardware``; figures in
docs/hardware.md).

Reads the ``summary.json`` that ``t2t bitstream`` / ``make bitstream`` leave in each
``build/bitstream/<dir>/`` and prints one table: LUT4, FF, DP16KD and DSP used of the
device, Fmax of each clock against its constraint. ``--build BOARD`` runs the build
first (an hour or more of one core for the full design). Figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

COLUMNS = ("LUT4", "FF", "DP16KD", "DSP (MULT18X18D)")


def summaries(root: Path) -> list[tuple[str, dict]]:
    return [(p.parent.name, json.loads(p.read_text()))
            for p in sorted(root.glob("*/summary.json"))]


def table(rows: list[tuple[str, dict]], title: str = "Board builds (nextpnr-ecp5 report)",
          params: str = "Top parameters") -> Table:
    t = Table(title=title)
    t.add_column("build")
    t.add_column("device")
    t.add_column(params)
    for name in COLUMNS:
        t.add_column(name, justify="right")
    t.add_column("Fmax (MHz) / target", justify="right")
    t.add_column("timing")
    for build, s in rows:
        cells = []
        for name in COLUMNS:
            r = s["resources"].get(name)
            cells.append(f"{r['used']:,} / {r['available']:,}" if r else "-")
        clocks = "\n".join(f"{net}: {c['fmax_mhz']:.1f} / {c['target_mhz']:.0f}"
                           for net, c in s["clocks"].items())
        t.add_row(build, s["device"], json.dumps(s["params"]) if s["params"] else "shipped",
                  *cells, clocks, {True: "met", False: "[red]not met[/red]"}.get(
                      s["timing_met"], "-"))
    return t


def paths(rows: list[tuple[str, dict]]) -> Table:
    t = Table(title="Critical paths (start and end cells carry the gateware hierarchy)")
    for col in ("build", "clock", "ns", "logic / routing", "levels", "from", "to"):
        t.add_column(col, justify="right" if col in ("ns", "levels") else "left")
    for build, s in rows:
        for p in s.get("critical_paths", []):
            t.add_row(build, f"{p['from']} -> {p['to']}", f"{p['delay_ns']:.2f}",
                      f"{p['logic_ns']:.2f} / {p['routing_ns']:.2f}", str(p["levels"]),
                      p["start"] or "", p["end"] or "")
    return t


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tick2trade.bench.hardware", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path("build/bitstream"))
    parser.add_argument("--build", metavar="BOARD", help="run the build for BOARD first")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.build:
        from tick2trade.gateware.platforms.build import build

        build(args.build, out=args.root / args.build)
    rows = summaries(args.root)
    if args.json:
        print(json.dumps(dict(rows), indent=2))
    elif not rows:
        print(f"no summary.json under {args.root}: run `make bitstream BOARD=ecpix5`")
    else:
        Console().print(table(rows))
        Console().print(paths(rows))


if __name__ == "__main__":
    main()
