"""moldudp against MoldUdpModel: arbitration, gaps, sessions, block walk; W=64 and W=8."""

import random

import pytest

from tick2trade.protocol import itch, moldudp64
from tick2trade.gateware.models.stream import frame_beats
from tick2trade.gateware.models.rx.moldudp import (COUNTER_BITS, DEFAULT_WINDOW, GAP_MESSAGES_MAX,
                                                   MOLD_COUNTERS, SEQ_END, Gap, MoldMessage,
                                                   MoldUdpModel)
from tick2trade.gateware.rx.moldudp import MoldUdp
from tick2trade.testing.traffic import broken_message, random_message

from tick2trade.testing.simtools import SEED, rng_for, run
from tick2trade.testing.stream import StreamSink, StreamSource, random_pauses


def reassemble(beats, lanes) -> list[MoldMessage]:
    """Messages out of per-lane framed beats, checking the framing rules."""
    out, cur, seq = [], None, None
    for b in beats:
        data = int(b.data).to_bytes(lanes, "little")
        msg, sop, eop = int(b.msg), int(b.sop), int(b.eop)
        assert sop.bit_count() <= 1 and eop.bit_count() <= 1
        for i in range(lanes):
            if not msg >> i & 1:
                assert not (sop | eop) >> i & 1
                continue
            if sop >> i & 1:
                assert cur is None, "message starts inside another"
                cur, seq = bytearray(), int(b.seq)
            assert cur is not None, "message byte outside a message"
            cur.append(data[i])
            if eop >> i & 1:
                out.append(MoldMessage(seq, bytes(cur), False))
                cur = None
        if b.abort:
            assert cur is not None, "abort with no open message"
            out.append(MoldMessage(seq, bytes(cur), True))
            cur = None
    assert cur is None, "message left open"
    return out


def check(width, packets, idle=0.0, name="mold", reset_after=None):
    """``packets``: list of (line, payload, lane0)."""
    rng = rng_for(name)
    lanes = width // 8
    dut = MoldUdp(width)
    model = MoldUdpModel()
    want, want_gaps = [], []
    for line, payload, _ in packets:
        msgs, gaps = model.process(line, payload)
        want += msgs
        want_gaps += gaps
    counters = {}
    feed = StreamSource(dut.feed, random_pauses(rng, idle))
    msgs, gap_reports = StreamSink(dut.msgs, name="msgs"), StreamSink(dut.gaps, name="gaps")

    async def tb(ctx):
        await feed.send(ctx, ({**vars(b), "line": line}
                              for line, payload, lane0 in packets
                              for b in frame_beats(payload, lanes, lane0)))
        await ctx.tick().repeat(3)
        for k in MOLD_COUNTERS:
            counters[k] = ctx.get(getattr(dut.counters, k))

    run(dut, tb, processes=[msgs.process, gap_reports.process])
    got, got_gaps = msgs.items, gap_reports.items
    msg = f"seed {SEED}"
    assert reassemble(got, lanes) == want, msg
    gaps = [Gap(int(g.line), int(g.session).to_bytes(10, "big"), int(g.first), int(g.count))
            for g in got_gaps]
    assert gaps == want_gaps, msg
    # the gateware's counters are 32-bit and wrap (a gap of 2**40 messages does), but
    # for the wider ones (gap_messages: 64 bits, saturating in the model too)
    assert counters == {k: v & ((1 << COUNTER_BITS.get(k, 32)) - 1)
                        for k, v in model.counters.items()}, msg
    return model


def lane0s(rng, lanes):
    return rng.randrange(lanes)


def session_packets(rng, lanes, n_packets, *, session="S1", seq=1, dup=0.3, loss=0.1,
                    broken=0.05, reorder=0.05, hb=0.05, runt=0.03):
    out, held = [], []
    for _ in range(n_packets):
        k = rng.randint(1, 8)
        msgs = [broken_message(rng) if rng.random() < broken else random_message(rng)
                for _ in range(k)]
        if rng.random() < runt:  # a block too short for ITCH ends the packet's walk
            msgs.insert(rng.randrange(k + 1), rng.randbytes(rng.randrange(12)))
        payload = moldudp64.encode_packet(session, seq, msgs)
        copies = [(line, payload, lane0s(rng, lanes)) for line in (0, 1)
                  if rng.random() >= (loss if line == 0 else 1 - dup)]
        if copies and rng.random() < reorder:
            held.append(copies.pop(0))
        out += copies
        if held and rng.random() < 0.3:
            out.append(held.pop())
        seq += k
        if rng.random() < hb:
            out.append((rng.randrange(2), moldudp64.encode_heartbeat(session, seq),
                        lane0s(rng, lanes)))
    return out + held, seq


@pytest.mark.parametrize("width", [64, 8])
def test_random_lines_with_loss_duplicates_and_reordering(width):
    rng = rng_for(f"rand{width}")
    lanes = width // 8
    pk, _ = session_packets(rng, lanes, 120 if width == 64 else 30)
    model = check(width, pk, name=f"rand{width}")
    assert model.counters["dup_b"] + model.counters["dup_a"] > 0


@pytest.mark.parametrize("width", [64, 8])
def test_valid_gaps_mid_packet(width):
    rng = rng_for(f"idle{width}")
    pk, _ = session_packets(rng, width // 8, 40 if width == 64 else 12)
    check(width, pk, idle=0.3, name=f"idle{width}")


def test_gap_on_line_a_only_is_covered_by_b():
    rng = rng_for("cover")
    msgs = [[random_message(rng) for _ in range(3)] for _ in range(3)]
    p = [moldudp64.encode_packet("S1", 1 + 3 * i, m) for i, m in enumerate(msgs)]
    model = check(64, [(0, p[0], 2), (1, p[0], 6), (1, p[1], 6), (0, p[2], 2), (1, p[2], 6)])
    assert model.counters["gaps"] == 0 and model.counters["messages"] == 9


def test_gap_on_both_lines_is_reported_once():
    rng = rng_for("bothgap")
    p1 = moldudp64.encode_packet("S1", 1, [random_message(rng)] * 2)
    p3 = moldudp64.encode_packet("S1", 6, [random_message(rng)] * 2)
    model = check(64, [(0, p1, 2), (1, p1, 6), (1, p3, 6), (0, p3, 2)])
    assert model.counters["gaps"] == 1 and model.counters["gap_messages"] == 3


def test_overlapping_packet_delivers_only_new_messages():
    rng = rng_for("overlap")
    ms = [random_message(rng) for _ in range(6)]
    model = check(64, [(0, moldudp64.encode_packet("S1", 1, ms[:4]), 2),
                       (1, moldudp64.encode_packet("S1", 3, ms[2:]), 6)])
    assert model.counters["skipped_messages"] == 2 and model.counters["messages"] == 6


def test_session_change_only_after_end_of_session():
    rng = rng_for("sess")
    m = [random_message(rng) for _ in range(4)]
    pk = [(0, moldudp64.encode_packet("S1", 1, m[:2]), 2),
          (1, moldudp64.encode_packet("S1", 1, m[:2]), 6),  # S1 no longer provisional
          (1, moldudp64.encode_packet("STALE", 9, m[2:]), 6),  # dropped: S1 still runs
          (0, moldudp64.encode_end_of_session("S1", 3), 2),
          (0, moldudp64.encode_packet("S2", 1, m[2:]), 2)]
    model = check(64, pk, name="sess")
    assert model.counters["wrong_session"] == 1 and model.counters["sessions"] == 2


def test_runt_block_ends_packet_and_next_packet_reveals_gap():
    rng = rng_for("runt")
    good = random_message(rng)
    bad = moldudp64.encode_packet("S1", 1, [good, b"Sx"])  # 2-byte block
    model = check(64, [(0, bad, 2),
                       (0, moldudp64.encode_packet("S1", 3, [good]), 2)], name="runt")
    assert model.counters["runt_block"] == 1 and model.counters["gaps"] == 1


@pytest.mark.parametrize("width", [64, 8])
def test_truncated_packet_aborts_open_message(width):
    rng = rng_for(f"trunc{width}")
    lanes = width // 8
    pk, seq = [], 1
    for i in range(30 if width == 64 else 10):
        ms = [random_message(rng) for _ in range(rng.randint(1, 4))]
        payload = moldudp64.encode_packet("S1", seq, ms)
        # the first cut always falls inside the 20-byte header, the rest anywhere
        cut = rng.randrange(1, 20) if i == 0 else rng.randrange(1, len(payload))
        pk.append((0, payload[:cut], lane0s(rng, lanes)))
        pk.append((1, payload, lane0s(rng, lanes)))  # B brings the whole packet
        seq += len(ms)
    model = check(width, pk, name=f"trunc{width}")
    assert model.counters["bad_header"] > 0


def test_min_size_messages_back_to_back():
    s = itch.encode("S", event_code="O")
    pk = [(0, moldudp64.encode_packet("S1", 1 + 100 * i, [s] * 100), 2 + 4 * (i % 2))
          for i in range(4)]
    model = check(64, pk, name="min")
    assert model.counters["messages"] == 400


def test_heartbeat_ahead_reports_gap():
    model = check(64, [(0, moldudp64.encode_heartbeat("S1", 1), 2),
                       (1, moldudp64.encode_heartbeat("S1", 5), 6),
                       (0, moldudp64.encode_packet("S1", 5, [random_message(random.Random(1))]),
                        2)], name="hb")
    assert model.counters["gaps"] == 1 and model.counters["heartbeats"] == 2


@pytest.mark.parametrize("width", [64, 8])
def test_far_jumps_and_the_edges_of_small_differences(width):
    """Sequence differences far beyond one packet's 0xFFFF messages (the gateware decides
    those from the sign of seq - expected alone) and right at the ±2**17 edge where it
    switches to small arithmetic: gaps far ahead, packets far behind, overlaps."""
    rng = random.Random(SEED)
    msgs = [random_message(rng) for _ in range(3)]
    packets = []
    for seq, k in [(1, 3), (1 + (1 << 17), 3), (4 + (1 << 17), 2), (3, 3),
                   (4 + (1 << 17) - (1 << 17), 3), (6 + (1 << 17) - (1 << 17) + 1, 1),
                   ((1 << 40), 3), ((1 << 40) - (1 << 17) + 2, 3), ((1 << 40) + 1, 3),
                   ((1 << 40) + 4, 2), ((1 << 40) + 6 - (1 << 17) - 1, 1)]:
        packets.append((rng.randrange(2), moldudp64.encode_packet("S1", seq, msgs[:k]),
                        rng.randrange(width // 8)))
    model = check(width, packets, name="far")
    assert model.counters["gaps"] >= 2 and model.counters["dup_a"] + model.counters["dup_b"] >= 3


# --- one bad packet must not blind the feed (issue 25)

def real_session(rng, lanes, seq, n_packets, session="S1"):
    """Consecutive packets of ``session`` from ``seq`` on line A, B copying half."""
    out = []
    for _ in range(n_packets):
        ms = [random_message(rng) for _ in range(rng.randint(1, 4))]
        p = moldudp64.encode_packet(session, seq, ms)
        out.append((0, p, lane0s(rng, lanes)))
        if rng.random() < 0.5:
            out.append((1, p, lane0s(rng, lanes)))
        seq += len(ms)
    return out, seq


@pytest.mark.parametrize("width", [64, 8])
def test_a_forged_far_sequence_does_not_move_the_expected_sequence(width):
    rng = rng_for(f"forged{width}")
    lanes = width // 8
    head, seq = real_session(rng, lanes, 1, 4)
    tail, end = real_session(rng, lanes, seq, 6)
    forged = moldudp64.encode_packet("S1", 1 << 63, [random_message(rng)] * 3)
    flipped = moldudp64.encode_packet("S1", seq | 1 << 40, [random_message(rng)])
    model = check(width, head + [(0, forged, lane0s(rng, lanes)), (1, flipped, lane0s(rng, lanes))] + tail, name=f"forged{width}")
    c = model.counters
    assert c["unconfirmed"] == 2 and c["gaps"] == 0 and model.expected == end
    assert c["messages"] == end - 1  # every real message delivered


@pytest.mark.parametrize("width", [64, 8])
def test_junk_on_the_feed_port_does_not_fix_the_session(width):
    """Random datagrams before the feed (sessions and sequence numbers at random) are
    dropped; the real session, joined late (sequence far from 1), is adopted once its
    next packet confirms it, and the first packet's messages are in the gap report."""
    rng = rng_for(f"junk{width}")
    lanes = width // 8
    junk = [(rng.randrange(2), rng.randbytes(rng.randint(20, 80)), lane0s(rng, lanes))
            for _ in range(6)]
    start = 5_000_000_000
    feed, end = real_session(rng, lanes, start, 6)
    model = check(width, junk + feed, name=f"junk{width}")
    c = model.counters
    assert model.session == moldudp64.session_bytes("S1") and c["sessions"] == 1
    assert c["unconfirmed"] == 6 + 1 and model.expected == end
    assert c["gaps"] == 1 and model.candidate is None


def test_a_real_jump_is_confirmed_by_the_other_lines_copy():
    rng = rng_for("jumpb")
    head, seq = real_session(rng, 8, 1, 3)
    far = seq + DEFAULT_WINDOW + 10
    p = moldudp64.encode_packet("S1", far, [random_message(rng) for _ in range(3)])
    q = moldudp64.encode_packet("S1", far + 3, [random_message(rng)])
    model = check(64, head + [(0, p, 2), (1, p, 5), (0, q, 2)], name="jumpb")
    c = model.counters
    # A's copy waits; B's copy confirms it and delivers it whole: no message lost
    assert c["unconfirmed"] == 1 and c["gaps"] == 1 and c["gap_messages"] == far - seq
    assert model.expected == far + 4


def test_a_real_jump_is_confirmed_by_the_next_packet():
    rng = rng_for("jumpnext")
    head, seq = real_session(rng, 8, 1, 2)
    far = seq + 3 * DEFAULT_WINDOW
    p = moldudp64.encode_packet("S1", far, [random_message(rng) for _ in range(2)])
    q = moldudp64.encode_packet("S1", far + 2, [random_message(rng)])
    model = check(64, head + [(0, p, 0), (0, q, 7)], name="jumpnext")
    # the held-aside packet's two messages are reported missing, for retransmission
    assert model.counters["gaps"] == 1 and model.counters["gap_messages"] == far + 2 - seq


@pytest.mark.parametrize("width", [64, 8])
def test_sequence_numbers_stop_at_2_64_instead_of_wrapping(width):
    """The last messages of the 64-bit space are delivered once; a packet numbering
    past 2**64 - 1 is dropped as a bad header, and a packet from the wrapped range is
    old, not new."""
    rng = rng_for(f"wrap{width}")
    lanes = width // 8
    ms = [random_message(rng) for _ in range(44)]
    last = SEQ_END - 44
    pk = [(0, moldudp64.encode_packet("S1", 1, ms[:2])),
          (0, moldudp64.encode_packet("S1", last - 10, ms[:3])),  # held aside
          (1, moldudp64.encode_packet("S1", last, ms)),  # confirms: the last 44
          (0, moldudp64.encode_packet("S1", SEQ_END - 1, ms)),  # runs past the end
          (0, moldudp64.encode_packet("S1", 1, ms[:3])),  # the wrapped range
          (1, moldudp64.encode_heartbeat("S1", SEQ_END - 1))]
    pk = [(line, p, lane0s(rng, lanes)) for line, p in pk]
    model = check(width, pk, name=f"wrap{width}")
    c = model.counters
    assert c["messages"] == 2 + 44 and c["bad_header"] == 1 and c["dup_a"] == 1
    assert model.expected == SEQ_END


def test_gap_messages_saturate_instead_of_wrapping():
    rng = rng_for("satgap")
    m = random_message(rng)
    pk = []
    for session, far in (("S1", SEQ_END - 100), ("S2", 1 << 63)):
        pk += [(0, moldudp64.encode_packet(session, 1, [m]), 0),
               (0, moldudp64.encode_packet(session, far, [m]), 0),
               (1, moldudp64.encode_packet(session, far, [m]), 0),
               (0, moldudp64.encode_end_of_session(session, far + 1), 0)]
    model = check(64, pk, name="satgap")
    assert model.counters["gaps"] == 2 and model.counters["gap_messages"] == GAP_MESSAGES_MAX


@pytest.mark.parametrize("width", [64, 8])
def test_random_forgeries_among_a_lossy_feed_change_nothing_real(width):
    """Forged far sequence numbers (random, or the real one with a high bit flipped),
    foreign sessions and junk among a feed with loss, duplicates and reordering: the
    gateware agrees with the model, and the model delivers what the same feed without
    the forgeries delivers."""
    rng = rng_for(f"forgeries{width}")
    lanes = width // 8
    real, _ = session_packets(rng, lanes, 60 if width == 64 else 16)
    mixed = []
    # a different high bit for each forgery: two forgeries flipping the same bit of
    # nearby numbers would confirm each other, as two forged packets always can
    bits = rng.sample(range(21, 64), 43)
    for i, (line, p, lane0) in enumerate(real):
        mixed.append((line, p, lane0))
        r = rng.random()
        if (r < 0.1 or i == 2) and bits:  # one forgery at least (16 packets had none)
            seq = int.from_bytes(p[10:18], "big") ^ (1 << bits.pop())
            mixed.append((rng.randrange(2), p[:10] + seq.to_bytes(8, "big") + p[18:],
                          lane0s(rng, lanes)))
        elif r < 0.15:
            mixed.append((rng.randrange(2), rng.randbytes(rng.randint(20, 60)),
                          lane0s(rng, lanes)))
    clean = MoldUdpModel()
    want = [m for line, p, _ in real for m in clean.process(line, p)[0]]
    model = check(width, mixed, name=f"forgeries{width}")
    got = MoldUdpModel()
    assert [m for line, p, _ in mixed for m in got.process(line, p)[0]] == want
    assert model.counters["unconfirmed"] > 0


@pytest.mark.parametrize("width", [64, 8])
def test_a_junk_datagram_that_looks_like_a_session_start_is_replaced(width):
    """A corrupted datagram whose sequence number happens to be plausible (here 0) is
    adopted, but only provisionally: the real session's first two packets replace it.
    Once a second packet of a session is taken, one junk datagram is a wrong session."""
    rng = rng_for(f"provisional{width}")
    lanes = width // 8
    junk = rng.randbytes(10) + bytes(8) + (2).to_bytes(2, "big") + rng.randbytes(30)
    feed, seq = real_session(rng, lanes, 1, 5)
    late = rng.randbytes(10) + (seq + 1).to_bytes(8, "big") + bytes(2)
    model = check(width, [(0, junk, lane0s(rng, lanes))] + feed + [(1, late, 0)],
                  name=f"provisional{width}")
    c = model.counters
    assert model.session == moldudp64.session_bytes("S1") and c["sessions"] == 2
    assert c["unconfirmed"] == 1 and c["wrong_session"] == 1 and not model.provisional
