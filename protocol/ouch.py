"""NASDAQ OUCH 5.0: message tables, encoder and decoder, codes.

``INBOUND`` (client → venue: Enter, Replace, Cancel) and ``OUTBOUND`` (venue → client:
System Event, Accepted, Replaced, Canceled, Executed, Rejected) are the one definition of
each message's layout; the type letters overlap between the directions (``U`` is Replace
Order inbound and Order Replaced outbound), so each direction has its own table. Messages
travel inside SoupBinTCP packets (``protocol.soupbintcp``).

Prices are signed 8-byte integers with 4 implied decimals. Enter, Replace, Accepted,
Replaced and Executed end in a 2-byte appendage length and that many bytes of TLV options
(:func:`encode_options` / :func:`decode_options`).
"""

from __future__ import annotations

from tick2trade.protocol import msgtable
from tick2trade.protocol.msgtable import Message

# (name, size, kind); kind "u" unsigned big-endian, "i" signed big-endian, "a" alpha.
_ACCEPTED_TAIL = (
    ("side", 1, "a"), ("quantity", 4, "u"), ("symbol", 8, "a"), ("price", 8, "i"),
    ("tif", 1, "a"), ("display", 1, "a"), ("order_ref", 8, "u"), ("capacity", 1, "a"),
    ("iso", 1, "a"), ("cross_type", 1, "a"), ("order_state", 1, "a"),
    ("clordid", 14, "a"), ("appendage_length", 2, "u"))

_INBOUND = {
    "O": ("enter_order", (
        ("user_ref", 4, "u"), ("side", 1, "a"), ("quantity", 4, "u"), ("symbol", 8, "a"),
        ("price", 8, "i"), ("tif", 1, "a"), ("display", 1, "a"), ("capacity", 1, "a"),
        ("iso", 1, "a"), ("cross_type", 1, "a"), ("clordid", 14, "a"),
        ("appendage_length", 2, "u"))),
    "U": ("replace_order", (
        ("orig_user_ref", 4, "u"), ("user_ref", 4, "u"), ("quantity", 4, "u"),
        ("price", 8, "i"), ("tif", 1, "a"), ("display", 1, "a"), ("iso", 1, "a"),
        ("clordid", 14, "a"), ("appendage_length", 2, "u"))),
    "X": ("cancel_order", (("user_ref", 4, "u"), ("quantity", 4, "u"))),
}

_OUTBOUND = {
    "S": ("system_event", (("timestamp", 8, "u"), ("event_code", 1, "a"))),
    "A": ("order_accepted", (("timestamp", 8, "u"), ("user_ref", 4, "u")) + _ACCEPTED_TAIL),
    "U": ("order_replaced", (
        ("timestamp", 8, "u"), ("orig_user_ref", 4, "u"), ("user_ref", 4, "u"))
        + _ACCEPTED_TAIL),
    "C": ("order_canceled", (
        ("timestamp", 8, "u"), ("user_ref", 4, "u"), ("quantity", 4, "u"),
        ("reason", 1, "a"))),
    "E": ("order_executed", (
        ("timestamp", 8, "u"), ("user_ref", 4, "u"), ("quantity", 4, "u"),
        ("price", 8, "i"), ("liquidity", 1, "a"), ("match", 8, "u"),
        ("appendage_length", 2, "u"))),
    "J": ("rejected", (
        ("timestamp", 8, "u"), ("user_ref", 4, "u"), ("reason", 2, "u"),
        ("clordid", 14, "a"))),
}

# Codes (OUCH 5.0 values; the venue's own additions are marked).
SIDES = ("B", "S", "T", "E")  # buy, sell, sell short, sell short exempt
TIF_DAY, TIF_IOC, TIF_GTX, TIF_GTT, TIF_AFTER_HOURS = "0", "3", "5", "6", "E"
# This venue's additions, numbered as FIX TimeInForce (which OUCH 5.0's codes follow):
TIF_GTC, TIF_FOK = "1", "4"
# OUCH 4.x's market price ($214,748.3647), kept by this venue to mean "market order".
MARKET_PRICE = 0x7FFFFFFF
DISPLAY_VISIBLE, DISPLAY_HIDDEN = "Y", "N"
STATE_LIVE, STATE_DEAD = "L", "D"
LIQUIDITY_ADDED, LIQUIDITY_REMOVED = "A", "R"
EVENT_START_OF_DAY, EVENT_END_OF_DAY = "S", "E"
CANCEL_REASONS = {
    "U": "user requested", "I": "immediate or cancel (also a killed fill-or-kill)",
    "T": "timeout", "S": "supervisory", "D": "regulatory restriction",
    "Q": "self-match prevention", "Z": "system cancel", "E": "closed (end of day)",
}
# Rejected reason codes: this venue's table (a venue publishes its own list).
REJECT_REASONS = {
    1: "unknown symbol",
    2: "invalid quantity (zero, above the maximum, or not a whole number of lots)",
    3: "invalid price (zero, negative, above the maximum, or not a multiple of the tick)",
    4: "invalid side",
    5: "invalid time in force",
    6: "UserRefNum not above the previous one",
    7: "unknown original order (replace)",
    8: "closed (no trading session)",
    9: "invalid display",
    10: "market order may not be replaced",
}


INBOUND: dict[str, Message] = msgtable.build(_INBOUND)
OUTBOUND: dict[str, Message] = msgtable.build(_OUTBOUND)


def has_appendage(msg: Message) -> bool:
    """The message ends in an appendage length and that many bytes of options."""
    return "appendage_length" in msg.fields


def _encode(table: dict[str, Message], mtype: str, appendage: bytes,
            values: dict) -> bytes:
    msg = table[mtype]
    if appendage and not has_appendage(msg):
        raise ValueError(f"OUCH {mtype!r} ({msg.name}) takes no appendage")
    computed = {"appendage_length": len(appendage)} if has_appendage(msg) else {}
    return msgtable.encode("OUCH", msg, values, computed) + appendage


def _decode(table: dict[str, Message], raw: bytes) -> dict | None:
    msg = table.get(chr(raw[0])) if raw else None
    if msg is None or len(raw) < msg.length:
        return None
    out = msgtable.decode(msg, raw)
    extra = len(raw) - msg.length
    if has_appendage(msg):
        if out["appendage_length"] != extra:
            return None
        out["appendage"] = bytes(raw[msg.length:])
    elif extra:
        return None
    return out


def encode_inbound(mtype: str, appendage: bytes = b"", **values: int | str | bytes) -> bytes:
    """A client → venue message; fields not given are 0 / blank. The appendage length is
    set from ``appendage``."""
    return _encode(INBOUND, mtype, appendage, values)


def encode_outbound(mtype: str, appendage: bytes = b"", **values: int | str | bytes) -> bytes:
    """A venue → client message; fields not given are 0 / blank."""
    return _encode(OUTBOUND, mtype, appendage, values)


def decode_inbound(raw: bytes) -> dict | None:
    """{field: value} of a client → venue message (alpha as stripped str, appendage as
    bytes); None for an unknown type or a length that disagrees with the table and the
    appendage length."""
    return _decode(INBOUND, raw)


def decode_outbound(raw: bytes) -> dict | None:
    """{field: value} of a venue → client message; None as for :func:`decode_inbound`."""
    return _decode(OUTBOUND, raw)


def encode_options(options: list[tuple[int, bytes]]) -> bytes:
    """TLV appendage: per option a length byte (tag + value), the tag, the value."""
    out = bytearray()
    for tag, value in options:
        if len(value) + 1 > 255:
            raise ValueError(f"OUCH option {tag}: {len(value)} bytes is too long")
        out += bytes([len(value) + 1, tag]) + value
    return bytes(out)


def decode_options(raw: bytes) -> list[tuple[int, bytes]] | None:
    """The options of an appendage; None when an option runs past the end or is empty."""
    options, pos = [], 0
    while pos < len(raw):
        length = raw[pos]
        if length == 0 or pos + 1 + length > len(raw):
            return None
        options.append((raw[pos + 1], bytes(raw[pos + 2:pos + 1 + length])))
        pos += 1 + length
    return options
