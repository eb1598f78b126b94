"""Seeded traffic generators: ITCH messages, MoldUDP64 packets on lines A/B, and frames
that are wrong in every way the receive path must survive."""

from __future__ import annotations

import random
import struct

from tick2trade.protocol import frames, itch, moldudp64
from tick2trade.gateware.models.rx.eth_rx import RxConfig, feed_frame
from tick2trade.sim.venue.config import SYMBOLS



def random_message(rng: random.Random, mtype: str | None = None, locates: int = 64) -> bytes:
    """A well-formed ITCH message of ``mtype`` (random type if None) with random fields;
    locates are drawn from 0..locates-1 so some hit a small locate table."""
    mtype = mtype or rng.choice(list(itch.MESSAGES))
    msg = itch.MESSAGES[mtype]
    values = {}
    for f in msg.fields.values():
        if f.name == "locate":
            values[f.name] = rng.randrange(locates)
        elif f.name == "stock":
            values[f.name] = rng.choice(SYMBOLS)
        elif f.name == "side":
            values[f.name] = rng.choice("BS")
        elif f.kind == "u":
            values[f.name] = rng.getrandbits(8 * f.size)
        else:
            values[f.name] = bytes(rng.choice(b"ABCDEFGHOPQSTXYZ ") for _ in range(f.size))
    return itch.encode(mtype, **values)


def broken_message(rng: random.Random) -> bytes:
    """An unknown type, or a known type at a wrong length (never shorter than 12)."""
    if rng.random() < 0.4:
        unknown = [c for c in range(256) if chr(c) not in itch.MESSAGES]
        return bytes([rng.choice(unknown)]) + rng.randbytes(rng.randint(11, 60))
    good = random_message(rng)
    length = rng.choice([n for n in range(itch.MIN_LENGTH, 70) if n != len(good)])
    return (good + rng.randbytes(70))[:length]


JUNK_KINDS = ("not_ipv4", "ipv6", "bad_version", "bad_ip_checksum", "fragment", "not_udp",
              "bad_udp_length", "filtered", "truncated", "runt", "short_payload",
              "empty_payload", "bad_total_length")


def junk_frame(rng: random.Random, cfg: RxConfig, kind: str | None = None) -> bytes:
    """A frame the receive path must drop or cut, of the given kind (random if None)."""
    kind = kind or rng.choice(JUNK_KINDS)
    good = feed_frame(cfg, rng.randrange(2), rng.randbytes(rng.randint(1, 200)), rng)
    l3 = 18 if good[12:14] == b"\x81\x00" else 14

    def refix(fr: bytearray) -> bytes:
        ihl = (fr[l3] & 0xF) * 4
        fr[l3 + 10:l3 + 12] = b"\0\0"
        fr[l3 + 10:l3 + 12] = struct.pack("!H", frames.ipv4_checksum(bytes(fr[l3:l3 + ihl])))
        return bytes(fr)

    fr = bytearray(good)
    if kind == "not_ipv4":
        fr[l3 - 2:l3] = b"\x08\x06"
        return bytes(fr)
    if kind == "ipv6":
        fr[l3 - 2:l3] = b"\x86\xdd"
        return bytes(fr)
    if kind == "bad_version":
        fr[l3] = rng.choice([0x45 + 0x10, 0x44, 0x41, 0x65])
        return refix(fr)
    if kind == "bad_ip_checksum":
        fr[l3 + 10] ^= 1 << rng.randrange(8)
        return bytes(fr)
    if kind == "fragment":
        fr[l3 + 6:l3 + 8] = struct.pack("!H", rng.choice([0x2000, 0x0001, 0x20b9]))
        return refix(fr)
    if kind == "not_udp":
        fr[l3 + 9] = rng.choice([6, 1, 132])
        return refix(fr)
    if kind == "bad_total_length":
        ihl = (fr[l3] & 0xF) * 4
        fr[l3 + 2:l3 + 4] = struct.pack("!H", rng.randrange(ihl + 8))
        return refix(fr)
    ihl = (fr[l3] & 0xF) * 4
    l4 = l3 + ihl
    if kind == "bad_udp_length":
        total = int.from_bytes(fr[l3 + 2:l3 + 4], "big")
        fr[l4 + 4:l4 + 6] = struct.pack("!H", rng.choice([rng.randrange(8),
                                                         total - ihl + rng.randint(1, 99)]))
        return bytes(fr)
    if kind == "filtered":
        taken = {f.port for f in cfg.feeds} | {cfg.ctl_port}
        port = rng.randrange(1, 65536)
        while port in taken:
            port = rng.randrange(1, 65536)
        fr[l4 + 2:l4 + 4] = struct.pack("!H", port)
        return bytes(fr)
    if kind == "truncated":
        return bytes(fr[:rng.randrange(1, l4 + 8)])
    if kind == "runt":
        return bytes(fr[:rng.randrange(1, 14)])
    if kind == "short_payload":
        udp_len = int.from_bytes(fr[l4 + 4:l4 + 6], "big")
        return bytes(fr[:l4 + 8 + rng.randrange(1, udp_len - 7)]) if udp_len > 9 \
            else bytes(fr[:l4 + 8])
    if kind == "empty_payload":
        return frames.build_udp_frame(cfg.feeds[0].group, cfg.feeds[0].port, b"")
    raise ValueError(f"unknown junk kind {kind!r}")


class FeedScenario:
    """A MoldUDP64 session published on lines A and B with loss, duplication, reordering,
    heartbeats, junk frames and an end-of-session/new-session change. With ``loss_both``
    the fifth packet and a random share of the others are lost on both lines (a real gap).
    With ``corrupt``, that share of the copies carries a UDP checksum and one flipped bit
    in its UDP payload (a hop that rewrote the frame: the FCS is good).

    ``frames()`` yields Ethernet frames in arrival order at the receive path.
    """

    def __init__(self, rng: random.Random, cfg: RxConfig, *, messages: int,
                 max_per_packet: int = 20, loss_a: float = 0.05, loss_b: float = 0.05,
                 loss_both: float = 0.01,
                 junk: float = 0.05, broken: float = 0.02, reorder: float = 0.02,
                 heartbeat: float = 0.03, session_change_at: float | None = 0.7,
                 locates: int = 64, ctl: float = 0.0, corrupt: float = 0.0):
        self.rng, self.cfg = rng, cfg
        self.messages = messages
        self.max_per_packet = max_per_packet
        self.loss = (loss_a, loss_b)
        self.loss_both = loss_both
        self.junk, self.broken, self.reorder = junk, broken, reorder
        self.heartbeat, self.session_change_at = heartbeat, session_change_at
        self.locates, self.ctl = locates, ctl
        self.corrupt = corrupt

    def _copy(self, line: int, payload: bytes, directory: bool) -> bytes:
        rng = self.rng
        # never a packet with a stock directory message: its locate write happens
        # before the verdict (a known limit, see RxPathModel)
        if not (self.corrupt and rng.random() < self.corrupt) or directory:
            return feed_frame(self.cfg, line, payload, rng)
        fr = bytearray(feed_frame(self.cfg, line, payload, rng, udp_checksum=True))
        fr[len(fr) - len(payload) + rng.randrange(len(payload))] ^= 1 << rng.randrange(8)
        return bytes(fr)

    def _message(self) -> bytes:
        rng = self.rng
        if rng.random() < self.broken:
            return broken_message(rng)
        weights = {"A": 30, "E": 10, "X": 8, "D": 12, "U": 8, "R": 4, "S": 2, "P": 4}
        if rng.random() < 0.8:
            mtype = rng.choices(list(weights), list(weights.values()))[0]
        else:
            mtype = None
        return random_message(rng, mtype, self.locates)

    def frames(self) -> list[bytes]:
        rng = self.rng
        out: list[bytes] = []
        session, seq, sent = "SESS000001", 1, 0
        change = int(self.messages * self.session_change_at) \
            if self.session_change_at is not None else None
        held: list[bytes] = []
        packets = 0
        while sent < self.messages:
            if change is not None and sent >= change:
                for line in (0, 1):
                    out.append(feed_frame(self.cfg, line,
                                          moldudp64.encode_end_of_session(session, seq)))
                session, seq, change = "SESS000002", 1, None
            n = min(rng.randint(1, self.max_per_packet), self.messages - sent)
            msgs = [self._message() for _ in range(n)]
            payload = moldudp64.encode_packet(session, seq, msgs)
            directory = any(m[:1] == b"R" for m in msgs)
            copies = [self._copy(line, payload, directory)
                      for line in (0, 1) if rng.random() >= self.loss[line]]
            packets += 1
            if self.loss_both and (packets == 5 or rng.random() < self.loss_both):
                copies = []
            if rng.random() < 0.5:
                copies.reverse()
            if rng.random() < self.reorder and copies:
                held.append(copies.pop())
            out += copies
            if held and rng.random() < 0.5:
                out.append(held.pop(0))
            seq += n
            sent += n
            if rng.random() < self.heartbeat:
                out.append(feed_frame(self.cfg, rng.randrange(2),
                                      moldudp64.encode_heartbeat(session, seq)))
            if rng.random() < self.junk:
                out.append(junk_frame(rng, self.cfg))
            if self.ctl and rng.random() < self.ctl:
                out.append(frames.build_udp_frame(self.cfg.ctl_ip, self.cfg.ctl_port,
                                                  rng.randbytes(rng.randint(1, 100)),
                                                  src_ip="10.0.0.9", src_port=5555))
        out += held
        return out


def late_packets(rng: random.Random, cfg: RxConfig, packets: int, *, swaps: int,
                 lost=(), corrupt: float = 0.0, locates: int = 64,
                 session: str = "SESS000001") -> tuple[list[bytes], set[int], int]:
    """Packets of line A only (line B is down) of Add Orders; now and then a packet
    arrives up to ``swaps`` packets after its turn (one late packet at a time, 3 turns
    in 10); the packets in ``lost`` never arrive; with ``corrupt``, that share of them
    comes first as a copy that fails its UDP checksum. Returns the frames, the sequence
    numbers of the messages lost and how many messages were sent."""
    seq, sent, gone = 1, [], set()
    for k in range(packets):
        n = rng.randint(1, 6)
        msgs = [random_message(rng, "A", locates) for _ in range(n)]
        if k in lost:
            gone |= set(range(seq, seq + n))
        else:
            payload = moldudp64.encode_packet(session, seq, msgs)
            if k and rng.random() < corrupt:  # a corrupted copy first (checksum fails)
                bad = bytearray(feed_frame(cfg, 0, payload, udp_checksum=True))
                bad[len(bad) - len(payload) + rng.randrange(len(payload))] ^= 0x10
                sent.append(bytes(bad))
            sent.append(feed_frame(cfg, 0, payload, rng))
        seq += n
    total = seq - 1
    order, i, late = [], 0, None
    while i < len(sent):
        if late is None and i > 0 and rng.random() < 0.3 and i + 1 < len(sent):
            late, due = i, i + rng.randint(1, swaps)
        else:
            order.append(i)
        if late is not None and i >= due:
            order.append(late)
            late = None
        i += 1
    if late is not None:
        order.append(late)
    return [sent[i] for i in order], gone, total
