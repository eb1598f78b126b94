"""SoupBinTCP 3.0: packet table, encoder, decoder and a stream splitter.

Every packet is a 2-byte big-endian length (counting the bytes after itself), a 1-byte
packet type and a payload. ``PACKETS`` is the one definition of each payload's layout;
the venue simulator, the host's order session and the tests take their offsets from it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

LENGTH = 2
MAX_PACKET = 0xFFFF  # the length field's largest value
HEARTBEAT_SECONDS = 1.0  # send a heartbeat after this long without sending anything
TIMEOUT_SECONDS = 15.0  # a peer silent for this long is gone

# Payload fields: (name, size, kind); kind "a" alpha (left-justified, space padded),
# "n" numeric ASCII (right-justified, space padded), "*" the rest of the packet (last).
_PAYLOADS: dict[str, tuple[str, str, tuple[tuple[str, int, str], ...]]] = {
    "+": ("debug", "both", (("text", 0, "*"),)),
    "A": ("login_accepted", "server", (("session", 10, "a"), ("sequence", 20, "n"))),
    "J": ("login_rejected", "server", (("reason", 1, "a"),)),
    "S": ("sequenced_data", "server", (("message", 0, "*"),)),
    "H": ("server_heartbeat", "server", ()),
    "Z": ("end_of_session", "server", ()),
    "L": ("login_request", "client", (
        ("username", 6, "a"), ("password", 10, "a"), ("session", 10, "a"),
        ("sequence", 20, "n"))),
    "U": ("unsequenced_data", "both", (("message", 0, "*"),)),
    "R": ("client_heartbeat", "client", ()),
    "O": ("logout_request", "client", ()),
}

# Login Rejected reasons.
NOT_AUTHORIZED = "A"
SESSION_NOT_AVAILABLE = "S"


@dataclass(frozen=True)
class Field:
    name: str
    offset: int  # from the packet type byte
    size: int  # 0 for the variable tail
    kind: str


@dataclass(frozen=True)
class PacketType:
    type: str
    name: str
    direction: str  # "server", "client" or "both"
    fields: dict[str, Field]
    length: int | None  # bytes after the length field; None when variable


def _build() -> dict[str, PacketType]:
    table = {}
    for ptype, (name, direction, body) in _PAYLOADS.items():
        fields, offset, variable = {}, 1, False
        for fname, size, kind in body:
            fields[fname] = Field(fname, offset, size, kind)
            offset += size
            variable = variable or kind == "*"
        table[ptype] = PacketType(ptype, name, direction, fields, None if variable else offset)
    return table


PACKETS: dict[str, PacketType] = _build()


def encode(ptype: str, **values: int | str | bytes) -> bytes:
    """One packet with its length prefix; fields not given are blank (alpha), 0 (numeric)
    or empty (the variable tail)."""
    packet = PACKETS[ptype]
    unknown = set(values) - set(packet.fields)
    if unknown:
        raise ValueError(f"SoupBinTCP {ptype!r} has no field(s) {sorted(unknown)}")
    body = bytearray(ptype.encode("ascii"))
    for f in packet.fields.values():
        v = values.get(f.name)
        if f.kind == "n":
            raw = str(int(v or 0)).encode("ascii").rjust(f.size, b" ")
        else:
            raw = v.encode("ascii") if isinstance(v, str) else bytes(v or b"")
            if f.kind == "a":
                raw = raw.ljust(f.size, b" ")
        if f.size and len(raw) > f.size:
            raise ValueError(f"SoupBinTCP {ptype}.{f.name}: {v!r} longer than {f.size}")
        body += raw
    if len(body) > MAX_PACKET:
        raise ValueError(f"SoupBinTCP packet of {len(body)} bytes (max {MAX_PACKET})")
    return struct.pack("!H", len(body)) + bytes(body)


class PacketError(ValueError):
    """A packet that is not SoupBinTCP: the reason is the message."""


def decode(body: bytes) -> dict:
    """Decode one packet *without* its length prefix (type byte first) into
    {"type": ..., field: value}: alpha as stripped str, numeric as int, tails as bytes.
    Raises :class:`PacketError` for an unknown type, a wrong length or a bad number."""
    if not body:
        raise PacketError("empty packet (length 0)")
    packet = PACKETS.get(chr(body[0]))
    if packet is None:
        raise PacketError(f"unknown packet type 0x{body[0]:02x}")
    if packet.length is not None and len(body) != packet.length:
        raise PacketError(f"packet {packet.type!r} ({packet.name}) is {len(body)} bytes, "
                          f"must be {packet.length}")
    out: dict = {"type": packet.type}
    for f in packet.fields.values():
        if f.kind == "*":
            out[f.name] = bytes(body[f.offset:])
            continue
        raw = bytes(body[f.offset:f.offset + f.size])
        text = raw.decode("latin-1")
        if f.kind == "a":
            out[f.name] = text.rstrip(" ")
        else:
            digits = text.strip(" ")
            if not digits:
                out[f.name] = 0
            elif digits.isdigit() and digits.isascii():
                out[f.name] = int(digits)
            else:
                raise PacketError(f"packet {packet.type!r} field {f.name}: {raw!r} is not "
                                  f"a number")
    return out


def split(buffer: bytes | bytearray) -> tuple[list[bytes], bytes]:
    """Cut a byte stream into whole packets (without their length prefix) and the
    incomplete rest. A zero length raises :class:`PacketError` (it is never valid)."""
    packets, pos, n = [], 0, len(buffer)
    while pos + LENGTH <= n:
        length = (buffer[pos] << 8) | buffer[pos + 1]
        if length == 0:
            raise PacketError("packet length 0")
        if pos + LENGTH + length > n:
            break
        packets.append(bytes(buffer[pos + LENGTH:pos + LENGTH + length]))
        pos += LENGTH + length
    return packets, bytes(buffer[pos:])
