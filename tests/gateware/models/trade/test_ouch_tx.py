"""OUCH 5.0 and SoupBinTCP models: offsets as protocols.md gives them, and round trips."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tick2trade.protocol import ouch, soupbintcp


def offsets(table, mtype):
    return {f.name: (f.offset, f.size) for f in table[mtype].fields.values()}


def test_enter_order_layout_matches_protocols_md():
    o = offsets(ouch.INBOUND, "O")
    assert [o[k] for k in ("user_ref", "side", "quantity", "symbol", "price", "tif",
                           "display", "capacity", "iso", "cross_type", "clordid",
                           "appendage_length")] == \
        [(1, 4), (5, 1), (6, 4), (10, 8), (18, 8), (26, 1), (27, 1), (28, 1), (29, 1),
         (30, 1), (31, 14), (45, 2)]
    assert ouch.INBOUND["O"].length == 47 and ouch.INBOUND["U"].length == 40
    assert ouch.INBOUND["X"].length == 9


def test_outbound_lengths_match_protocols_md():
    assert {t: m.length for t, m in ouch.OUTBOUND.items()} == \
        {"S": 10, "A": 64, "U": 68, "C": 18, "E": 36, "J": 29}
    a = offsets(ouch.OUTBOUND, "A")
    assert a["order_ref"] == (36, 8) and a["clordid"] == (48, 14)
    e = offsets(ouch.OUTBOUND, "E")
    assert e["price"] == (17, 8) and e["match"] == (26, 8)


@given(st.integers(0, 2**32 - 1), st.sampled_from("BSTE"), st.integers(0, 2**32 - 1),
       st.integers(-2**63, 2**63 - 1), st.binary(max_size=40))
def test_enter_order_round_trip(user_ref, side, qty, price, appendage):
    raw = ouch.encode_inbound("O", appendage, user_ref=user_ref, side=side, quantity=qty,
                              symbol="BTC-USD", price=price, tif="3", clordid="abc")
    got = ouch.decode_inbound(raw)
    assert (got["user_ref"], got["side"], got["quantity"], got["price"], got["symbol"],
            got["appendage"]) == (user_ref, side, qty, price, "BTC-USD", appendage)
    assert ouch.decode_inbound(raw + b"x") is None  # disagrees with the appendage length


def test_unknown_field_and_unknown_type_are_refused():
    with pytest.raises(ValueError):
        ouch.encode_inbound("X", user_ref=1, colour="red")
    assert ouch.decode_outbound(b"Q" + bytes(20)) is None


@given(st.text("ABCDEFGHIJ", max_size=6), st.integers(0, 10**20 - 1))
def test_soupbintcp_login_round_trip_and_split(user, seq):
    pkt = soupbintcp.encode("L", username=user, password="pw", session="S1", sequence=seq)
    assert len(pkt) == 2 + 47
    stream = pkt + soupbintcp.encode("R") + pkt[:5]
    packets, rest = soupbintcp.split(stream)
    assert rest == pkt[:5] and len(packets) == 2
    got = soupbintcp.decode(packets[0])
    assert (got["username"], got["sequence"], got["session"]) == (user, seq, "S1")
    assert soupbintcp.decode(packets[1]) == {"type": "R"}


def test_soupbintcp_rejects_garbage_with_a_reason():
    for bad, why in ((b"", "empty"), (b"\x01", "unknown"), (b"A" + bytes(3), "must be")):
        with pytest.raises(soupbintcp.PacketError, match=why):
            soupbintcp.decode(bad)
    with pytest.raises(soupbintcp.PacketError):
        soupbintcp.split(b"\x00\x00")
