"""Golden model of ``moldudp``: sessions, sequence numbers, A/B arbitration and gaps."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tick2trade.protocol import itch, moldudp64


MOLD_COUNTERS = ("packets", "heartbeats", "end_of_session", "dup_a", "dup_b", "gaps",
                 "gap_messages", "bad_header", "wrong_session", "sessions", "runt_block",
                 "messages", "skipped_messages", "unconfirmed")
# Counters wider than the usual 32-bit wrapping ones: ``gap_messages`` adds up gaps of
# up to 2**64 messages each, so it is 64 bits and saturates at 2**64 - 1 (read as "at
# least that many") instead of wrapping.
COUNTER_BITS = {"gap_messages": 64}
GAP_MESSAGES_MAX = (1 << 64) - 1

# MoldUDP64 numbers messages with 64 bits and never wraps: the last message of a
# session can be 2**64 - 1, after which ``expected`` is 2**64 and every packet is old.
SEQ_END = 1 << 64
# How far ahead of ``expected`` a packet may start before it must be confirmed (the
# ``seq_window`` register's reset value): far beyond any real outage at NASDAQ's rates,
# far below what one flipped high bit or a random number makes.
DEFAULT_WINDOW = 1 << 20


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

    * shorter than the 20-byte header, or messages numbered past 2**64 - 1
      (``S + N > 2**64``, N not a heartbeat or end-of-session mark): dropped
      (``bad_header``) — sequence numbers never wrap;
    * another session while the current one runs is dropped (``wrong_session``) — a
      stale line cannot reset us — except while the current one is *provisional*:
      adopted on the word of one packet (below), no second packet of it taken yet. Then
      the other session may replace it, but only confirmed (as a far jump is), so a
      junk datagram that happened to look like a session start is replaced by the real
      session's first two packets, and a real session cannot be replaced by one junk
      datagram;
    * plausibility: the packet's start ``S`` must be within ``window`` of where it would
      put us (``S <= expected + window``, or ``S <= 1 + window`` for a session not yet
      adopted). A packet beyond it is dropped (``unconfirmed``) and becomes the
      *candidate* (its session and ``S``), unless it confirms the candidate there is:
      same session and ``candidate S <= S <= candidate S + window`` — the other line's
      copy of the same packet or the next packet of the same line. A confirming packet
      is taken as a plausible one; every packet taken clears the candidate, so only two
      packets in a row can agree. One forged or bit-flipped sequence number, or one junk
      datagram on the feed port, never moves ``expected`` nor fixes the session; a real
      jump costs one packet, reported in the gap (two consistent forgeries in a row do
      confirm each other: the source filter of ``eth_rx`` is the defence there);
    * no session yet, or the current one has ended (end-of-session seen), or it is
      provisional and ``s`` confirmed: ``s`` is adopted and ``expected`` restarts at 1
      (``sessions``); adopted by a plausible start rather than a confirmation, it is
      provisional until the next packet taken;
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

    def __init__(self, window: int = DEFAULT_WINDOW):
        self.counters = Counter({k: 0 for k in MOLD_COUNTERS})
        self.window = window
        self.session: bytes | None = None
        self.ended = False
        self.expected = 1
        self.candidate: tuple[bytes, int] | None = None
        self.provisional = False

    def state(self) -> tuple:
        """What a packet can change besides the counters, for ``restore``."""
        return (self.session, self.ended, self.expected, self.candidate, self.provisional,
                self.counters["gaps"], self.counters["gap_messages"])

    def restore(self, state: tuple) -> None:
        """Undo a packet whose UDP checksum failed: the sequence state as it was before
        it, and its gap (if it reported one) not counted. The other counters keep what
        the packet showed: they count what was parsed."""
        (self.session, self.ended, self.expected, self.candidate, self.provisional,
         self.counters["gaps"], self.counters["gap_messages"]) = state

    def reset_session(self) -> None:
        """Forget the session and the candidate (the ``reset_session`` strobe)."""
        self.session, self.ended, self.candidate = None, False, None
        self.provisional = False

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
        control = count in (moldudp64.HEARTBEAT, moldudp64.END_OF_SESSION)
        if not control and seq + count > SEQ_END:
            c["bad_header"] += 1
            return out, gaps
        other = self.session is not None and session != self.session
        switch = other and self.provisional and not self.ended
        adopt = self.session is None or (self.ended and other) or switch
        if other and not adopt:
            c["wrong_session"] += 1
            return out, gaps
        plausible = not switch and seq <= (1 if adopt else self.expected) + self.window
        if not plausible:
            cand = self.candidate
            if cand is None or cand[0] != session or not cand[1] <= seq <= cand[1] + self.window:
                self.candidate = (session, seq)
                c["unconfirmed"] += 1
                return out, gaps
        self.candidate = None
        # a session adopted on one packet's word stays provisional until a second one
        self.provisional = adopt and plausible
        if adopt:
            self.session, self.ended, self.expected = session, False, 1
            c["sessions"] += 1
        if seq > self.expected:
            gaps.append(Gap(line, session, self.expected, seq - self.expected))
            c["gaps"] += 1
            c["gap_messages"] = min(c["gap_messages"] + seq - self.expected,
                                    GAP_MESSAGES_MAX)
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
