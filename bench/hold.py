"""Late packets on one line: what the MoldUDP64 hold saves (``python -m tick2trade.bench.hold``;
figures in bench/README.md, "Reliability").

How: line B down, line A's packets (1–6 Add Orders each) with a late packet in 3 turns
of 10, arriving up to ``--late`` packets after its turn (``testing.traffic.late_packets``),
through the receive path's golden model (``RxPathModel``, which the RTL equals event for
event in tests/gateware/rx/test_rx_path.py) with the hold off (``hold_packets = 0``,
as before) and on (4, the default): messages delivered, reported lost, packets held.
"""

from __future__ import annotations

import argparse
import dataclasses
import random

from tick2trade.gateware.models.rx.eth_rx import RxConfig
from tick2trade.gateware.models.rx.rx_path import RxPathModel
from tick2trade.sim.venue.config import SYMBOLS
from tick2trade.testing.traffic import late_packets

LOCATES = 64


def run(packets: int, late: int, hold: int, seed: int) -> dict:
    cfg = RxConfig.default(watch=SYMBOLS[:5])
    cfg.locate_map = {loc: loc % 8 for loc in range(LOCATES)}  # every message traded
    cfg = dataclasses.replace(cfg, hold_packets=hold)
    frames, _, total = late_packets(random.Random(seed), cfg, packets, swaps=late,
                                    locates=LOCATES)
    model = RxPathModel(cfg, locates=LOCATES)
    for fr in frames:
        model.process(fr)
    c = model.mold.counters
    return {"late_by": late, "hold_packets": hold, "messages": total,
            "delivered": len(model.events), "lost": c["gap_messages"], "held": c["held"],
            "in_order": [e.seq for e in model.events] == sorted(e.seq for e in model.events)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=25)
    args = parser.parse_args()
    print("| late by up to | hold_packets | messages | delivered | reported lost | held | in order |")
    print("|---:|---:|---:|---:|---:|---:|:---:|")
    for late in (1, 3, 6):
        for hold in (0, 4):
            r = run(args.packets, late, hold, args.seed)
            print(f"| {r['late_by']} | {r['hold_packets']} | {r['messages']:,} | "
                  f"{r['delivered']:,} | {r['lost']:,} | {r['held']:,} | "
                  f"{'yes' if r['in_order'] else 'no'} |")


if __name__ == "__main__":
    main()
