"""OUCH 5.0 and SoupBinTCP models: offsets as in protocols.md, round trips, bad input."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tick2trade.protocol import ouch, soupbintcp

ALPHA = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=14)


def field_values(msg, draw):
    values = {}
    for f in msg.fields.values():
        if f.name == "appendage_length":
            continue
        if f.kind == "u":
            values[f.name] = draw(st.integers(0, 2 ** (8 * f.size) - 1))
        elif f.kind == "i":
            values[f.name] = draw(st.integers(-2 ** 63, 2 ** 63 - 1))
        else:
            values[f.name] = draw(ALPHA.filter(lambda s, n=f.size: len(s) <= n))
    return values


@st.composite
def ouch_messages(draw, table):
    msg = table[draw(st.sampled_from(sorted(table)))]
    values = field_values(msg, draw)
    appendage = b""
    if ouch.has_appendage(msg):
        options = draw(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=9)),
                                max_size=3))
        appendage = ouch.encode_options(options)
    return msg, values, appendage


@given(ouch_messages(ouch.INBOUND))
def test_inbound_round_trip(case):
    msg, values, appendage = case
    raw = ouch.encode_inbound(msg.type, appendage, **values)
    assert len(raw) == msg.length + len(appendage)
    out = ouch.decode_inbound(raw)
    assert out == {"type": msg.type, **values, **({"appendage_length": len(appendage),
                                                   "appendage": appendage}
                                                  if ouch.has_appendage(msg) else {})}
    if ouch.has_appendage(msg):
        assert ouch.encode_options(ouch.decode_options(out["appendage"])) == appendage
    assert ouch.decode_inbound(raw[:-1]) is None
    assert ouch.decode_inbound(raw + b"\0") is None


@given(ouch_messages(ouch.OUTBOUND))
def test_outbound_round_trip(case):
    msg, values, appendage = case
    raw = ouch.encode_outbound(msg.type, appendage, **values)
    out = ouch.decode_outbound(raw)
    assert {k: out[k] for k in values} == values and out["type"] == msg.type
    assert ouch.decode_outbound(raw[:-1]) is None


# protocols.md, "OUCH 5.0": (type, total length without appendage, {field: offset}).
OFFSETS_IN = [
    ("O", 47, {"user_ref": 1, "side": 5, "quantity": 6, "symbol": 10, "price": 18,
               "tif": 26, "display": 27, "capacity": 28, "iso": 29, "cross_type": 30,
               "clordid": 31, "appendage_length": 45}),
    ("U", 40, {"orig_user_ref": 1, "user_ref": 5, "quantity": 9, "price": 13, "tif": 21,
               "display": 22, "iso": 23, "clordid": 24, "appendage_length": 38}),
    ("X", 9, {"user_ref": 1, "quantity": 5}),
]
OFFSETS_OUT = [
    ("S", 10, {"timestamp": 1, "event_code": 9}),
    ("A", 64, {"user_ref": 9, "side": 13, "quantity": 14, "symbol": 18, "price": 26,
               "tif": 34, "display": 35, "order_ref": 36, "capacity": 44, "iso": 45,
               "cross_type": 46, "order_state": 47, "clordid": 48, "appendage_length": 62}),
    ("U", 68, {"orig_user_ref": 9, "user_ref": 13, "side": 17, "order_ref": 40,
               "clordid": 52, "appendage_length": 66}),
    ("C", 18, {"user_ref": 9, "quantity": 13, "reason": 17}),
    ("E", 36, {"user_ref": 9, "quantity": 13, "price": 17, "liquidity": 25, "match": 26,
               "appendage_length": 34}),
    ("J", 29, {"user_ref": 9, "reason": 13, "clordid": 15}),
]


@pytest.mark.parametrize("table,mtype,length,offsets",
                         [(ouch.INBOUND, *o) for o in OFFSETS_IN]
                         + [(ouch.OUTBOUND, *o) for o in OFFSETS_OUT])
def test_offsets_are_the_specs(table, mtype, length, offsets):
    msg = table[mtype]
    assert msg.length == length
    for name, offset in offsets.items():
        assert msg.fields[name].offset == offset, name


def test_enter_order_bytes_by_hand():
    raw = ouch.encode_inbound("O", user_ref=7, side="B", quantity=100, symbol="BTC-USD",
                              price=-12345, tif=ouch.TIF_IOC, display="Y", capacity="A",
                              iso="N", cross_type="N", clordid="abc")
    assert raw[:10] == b"O" + struct.pack("!I", 7) + b"B" + struct.pack("!I", 100)
    assert raw[10:18] == b"BTC-USD " and raw[18:26] == struct.pack("!q", -12345)
    assert raw[26:31] == b"3YANN" and raw[31:45] == b"abc".ljust(14) and raw[45:] == b"\0\0"


def test_bad_ouch_input_decodes_to_none():
    assert ouch.decode_inbound(b"") is None
    assert ouch.decode_inbound(b"Q" + bytes(20)) is None
    good = ouch.encode_inbound("O", b"\x02\x05\x00")
    assert ouch.decode_inbound(good[:-1]) is None  # appendage shorter than its length
    assert ouch.decode_options(b"\x05\x01") is None
    assert ouch.decode_options(b"\x00") is None


@st.composite
def soup_packets(draw):
    ptype = draw(st.sampled_from(sorted(soupbintcp.PACKETS)))
    values = {}
    for f in soupbintcp.PACKETS[ptype].fields.values():
        if f.kind == "n":
            values[f.name] = draw(st.integers(0, 10 ** 20 - 1))
        elif f.kind == "a":
            values[f.name] = draw(ALPHA.filter(lambda s, n=f.size: len(s) <= n))
        else:
            values[f.name] = draw(st.binary(max_size=80))
    return ptype, values


@given(st.lists(soup_packets(), max_size=8), st.integers(0, 40))
def test_soupbintcp_round_trip_through_a_cut_stream(packets, cut):
    stream = b"".join(soupbintcp.encode(t, **v) for t, v in packets)
    cut = min(cut, len(stream))
    first, rest = soupbintcp.split(stream[:cut])
    second, tail = soupbintcp.split(rest + stream[cut:])
    assert tail == b""
    decoded = [soupbintcp.decode(p) for p in first + second]
    assert decoded == [{"type": t, **v} for t, v in packets]


def test_soupbintcp_layouts():
    login = soupbintcp.encode("L", username="ALICE", password="secret", session="",
                              sequence=1)
    assert login == struct.pack("!H", 47) + b"LALICE secret    " + b" " * 10 + b" " * 19 + b"1"
    accepted = soupbintcp.encode("A", session="SESS01", sequence=42)
    assert accepted[:3] == b"\x00\x1fA" and accepted[13:] == b"42".rjust(20)
    assert soupbintcp.encode("H") == b"\x00\x01H"
    assert soupbintcp.encode("J", reason=soupbintcp.NOT_AUTHORIZED) == b"\x00\x02JA"


@pytest.mark.parametrize("body,reason", [
    (b"", "length 0"), (b"Q", "unknown packet type"), (b"Hx", "must be 1"),
    (b"A" + b" " * 10 + b"x" * 20, "not a number"), (b"J", "must be 2"),
])
def test_soupbintcp_bad_packets_raise_with_a_reason(body, reason):
    with pytest.raises(soupbintcp.PacketError, match=reason):
        soupbintcp.decode(body)


def test_split_refuses_a_zero_length():
    with pytest.raises(soupbintcp.PacketError):
        soupbintcp.split(b"\x00\x01H\x00\x00")
