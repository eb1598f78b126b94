"""Tick-to-trade of the whole top level in Verilator, from the gateware's own counters
(``make bench`` → ``--section trade``; how it is measured: bench/README.md).

One take trigger (buy AAA at ≤ 101.00) and risk limits that let every order through;
a bid at 99.00 and an offer at 101.50 first, so the collar has a mid to refer to.
Each triggering ITCH Add Order (a sell at 100.00) travels alone in its MoldUDP64 packet,
so its price's last byte is frame byte 99: beat ``99 // lanes`` counted from the frame's
first beat (the floor no design can beat without guessing). The frames are spaced so
each order is out before the next frame arrives; the telemetry records the host drains
give, per order, ``t_in`` (frame's first beat), ``t_event`` (event at the strategy: for
a take on the fast path, the decoder's early event), ``t_decide`` (risk decided) and
``t_out`` (first order beat taken toward the MAC); the risk gate's decision records say
which path of the strategy decided (``models.trade.SOURCES``).
"""

from __future__ import annotations

import statistics
from collections import Counter

from tick2trade.protocol import itch, moldudp64
from tick2trade.gateware.models.rx.eth_rx import RxConfig
from tick2trade.gateware.models.trade.strategy import SOURCES
from tick2trade.host.config import parse
from tick2trade.sim.local_device import LocalDevice
from tick2trade.sim.topsim import TopSim
from tick2trade.gateware.models.rx.eth_rx import feed_frame

PRICE_LAST_BYTE = 99  # Ethernet 14 + IPv4 20 + UDP 8 + MoldUDP64 header 20 + length 2 + 36
CONFIG = """
[symbols]
watch = ["AAA"]

[venue]
ip = "10.0.0.2"
port = 40000
mac = "02:00:00:00:00:0a"

[[trigger]]
symbol = "AAA"
kind = "take"
side = "buy"
limit = "101.00"
quantity = 100
tif = "ioc"

[risk]
max_order_shares = 1000
max_order_notional = "250000.00"
collar_bps = 500
max_open_orders = 60000
position_limit = 100000000
"""


def tick_to_trade(width: int, orders: int = 200, idle: int = 60) -> dict:
    """Figures (m)–(o) at one data width: every cycle count comes from a record."""
    rx = RxConfig.default()
    with TopSim(width) as sim:
        dev = LocalDevice(sim)
        cfg = parse(CONFIG, symbols=64)
        cfg.push(dev)
        session = "BENCHTRADE"
        # the directory, then a market (bid 99.00, ask 101.50: no trigger) so the collar
        # has a reference mid
        opening = [itch.encode("R", locate=7, stock="AAA", market_category="Q"),
                   itch.encode("A", locate=7, order_ref=1, side="B", shares=100,
                               stock="AAA", price=990_000),
                   itch.encode("A", locate=7, order_ref=2, side="S", shares=100,
                               stock="AAA", price=1_015_000)]
        sim.run([feed_frame(rx, 0, moldudp64.encode_packet(session, 1 + i, [m]))
                 for i, m in enumerate(opening)], idle=idle, quiet=64)
        records, decisions = [], []
        seq, batch = 1 + len(opening), 40
        for start in range(0, orders, batch):
            frames = []
            for k in range(start, min(orders, start + batch)):
                add = itch.encode("A", locate=7, order_ref=1_000 + k, side="S", shares=100,
                                  stock="AAA", price=1_000_000)
                frames.append(feed_frame(rx, 0, moldudp64.encode_packet(session, seq, [add])))
                seq += 1
            sim.run(frames, idle=idle, quiet=64)
            records += dev.drain_fifo("telemetry.records")
            decisions += dev.drain_fifo("risk.decisions")
        rejected = sum(d["reason"] != 0 for d in decisions)
        paths = Counter(SOURCES[d["source"]] for d in decisions)
        hist_min, hist_max = dev.read("telemetry.ttt_min"), dev.read("telemetry.ttt_max")
    floor = PRICE_LAST_BYTE // (width // 8)
    mask = 0xFFFFFFFF
    ttt = [(r["t_out"] - r["t_in"]) & mask for r in records]
    field_to_decide = [((r["t_decide"] - r["t_in"]) & mask) - floor for r in records]
    event_to_decide = [(r["t_decide"] - r["t_event"]) & mask for r in records]
    decide_to_out = [(r["t_out"] - r["t_decide"]) & mask for r in records]
    field_to_event = [((r["t_event"] - r["t_in"]) & mask) - floor for r in records]
    return {"width": width, "orders": len(records), "sent_of": orders, "rejected": rejected,
            "decided_by": dict(sorted(paths.items())),
            "floor": floor, "ttt_min": min(ttt), "ttt_median": statistics.median(ttt),
            "ttt_max": max(ttt), "register_min": hist_min, "register_max": hist_max,
            "field_to_event": sorted(set(field_to_event)),
            "event_to_decide": sorted(set(event_to_decide)),
            "field_to_decide": sorted(set(field_to_decide)),
            "decide_to_out": sorted(set(decide_to_out))}
