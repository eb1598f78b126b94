"""The control endpoint inside Top (gateware/top.py) in Amaranth's simulator: random
well-formed and malformed control frames through the MAC side, reply frames compared
byte for byte with ControlModel's replies in the endpoint's header template, counters
compared; gap reports through the FIFO register and through the event channel."""

from itertools import pairwise

import pytest
from amaranth.lib import data

from tick2trade.gateware.trade.eth_tx import TxArbiter
from tick2trade.protocol import control as proto
from tick2trade.gateware.models.control.control import device_model
from tick2trade.protocol import frames, moldudp64
from tick2trade.gateware.models.stream import beats_to_frames, frame_beats
from tick2trade.gateware.models.rx.eth_rx import LINE_A, RxConfig
from tick2trade.gateware.models.rx.moldudp import Gap
from tick2trade.gateware.models.rx.rx_path import RxPathModel
from tick2trade.gateware.top import DEFAULT_MAC, Top
from tick2trade.sim.control_frames import HOST, Endpoint, from_device, to_device, udp_payload
from tick2trade.gateware.models.rx.eth_rx import feed_frame

from tick2trade.testing.simtools import SEED, as_dict, collect, rng_for, run, send

CFG = RxConfig.default()
DEVICE = Endpoint(DEFAULT_MAC.to_bytes(6, "big"), CFG.ctl_ip, CFG.ctl_port)


def make_top(width=64) -> Top:
    return Top(width, symbols=8, locates=64, config=CFG)


def payload_of(frame: bytes) -> bytes:
    return udp_payload(frame)[1]


def beat_tuple(payload) -> tuple:
    return (int(payload.data), int(payload.be), int(payload.first), int(payload.last))


class Bench:
    """Frames into Top's MAC side one at a time; every frame Top transmits collected
    (with random stalls on ``mac_tx``)."""

    def __init__(self, top: Top, rng, stall=0.3):
        self.top, self.rng = top, rng
        self.lanes = top.data_width // 8
        self.out = []
        self.collector = collect(top.mac_tx, self.out, rng, stall=stall)

    def frames(self) -> list[bytes]:
        done, _open = beats_to_frames(map(beat_tuple, self.out), self.lanes)
        return done

    async def send(self, ctx, frame: bytes) -> None:
        await send(ctx, self.top.mac_rx,
                   [as_dict(b) for b in frame_beats(frame, self.lanes)], self.rng)

    async def settle(self, ctx, frames_before: int, expect_frame: bool, limit=3000) -> None:
        """Wait for the next transmitted frame, or (expecting none) long enough for the
        endpoint to have decided to drop."""
        for _ in range(limit if expect_frame else 40):
            await ctx.tick()
            if expect_frame and len(self.frames()) > frames_before:
                return
        assert not expect_frame, f"no frame within {limit} cycles (seed {SEED})"


# Registers beyond the control plane's own blocks act on the trade path: a pulse clears
# the book or sends an order, a risk limit can trip the kill switch (an alarm bit). The
# CSR model stores and returns values but does not run those blocks, so the random
# requests touch only plain storage there.
CONTROL_BLOCKS = ("sys", "ctl", "rx")


def plain(entry) -> bool:
    return entry.block in CONTROL_BLOCKS or (entry.register.access == "rw"
                                             and entry.block != "risk")


def random_request(rng, regmap, seq: int, malformed: bool) -> tuple[bytes, str | None]:
    """A control payload and the drop reason the model must find (None: well formed)."""
    words = [a for a, (e, _k) in regmap.by_address.items()
             if e.name not in ("sys.cycles", "rx.ctl_ip", "rx.ctl_port")
             and not e.name.startswith("rx.feeds") and plain(e)]
    readonly_words = [a for a, (e, _k) in regmap.by_address.items()
                      if e.name in ("rx.ctl_ip", "rx.ctl_port")]
    ops = []
    for _ in range(rng.choice([1, 1, 2, 5, rng.randint(1, proto.MAX_OPS)])):
        r = rng.random()
        if r < 0.05:
            ops.append(proto.Op(rng.choice([0, 3, 0xFF]), rng.choice(words), 7))
        elif r < 0.12:
            ops.append(proto.Op.read(rng.choice([0x80, 0xFFFF, 0x1FF, 0x4000])))
        elif r < 0.5:
            ops.append(proto.Op.write(rng.choice(words), rng.getrandbits(32)))
        else:
            ops.append(proto.Op.read(rng.choice(words + readonly_words)))
    good = proto.encode_request(seq, ops)
    if not malformed:
        return good, None
    kinds = {
        "bad_magic": lambda: b"\x54\x33" + good[2:],
        "bad_version": lambda: good[:2] + b"\x02" + good[3:],
        "bad_kind": lambda: good[:3] + bytes([rng.choice([0, 2, 3, 9])]) + good[4:],
        "short": lambda: good[:rng.randint(1, 7)],
        "cut": lambda: good[:-rng.randint(1, 7)],
        "long": lambda: good + bytes(rng.randint(1, 9)),
        "zero_ops": lambda: proto.HEADER.pack(proto.MAGIC, proto.VERSION, 1, seq, 0),
        "too_many": lambda: proto.encode_ops(proto.KIND_REQUEST, seq,
                                             [proto.Op.read(0)] * (proto.MAX_OPS + 1)),
        "huge": lambda: good + bytes(proto.MAX_REQUEST),
    }
    kind = rng.choice(sorted(kinds))
    payload = kinds[kind]()
    try:
        proto.check(payload)
    except proto.ControlError as exc:
        return payload, exc.reason
    raise AssertionError(f"{kind} frame passed the check")


@pytest.mark.parametrize("width,requests", [(64, 40), (8, 6)])
def test_random_requests_and_malformed_frames_match_the_model(width, requests):
    rng = rng_for(f"ctl{width}")
    top = make_top(width)
    bench = Bench(top, rng)
    rx_model = RxPathModel(CFG, locates=64)
    device = device_model(top.map)
    csr = device.csr
    sent = {"replies": 0, "drops": 0}

    async def tb(ctx):
        await ctx.tick().repeat(3)
        for seq in range(requests):
            payload, reason = random_request(rng, top.map, seq, malformed=seq % 3 == 2)
            frame = to_device(payload, DEVICE.ip, DEVICE.port)
            mac_before = csr.storage["ctl.mac"]
            rx_model.process(frame)
            for stage, values in rx_model.counters().items():
                for name, value in values.items():
                    csr.values[f"rx.counters.{stage}.{name}"] = value
            reply = device.process(payload)
            assert (reply is None) == (reason is not None)
            before = len(bench.frames())
            await bench.send(ctx, frame)
            await bench.settle(ctx, before, reply is not None)
            got = bench.frames()
            if reply is None:
                csr.set_flags("sys.alarms", 1 << 2)  # control_drop
                assert len(got) == before, f"request {seq}: a dropped frame was answered"
                sent["drops"] += 1
                continue
            want = from_device(reply, Endpoint(mac_before.to_bytes(6, "big"), DEVICE.ip,
                                               DEVICE.port), HOST)
            assert got[before] == want, \
                f"request {seq} ({proto.check(payload)}): reply differs (seed {SEED})\n" \
                f"got  {proto.check(payload_of(got[before]), proto.KIND_REPLY)}\n" \
                f"want {proto.check(reply, proto.KIND_REPLY)}"
            sent["replies"] += 1
        await ctx.tick().repeat(20)
        counters = {k: ctx.get(getattr(top.control.counters, k)) for k in proto.COUNTERS}
        assert counters == dict(device.counters), f"seed {SEED}"

    run(top, tb, processes=[bench.collector])
    assert sent == {"replies": requests - requests // 3, "drops": requests // 3}


def test_a_request_during_a_request_is_dropped_as_busy():
    rng = rng_for("busy")
    top = make_top()
    bench = Bench(top, rng, stall=0.0)
    ops = [proto.Op.read(top.map["sys.id"].address)] * proto.MAX_OPS
    first = to_device(proto.encode_request(1, ops), DEVICE.ip, DEVICE.port)
    second = to_device(proto.encode_request(2, ops[:1]), DEVICE.ip, DEVICE.port)

    async def tb(ctx):
        await send(ctx, top.mac_rx, [as_dict(b) for fr in (first, second)
                                     for b in frame_beats(fr, 8)])
        await bench.settle(ctx, 0, True)
        await ctx.tick().repeat(200)
        assert ctx.get(top.control.counters.busy) == 1
        assert ctx.get(top.control.counters.replies) == 1

    run(top, tb, processes=[bench.collector])
    (reply,) = bench.frames()
    frame = proto.check(payload_of(reply), proto.KIND_REPLY)
    assert frame.seq == 1 and [o.value for o in frame.ops] == [proto.DEVICE_ID] * proto.MAX_OPS


@pytest.mark.parametrize("width, trailer", [(64, 0), (8, 0), (8, 23)])
def test_a_request_in_a_frame_the_mac_aborted_is_dropped_as_bad_frame(width, trailer):
    """The MAC's verdict (``abort`` on the frame's last beat) comes after the datagram's
    last byte when the frame has padding (``trailer``) and with it when it has none."""
    rng = rng_for(f"bad_frame_{width}_{trailer}")
    top = make_top(width)
    bench = Bench(top, rng, stall=0.0)
    lanes = width // 8
    ops = [proto.Op.read(top.map["sys.id"].address)]
    bad, good = (to_device(proto.encode_request(seq, ops), DEVICE.ip, DEVICE.port) +
                 bytes(trailer) for seq in (1, 2))

    async def tb(ctx):
        beats = [as_dict(b) for b in frame_beats(bad, lanes)]
        beats[-1]["abort"] = 1
        await send(ctx, top.mac_rx, beats)
        await bench.settle(ctx, 0, False)
        assert ctx.get(top.control.counters.bad_frame) == 1
        assert ctx.get(top.control.counters.requests) == 0
        await bench.send(ctx, good)
        await bench.settle(ctx, 0, True)
        assert ctx.get(top.control.counters.replies) == 1
        assert ctx.get(top.control.counters.bad_frame) == 1

    run(top, tb, processes=[bench.collector])
    (reply,) = bench.frames()
    assert proto.check(payload_of(reply), proto.KIND_REPLY).seq == 2


def gap_frames() -> tuple[list[bytes], Gap]:
    msg = b"S" + bytes(10) + b"O"
    # the packet from 5 is held (messages 2-4 may be late); the heartbeat after it
    # forces it out, and the gap is reported then
    packets = [moldudp64.encode_packet("SESSION001", 1, [msg]),
               moldudp64.encode_packet("SESSION001", 5, [msg]),
               moldudp64.encode_heartbeat("SESSION001", 6)]
    return [feed_frame(CFG, LINE_A, p) for p in packets], Gap(LINE_A, b"SESSION001", 2, 3)


def test_gap_report_waits_in_the_fifo_register_until_popped():
    rng = rng_for("gapfifo")
    top = make_top()
    bench = Bench(top, rng)
    feed, gap = gap_frames()
    entry = top.map["rx.gaps"]
    layout = data.StructLayout({n: w for n, _o, w in entry.fields})
    reads = [proto.Op.read(entry.address + k) for k in range(entry.words)]
    requests = [proto.encode_request(1, reads + [proto.Op.write(entry.address, 1)]),
                proto.encode_request(2, reads[:1])]

    async def tb(ctx):
        for fr in feed:
            await bench.send(ctx, fr)
        await ctx.tick().repeat(10)
        for i, payload in enumerate(requests):
            await bench.send(ctx, to_device(payload, DEVICE.ip, DEVICE.port))
            await bench.settle(ctx, i, True)

    run(top, tb, processes=[bench.collector])
    first, second = (proto.check(payload_of(f), proto.KIND_REPLY) for f in bench.frames())
    assert first.ops[0].value == 1 and second.ops[0].value == 0  # popped
    value = sum(op.value << (32 * k) for k, op in enumerate(first.ops[1:entry.words]))
    got = layout.from_bits(value)
    assert Gap(int(got.line), int(got.session).to_bytes(10, "big"), int(got.first),
               int(got.count)) == gap


def test_gap_report_goes_out_as_an_event_frame_when_enabled():
    rng = rng_for("gapevent")
    top = make_top()
    bench = Bench(top, rng)
    feed, gap = gap_frames()
    listener = Endpoint(bytes.fromhex("0200000000ee"), frames.ip_to_int("10.0.0.9"), 5555)
    m = top.map
    setup = proto.encode_request(1, [
        proto.Op.write(m["ctl.event_mac"].address, int.from_bytes(listener.mac[2:], "big")),
        proto.Op.write(m["ctl.event_mac"].address + 1, int.from_bytes(listener.mac[:2], "big")),
        proto.Op.write(m["ctl.event_ip"].address, listener.ip),
        proto.Op.write(m["ctl.event_port"].address, listener.port),
        proto.Op.write(m["ctl.event_enable"].address, 1)])

    async def tb(ctx):
        await bench.send(ctx, to_device(setup, DEVICE.ip, DEVICE.port))
        await bench.settle(ctx, 0, True)
        for fr in feed:
            await bench.send(ctx, fr)
        await bench.settle(ctx, 1, True)
        assert ctx.get(top.control.counters.events) == 1

    run(top, tb, processes=[bench.collector])
    frames_out = bench.frames()
    assert frames_out[1] == from_device(proto.encode_events(0, [proto.GapEvent(
        gap.line, gap.session, gap.first, gap.count)]), DEVICE, listener)
    assert proto.check(payload_of(frames_out[1]), proto.KIND_EVENT).events == (
        proto.GapEvent(gap.line, gap.session, gap.first, gap.count),)


def test_gaps_and_answers_take_turns_on_the_event_channel():
    """Three answers from the venue and three gaps, all arriving while the channel is
    busy with the first answer and the arbiter holds the second (its one registered
    slot): from the held one on, the frames alternate between the two kinds while both
    wait, and every one of them leaves, in its own order."""
    from tick2trade.protocol import ouch, soupbintcp
    from tick2trade.gateware.trade.ouch_tx import SRC_PORT, VENUE_IP, VENUE_PORT

    rng = rng_for("turns")
    top = make_top()
    bench = Bench(top, rng, stall=0.0)
    msg = b"S" + bytes(10) + b"O"
    feed = [feed_frame(CFG, LINE_A, moldudp64.encode_packet("SESSION001", seq, [msg]))
            for seq in (1, 5, 9, 13)]  # gaps at 2, 6 and 10
    # each packet but the first is held, then forced out by the next (the hole before it
    # reported then); the heartbeat forces out the last
    feed.append(feed_frame(CFG, LINE_A, moldudp64.encode_heartbeat("SESSION001", 14)))
    answers = [frames.build_udp_frame(CFG.ctl_ip, SRC_PORT, soupbintcp.encode(
        "U", message=ouch.encode_outbound("C", timestamp=1, user_ref=u, quantity=u,
                                          reason="U")), src_ip=VENUE_IP, src_port=VENUE_PORT)
        for u in (7, 8, 9)]
    listener = Endpoint(bytes.fromhex("0200000000ee"), frames.ip_to_int("10.0.0.9"), 5555)
    m = top.map
    setup = proto.encode_request(1, [
        proto.Op.write(m["ctl.event_ip"].address, listener.ip),
        proto.Op.write(m["ctl.event_port"].address, listener.port),
        proto.Op.write(m["ctl.event_enable"].address, 1)])

    async def tb(ctx):
        await bench.send(ctx, to_device(setup, DEVICE.ip, DEVICE.port))
        await bench.settle(ctx, 0, True)
        for fr in [feed[0], *answers, *feed[1:]]:
            await bench.send(ctx, fr)
        await ctx.tick().repeat(1500)
        assert ctx.get(top.control.counters.events) == 6
        assert ctx.get(top.ouch_rx.counters.answers) == 3

    run(top, tb, processes=[bench.collector])
    events = [proto.check(payload_of(f), proto.KIND_EVENT).events[0]
              for f in bench.frames()[1:]]
    kinds = [type(e).__name__ for e in events]
    assert kinds[:2] == ["AnswerEvent"] * 2, kinds
    assert all(a != b for a, b in pairwise(kinds[1:5])), kinds
    assert [e.user_ref for e in events if isinstance(e, proto.AnswerEvent)] == [7, 8, 9]
    assert [e.first for e in events if isinstance(e, proto.GapEvent)] == [2, 6, 10]


def test_with_the_event_channel_off_answers_wait_in_their_fifo_register():
    """An answer from the venue becomes an entry of ``ouch_rx.answers``: the record, as a
    256-bit number in 8 words; popping it leaves the register empty."""
    from tick2trade.protocol import ouch, soupbintcp
    from tick2trade.gateware.trade.ouch_tx import SRC_PORT, VENUE_IP, VENUE_PORT

    rng = rng_for("answerfifo")
    top = make_top()
    bench = Bench(top, rng)
    answer = frames.build_udp_frame(CFG.ctl_ip, SRC_PORT, soupbintcp.encode(
        "U", message=ouch.encode_outbound("E", timestamp=1, user_ref=42, quantity=17,
                                          price=1_234_500, liquidity="R", match=99)),
        src_ip=VENUE_IP, src_port=VENUE_PORT)
    entry = top.map["ouch_rx.answers"]
    reads = [proto.Op.read(entry.address + k) for k in range(entry.words)]
    requests = [proto.encode_request(1, reads + [proto.Op.write(entry.address, 1)]),
                proto.encode_request(2, reads[:1])]

    async def tb(ctx):
        await bench.send(ctx, answer)
        await ctx.tick().repeat(60)
        for i, payload in enumerate(requests):
            await bench.send(ctx, to_device(payload, DEVICE.ip, DEVICE.port))
            await bench.settle(ctx, i, True)
        assert ctx.get(top.control.counters.events) == 0

    run(top, tb, processes=[bench.collector])
    first, second = (proto.check(payload_of(f), proto.KIND_REPLY) for f in bench.frames())
    assert first.ops[0].value == 1 and second.ops[0].value == 0  # popped
    value = sum(op.value << (32 * k) for k, op in enumerate(first.ops[1:entry.words]))
    record = proto.decode_event_record(value.to_bytes(proto.EVENT_RECORD, "big"))
    assert (record.type, record.user_ref, record.quantity, record.price, chr(record.code),
            record.ref, record.gate) == ("E", 42, 17, 1_234_500, "R", 99, 0)


def test_tx_arbiter_keeps_frames_whole_and_in_order():
    rng = rng_for("arb")
    arb = TxArbiter(64, inputs=2)
    # each frame's first byte names its input: the order check below tells the inputs'
    # frames apart by their bytes (seed 1920336567 drew b"\xfe" on both)
    frames_in = [[bytes([i]) + rng.randbytes(rng.randint(0, 79)) for _ in range(30)]
                 for i in range(2)]
    out = []

    def source(i):
        async def tb(ctx):
            beats = [as_dict(b) for fr in frames_in[i] for b in frame_beats(fr, 8)]
            await send(ctx, getattr(arb, f"in{i}"), beats, rng, between=(0, 3))
        return tb

    async def stop(ctx):
        await ctx.tick().repeat(3000)

    run(arb, source(0), source(1), stop, processes=[collect(arb.out, out, rng, stall=0.3)])
    got, rest = beats_to_frames(map(beat_tuple, out), 8)
    assert not rest
    assert sorted(got) == sorted(frames_in[0] + frames_in[1]), f"seed {SEED}"
    for i in range(2):
        assert [f for f in got if f in frames_in[i]] == frames_in[i]
