"""Property tests of the protocol models the gateware is judged against."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tick2trade.protocol import frames, itch, moldudp64
from tick2trade.gateware.models.rx.moldudp import MoldUdpModel

# lengths published in the ITCH 5.0 specification, independent of our table
SPEC_LENGTHS = {"S": 12, "R": 39, "H": 25, "Y": 20, "L": 26, "V": 35, "W": 12, "K": 28,
                "J": 35, "h": 21, "A": 36, "F": 40, "E": 31, "C": 36, "X": 23, "D": 19,
                "U": 35, "P": 44, "Q": 40, "B": 19, "I": 50, "N": 20, "O": 48}


def test_table_lengths_match_the_specification():
    assert {t: m.length for t, m in itch.MESSAGES.items()} == SPEC_LENGTHS


def test_add_order_offsets_match_protocols_md():
    f = itch.MESSAGES["A"].fields
    assert [(f[n].offset, f[n].size) for n in ("order_ref", "side", "shares", "stock",
                                                "price")] == \
        [(11, 8), (19, 1), (20, 4), (24, 8), (32, 4)]
    u = itch.MESSAGES["U"].fields
    assert (u["new_ref"].offset, u["shares"].offset, u["price"].offset) == (19, 27, 31)


@st.composite
def messages(draw):
    mtype = draw(st.sampled_from(sorted(itch.MESSAGES)))
    values = {}
    for f in itch.MESSAGES[mtype].fields.values():
        if f.kind == "u":
            values[f.name] = draw(st.integers(0, (1 << (8 * f.size)) - 1))
        else:
            values[f.name] = draw(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789",
                                          max_size=f.size))
    return mtype, values


@given(messages())
def test_itch_round_trip(msg):
    mtype, values = msg
    raw = itch.encode(mtype, **values)
    assert len(raw) == SPEC_LENGTHS[mtype]
    back = itch.decode(raw)
    for k, v in values.items():
        assert back[k] == (v.rstrip(" ") if isinstance(v, str) else v)
    ev = itch.to_event(raw, seq=7)
    assert ev.type == mtype and ev.seq == 7 and ev.locate == values["locate"]
    assert itch.decode(raw + b"x") is None and itch.decode(raw[:-1]) is None


@given(st.lists(st.binary(min_size=12, max_size=60), max_size=30),
       st.integers(1, (1 << 63)))
def test_moldudp64_round_trip(msgs, seq):
    pkt = moldudp64.decode_packet(moldudp64.encode_packet("SESSION", seq, msgs))
    assert (pkt.seq, pkt.count, pkt.messages, pkt.complete) == (seq, len(msgs), msgs, True)
    assert pkt.session == b"SESSION   "


@settings(max_examples=50)
@given(st.binary(max_size=400), st.one_of(st.none(), st.integers(0, 4095)),
       st.integers(0, 10))
def test_frame_round_trip(payload, vlan, opt_words):
    fr = frames.build_udp_frame("233.54.12.111", 26477, payload, vlan=vlan,
                                ip_options=bytes(4 * opt_words))
    dg = frames.parse_udp_frame(fr)
    assert dg.payload == payload and not dg.truncated and dg.dst_port == 26477
    # any single flipped bit in the IP header is caught by the checksum (or an earlier check)
    l3 = 18 if vlan is not None else 14
    for bit in (0, 77, 150):
        bad = bytearray(fr)
        bad[l3 + bit // 8 % 20] ^= 1 << (bit % 8)
        assert isinstance(frames.parse_udp_frame(bytes(bad)), str)


def test_sequence_model_first_copy_wins():
    m = MoldUdpModel()
    a = moldudp64.encode_packet("S", 1, [b"S" + bytes(11)] * 3)
    got_a, _ = m.process(0, a)
    got_b, _ = m.process(1, a)
    assert len(got_a) == 3 and got_b == [] and m.counters["dup_b"] == 1


def test_encode_event_inverts_to_event():
    from tick2trade.protocol.itch import encode_event, to_event
    from tick2trade.testing.traffic import random_message

    rng = random.Random(7)
    for mtype in itch.MESSAGES:
        for _ in range(20):
            ev = to_event(random_message(rng, mtype), seq=5)
            again = to_event(encode_event(ev), seq=5)
            assert again == ev, mtype
