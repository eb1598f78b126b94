"""Golden model of ``moldudp``: sessions, sequence numbers, A/B arbitration and gaps."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tick2trade.protocol import itch, moldudp64


MOLD_COUNTERS = ("packets", "heartbeats", "end_of_session", "dup_a", "dup_b", "gaps",
                 "gap_messages", "bad_header", "wrong_session", "sessions", "runt_block",
                 "messages", "skipped_messages", "unconfirmed", "held", "hold_filled",
                 "hold_forced")
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
class Run:
    """Packets held back: they start ahead of ``expected``, from ``start`` to ``end``
    (exclusive) without a hole, ``packets`` of them, the first on ``line``."""
    line: int
    start: int
    end: int
    packets: int


@dataclass(frozen=True)
class Release:
    """A run let go after a packet: its messages from ``skip`` on follow the packet's
    (``forced`` False: the packet filled the hole) or go before them (``forced``)."""
    skip: int
    forced: bool


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

    The hold (``hold_packets`` > 0): a reordered packet must not become a gap. A data
    packet starting ahead of ``expected`` (and not adopting a session) is *held*
    (``held``) instead of reporting a gap: its messages are delivered marked
    ``route_hold`` (the receive path keeps their events aside) and ``expected`` stays.
    Later packets:

    * starting where the run ends (``S == end``), while it has fewer than
      ``hold_packets`` packets: held too, appended to the run;
    * inside the run (``start <= S``, ``S + N <= end``): a duplicate of a held packet;
    * starting before the run: taken as usual (a gap if ahead of ``expected``); once
      ``expected`` reaches the run's start the hole is filled (``hold_filled``): the
      run is released after the packet, ``expected`` moves to its end, and its messages
      below the new ``expected`` are the receive path's to skip;
    * any other packet at or beyond the run's start, a control packet there, or one
      that adopts a session, forces the run out (``hold_forced``): the hole is reported
      as a gap (the run's line, ``expected``, up to the run's start), the run is
      released before the packet, and the packet is taken against the run's end (it
      may start the next run).

    ``expire()`` forces the run out when it waited too long (the gateware's
    ``hold_cycles``, a time the model does not see); ``reset_session()`` lets it go
    with no gap. After each packet ``release`` says what was let go.
    """

    def __init__(self, window: int = DEFAULT_WINDOW, hold_packets: int = 0):
        self.counters = Counter({k: 0 for k in MOLD_COUNTERS})
        self.window = window
        self.hold_packets = hold_packets
        self.run: Run | None = None
        self.route_hold = False  # the last packet's messages belong to the run
        self.release: Release | None = None  # what the last packet let go
        self.session: bytes | None = None
        self.ended = False
        self.expected = 1
        self.candidate: tuple[bytes, int] | None = None
        self.provisional = False

    def state(self) -> tuple:
        """What a packet can change besides the counters, for ``restore``."""
        return (self.session, self.ended, self.expected, self.candidate, self.provisional,
                self.run, self.counters["gaps"], self.counters["gap_messages"])

    def restore(self, state: tuple) -> None:
        """Undo a packet whose UDP checksum failed: the sequence state as it was before
        it, and its gap (if it reported one) not counted. The other counters keep what
        the packet showed: they count what was parsed."""
        (self.session, self.ended, self.expected, self.candidate, self.provisional,
         self.run, self.counters["gaps"], self.counters["gap_messages"]) = state
        self.route_hold, self.release = False, None

    def reset_session(self) -> Release | None:
        """Forget the session and the candidate (the ``reset_session`` strobe); a held
        run is let go as it is (no gap: the host is starting over)."""
        self.session, self.ended, self.candidate = None, False, None
        self.provisional = False
        rel = None
        if self.run is not None:
            rel, self.run = Release(self.expected, True), None
        return rel

    def expire(self) -> tuple[Release | None, list[Gap]]:
        """The run waited ``hold_cycles``: report its hole and let it go."""
        gaps: list[Gap] = []
        if self.run is None:
            return None, gaps
        return self._force(gaps), gaps

    def _gap(self, gaps: list[Gap], gap: Gap) -> None:
        gaps.append(gap)
        c = self.counters
        c["gaps"] += 1
        c["gap_messages"] = min(c["gap_messages"] + gap.count, GAP_MESSAGES_MAX)

    def _force(self, gaps: list[Gap]) -> Release:
        run = self.run
        self._gap(gaps, Gap(run.line, self.session, self.expected,
                            run.start - self.expected))
        self.counters["hold_forced"] += 1
        rel = Release(self.expected, True)
        self.expected, self.run = run.end, None
        return rel

    def process(self, line: int, payload: bytes) -> tuple[list[MoldMessage], list[Gap]]:
        c = self.counters
        out: list[MoldMessage] = []
        gaps: list[Gap] = []
        self.route_hold, self.release = False, None
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
        run, held = self.run, False
        if run is not None and (adopt or seq >= run.start):
            if not adopt and not control and seq == run.end and \
                    run.packets < self.hold_packets:
                held = True
            elif not adopt and not control and seq + count <= run.end:
                c["dup_b" if line else "dup_a"] += 1
                return out, gaps
            else:
                self.release = self._force(gaps)
        if adopt:
            self.session, self.ended, self.expected = session, False, 1
            c["sessions"] += 1
        if not held and self.run is None and self.hold_packets and not control and \
                not adopt and seq > self.expected:
            held = True
        if held:
            c["held"] += 1
            self.route_hold = True
        elif seq > self.expected:
            self._gap(gaps, Gap(line, session, self.expected, seq - self.expected))
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
        if held:
            self.run = Run(line, seq, seq + whole, 1) if self.run is None else \
                Run(self.run.line, self.run.start, seq + whole, self.run.packets + 1)
            return out, gaps
        self.expected = max(self.expected, seq + whole)
        self._filled()
        return out, gaps

    def _filled(self) -> None:
        run = self.run
        if run is not None and self.expected >= run.start:
            self.counters["hold_filled"] += 1
            self.release = Release(self.expected, False)
            self.expected, self.run = max(self.expected, run.end), None
