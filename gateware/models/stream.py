"""Cutting byte strings into lane-preserving beats (see ``gateware.stream``).

Used by testbenches to drive the stages and by the tests to state, beat by beat, what a
stage must emit.
"""

from __future__ import annotations

from dataclasses import dataclass

from tick2trade.protocol import itch


@dataclass(frozen=True)
class Beat:
    data: int
    be: int
    first: bool
    last: bool


def frame_beats(frame: bytes, lanes: int, lane0: int = 0) -> list[Beat]:
    """Beats of a packet whose first byte sits in lane ``lane0``."""
    if not frame:
        raise ValueError("empty packet")
    padded = bytes(lane0) + frame
    out = []
    for start in range(0, len(padded), lanes):
        chunk = padded[start:start + lanes]
        be = 0
        for i in range(len(chunk)):
            if start + i >= lane0:
                be |= 1 << i
        out.append(Beat(int.from_bytes(chunk, "little"), be, start == 0,
                        start + lanes >= len(padded)))
    return out


@dataclass(frozen=True)
class MsgBeat:
    data: int
    msg: int
    sop: int
    eop: int
    abort: bool
    seq: int


def message_beats(payload: bytes, lane0: int, lanes: int,
                  messages: list[tuple[int, int, int, bool]]) -> list[MsgBeat]:
    """The message beats a packet yields.

    ``payload`` is the UDP payload, its first byte in lane ``lane0``; ``messages`` lists
    each delivered message as (sequence, first payload offset, length actually present,
    aborted). An aborted message has at least one byte present; its abort is flagged on
    the beat holding that last byte. Beats without any message lane are not emitted.
    """
    n = len(payload)
    role = [None] * n  # per payload byte: (message index, offset in message)
    for k, (_seq, start, length, _aborted) in enumerate(messages):
        for o in range(length):
            role[start + o] = (k, o)
    out = []
    seq = 0
    for b0 in range(-lane0, n, lanes):
        msg = sop = eop = 0
        abort = False
        for i in range(lanes):
            p = b0 + i
            if not 0 <= p < n or role[p] is None:
                continue
            k, o = role[p]
            mseq, _start, length, aborted = messages[k]
            msg |= 1 << i
            if o == 0:
                sop |= 1 << i
                seq = mseq
            if o == length - 1 and not aborted:
                eop |= 1 << i
            if aborted and o == length - 1:
                abort = True
        if not msg:
            continue
        chunk = bytes(max(0, -b0)) + payload[max(0, b0):b0 + lanes]
        out.append(MsgBeat(int.from_bytes(chunk.ljust(lanes, b"\x00"), "little"),
                           msg, sop, eop, abort, seq))
    return out


def min_message_frame_payload(count: int, session: str = "BENCH", seq: int = 1) -> bytes:
    """A MoldUDP64 payload packed with the shortest ITCH message (12-byte system event)."""
    from tick2trade.protocol import moldudp64

    m = itch.encode("S", event_code="O")
    return moldudp64.encode_packet(session, seq, [m] * count)


def beats_to_frames(beats, lanes: int) -> tuple[list[bytes], bytes]:
    """Whole frames from (data, be, first, last) beats, bytes taken where ``be`` is set;
    returns (frames, bytes of an unfinished frame at the end)."""
    out: list[bytes] = []
    open_frame = bytearray()
    for data, be, first, last in beats:
        if first:
            open_frame = bytearray()
        raw = int(data).to_bytes(lanes, "little")
        open_frame += bytes(raw[k] for k in range(lanes) if int(be) >> k & 1)
        if last:
            out.append(bytes(open_frame))
            open_frame = bytearray()
    return out, bytes(open_frame)
