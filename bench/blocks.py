"""Fmax of each gateware block alone: out-of-context synthesis, placement and routing on
the ECPIX-5's ECP5-85 (``python -m tick2trade.bench.blocks [BLOCK ...] [--width 8]``; figures in
docs/hardware.md).

A whole board build takes an hour of a core and names one critical path; this takes a
minute or a few per block and says which blocks cannot make the clock on their own, and
through which cells. Each block is turned into Verilog with all its members as ports
(``gateware.export``), synthesized with ``synth_ecp5`` and placed and routed by
nextpnr-ecp5 with ``--out-of-context`` (no IO buffers; inputs and outputs are free
ports, so a path through a port is the block's share of a path only). The parameters
are the reduced board core's (``gateware.profiles.SMALL_BOARD``). Each run leaves
``build/ooc/<block>-w<W>/summary.json`` in the board builds' format, and the tables are
``bench.hardware``'s. Figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import time
from pathlib import Path

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from rich.console import Console

from tick2trade.bench.hardware import paths, summaries, table
from tick2trade.gateware.platforms.build import PLACER, missing_tools, tool_env
from tick2trade.gateware.platforms.report import summarize
from tick2trade.gateware.profiles import SMALL_BOARD, BuildProfile

SLOW = ("core",)  # run only when named
DEVICE = ("--um5g-85k", "--package", "CABGA554", "--speed", "8")
SEED = 1


class _MacSide(wiring.Component):
    """A board's MAC side of one direction as the board top wires it: ``MacRx`` then
    ``Widen`` (``rx``) or ``Narrow`` then ``MacTx`` (``tx``), at 125 MHz whatever the
    core's width; the gearbox only when the core is wider than a byte."""

    def __init__(self, direction: str, width: int):
        from tick2trade.gateware.phy.gearbox import Narrow, Widen
        from tick2trade.gateware.phy.mac import MacRx, MacTx
        from tick2trade.gateware.interfaces import gmii_signature

        self.direction = direction
        if direction == "rx":
            self.mac, self.gear = MacRx(), Widen(width, abort=1) if width > 8 else None
        else:
            self.mac, self.gear = MacTx(), Narrow(width) if width > 8 else None
        # the core's end of this side: the gearbox's beats, or the MAC's own bytes
        self.inner = self.gear.beats if self.gear else self.mac.frames
        if direction == "rx":
            members = {"gmii": In(gmii_signature()), "beats": Out(self.inner.signature)}
        else:
            members = {"beats": In(self.inner.signature.flip()), "gmii": Out(gmii_signature())}
        members["counters"] = Out(self.mac.counters.shape())
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mac = self.mac
        m.d.comb += self.counters.eq(self.mac.counters)
        if self.gear is not None:
            m.submodules.gear = self.gear
        if self.direction == "rx":
            wiring.connect(m, wiring.flipped(self.gmii), self.mac.gmii)
            if self.gear is not None:
                m.d.comb += [self.gear.bytes_in.valid.eq(self.mac.frames.valid),
                             self.gear.bytes_in.payload.eq(self.mac.frames.payload)]
            m.d.comb += [self.beats.valid.eq(self.inner.valid),
                         self.beats.payload.eq(self.inner.payload)]
        else:
            wiring.connect(m, self.mac.gmii, wiring.flipped(self.gmii))
            if self.gear is not None:
                wiring.connect(m, self.gear.bytes_out, self.mac.frames)
            wiring.connect(m, wiring.flipped(self.beats), self.inner)
        return m


def _blocks(width: int, profile: BuildProfile) -> dict:
    from tick2trade.gateware.book import Book
    from tick2trade.gateware.control.control import ControlEndpoint
    from tick2trade.gateware.control.events import BookTap, TradeTap
    from tick2trade.gateware.trade.ouch_rx import OuchRx
    from tick2trade.gateware.trade.ouch_tx import OuchTx
    from tick2trade.gateware.trade.risk import Risk
    from tick2trade.gateware.rx.rx_path import RxPath
    from tick2trade.gateware.trade.strategy import Strategy
    from tick2trade.gateware.trade.telemetry import Telemetry
    from tick2trade.gateware.top import Top

    s = profile.symbols
    return {
        "rx_path": lambda: RxPath(width, symbols=s, locates=profile.locates),
        "book": lambda: Book(**profile.book_kwargs()),
        "strategy": lambda: Strategy(s, n=profile.book.n),
        "risk": lambda: Risk(s),
        "ouch_tx": lambda: OuchTx(width, s),
        "ouch_rx": lambda: OuchRx(width, s),
        "telemetry": lambda: Telemetry(s),
        "control": lambda: ControlEndpoint(width, frame_verdict=True),
        "book_tap": lambda: BookTap(s, profile.book.n),
        "trade_tap": lambda: TradeTap(s),
        "mac_rx": lambda: _MacSide("rx", width),
        "mac_tx": lambda: _MacSide("tx", width),
        # every block above, wired as the board wires them (not in the default list:
        # place and route takes most of an hour)
        "core": lambda: Top(width, **profile.top_kwargs()),
    }


def build(name: str, width: int, mhz: float, root: Path, over: dict | None = None,
          pack_only: bool = False) -> dict:
    """Synthesize ``name`` and place and route it (or only pack it: resources without
    timing, in seconds instead of minutes); return and leave its summary."""
    from tick2trade.gateware.export import to_verilog

    env = tool_env()
    profile = SMALL_BOARD.override(over)
    tag = "" if not over else "-" + hashlib.sha1(
        json.dumps(over, sort_keys=True).encode()).hexdigest()[:8]
    out = root / f"{name}-w{width}{tag}{'-pack' if pack_only else ''}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "block.v").write_text(to_verilog(_blocks(width, profile)[name](), "block"))
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
    stage = ["--pack-only"] if pack_only else ["--timing-allow-fail", "--freq", str(mhz)]
    if name in SLOW and not pack_only:
        # router1 needs hours for the whole core's arcs, and router2 could not route the
        # heap placer's placement of it (as in the board build): the board build's
        # placer and router2; the blocks' figures stay the heap placer's and router1's
        stage += ["--placer", PLACER, "--router", "router2"]
    subprocess.run([env["NEXTPNR_ECP5"], "--quiet", "--seed", str(SEED), *stage,
                    "--out-of-context", *DEVICE,
                    "--json", "block.json", "--log", "pnr.log", "--report", "report.json"],
                   cwd=out, env=env, check=True)
    shown = {"width": width, **({"abc9": False} if flags else {}),
             **({"placer": PLACER} if name in SLOW and not pack_only else {}),
             **({"top": over} if over else {}), **({"pack_only": True} if pack_only else {})}
    summary = summarize(json.loads((out / "report.json").read_text()), block=name,
                        device="LFE5UM5G-85F", seed=SEED, params=shown,
                        synth_s=round(synth), pnr_s=round(time.monotonic() - start - synth))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tick2trade.bench.blocks", description=__doc__)
    parser.add_argument("blocks", nargs="*",
                        help="default: every block but the whole core (name it: core)")
    parser.add_argument("--width", type=int, default=8, choices=(8, 64))
    parser.add_argument("--mhz", type=float, default=125.0, help="the clock to meet")
    parser.add_argument("--root", type=Path, default=Path("build/ooc"))
    parser.add_argument("--report-only", action="store_true",
                        help="print what earlier runs left under --root")
    parser.add_argument("--top", type=json.loads, default=None, metavar="JSON",
                        help="overrides of SMALL_BOARD's parameters, e.g. '{\"symbols\": 64, "
                             "\"book\": {\"capacity\": 16384}}'")
    parser.add_argument("--pack-only", action="store_true",
                        help="resources only (synthesis and packing, no placement)")
    args = parser.parse_args()
    try:
        SMALL_BOARD.override(args.top)
    except ValueError as e:
        parser.error(str(e))
    names = list(_blocks(args.width, SMALL_BOARD))
    unknown = [b for b in args.blocks if b not in names]
    if unknown:
        parser.error(f"no block {', '.join(unknown)}; blocks: {', '.join(names)}")
    if not args.report_only:
        missing = missing_tools(tool_env())
        if missing:
            parser.error(f"missing {', '.join(missing)}: run `make setup`")
        for name in args.blocks or [n for n in names if n not in SLOW]:
            try:
                s = build(name, args.width, args.mhz, args.root, args.top, args.pack_only)
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                print(f"{name} (W={args.width}): {exc}", flush=True)
                continue
            figures = [f"{c['fmax_mhz']:.1f} MHz" for c in s["clocks"].values()] or [
                f"{r['used']:,} of {r['available']:,} {kind}"
                for kind, r in s["resources"].items() if kind in ("LUT4", "DP16KD")]
            print(f"{name} (W={args.width}): {', '.join(figures)}, synth {s['synth_s']} s, "
                  f"{'packing' if args.pack_only else 'place and route'} {s['pnr_s']} s",
                  flush=True)
    rows = summaries(args.root)
    if not rows:
        print(f"no summary.json under {args.root}")
        return
    Console().print(table(rows, "Blocks out of context (nextpnr-ecp5 report)", "parameters"))
    Console().print(paths(rows))


if __name__ == "__main__":
    main()
