"""Table-driven binary messages: one layout per message type, from which the encoder, the
decoder and the gateware's field offsets all follow (ITCH, OUCH and SoupBinTCP use it).

A message is a one-byte ASCII type followed by fixed-size fields; integers are big-endian
("u" unsigned, "i" signed two's complement), alpha fields ("a") ASCII, left-justified and
space-padded.
"""

from __future__ import annotations

from dataclasses import dataclass

Body = tuple[tuple[str, int, str], ...]


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    size: int
    kind: str


@dataclass(frozen=True)
class Message:
    type: str
    name: str
    length: int
    fields: dict[str, Field]


def build(bodies: dict[str, tuple[str, Body]], header: Body = ()) -> dict[str, Message]:
    """{type: Message} from {type: (name, body fields)}; ``header`` fields come first."""
    table = {}
    for mtype, (name, body) in bodies.items():
        fields, offset = {}, 1
        for fname, size, kind in header + body:
            fields[fname] = Field(fname, offset, size, kind)
            offset += size
        table[mtype] = Message(mtype, name, offset, fields)
    return table


def encode(protocol: str, msg: Message, values: dict, computed: dict | None = None) -> bytes:
    """Type byte + every field of ``msg``; fields not given are 0 or spaces. ``computed``
    holds values the caller derives (e.g. an appendage length) and the user may not set."""
    computed = computed or {}
    unknown = set(values) - set(msg.fields) - set(computed)
    if unknown:
        raise ValueError(f"{protocol} {msg.type!r} ({msg.name}) has no field(s) "
                         f"{sorted(unknown)}")
    out = bytearray(msg.type.encode("ascii"))
    for f in msg.fields.values():
        v = computed[f.name] if f.name in computed else values.get(f.name)
        if f.kind in "ui":
            out += int(v or 0).to_bytes(f.size, "big", signed=f.kind == "i")
        else:
            raw = v.encode("ascii") if isinstance(v, str) else bytes(v or b"")
            if len(raw) > f.size:
                raise ValueError(f"{protocol} {msg.type}.{f.name}: {raw!r} longer than "
                                 f"{f.size}")
            out += raw.ljust(f.size, b" ")
    return bytes(out)


def decode(msg: Message, raw: bytes) -> dict:
    """{field: value} of ``raw`` laid out as ``msg`` (alpha fields as stripped str)."""
    out: dict = {"type": msg.type}
    for f in msg.fields.values():
        chunk = raw[f.offset:f.offset + f.size]
        if f.kind in "ui":
            out[f.name] = int.from_bytes(chunk, "big", signed=f.kind == "i")
        else:
            out[f.name] = chunk.decode("latin-1").rstrip(" ")
    return out
