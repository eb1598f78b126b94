"""ouch_rx against models.ouch_rx: random and malformed answer datagrams, W=64 and W=8.

Orders are sent (``sent`` strobes) between datagrams, so the order table sees them in
the model's order; the answers refer to them, to orders long gone and to orders never
sent. Records and gate reports are compared one for one, and every counter.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from amaranth import Elaboratable, Module
from amaranth.lib import wiring

from tick2trade.protocol import control as proto
from tick2trade.protocol import ouch, soupbintcp
from tick2trade.gateware.models.trade import risk as trade
from tick2trade.gateware.models.trade import ouch_rx as model
from tick2trade.gateware.models.stream import frame_beats
from tick2trade.gateware.trade.ouch_rx import GATE_AFTER_LAG, OuchRx
from tick2trade.gateware.trade.risk import Risk

from tick2trade.testing.simtools import SEED, as_dict, collect, rng_for, run
from tests.gateware.trade.test_risk import limits_payload

VENUE = (0x0A000003, 15001)
LANE0 = 2  # where eth_rx puts a UDP payload's first byte (42-byte headers, W = 64)
SYMBOLS = 8


def answer(rng: random.Random, user_ref: int, kind: str) -> bytes:
    """One OUCH answer (sometimes with an appendage)."""
    app = ouch.encode_options([(rng.randrange(256), rng.randbytes(rng.randint(0, 3)))]) \
        if rng.random() < 0.2 else b""
    q = rng.choice([0, 1, rng.randint(1, 120), rng.randint(100, 400)])
    if kind == "A":
        return ouch.encode_outbound("A", app, timestamp=rng.getrandbits(40), user_ref=user_ref,
                                    side=rng.choice("BS"), quantity=q, symbol="AAPL",
                                    price=rng.randint(1, 5_000_000), tif=rng.choice("03"),
                                    order_ref=rng.getrandbits(64), order_state="L")
    if kind == "E":
        return ouch.encode_outbound("E", app, timestamp=rng.getrandbits(40), user_ref=user_ref,
                                    quantity=q, price=rng.randint(1, 5_000_000),
                                    liquidity=rng.choice("AR"), match=rng.getrandbits(64))
    if kind == "C":
        return ouch.encode_outbound("C", timestamp=1, user_ref=user_ref, quantity=q,
                                    reason=rng.choice("UIS"))
    return ouch.encode_outbound("J", timestamp=1, user_ref=user_ref,
                                reason=rng.randint(1, 10), clordid="X1")


def packet(rng: random.Random, refs: list[int]) -> bytes:
    """A SoupBinTCP packet: mostly answers, some of every kind of trouble."""
    roll = rng.random()
    user_ref = rng.choice(refs) if refs and rng.random() < 0.9 else rng.randint(1, 5000)
    if roll < 0.75:
        return soupbintcp.encode(rng.choice("UUS"), message=answer(rng, user_ref,
                                                                   rng.choice("AAEECJ")))
    if roll < 0.8:  # an OUCH message this block does not keep
        return soupbintcp.encode("U", message=ouch.encode_outbound("S", timestamp=1,
                                                                    event_code="S"))
    if roll < 0.85:  # a length that disagrees with the table or the appendage length
        msg = bytearray(answer(rng, user_ref, rng.choice("AECJ")))
        if rng.random() < 0.5:
            msg += b"\x00"
        else:
            del msg[-1]
        return soupbintcp.encode("U", message=bytes(msg))
    if roll < 0.9:
        return soupbintcp.encode("H") if roll < 0.87 else soupbintcp.encode("+", text=b"hi")
    if roll < 0.93:
        return b"\x00\x01U"  # a data packet without a message
    if roll < 0.96:
        return bytes([0, 1]) + bytes([rng.choice(b"AEJ")])  # a message of its type alone
    return b"\x00\x00"  # a runt: the rest of the datagram is skipped


def datagram(rng: random.Random, refs: list[int]) -> bytes:
    payload = b"".join(packet(rng, refs) for _ in range(rng.choice([1, 1, 1, 2, 3])))
    if rng.random() < 0.08:  # cut short
        payload = payload[:rng.randint(1, len(payload))]
    return payload


def scenario(rng: random.Random, count: int):
    """[("sent", fields) | ("dg", src, payload)] with orders before their answers."""
    steps, refs, next_ref = [], [], 1
    for _ in range(count):
        if rng.random() < 0.45:
            o = {"user_ref": next_ref, "sym": rng.randrange(SYMBOLS), "side": rng.randrange(2),
                 "price": rng.randint(1, 5_000_000), "quantity": rng.randint(1, 300)}
            next_ref += rng.choice([1, 1, 1, model.ORDERS])  # sometimes reuse a table slot
            refs = (refs + [o["user_ref"]])[-6:]
            steps.append(("sent", o))
        else:
            src = VENUE if rng.random() < 0.95 else (VENUE[0], VENUE[1] + 1)
            steps.append(("dg", src, datagram(rng, refs)))
    return steps


def expected(steps, to_gate: bool = True):
    m = model.OuchRxModel(*VENUE, to_gate=to_gate)
    for s in steps:
        if s[0] == "sent":
            m.table.sent(**s[1])
        else:
            m.datagram(s[1][0], s[1][1], s[2])
    return m


def record_of(a: model.Answer, gate: int, closed: int) -> proto.AnswerEvent:
    return proto.AnswerEvent(a.type, a.user_ref, a.quantity, a.price, a.code, a.ref, a.tif,
                             gate, closed)


async def put_datagram(ctx, dut, payload: bytes, lanes: int, src=None) -> None:
    """One datagram's beats into ``ouch_rx``, back to back (from the venue unless
    ``src`` = (ip, port) says otherwise); ``valid`` stays high after the last beat."""
    ip, port = src or VENUE
    for b in frame_beats(payload, lanes, LANE0 % lanes):
        ctx.set(dut.datagrams.payload, {**as_dict(b), "src_ip": ip, "src_port": port,
                                        "src_mac": 0})
        ctx.set(dut.datagrams.valid, 1)
        await ctx.tick()


def simulate(width: int, steps, to_gate: bool = True, stall: float = 0.3, name: str = "o"):
    rng = rng_for(name)
    lanes = width // 8
    dut = OuchRx(width, SYMBOLS, in_depth=32)
    records, reports, counters = [], [], {}

    async def tb(ctx):
        ctx.set(dut.venue_ip, VENUE[0])
        ctx.set(dut.venue_port, VENUE[1])
        ctx.set(dut.to_gate, int(to_gate))
        for s in steps:
            if s[0] == "sent":
                ctx.set(dut.sent, {"stb": 1, **s[1]})
                await ctx.tick()
                ctx.set(dut.sent.stb, 0)
                continue
            (ip, port), payload = s[1], s[2]
            await put_datagram(ctx, dut, payload, lanes, (ip, port))
            ctx.set(dut.datagrams.valid, 0)
            # the walker takes a byte a cycle; let it finish before the next order
            await ctx.tick().repeat(len(payload) + 40 + rng.randint(0, 5))
        await ctx.tick().repeat(200)
        for counter in model.COUNTERS:
            counters[counter] = ctx.get(getattr(dut.counters, counter))

    run(dut, tb, processes=[collect(dut.records, records, rng, stall),
                            collect(dut.reports, reports, rng, stall)])
    return records, reports, counters


@pytest.mark.parametrize("width", [64, 8])
def test_random_and_malformed_answers_match_the_model(width):
    rng = rng_for(f"answers{width}")
    steps = scenario(rng, 160)
    m = expected(steps)
    records, reports, counters = simulate(width, steps, name=f"sim{width}")
    msg = f"seed {SEED}"
    got = [proto.decode_event_record(int(r).to_bytes(proto.EVENT_RECORD, "big"))
           for r in records]
    # the walker was idle when each datagram came: the last byte waited at most for the
    # bytes before it in its datagram
    assert all(0 < g.lag <= 1 + len(max((s[2] for s in steps if s[0] == "dg"), key=len))
               for g in got), msg
    assert [replace(g, lag=0) for g in got] == [record_of(*r) for r in m.records], msg
    assert [{k: int(getattr(r, k)) for k in ("sym", "side", "filled", "canceled", "closed",
                                             "released")} for r in reports] == \
        [vars(r) for r in m.reports], msg
    assert counters == dict(m.counters), msg
    # the scenario exercised what it is about
    c = m.counters
    assert c["to_gate"] > 5 and c["unknown_order"] and c["bad_length"] and c["truncated"], c
    assert c["wrong_source"] + c["runt_packet"] + c["other_packets"] + c["unknown_type"] > 0


def test_with_to_gate_off_answers_are_only_forwarded():
    rng = rng_for("nogate")
    steps = scenario(rng, 60)
    m = expected(steps, to_gate=False)
    records, reports, counters = simulate(64, steps, to_gate=False, name="nogate")
    assert reports == [] and m.reports == []
    assert len(records) == len(m.records) == m.counters["answers"] > 0
    assert counters == dict(m.counters)


def test_bursts_overflow_the_input_fifo_are_counted_and_never_wedge():
    """Datagrams back to back: the walker falls behind, the FIFO fills, whole datagrams
    are dropped and counted; the rest still parse, and a last answer sent after the
    burst comes through."""
    rng = rng_for("burst")
    width, lanes = 64, 8
    dut = OuchRx(width, SYMBOLS, in_depth=8)
    burst = [soupbintcp.encode("U", message=answer(rng, 1, "A")) for _ in range(12)]
    last = soupbintcp.encode("U", message=answer(rng, 99, "C"))
    records, counters = [], {}

    async def tb(ctx):
        ctx.set(dut.venue_ip, VENUE[0])
        ctx.set(dut.venue_port, VENUE[1])
        for payload in burst:
            await put_datagram(ctx, dut, payload, lanes)
        ctx.set(dut.datagrams.valid, 0)
        await ctx.tick().repeat(2000)
        await put_datagram(ctx, dut, last, lanes)
        ctx.set(dut.datagrams.valid, 0)
        await ctx.tick().repeat(200)
        for name in model.COUNTERS:
            counters[name] = ctx.get(getattr(dut.counters, name))

    run(dut, tb, processes=[collect(dut.records, records)])
    assert counters["overflow"] > 0
    assert counters["datagrams"] == len(burst) + 1
    # every datagram is either an answer or an overflow, never half of each
    assert counters["accepted"] + counters["overflow"] == len(burst)
    assert counters["truncated"] == 0 and counters["bad_length"] == 0
    assert counters["canceled"] == 1 and len(records) == counters["answers"]


class AnswersToGate(Elaboratable):
    """ouch_rx's reports into the risk gate, wired as in ``gateware.top``."""

    def __init__(self):
        self.orx = OuchRx(64, SYMBOLS)
        self.risk = Risk(SYMBOLS)

    def elaborate(self, platform):
        m = Module()
        m.submodules.orx, m.submodules.risk = self.orx, self.risk
        wiring.connect(m, self.orx.reports, self.risk.answers)
        return m


@pytest.mark.parametrize("kind", ["E", "C", "J"])
def test_the_gate_has_the_answer_lag_plus_5_cycles_after_its_last_byte(kind):
    """A buy of 100 at a position limit of 100 fills the side; a second one is refused.
    The answer's report reaches the gate's state ``lag + 5`` cycles after the beat with
    its last byte arrived (``lag`` from the record): the order is closed there."""
    rng = rng_for(f"bound{kind}")
    dut = AnswersToGate()
    orx, risk = dut.orx, dut.risk
    lim = trade.Limits(position_limit=100)
    fields = {"E": {"quantity": 100, "price": 1_000_000, "liquidity": "A", "match": 5},
              "C": {"quantity": 100, "reason": "U"}, "J": {"reason": 3}}[kind]
    payload = soupbintcp.encode("U", message=ouch.encode_outbound(kind, timestamp=1,
                                                                   user_ref=1, **fields))
    seen = {}

    async def intent(ctx) -> str:
        ctx.set(risk.intents.payload, {"sym": 2, "side": trade.BUY, "price": 1_000_000,
                                       "quantity": 100, "tif": ord("0"), "ref": 1_000_000})
        ctx.set(risk.intents.valid, 1)
        await ctx.tick()
        ctx.set(risk.intents.valid, 0)
        await ctx.tick()
        while not ctx.get(risk.decisions.valid):
            await ctx.tick()
        reason = trade.REASONS[ctx.get(risk.decisions.payload.reason)]
        ctx.set(risk.decisions.ready, 1)
        await ctx.tick()
        ctx.set(risk.decisions.ready, 0)
        return reason

    async def tb(ctx):
        ctx.set(risk.limits, limits_payload(lim))
        ctx.set(risk.orders.ready, 1)
        ctx.set(orx.venue_ip, VENUE[0])
        ctx.set(orx.venue_port, VENUE[1])
        ctx.set(orx.to_gate, 1)
        ctx.set(orx.records.ready, 1)
        assert await intent(ctx) == "pass"
        ctx.set(orx.sent, {"stb": 1, "user_ref": 1, "sym": 2, "side": trade.BUY,
                           "price": 1_000_000, "quantity": 100})
        await ctx.tick()
        ctx.set(orx.sent.stb, 0)
        assert await intent(ctx) == "position"
        before = ctx.get(risk.status.open_orders)
        await ctx.tick().repeat(rng.randint(1, 9))
        beats = frame_beats(payload, 8, LANE0)
        for i, b in enumerate(beats):
            ctx.set(orx.datagrams.payload, {**as_dict(b), "src_ip": VENUE[0],
                                            "src_port": VENUE[1], "src_mac": 0})
            ctx.set(orx.datagrams.valid, 1)
            await ctx.tick()
        ctx.set(orx.datagrams.valid, 0)
        reports = ctx.get(risk.counters.reports)
        cycles = 0  # after the last beat's cycle
        while ctx.get(risk.counters.reports) == reports:
            await ctx.tick()
            cycles += 1
            record = ctx.get(orx.records.payload) if ctx.get(orx.records.valid) else None
            if record is not None:
                seen["record"] = proto.decode_event_record(
                    int(record).to_bytes(proto.EVENT_RECORD, "big"))
            assert cycles < 200
        seen["cycles"] = cycles
        seen["open_orders"] = (before, ctx.get(risk.status.open_orders))
        seen["after"] = await intent(ctx)

    run(dut, tb)
    rec = seen["record"]
    assert rec.gate == 1 and rec.closed == 1 and rec.type == kind
    # the counter moves at the edge that ends the update's cycle: arrival + lag + 5
    assert seen["cycles"] == rec.lag + GATE_AFTER_LAG == rec.lag + 5, (seen, SEED)
    # a fill turns the open buy into a position (a second buy is still too much);
    # a cancel or a reject frees the side
    assert seen["after"] == ("position" if kind == "E" else "pass")
    assert seen["open_orders"] == (1, 0)


def test_a_full_record_fifo_loses_records_never_reports():
    """Nobody takes the records: the FIFO fills, the rest are counted as lost, and every
    cancel still reaches the gate."""
    dut = OuchRx(64, SYMBOLS, record_depth=4)
    answers = 9
    reports, counters = [], {}

    async def tb(ctx):
        ctx.set(dut.venue_ip, VENUE[0])
        ctx.set(dut.venue_port, VENUE[1])
        ctx.set(dut.to_gate, 1)
        for u in range(1, answers + 1):
            ctx.set(dut.sent, {"stb": 1, "user_ref": u, "sym": u % SYMBOLS, "side": 1,
                               "price": 100 * u, "quantity": 10})
            await ctx.tick()
        ctx.set(dut.sent.stb, 0)
        for u in range(1, answers + 1):
            payload = soupbintcp.encode("U", message=ouch.encode_outbound(
                "C", timestamp=1, user_ref=u, quantity=10, reason="U"))
            await put_datagram(ctx, dut, payload, 8)
        ctx.set(dut.datagrams.valid, 0)
        await ctx.tick().repeat(200)
        for counter in model.COUNTERS:
            counters[counter] = ctx.get(getattr(dut.counters, counter))

    run(dut, tb, processes=[collect(dut.reports, reports)])
    assert counters["answers"] == counters["to_gate"] == len(reports) == answers
    assert counters["records_lost"] == answers - 4
    assert [(int(r.sym), int(r.canceled), int(r.closed), int(r.released)) for r in reports] \
        == [(u % SYMBOLS, 10, 1, 1000 * u) for u in range(1, answers + 1)]
