"""Fmax of each gateware block alone: out-of-context synthesis, placement and routing on
the ECPIX-5's ECP5-85 (``python -m bench.blocks [BLOCK ...] [--width 8]``; figures in
docs/hardware.md).

A whole board build takes an hour of a core and names one critical path; this takes a
minute or a few per block and says which blocks cannot make the clock on their own, and
through which cells. Each block is turned into Verilog with all its members as ports
(``gateware.export``), synthesized with ``synth_ecp5`` and placed and routed by
nextpnr-ecp5 with ``--out-of-context`` (no IO buffers; inputs and outputs are free
ports, so a path through a port is the block's share of a path only). The parameters
are the reduced board core's (``gateware.platforms.boards.SMALL_TOP``). Each run leaves
``build/ooc/<block>-w<W>/summary.json`` in the board builds' format, and the tables are
``bench.hardware``'s. Figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from rich.console import Console

from bench.hardware import paths, summaries, table
from gateware.platforms.boards import SMALL_TOP
from gateware.platforms.build import missing_tools, tool_env
from gateware.platforms.report import summarize

DEVICE = ("--um5g-85k", "--package", "CABGA554", "--speed", "8")
SEED = 1


def _blocks(width: int) -> dict:
    from gateware.book import Book
    from gateware.control import ControlEndpoint
    from gateware.ouch_rx import OuchRx
    from gateware.ouch_tx import OuchTx
    from gateware.risk import Risk
    from gateware.rx_path import RxPath
    from gateware.strategy import Strategy
    from gateware.telemetry import Telemetry

    s, book = SMALL_TOP["symbols"], SMALL_TOP["book"]
    return {
        "rx_path": lambda: RxPath(width, symbols=s, locates=SMALL_TOP["locates"]),
        "book": lambda: Book(s, **book),
        "strategy": lambda: Strategy(s, n=book["n"]),
        "risk": lambda: Risk(s),
        "ouch_tx": lambda: OuchTx(width, s),
        "ouch_rx": lambda: OuchRx(width, s),
        "telemetry": lambda: Telemetry(s),
        "control": lambda: ControlEndpoint(width, frame_verdict=True),
    }


def build(name: str, width: int, mhz: float, root: Path) -> dict:
    from gateware.export import to_verilog

    env = tool_env()
    out = root / f"{name}-w{width}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "block.v").write_text(to_verilog(_blocks(width)[name](), "block"))
    start = time.monotonic()
    flags = ""
    for flags in ("", " -noabc9"):
        # Yosys 0.70 trips an internal assertion in its ABC9 passes on some blocks
        # (telemetry alone, not inside the Top); the older ABC flow is tried next
        script = f"read_verilog block.v; synth_ecp5{flags} -top block -json block.json"
        done = subprocess.run([env["YOSYS"], "-q", "-l", "synth.log", "-p", script],
                              cwd=out, env=env, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            break
    else:
        raise RuntimeError(f"{name}: synthesis failed, see {out / 'synth.log'}")
    synth = time.monotonic() - start
    # the YoWASP tools see only their working directory: relative names
    subprocess.run([env["NEXTPNR_ECP5"], "--quiet", "--seed", str(SEED),
                    "--timing-allow-fail", "--out-of-context", "--freq", str(mhz), *DEVICE,
                    "--json", "block.json", "--log", "pnr.log", "--report", "report.json"],
                   cwd=out, env=env, check=True)
    summary = summarize(json.loads((out / "report.json").read_text()), block=name,
                        device="LFE5UM5G-85F", seed=SEED,
                        params={"width": width, **({"abc9": False} if flags else {})},
                        synth_s=round(synth), pnr_s=round(time.monotonic() - start - synth))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.blocks", description=__doc__)
    parser.add_argument("blocks", nargs="*", help="default: every block")
    parser.add_argument("--width", type=int, default=8, choices=(8, 64))
    parser.add_argument("--mhz", type=float, default=125.0, help="the clock to meet")
    parser.add_argument("--root", type=Path, default=Path("build/ooc"))
    parser.add_argument("--report-only", action="store_true",
                        help="print what earlier runs left under --root")
    args = parser.parse_args()
    names = list(_blocks(args.width))
    unknown = [b for b in args.blocks if b not in names]
    if unknown:
        parser.error(f"no block {', '.join(unknown)}; blocks: {', '.join(names)}")
    if not args.report_only:
        missing = missing_tools(tool_env())
        if missing:
            parser.error(f"missing {', '.join(missing)}: run `make setup`")
        for name in args.blocks or names:
            try:
                s = build(name, args.width, args.mhz, args.root)
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                print(f"{name} (W={args.width}): {exc}", flush=True)
                continue
            clocks = ", ".join(f"{c['fmax_mhz']:.1f} MHz" for c in s["clocks"].values())
            print(f"{name} (W={args.width}): {clocks}, synth {s['synth_s']} s, "
                  f"place and route {s['pnr_s']} s", flush=True)
    rows = [(s.get("block", b), s) for b, s in summaries(args.root)]
    if not rows:
        print(f"no summary.json under {args.root}")
        return
    Console().print(table(rows, "Blocks out of context (nextpnr-ecp5 report)", "parameters"))
    Console().print(paths(rows))


if __name__ == "__main__":
    main()
