"""cocotb testbench: the Verilator build of RxPath against RxPathModel.

Parameters come from the environment (set by tests/gateware/rx/test_rx_path_cocotb.py):
T2T_WIDTH, T2T_SYMBOLS, T2T_LOCATES, T2T_MESSAGES, T2T_SEED.
"""

import os
import random

import cocotb
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from tick2trade.gateware.rx.eth_rx import FEED_FILTER
from tick2trade.protocol import itch
from tick2trade.gateware.models.stream import frame_beats
from tick2trade.gateware.models.rx.eth_rx import MAX_FEEDS, RxConfig
from tick2trade.gateware.models.rx.moldudp import Gap
from tick2trade.gateware.models.rx.rx_path import RxPathModel
from tick2trade.gateware.rx.rx_path import counters_layout
from tick2trade.gateware.interfaces import GAP_LAYOUT, event_layout, locate_write_layout, watch_layout
from tick2trade.gateware.stream import beat_layout
from tick2trade.sim.venue.config import SYMBOLS
from tick2trade.testing.traffic import FeedScenario

WIDTH = int(os.environ.get("T2T_WIDTH", "64"))
SYMS = int(os.environ.get("T2T_SYMBOLS", "8"))
LOCATES = int(os.environ.get("T2T_LOCATES", "64"))
MESSAGES = int(os.environ.get("T2T_MESSAGES", "10000"))
SEED = int(os.environ.get("T2T_SEED", "1"))


def bits(layout, value) -> int:
    return layout.const(value).as_value().value


def unpack(layout, value) -> dict:
    c = layout.from_bits(int(value))

    def conv(v):
        if isinstance(v, data.Const) and isinstance(v.shape(), data.StructLayout):
            return {k: conv(getattr(v, k)) for k, _ in v.shape()}
        return int(v)
    return conv(c)


async def configure(dut, cfg: RxConfig):
    feeds = [{"enable": 1, "line": f.line, "group": f.group, "port": f.port}
             for f in cfg.feeds] + [{}] * (MAX_FEEDS - len(cfg.feeds))
    dut.feeds.value = bits(data.ArrayLayout(FEED_FILTER, MAX_FEEDS), feeds)
    dut.feed_src.value = bits(data.ArrayLayout(32, 2), list(cfg.feed_src))
    dut.seq_window.value = cfg.seq_window
    dut.udp_verify.value = int(cfg.udp_verify)
    dut.hold_packets.value = cfg.hold_packets
    dut.hold_cycles.value = cfg.hold_cycles
    dut.ctl_ip.value = cfg.ctl_ip
    dut.ctl_port.value = cfg.ctl_port
    watch = [{"enable": 1, "stock": itch.stock_int(s)} for s in cfg.watch]
    dut.watch.value = bits(watch_layout(SYMS), watch + [{}] * (SYMS - len(watch)))
    dut.loc_wr.value = 0
    dut.reset_session.value = 0
    wr = locate_write_layout(SYMS)
    for locate, sym in cfg.locate_map.items():
        dut.loc_wr.value = bits(wr, {"stb": 1, "locate": locate, "sym": sym, "traded": 1})
        await RisingEdge(dut.clk)
    dut.loc_wr.value = 0


@cocotb.test()
async def rx_path_matches_model(dut):
    rng = random.Random(SEED)
    cfg = RxConfig.default(watch=SYMBOLS[:5])
    cfg.locate_map = {1: 6, 2: 7}  # host-written entries beside the directory-learned ones
    frames_ = FeedScenario(rng, cfg, messages=MESSAGES, locates=LOCATES, junk=0.05,
                           ctl=0.02).frames()
    model = RxPathModel(cfg, locates=LOCATES)
    for fr in frames_:
        model.process(fr)

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.mac__valid.value = 0
    dut.events__ready.value = 1
    dut.gaps__ready.value = 1
    await configure(dut, cfg)
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await configure(dut, cfg)

    lanes = WIDTH // 8
    beat_l = beat_layout(WIDTH)
    ev_l = event_layout(SYMS)
    events, gaps, ctl_beats = [], [], []
    ctl_l = beat_layout(WIDTH, src_mac=48, src_ip=32, src_port=16)
    stall = rng.random() * 0.3

    def sample():
        if dut.events__valid.value and dut.events__ready.value:
            events.append(unpack(ev_l, dut.events__payload.value))
        if dut.gaps__valid.value and dut.gaps__ready.value:
            gaps.append(unpack(GAP_LAYOUT, dut.gaps__payload.value))
        if dut.ctl__valid.value:
            ctl_beats.append(unpack(ctl_l, dut.ctl__payload.value))

    stream = [bits(beat_l, {"data": b.data, "be": b.be, "first": b.first, "last": b.last})
              for fr in frames_ for b in frame_beats(fr, lanes)]
    for word in stream:
        while rng.random() < 0.05:
            dut.mac__valid.value = 0
            await ReadOnly()
            sample()
            await RisingEdge(dut.clk)
            dut.events__ready.value = int(rng.random() >= stall)
        dut.mac__payload.value = word
        dut.mac__valid.value = 1
        await ReadOnly()
        sample()
        await RisingEdge(dut.clk)
        dut.events__ready.value = int(rng.random() >= stall)
    dut.mac__valid.value = 0
    dut.events__ready.value = 1
    for _ in range(400):
        await ReadOnly()
        sample()
        await RisingEdge(dut.clk)
    await ReadOnly()
    counters = unpack(counters_layout(SYMS), dut.counters.value)

    want = model.counters()
    for stage, values in want.items():
        assert counters[stage] == values, f"{stage} counters differ (seed {SEED})"
    assert counters["fifo"]["event_overflow"] == 0
    got_events = [itch.Event(**{**e, "type": chr(e["type"])}) for e in events]
    assert len(got_events) == len(model.events), f"seed {SEED}"
    for i, (g, w) in enumerate(zip(got_events, model.events)):
        assert g == w, f"event {i} differs (seed {SEED}): {g} != {w}"
    got_gaps = [Gap(g["line"], g["session"].to_bytes(10, "big"), g["first"], g["count"])
                for g in gaps]
    assert got_gaps == model.gaps, f"seed {SEED}"
    ctl, cur = [], b""
    for b in ctl_beats:
        raw = b["data"].to_bytes(lanes, "little")
        cur = (b"" if b["first"] else cur) + bytes(raw[i] for i in range(lanes)
                                                   if b["be"] >> i & 1)
        if b["last"]:
            ctl.append((b["src_ip"], b["src_port"], cur))
    assert ctl == [(d.src_ip, d.src_port, d.payload) for d in model.ctl], f"seed {SEED}"
    assert len(model.events) > MESSAGES // 10 and model.mold.counters["gaps"] > 0
    dut._log.info("%d frames, %d events, %d gaps, %d control datagrams: all equal the model",
                  len(frames_), len(events), len(gaps), len(ctl))
