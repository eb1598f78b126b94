"""The FPGA's book stream in the whole top level in Verilator: how long a book update
takes from the feed to the wire toward the host, and how many a burst keeps
(``python -m tick2trade.bench --section stream``; how it is measured: bench/README.md).

Latency: ITCH Add Orders, each alone in its MoldUDP64 packet on line A and each one a
new best level of AAA (so each gives one book update, a level insert at index 0),
frames spaced so each record is out before the next frame. The model is stepped a
cycle at a time from the feed frame's last beat: the figures are the cycles from that
beat to the first and to the last beat of the event frame that carries the record.

Burst: frames back to back with nothing between them, each Add a new level, so the
book makes one update per message as fast as the feed brings them; the tap's 16-entry
FIFO drains one record per event frame. Every update is counted by the tap (``seq``);
the host receives some, the rest are the tap's ``overflow``. The figure is records
kept per update made, and the event channel's record rate in cycles.
"""

from __future__ import annotations

import statistics

from tick2trade.gateware.models.rx.eth_rx import RxConfig, feed_frame
from tick2trade.host.config import parse
from tick2trade.protocol import control, frames, itch, moldudp64
from tick2trade.sim.control_frames import event_records
from tick2trade.sim.local_device import LocalDevice
from tick2trade.sim.topsim import TopSim

SESSION = "BENCHSTRM1"
LOCATE = 7
HOST_IP, HOST_PORT = "10.0.0.1", 40002
CONFIG = """
[symbols]
watch = ["AAA"]
"""


def _book_records(out: list[bytes]) -> list[control.BookEvent]:
    return event_records(out, control.BookEvent)


class _Feed:
    def __init__(self, rx: RxConfig):
        self.rx, self.seq, self.ref = rx, 1, 0

    def frame(self, msg: bytes) -> bytes:
        f = feed_frame(self.rx, 0, moldudp64.encode_packet(SESSION, self.seq, [msg]))
        self.seq += 1
        return f

    def add(self, side: str, price: int) -> bytes:
        # sparse references, as a venue's day-wide sequence gives a watched symbol
        self.ref += 7_919
        return self.frame(itch.encode("A", locate=LOCATE, order_ref=self.ref, side=side,
                                      shares=100, stock="AAA", price=price))


def _open(sim: TopSim) -> tuple[LocalDevice, _Feed]:
    """The watch list (AAA) pushed as ``t2t config push`` does, the event channel and
    the book stream on, and AAA's directory message in."""
    dev = LocalDevice(sim)
    parse(CONFIG, symbols=64).push(dev)
    dev.write_many({"ctl.event_enable": 1, "ctl.event_ip": frames.ip_to_int(HOST_IP),
                    "ctl.event_port": HOST_PORT, "ctl.event_mac": 0x02_00_00_00_00_10,
                    "book_stream.enable": 1})
    feed = _Feed(RxConfig.default())
    sim.run([feed.frame(itch.encode("R", locate=LOCATE, stock="AAA",
                                    market_category="Q"))], quiet=64)
    return dev, feed


def latency(sim: TopSim, records: int = 200, limit: int = 1_000) -> dict:
    """Cycles from the feed frame's last beat to the event frame's first and last beat,
    per record (each frame waits for the one before to be out)."""
    dev, feed = _open(sim)
    first, last, got = [], [], 0
    for k in range(records):
        frame = feed.add("B", 1_000_000 + 100 * k)  # a new best bid each time
        sim.push([frame])  # returns in the cycle of the frame's last beat: count from there
        t_first, t_last, out = sim.until_frame(limit)
        recs = _book_records(out)
        if t_last is None or len(recs) != 1:
            continue
        got += 1
        first.append(t_first)
        last.append(t_last)
    return {"records": got, "of": records,
            "first_beat": (min(first), statistics.median(first), max(first)),
            "last_beat": (min(last), statistics.median(last), max(last)),
            "overflow": dev.read("book_stream.counters.overflow")}


def burst(sim: TopSim, updates: int = 2_000) -> dict:
    """Back-to-back new levels: records kept and the event channel's rate."""
    dev, feed = _open(sim)
    seq0 = dev.read("book_stream.seq")
    lost0 = dev.read("book_stream.counters.overflow")
    # each Add a new best price of its side (bids up, asks down, never crossing), so
    # each is an update of the top levels, an insert at index 0
    frames_in = [feed.add("S" if k % 2 else "B", 3_000_000 - 100 * k if k % 2
                          else 1_000_000 + 100 * k) for k in range(updates)]
    c0 = sim.cycles
    out = sim.run(frames_in, idle=0, quiet=2_000)
    recs = _book_records(out)
    made = (dev.read("book_stream.seq") - seq0) & 0xFFFF_FFFF
    lost = dev.read("book_stream.counters.overflow") - lost0
    feed_cycles = sum(-(-len(f) // sim.lanes) for f in frames_in)
    return {"updates": made, "received": len(recs), "overflow": lost,
            "feed_cycles": feed_cycles, "cycles": sim.cycles - c0,
            "cycles_per_record": (sim.cycles - c0) / max(1, len(recs))}


def measure(width: int) -> dict:
    with TopSim(width) as sim:
        lat = latency(sim)
    with TopSim(width) as sim:
        b = burst(sim)
    return {"width": width, **lat, "burst": b}
