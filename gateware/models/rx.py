"""Golden models of the receive path: ``eth_rx`` → ``moldudp`` → ``itch``.

Each class is the reference its gateware stage is compared with, message by message and
counter by counter. They work on whole frames/packets/messages; the gateware works on
beats, so timing is not modelled, only what comes out and what is counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from . import frames, itch, moldudp64

LINE_A, LINE_B = 0, 1
MAX_FEEDS = 8

# Defaults used by `t2t replay` and the demo config: NASDAQ TotalView-ITCH's published
# MoldUDP64 groups for lines A and B, and a control port on a private address.
DEFAULT_LINE_A = ("233.54.12.111", 26477)
DEFAULT_LINE_B = ("233.49.196.111", 26477)
DEFAULT_CTL = ("10.0.0.2", 7000)


@dataclass(frozen=True)
class FeedFilter:
    group: int
    port: int
    line: int


@dataclass
class RxConfig:
    """Everything the host writes into the receive path."""

    feeds: list[FeedFilter] = field(default_factory=list)
    ctl_ip: int = 0
    ctl_port: int = 0  # 0: no control port
    ouch_port: int = 0  # ouch_tx's source port: the venue's answers come to it (0: none)
    watch: list[str] = field(default_factory=list)  # stock names; entry i is symbol i
    locate_map: dict[int, int] = field(default_factory=dict)  # locate -> symbol, by host

    @classmethod
    def default(cls, line_a=DEFAULT_LINE_A, line_b=DEFAULT_LINE_B, ctl=DEFAULT_CTL,
                watch=()) -> RxConfig:
        feeds = [FeedFilter(frames.ip_to_int(line_a[0]), line_a[1], LINE_A),
                 FeedFilter(frames.ip_to_int(line_b[0]), line_b[1], LINE_B)]
        return cls(feeds=feeds, ctl_ip=frames.ip_to_int(ctl[0]), ctl_port=ctl[1],
                   watch=list(watch))


ETH_COUNTERS = ("frames", "feed_a", "feed_b", "ctl", "ouch", "filtered", "short_payload",
                "empty_payload") + \
    frames.DROP_REASONS


@dataclass(frozen=True)
class CtlDatagram:
    src_mac: bytes
    src_ip: int
    src_port: int
    payload: bytes


class EthRxModel:
    """Frame → (line, UDP payload) for the feed; control datagrams and the venue's
    answers (to the order port) split off."""

    def __init__(self, config: RxConfig):
        self.config = config
        self.counters = Counter({k: 0 for k in ETH_COUNTERS})

    def process(self, frame: bytes):
        """Return ("feed", line, payload) / ("ctl", CtlDatagram) / ("ouch", CtlDatagram)
        / None (dropped)."""
        c = self.counters
        c["frames"] += 1
        dg = frames.parse_udp_frame(frame)
        if isinstance(dg, str):
            c[dg] += 1
            return None
        if not dg.payload:
            # nothing of the datagram to pass on (UDP length 8, or cut right after the
            # UDP header): counted here, never seen downstream
            c["empty_payload"] += 1
            return None
        for f in self.config.feeds[:MAX_FEEDS]:
            if dg.dst_ip == f.group and dg.dst_port == f.port:
                c["feed_b" if f.line else "feed_a"] += 1
                c["short_payload"] += dg.truncated
                return ("feed", f.line, dg.payload)
        cfg = self.config
        if cfg.ctl_port and dg.dst_ip == cfg.ctl_ip and dg.dst_port == cfg.ctl_port:
            c["ctl"] += 1
            c["short_payload"] += dg.truncated
            return ("ctl", CtlDatagram(dg.src_mac, dg.src_ip, dg.src_port, dg.payload))
        if cfg.ouch_port and dg.dst_ip == cfg.ctl_ip and dg.dst_port == cfg.ouch_port:
            c["ouch"] += 1
            c["short_payload"] += dg.truncated
            return ("ouch", CtlDatagram(dg.src_mac, dg.src_ip, dg.src_port, dg.payload))
        c["filtered"] += 1
        return None


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


ITCH_COUNTERS = ("events", "aborted", "unknown_type", "bad_length", "untraded",
                 "directory_hits")


class ItchModel:
    """Decode, check the length, look up the locate, drop what is not traded.

    The locate table maps a stock locate to a symbol index. It is written by the host
    (``RxConfig.locate_map``) and by Stock Directory ('R') messages whose stock is in the
    watch list (entry ``i`` → symbol ``i``). Messages with locate 0 (system-wide, e.g.
    'S') always pass; others pass only when their locate is in the table.
    """

    def __init__(self, config: RxConfig, locates: int = 16384):
        self.watch = {itch.stock_int(s): i for i, s in reversed(list(enumerate(config.watch)))}
        self.table: dict[int, int] = {k: v for k, v in config.locate_map.items()
                                      if 0 <= k < locates}
        self.locates = locates
        self.counters = Counter({k: 0 for k in ITCH_COUNTERS})
        self.by_type = Counter({m.name: 0 for m in itch.MESSAGES.values()})

    def host_write(self, locate: int, sym: int, traded: bool = True) -> None:
        """A host write into the locate table (``traded`` False removes the locate). It
        applies to every message whose last byte arrives after the write's strobe cycle;
        locates beyond the table are ignored."""
        if not 0 <= locate < self.locates:
            return
        if traded:
            self.table[locate] = sym
        else:
            self.table.pop(locate, None)

    def process(self, m: MoldMessage) -> itch.Event | None:
        c = self.counters
        if m.aborted:
            c["aborted"] += 1
            return None
        ev = itch.to_event(m.raw, m.seq)
        if ev is None:
            known = m.raw and chr(m.raw[0]) in itch.MESSAGES
            c["bad_length" if known else "unknown_type"] += 1
            return None
        self.by_type[itch.MESSAGES[ev.type].name] += 1
        if ev.type == "R" and ev.stock in self.watch and ev.locate < self.locates:
            self.table[ev.locate] = self.watch[ev.stock]
            c["directory_hits"] += 1
        if ev.locate != 0:
            if ev.locate not in self.table:
                c["untraded"] += 1
                return None
            ev.sym = self.table[ev.locate]
        c["events"] += 1
        return ev


class RxPathModel:
    """The three stages chained: frames in; events, gap reports and control datagrams out."""

    def __init__(self, config: RxConfig, locates: int = 16384):
        self.eth = EthRxModel(config)
        self.mold = MoldUdpModel()
        self.itch = ItchModel(config, locates)
        self.events: list[itch.Event] = []
        self.gaps: list[Gap] = []
        self.ctl: list[CtlDatagram] = []
        self.ouch: list[CtlDatagram] = []  # the venue's answers, for ``OuchRxModel``

    def process(self, frame: bytes) -> None:
        got = self.eth.process(frame)
        if got is None:
            return
        if got[0] in ("ctl", "ouch"):
            getattr(self, got[0]).append(got[1])
            return
        msgs, gaps = self.mold.process(got[1], got[2])
        self.gaps += gaps
        for m in msgs:
            ev = self.itch.process(m)
            if ev is not None:
                self.events.append(ev)

    def counters(self) -> dict[str, dict[str, int]]:
        return {"eth_rx": dict(self.eth.counters), "moldudp": dict(self.mold.counters),
                "itch": dict(self.itch.counters),
                "itch_by_type": dict(self.itch.by_type)}
