"""MoldUDP64 downstream packets and retransmission requests: encoder and decoder."""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = 20
SESSION_LEN = 10
HEARTBEAT = 0
END_OF_SESSION = 0xFFFF
MAX_COUNT = 0xFFFE


def session_bytes(session: str | bytes) -> bytes:
    raw = session.encode("ascii") if isinstance(session, str) else bytes(session)
    if len(raw) > SESSION_LEN:
        raise ValueError(f"session {session!r} is longer than {SESSION_LEN} bytes")
    return raw.ljust(SESSION_LEN, b" ")


def encode_packet(session: str | bytes, seq: int, messages: list[bytes]) -> bytes:
    """A downstream packet carrying ``messages`` starting at sequence ``seq``."""
    if len(messages) > MAX_COUNT:
        raise ValueError(f"{len(messages)} messages do not fit one packet (max {MAX_COUNT})")
    blocks = b"".join(struct.pack("!H", len(m)) + m for m in messages)
    return session_bytes(session) + struct.pack("!QH", seq, len(messages)) + blocks


def encode_heartbeat(session: str | bytes, next_seq: int) -> bytes:
    return session_bytes(session) + struct.pack("!QH", next_seq, HEARTBEAT)


def encode_end_of_session(session: str | bytes, next_seq: int) -> bytes:
    return session_bytes(session) + struct.pack("!QH", next_seq, END_OF_SESSION)


def encode_request(session: str | bytes, seq: int, count: int) -> bytes:
    """A retransmission request for ``count`` messages from ``seq``."""
    return session_bytes(session) + struct.pack("!QH", seq, count)


@dataclass(frozen=True)
class Packet:
    session: bytes
    seq: int
    count: int
    messages: list[bytes]  # complete blocks only, at most ``count``
    complete: bool  # every one of ``count`` blocks was present


_HEAD = struct.Struct("!QH")


def decode_packet(payload: bytes) -> Packet | None:
    """Decode a downstream packet; None when it is shorter than the header."""
    size = len(payload)
    if size < HEADER:
        return None
    seq, count = _HEAD.unpack_from(payload, SESSION_LEN)
    messages: list[bytes] = []
    append = messages.append  # the software feed decodes every packet: kept lean
    pos = HEADER
    n = 0 if count == END_OF_SESSION else count
    for _ in range(n):
        start = pos + 2
        if start > size:
            break
        end = start + (payload[pos] << 8 | payload[pos + 1])
        if end > size:
            break
        append(payload[start:end])
        pos = end
    return Packet(payload[:SESSION_LEN], seq, count, messages, len(messages) == n)

# NASDAQ TotalView-ITCH's published MoldUDP64 groups for lines A and B: the defaults of the
# venue simulator, `t2t replay` and the demo configuration.
DEFAULT_LINE_A = ("233.54.12.111", 26477)
DEFAULT_LINE_B = ("233.49.196.111", 26477)
