"""Golden model of ``moldudp``: sessions, sequence numbers, A/B arbitration and gaps."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tick2trade.protocol import itch, moldudp64


MOLD_COUNTERS = ("packets", "heartbeats", "end_of_session", "dup_a", "dup_b", "gaps",
                 "gap_messages", "bad_header", "wrong_session", "sessions", "runt_block",
                 "messages", "skipped_messages")


@dataclass(frozen=True)
class Gap:
    line: int
    session: bytes
    first: int
    count: int


@dataclass(frozen=True)
class MoldMessage:
    seq: int
    raw: bytes
    aborted: bool  # the packet ended inside this message


class MoldUdpModel:
    """Session and sequence tracking with A/B arbitration.

    One expected sequence number ``expected`` serves both lines: the first copy of each
    message wins, whichever line brings it. Rules, per packet of session ``s``, first
    sequence ``S`` and count ``N``:

    * shorter than the 20-byte header: dropped (``bad_header``);
    * no session yet, or the current one has ended (end-of-session seen): ``s`` is
      adopted and ``expected`` restarts at 1 (``sessions``); another session while the
      current one runs is dropped (``wrong_session``) — a stale line cannot reset us;
    * ``S > expected``: a gap event (line, session, first=expected, count=S-expected);
    * heartbeat (N=0) and end-of-session (N=0xFFFF) carry the next sequence number;
    * ``S + N <= expected``: every message was already seen: dropped (``dup_a``/``dup_b``);
    * otherwise message ``S+j`` is delivered if ``S+j >= expected`` (older ones in an
      overlapping packet are ``skipped_messages``);
    * a block shorter than the shortest ITCH message (12) ends the packet (``runt_block``):
      it cannot be an ITCH message and cannot be parsed at line rate;
    * a block cut by the end of the packet is delivered as far as it goes, marked
      aborted (nothing is delivered when not one of its bytes arrived);
    * ``expected`` moves to ``S + (whole blocks received)``, so messages lost to a
      truncated or short packet show up as a gap on the next packet.
    """

    def __init__(self):
        self.counters = Counter({k: 0 for k in MOLD_COUNTERS})
        self.session: bytes | None = None
        self.ended = False
        self.expected = 1

    def process(self, line: int, payload: bytes) -> tuple[list[MoldMessage], list[Gap]]:
        c = self.counters
        out: list[MoldMessage] = []
        gaps: list[Gap] = []
        c["packets"] += 1
        if len(payload) < moldudp64.HEADER:
            c["bad_header"] += 1
            return out, gaps
        session = payload[:moldudp64.SESSION_LEN]
        seq = int.from_bytes(payload[10:18], "big")
        count = int.from_bytes(payload[18:20], "big")
        if self.session is None or (self.ended and session != self.session):
            self.session, self.ended, self.expected = session, False, 1
            c["sessions"] += 1
        elif session != self.session:
            c["wrong_session"] += 1
            return out, gaps
        if seq > self.expected:
            gaps.append(Gap(line, session, self.expected, seq - self.expected))
            c["gaps"] += 1
            c["gap_messages"] += seq - self.expected
        if count in (moldudp64.HEARTBEAT, moldudp64.END_OF_SESSION):
            c["heartbeats" if count == moldudp64.HEARTBEAT else "end_of_session"] += 1
            self.ended |= count == moldudp64.END_OF_SESSION
            self.expected = max(self.expected, seq)
            return out, gaps
        if seq + count <= self.expected:
            c["dup_b" if line else "dup_a"] += 1
            return out, gaps
        pos, whole = moldudp64.HEADER, 0
        while whole < count and pos + 2 <= len(payload):
            length = int.from_bytes(payload[pos:pos + 2], "big")
            if length < itch.MIN_LENGTH:
                c["runt_block"] += 1
                break
            body = payload[pos + 2:pos + 2 + length]
            msg_seq = seq + whole
            complete = len(body) == length
            if msg_seq < self.expected:
                c["skipped_messages"] += 1
            elif body:
                out.append(MoldMessage(msg_seq, body, not complete))
                c["messages"] += complete
            if not complete:
                break
            whole += 1
            pos += 2 + length
        self.expected = max(self.expected, seq + whole)
        return out, gaps
