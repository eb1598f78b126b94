"""The book's tap on the event channel (gateware/control/events.py) inside Top, in
Amaranth's simulator: random ITCH flows through the MAC side, the book records that
leave compared with the models' (receive path → book → ``BookTapModel``), with random
stalls on ``mac_tx`` and with floods that overflow the tap's FIFO; the strategy must
see every update whatever the tap does."""

import pytest

from tick2trade.gateware.models.book import BookModel
from tick2trade.gateware.models.control.events import BookTapModel
from tick2trade.gateware.models.rx.eth_rx import LINE_A, RxConfig, feed_frame
from tick2trade.gateware.models.rx.rx_path import RxPathModel
from tick2trade.gateware.top import Top
from tick2trade.protocol import control as proto
from tick2trade.protocol import frames, itch, moldudp64
from tick2trade.sim.control_frames import Endpoint, to_device
from tick2trade.testing.bookflow import random_flow
from tick2trade.testing.simtools import SEED, rng_for, run

from .test_control import DEVICE, Bench, payload_of

WATCH = ["AAA", "BBB", "CCC"]
LOCATE0 = 10
SESSION = "BOOKTAP001"
LISTENER = Endpoint(bytes.fromhex("0200000000ee"), frames.ip_to_int("10.0.0.9"), 5555)


def config() -> RxConfig:
    return RxConfig.default(watch=WATCH)


def make_top() -> Top:
    return Top(64, symbols=8, locates=64, config=config(),
               book={"capacity": 256, "ways": 4, "n": 4, "depth": 8})


def feed(rng, n_events: int) -> list[bytes]:
    """The directory, then a random flow: one message a frame."""
    msgs = [itch.encode("R", locate=LOCATE0 + i, stock=s, market_category="Q")
            for i, s in enumerate(WATCH)]
    for e in random_flow(rng, n_events, symbols=len(WATCH), spread=6, other=0.05):
        e.locate = LOCATE0 + e.sym
        if e.type in "AFP":
            e.stock = itch.stock_int(WATCH[e.sym])
        msgs.append(itch.encode_event(e))
    return [feed_frame(config(), LINE_A, moldudp64.encode_packet(SESSION, 1 + i, [m]))
            for i, m in enumerate(msgs)]


def model_records(frames_in: list[bytes], enable: bool = True, channel: bool = True):
    """What the models say the tap sends, and every update the book publishes."""
    rx = RxPathModel(config(), locates=64)
    book = BookModel(4, depth=8, capacity=256, ways=4)
    tap = BookTapModel()
    tap.enable, tap.channel = enable, channel
    records, updates = [], []
    for fr in frames_in:
        before = len(rx.events)
        rx.process(fr)
        for ev in rx.events[before:]:
            for up in book.apply(ev):
                updates.append(up)
                if (rec := tap.tap(up)) is not None:
                    records.append(rec)
    return records, updates, tap


def setup_request(top: Top, book_stream: int, channel: int = 1) -> bytes:
    m = top.map
    watch = []
    for i, stock in enumerate(WATCH):
        value = itch.stock_int(stock)
        address = m[f"rx.watch[{i}].stock"].address
        watch += [proto.Op.write(address, value & 0xFFFF_FFFF),
                  proto.Op.write(address + 1, value >> 32),
                  proto.Op.write(m[f"rx.watch[{i}].enable"].address, 1)]
    return proto.encode_request(1, watch + [
        proto.Op.write(m["ctl.event_ip"].address, LISTENER.ip),
        proto.Op.write(m["ctl.event_port"].address, LISTENER.port),
        proto.Op.write(m["ctl.event_enable"].address, channel),
        proto.Op.write(m["book_stream.enable"].address, book_stream)])


def book_events(bench: Bench) -> list[proto.BookEvent]:
    out = []
    for f in bench.frames():
        payload = payload_of(f)
        if proto.frame_kind(payload) == proto.KIND_EVENT:
            out += [e for e in proto.check(payload, proto.KIND_EVENT).events
                    if isinstance(e, proto.BookEvent)]
    return out


def run_flow(top, bench, frames_in, setup: bytes, between: int, drain: int):
    """Configure, send the frames ``between`` cycles apart, let the channel drain; the
    tap's and the strategy's counters at the end."""
    got = {}

    async def tb(ctx):
        await bench.send(ctx, to_device(setup, DEVICE.ip, DEVICE.port))
        await bench.settle(ctx, 0, True)
        for fr in frames_in:
            await bench.send(ctx, fr)
            if between:
                await ctx.tick().repeat(between)
        await ctx.tick().repeat(drain)
        got["tap"] = {k: ctx.get(getattr(top.book_tap.counters, k))
                      for k in ("records", "overflow", "channel_off")}
        got["seq"] = ctx.get(top.book_tap.seq)
        got["strategy_updates"] = ctx.get(top.strategy.counters.updates)
        got["events"] = ctx.get(top.control.counters.events)
        got["alarms"] = ctx.get(top.alarm_set)

    run(top, tb, processes=[bench.collector])
    return got


@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_book_records_match_the_model_when_the_channel_keeps_up(stall):
    """Frames far enough apart for every record to leave (each takes about 90 cycles
    at a byte a cycle), ``mac_tx`` stalled at random: every record, in order."""
    rng = rng_for(f"booktap-{stall}")
    top = make_top()
    bench = Bench(top, rng, stall=stall)
    frames_in = feed(rng, 60)
    want, updates, tap = model_records(frames_in)
    got = run_flow(top, bench, frames_in, setup_request(top, 1), between=300, drain=800)
    assert len(want) > 30, f"seed {SEED}: a flow too quiet to mean much"
    assert book_events(bench) == want, f"seed {SEED}"
    assert got["tap"] == dict(tap.counters) and got["tap"]["overflow"] == 0
    assert got["seq"] == len(updates) == got["strategy_updates"]


def test_a_flood_overflows_the_tap_and_the_holes_are_in_seq():
    """Frames back to back with ``mac_tx`` often stalled: the FIFO fills, the lost records
    are exactly the missing sequence numbers (counted in ``overflow``, raising the
    ``book_overflow`` alarm), every record that left is the model's of its ``seq``,
    and the strategy still took every update."""
    rng = rng_for("booktap-flood")
    top = make_top()
    bench = Bench(top, rng, stall=0.6)
    frames_in = feed(rng, 120)
    want, updates, _tap = model_records(frames_in)
    got = run_flow(top, bench, frames_in, setup_request(top, 1), between=0, drain=3000)
    records = book_events(bench)
    by_seq = {r.seq: r for r in want}
    assert [r.seq for r in records] == sorted(r.seq for r in records), "out of order"
    assert all(r == by_seq[r.seq] for r in records), f"seed {SEED}"
    lost = len(want) - len(records)
    assert lost > 0, f"seed {SEED}: the flood did not overflow the FIFO"
    assert got["tap"] == {"records": len(records), "overflow": lost, "channel_off": 0}
    assert got["strategy_updates"] == len(updates) == got["seq"]


def test_the_stream_is_off_by_default_and_seq_counts_anyway():
    rng = rng_for("booktap-off")
    top = make_top()
    bench = Bench(top, rng, stall=0.0)
    frames_in = feed(rng, 30)
    _want, updates, _tap = model_records(frames_in, enable=False)
    got = run_flow(top, bench, frames_in, setup_request(top, 0), between=20, drain=200)
    assert book_events(bench) == []
    assert got["events"] == 0
    assert got["tap"] == {"records": 0, "overflow": 0, "channel_off": 0}
    assert got["seq"] == len(updates) > 10


def test_with_the_channel_off_queued_records_are_dropped_and_counted():
    rng = rng_for("booktap-channel-off")
    top = make_top()
    bench = Bench(top, rng, stall=0.0)
    frames_in = feed(rng, 30)
    _want, updates, tap = model_records(frames_in, channel=False)
    got = run_flow(top, bench, frames_in, setup_request(top, 1, channel=0), between=20,
                   drain=200)
    assert book_events(bench) == []
    assert got["tap"] == dict(tap.counters)
    assert got["tap"]["channel_off"] == len(updates) > 10
