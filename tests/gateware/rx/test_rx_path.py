"""The whole receive path in Amaranth's simulator against RxPathModel (a small sample;
the large runs go through Verilator in test_rx_path_verilator.py)."""

import dataclasses

import pytest

from tick2trade.protocol import itch
from tick2trade.gateware.models.rx.eth_rx import RxConfig
from tick2trade.gateware.models.rx.rx_path import RxPathModel
from tick2trade.gateware.rx.rx_path import RxPath
from tick2trade.sim.venue.config import SYMBOLS
from tick2trade.gateware.models.rx.eth_rx import feed_frame
from tick2trade.protocol import moldudp64
from tick2trade.testing.traffic import FeedScenario, late_packets, random_message

from tick2trade.testing.simtools import SEED, const_to_dict, rng_for, run
from tick2trade.testing.stream import StreamSink, StreamSource, random_pauses

LOCATES = 64
# MAC beat holding a message's last byte -> event at the RxPath output, in cycles:
# eth_rx 1 + moldudp 1 + itch 1 + event FIFO 2; with ``udp_verify`` the packet's last
# message waits one more cycle, for its packet's checksum verdict
RX_LATENCY = 5


def make_config() -> RxConfig:
    cfg = RxConfig.default(watch=SYMBOLS[:5])
    cfg.locate_map = {1: 6, 2: 7}  # host-written entries beside the directory-learned ones
    return cfg


def configure(ctx, dut, cfg):
    for i, f in enumerate(cfg.feeds):
        ctx.set(dut.feeds[i], {"enable": 1, "line": f.line, "group": f.group, "port": f.port})
    ctx.set(dut.ctl_ip, cfg.ctl_ip)
    ctx.set(dut.ctl_port, cfg.ctl_port)
    ctx.set(dut.udp_verify, int(cfg.udp_verify))
    ctx.set(dut.hold_packets, cfg.hold_packets)
    ctx.set(dut.hold_cycles, cfg.hold_cycles)
    for i, name in enumerate(cfg.watch):
        ctx.set(dut.watch[i], {"enable": 1, "stock": itch.stock_int(name)})


async def write_locates(ctx, dut, cfg):
    for locate, sym in cfg.locate_map.items():
        ctx.set(dut.loc_wr, {"stb": 1, "locate": locate, "sym": sym, "traded": 1})
        await ctx.tick()
    ctx.set(dut.loc_wr, {"stb": 0})
    await ctx.tick()


def event_of(payload) -> itch.Event:
    d = const_to_dict(payload)
    return itch.Event(**{**d, "type": chr(d["type"])})


def run_path(width, frames_, cfg, *, stall=0.0, event_depth=64, name="rx"):
    rng = rng_for(name)
    dut = RxPath(width, symbols=8, locates=LOCATES, event_depth=event_depth)
    counters = {}
    mac = StreamSource(dut.mac, gap=(0, 2), rng=rng)
    events = StreamSink(dut.events, random_pauses(rng, stall), name="events")
    gaps = StreamSink(dut.gaps, name="gaps")

    async def tb(ctx):
        configure(ctx, dut, cfg)
        await write_locates(ctx, dut, cfg)
        await mac.send_frames(ctx, frames_, width // 8)
        quiet = 0  # until the consumer, however slow, has emptied the FIFOs
        while quiet < 100:
            await ctx.tick()
            quiet = 0 if ctx.get(dut.events.valid) or ctx.get(dut.gaps.valid) else quiet + 1
        counters.update(const_to_dict(ctx.get(dut.counters)))

    run(dut, tb, processes=[events.process, gaps.process])
    return [event_of(e) for e in events.items], gaps.items, counters


def assert_same(events, gaps, counters, model):
    """The RTL's events, gap count and stage counters are the model's."""
    msg = f"seed {SEED}"
    assert events == model.events, msg
    assert len(gaps) == len(model.gaps), msg
    want = model.counters()
    for stage in want:
        assert counters[stage] == want[stage], f"{stage}: {msg}"


def model_of(frames_, cfg):
    model = RxPathModel(cfg, locates=LOCATES)
    for fr in frames_:
        model.process(fr)
    return model


@pytest.mark.parametrize("width,messages", [(64, 400), (8, 80)])
def test_path_matches_model(width, messages):
    cfg = make_config()
    rng = rng_for(f"path{width}")
    while True:  # a scenario with events to compare (one seed's 80 were all filtered out)
        frames_ = FeedScenario(rng, cfg, messages=messages, locates=LOCATES,
                               junk=0.1).frames()
        model = model_of(frames_, cfg)
        if model.itch.counters["events"] > 0:
            break
    events, gaps, counters = run_path(width, frames_, cfg, stall=0.2, name=f"path{width}")
    assert_same(events, gaps, counters, model)
    assert counters["fifo"] == {"event_overflow": 0, "gap_overflow": 0, "hold_overflow": 0,
                                "held_skipped": model.held_skipped}


def checksum_fails(frames_, cfg):
    """The frames whose UDP checksum ``eth_rx`` fails (by its model)."""
    eth = RxPathModel(cfg, locates=LOCATES).eth
    return [fr for fr in frames_ if (got := eth.process(fr)) and got[0] == "feed"
            and not got[3]]


@pytest.mark.parametrize("width,messages", [(64, 400), (8, 100)])
def test_a_packet_failing_its_udp_checksum_leaves_no_trace(width, messages):
    """A fifth of the copies have a bit flipped in their UDP payload (a checksum, a good
    FCS), on both lines, besides loss, reordering and junk: the RTL equals the model
    event for event and counter for counter, and the events and gaps are exactly those
    of the same feed with the failed copies never sent — so the sequence state they
    moved was put back and the other line's copy was taken."""
    cfg = make_config()
    rng = rng_for(f"corrupt{width}")
    # short packets, so that most carry no stock directory message (those are never
    # corrupted: see FeedScenario)
    frames_ = FeedScenario(rng, cfg, messages=messages, locates=LOCATES, junk=0.05,
                           max_per_packet=6, corrupt=0.25).frames()
    bad = checksum_fails(frames_, cfg)
    assert len(bad) >= 3, "the scenario must corrupt packets"
    model = model_of(frames_, cfg)
    clean = model_of([fr for fr in frames_ if fr not in bad], cfg)
    assert model.events == clean.events and model.gaps == clean.gaps
    events, gaps, counters = run_path(width, frames_, cfg, stall=0.2, name=f"corrupt{width}")
    assert_same(events, gaps, counters, model)
    assert counters["eth_rx"]["bad_udp_checksum"] == len(bad)


def test_without_udp_verify_a_failed_packet_is_counted_and_passed_on():
    cfg = make_config()
    cfg.udp_verify = False
    # short packets: most carry no stock directory message, so enough are corrupted
    frames_ = FeedScenario(rng_for("cut"), cfg, messages=300, locates=LOCATES,
                           max_per_packet=6, corrupt=0.3).frames()
    model = model_of(frames_, cfg)
    verified = model_of(frames_, dataclasses.replace(cfg, udp_verify=True))
    assert model.events != verified.events  # the corrupted copies became events
    events, gaps, counters = run_path(64, frames_, cfg, stall=0.2, name="cut")
    assert events == model.events, f"seed {SEED}"
    assert len(gaps) == len(model.gaps)
    assert counters["moldudp"] == model.counters()["moldudp"]


def reordered_line(rng, cfg, packets, **kw):
    return late_packets(rng, cfg, packets, locates=LOCATES, **kw)


@pytest.mark.parametrize("width", [64, 8])
def test_packets_reordered_on_one_line_lose_nothing(width):
    """Line B down, line A delivers packets up to 3 places late: with the hold
    (4 packets) every message is delivered in sequence order and no gap is reported;
    without it the same feed loses messages to gaps. RTL equals the model."""
    cfg = make_config()
    cfg.locate_map = {locate: locate % 8 for locate in range(LOCATES)}  # all traded
    rng = rng_for(f"reorder{width}")
    frames_, _, _ = reordered_line(rng, cfg, 60 if width == 64 else 25, swaps=3)
    model = model_of(frames_, cfg)
    seqs = [e.seq for e in model.events]
    assert seqs == sorted(seqs) and seqs == list(range(1, len(seqs) + 1))
    assert model.gaps == [] and model.mold.counters["held"] > 0
    without = model_of(frames_, dataclasses.replace(cfg, hold_packets=0))
    assert without.mold.counters["gap_messages"] > 0
    assert len(without.events) < len(model.events)
    events, gaps, counters = run_path(width, frames_, cfg, stall=0.2, name=f"reorder{width}")
    msg = f"seed {SEED}"
    assert events == model.events, msg
    assert gaps == [] and counters["moldudp"] == model.counters()["moldudp"], msg


@pytest.mark.parametrize("width", [64, 8])
def test_held_packets_with_real_loss_report_exactly_the_lost_messages(width):
    """Late packets, packets lost for good (on the only line) and copies failing their
    checksum before a good one: runs held behind a real hole are forced out — by a
    packet that does not continue them or by the hold's packet limit. Nothing is lost
    silently: every message is delivered once, in order, or reported in a gap, and
    every lost one is reported (a late packet caught behind a second hole while its
    run waits is reported too: the hold keeps one hole at a time). RTL equals the
    model."""
    cfg = make_config()
    cfg.locate_map = {locate: locate % 8 for locate in range(LOCATES)}
    rng = rng_for(f"holdloss{width}")
    n = 70 if width == 64 else 30
    frames_, gone, total = reordered_line(rng, cfg, n, swaps=2,
                                          lost={3, 4, n // 2, n - 10}, corrupt=0.15)
    assert checksum_fails(frames_, cfg)
    model = model_of(frames_, cfg)
    reported = set()
    for g in model.gaps:
        reported |= set(range(g.first, g.first + g.count))
    delivered = [e.seq for e in model.events]
    assert delivered == sorted(set(delivered))
    assert reported.isdisjoint(delivered)
    assert reported | set(delivered) == set(range(1, total + 1))
    assert gone <= reported
    assert model.mold.counters["hold_forced"] > 0
    assert {e.seq for e in model.events}.isdisjoint(gone)
    events, gaps, counters = run_path(width, frames_, cfg, stall=0.2, name=f"holdloss{width}")
    msg = f"seed {SEED}"
    assert events == model.events, msg
    got = [const_to_dict(g) for g in gaps]
    assert [(g["line"], g["first"], g["count"]) for g in got] == \
        [(g.line, g.first, g.count) for g in model.gaps], msg
    assert counters["moldudp"] == model.counters()["moldudp"], msg


@pytest.mark.parametrize("width", [64, 8])
def test_a_held_run_times_out(width):
    """A packet lost for good and nothing after the run that overtook it: once
    ``hold_cycles`` have passed with no packet in progress, the run is let go and the
    hole reported (the model's ``expire``)."""
    cfg = dataclasses.replace(make_config(), hold_cycles=40)
    cfg.locate_map = {locate: locate % 8 for locate in range(LOCATES)}
    rng = rng_for(f"expire{width}")
    msgs = [[random_message(rng, "A", LOCATES) for _ in range(3)] for _ in range(4)]
    seqs = [1, 4, 7, 10]
    frames_ = [feed_frame(cfg, 0, moldudp64.encode_packet("SESS000001", q, ms))
               for k, (q, ms) in enumerate(zip(seqs, msgs)) if k != 1]
    model = model_of(frames_, cfg)
    assert model.mold.run is not None and not model.gaps
    model.expire()
    assert [(g.first, g.count) for g in model.gaps] == [(4, 3)]
    assert [e.seq for e in model.events] == [1, 2, 3, 7, 8, 9, 10, 11, 12]
    events, gaps, counters = run_path(width, frames_, cfg, name=f"expire{width}")
    assert events == model.events
    assert [(const_to_dict(g)["first"], const_to_dict(g)["count"]) for g in gaps] == [(4, 3)]
    assert counters["moldudp"]["hold_forced"] == 1


def test_event_fifo_overflow_drops_new_events_and_counts_them():
    cfg = make_config()
    cfg.locate_map = {locate: locate % 8 for locate in range(LOCATES)}  # all traded
    frames_ = FeedScenario(rng_for("ovf"), cfg, messages=300, locates=LOCATES, junk=0,
                           broken=0, loss_a=0, loss_b=0, loss_both=0, reorder=0).frames()
    events, _, counters = run_path(64, frames_, cfg, stall=0.97, event_depth=4, name="ovf")
    model = model_of(frames_, cfg)
    dropped = counters["fifo"]["event_overflow"]
    assert dropped > 0
    assert len(events) + dropped == len(model.events)
    # what arrives is in order and unaltered: a subsequence of the model's events
    it = iter(model.events)
    assert all(any(e == m for m in it) for e in events), f"seed {SEED}"


@pytest.mark.parametrize("width,verify", [(64, 1), (8, 1), (64, 0), (8, 0)])
def test_event_latency_is_fixed_in_cycles(width, verify):
    """From the MAC beat carrying a message's last byte to the event at the RxPath output
    (through the event FIFO), whatever the lane the message ends in."""
    from tick2trade.protocol import frames, moldudp64

    cfg = make_config()
    lanes = width // 8
    dut = RxPath(width, symbols=8, locates=LOCATES)
    rng = rng_for(f"lat{width}")
    msgs = [itch.encode("A", locate=0, order_ref=i, side="B", shares=100, stock="AAPL",
                        price=1_000_000) for i in range(8)]
    # the MAC pauses inside frames too: the latency counts from the beat, not the frame
    mac = StreamSource(dut.mac, random_pauses(rng, 0.2))
    events = StreamSink(dut.events, name="events")
    last_beats = []  # the index, among all beats sent, of each message's last byte's

    async def tb(ctx):
        configure(ctx, dut, cfg)
        ctx.set(dut.udp_verify, verify)
        for i, m in enumerate(msgs):
            f = cfg.feeds[0]
            vlan = 7 if i % 2 else None  # shifts the message by 4 lanes
            fr = frames.build_udp_frame(f.group, f.port,
                                        moldudp64.encode_packet("S1", 1 + i, [m]), vlan=vlan)
            last_byte = (18 if vlan is not None else 14) + 20 + 8 + 20 + 2 + len(m) - 1
            last_beats.append(len(mac.sent) + last_byte // lanes)
            await mac.send_frames(ctx, [fr], lanes)
            await mac.idle(ctx, rng.randint(10, 20))

    run(dut, tb, processes=[events.process])
    sent, seen = [mac.sent[k] for k in last_beats], events.taken
    latencies = {s - t for s, t in zip(seen, sent)}
    assert len(seen) == len(msgs) and latencies == {RX_LATENCY + verify}, (sent, seen)
