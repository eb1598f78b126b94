"""The 1GbE MAC against its model (``gateware.models.phy.mac``): carrier events into ``MacRx``,
frames into ``MacTx``, and the two back to back."""

import random

from amaranth import Module

from tick2trade.gateware.phy.mac import MacRx, MacTx
from tick2trade.gateware.models.phy import mac as model
from tick2trade.testing.simtools import SEED, rng_for, run, send


def good_frame(rng: random.Random, lo: int = 14, hi: int = 200) -> bytes:
    return rng.randbytes(rng.randint(lo, hi))


def adversarial(rng: random.Random) -> list[model.Carrier]:
    """Each kind of broken carrier event, named after what it breaks."""
    ok = model.wire(good_frame(rng, model.MIN_PAYLOAD + 1))
    bad_fcs = bytearray(model.wire(good_frame(rng)))
    bad_fcs[rng.randrange(8, len(bad_fcs))] ^= 1 << rng.randrange(8)
    body = good_frame(rng, 1, 40)
    runt_with_good_fcs = bytes([0x55] * 7 + [0xD5]) + body + model.fcs(body)
    return [
        model.Carrier(ok),
        model.Carrier(bytes(bad_fcs)),
        model.Carrier(runt_with_good_fcs),
        model.Carrier(ok[:8 + 3]),                          # dies inside the FCS length
        model.Carrier(ok[:8]),                              # SFD, then nothing
        model.Carrier(ok[:5]),                              # preamble only
        model.Carrier(ok[7:]),                              # no preamble at all: SFD first
        model.Carrier(bytes([0x55, 0x55, 0x5D]) + ok[7:]),  # a bad byte before the SFD
        model.Carrier(bytes([0x55] * 7) + b"\x00" + ok[8:40]),  # no SFD: data after preamble
        model.Carrier(ok, frozenset({rng.randrange(8, len(ok))})),  # RX_ER mid-frame
        model.Carrier(ok, frozenset({3})),                  # RX_ER in the preamble: harmless
        model.Carrier(ok[:-1]),                             # last FCS byte lost
    ]


def random_carriers(rng: random.Random, n: int) -> list[model.Carrier]:
    out = []
    for _ in range(n):
        if rng.random() < 0.7:
            out.append(model.Carrier(model.wire(good_frame(rng, 1, 120))))
        else:
            out.append(rng.choice(adversarial(rng)))
    return out


def run_rx(carriers: list[model.Carrier], gaps: list[int]):
    """Drive the carrier events with the given idle cycles before each; return the frames
    MacRx delivered (bytes, abort) and its counters."""
    dut = MacRx()
    frames: list[tuple[bytes, bool]] = []
    counters = {}

    async def drive(ctx):
        for carrier, gap in zip(carriers, gaps):
            ctx.set(dut.gmii.en, 0)
            await ctx.tick().repeat(gap)
            for i, byte in enumerate(carrier.data):
                ctx.set(dut.gmii.en, 1)
                ctx.set(dut.gmii.data, byte)
                ctx.set(dut.gmii.er, i in carrier.errors)
                await ctx.tick()
            ctx.set(dut.gmii.er, 0)
        ctx.set(dut.gmii.en, 0)
        await ctx.tick().repeat(16)
        counters.update({k: ctx.get(getattr(dut.counters, k)) for k in model.RX_COUNTERS})

    async def sink(ctx):
        current = bytearray()
        async for _clk, _rst, valid, beat, events in ctx.tick().sample(
                dut.frames.valid, dut.frames.payload, dut.events):
            for name in model.RX_COUNTERS:
                strobes[name] += getattr(events, name)
            if not valid:
                continue
            assert beat.be == 1
            if beat.first:
                assert not current, f"first beat inside a frame (seed {SEED})"
            current.append(beat.data)
            if beat.last:
                frames.append((bytes(current), bool(beat.abort)))
                current = bytearray()

    strobes = dict.fromkeys(model.RX_COUNTERS, 0)
    run(dut, drive, processes=[sink])
    assert strobes == counters, "an event strobe for every count (what the board counts)"
    return frames, counters


def expected_rx(carriers):
    m = model.MacRxModel()
    got = [m.receive(c) for c in carriers]
    return [(r.data, r.abort) for r in got if r is not None], dict(m.counters)


def check_rx(carriers, gaps):
    frames, counters = run_rx(carriers, gaps)
    want_frames, want_counters = expected_rx(carriers)
    assert counters == want_counters, f"seed {SEED}"
    assert len(frames) == len(want_frames), f"seed {SEED}"
    for i, (got, want) in enumerate(zip(frames, want_frames)):
        assert got == want, f"frame {i} of {len(frames)}, seed {SEED}"


def test_rx_random_frames_with_idle_gaps_match_model():
    rng = rng_for("mac_rx_random")
    carriers = random_carriers(rng, 60)
    check_rx(carriers, [rng.choice([1, 2, model.MIN_IFG, rng.randint(1, 40)])
                        for _ in carriers])


def test_rx_every_adversarial_event_is_counted_and_aborted_or_dropped():
    rng = rng_for("mac_rx_adversarial")
    carriers = adversarial(rng)
    frames, counters = run_rx(carriers, [model.MIN_IFG] * len(carriers))
    assert counters == expected_rx(carriers)[1]
    # delivered whole: the good frame, the one without preamble, the one with RX_ER in
    # its preamble
    assert counters["frames"] == 3 and counters["bad_fcs"] == 2
    assert counters["runt"] == 3 and counters["no_sfd"] == 3 and counters["phy_error"] == 1
    assert sum(not abort for _, abort in frames) == 3


def test_rx_back_to_back_at_one_idle_cycle():
    rng = rng_for("mac_rx_b2b")
    carriers = [model.Carrier(model.wire(good_frame(rng, 1, 80))) for _ in range(20)]
    check_rx(carriers, [1] * len(carriers))


def test_rx_latency_is_six_cycles():
    frame = bytes(range(60))
    dut = MacRx()
    seen = {}

    async def drive(ctx):
        wire = model.wire(frame)
        for cycle, byte in enumerate(wire):
            ctx.set(dut.gmii.en, 1)
            ctx.set(dut.gmii.data, byte)
            await ctx.tick()
            if ctx.get(dut.frames.valid) and "first" not in seen:
                seen["first"] = cycle - 8  # cycles after the first byte past the SFD
        ctx.set(dut.gmii.en, 0)
        await ctx.tick().repeat(4)

    run(dut, drive)
    assert seen["first"] == 5  # the byte of cycle 0 is out at the end of cycle 5: 6 cycles


def run_tx(frames: list[bytes], rng: random.Random, ifg: int = model.MIN_IFG,
           bubble_in: int | None = None):
    """Send ``frames`` (one with a bubble mid-frame if ``bubble_in`` is its index); return
    the carrier events on GMII with the idle cycles before each, and the counters."""
    dut = MacTx(ifg=ifg)
    events: list[tuple[bytes, int, bool]] = []
    counters = {}

    async def source(ctx):
        for i, frame in enumerate(frames):
            beats = [{"data": b, "be": 1, "first": j == 0, "last": j == len(frame) - 1}
                     for j, b in enumerate(frame)]
            if i == bubble_in:
                await send(ctx, dut.frames, beats[:3])
                await ctx.tick().repeat(2)
                await send(ctx, dut.frames, beats[3:])
            else:
                await send(ctx, dut.frames, beats, rng, between=(0, 3))
        await ctx.tick().repeat(100)
        counters.update({k: ctx.get(getattr(dut.counters, k)) for k in model.TX_COUNTERS})
        assert strobes == counters, "an event strobe for every count (what the board counts)"

    strobes = dict.fromkeys(model.TX_COUNTERS, 0)

    async def monitor(ctx):
        current, idle, gap, error = bytearray(), 0, 0, False
        async for _clk, _rst, en, er, byte, ev in ctx.tick().sample(
                dut.gmii.en, dut.gmii.er, dut.gmii.data, dut.events):
            for name in model.TX_COUNTERS:
                strobes[name] += getattr(ev, name)
            if en:
                if not current:
                    gap = idle
                current.append(byte)
                error |= bool(er)
            elif current:
                events.append((bytes(current), gap, error))
                current, idle, error = bytearray(), 1, False
            else:
                idle += 1

    run(dut, source, processes=[monitor])
    return events, counters


def test_tx_frames_are_preamble_padding_fcs_and_gap():
    rng = rng_for("mac_tx")
    frames = [good_frame(rng, 1, 150) for _ in range(40)] + [bytes(60), bytes(59), b"\x01"]
    events, counters = run_tx(frames, rng)
    assert [e[0] for e in events] == [model.wire(f) for f in frames], f"seed {SEED}"
    assert all(gap >= model.MIN_IFG for _, gap, _ in events[1:]), f"seed {SEED}"
    assert not any(err for *_, err in events)
    assert counters == {"frames": len(frames), "underrun": 0}


def test_tx_back_to_back_frames_leave_exactly_the_minimum_gap():
    rng = rng_for("mac_tx_b2b")
    frames = [good_frame(rng, 60, 70) for _ in range(5)]
    dut_gaps = [gap for _, gap, _ in run_tx(frames, random.Random(0))[0][1:]]
    assert dut_gaps == [model.MIN_IFG] * 4


def test_tx_underrun_poisons_only_its_frame():
    rng = rng_for("mac_tx_underrun")
    frames = [good_frame(rng, 20, 40) for _ in range(3)]
    events, counters = run_tx(frames, rng, bubble_in=1)
    assert events[0][0] == model.wire(frames[0])
    assert events[1][2], "the underrun frame must carry TX_ER"
    assert events[2][0] == model.wire(frames[2]) and not events[2][2]
    assert counters == {"frames": 2, "underrun": 1}


def test_tx_into_rx_loopback():
    rng = rng_for("mac_loopback")
    frames = [good_frame(rng, 1, 120) for _ in range(25)]
    m = Module()
    m.submodules.tx = tx = MacTx()
    m.submodules.rx = rx = MacRx()
    m.d.comb += [rx.gmii.data.eq(tx.gmii.data), rx.gmii.en.eq(tx.gmii.en),
                 rx.gmii.er.eq(tx.gmii.er)]
    got: list[bytes] = []

    async def source(ctx):
        for frame in frames:
            beats = [{"data": b, "be": 1, "first": j == 0, "last": j == len(frame) - 1}
                     for j, b in enumerate(frame)]
            await send(ctx, tx.frames, beats, rng, between=(0, 2))
        await ctx.tick().repeat(200)

    async def sink(ctx):
        current = bytearray()
        async for _clk, _rst, valid, beat in ctx.tick().sample(rx.frames.valid,
                                                               rx.frames.payload):
            if valid:
                current.append(beat.data)
                if beat.last:
                    assert not beat.abort, f"seed {SEED}"
                    got.append(bytes(current))
                    current = bytearray()

    run(m, source, processes=[sink])
    padded = [f + bytes(max(0, model.MIN_PAYLOAD - len(f))) for f in frames]
    assert got == padded, f"seed {SEED}"
