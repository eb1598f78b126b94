"""Golden model of ``eth_rx``: what the receive path is configured with (``RxConfig``)
and which frames it passes on, splits off or drops, counter by counter."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from tick2trade.protocol import frames
from tick2trade.protocol.moldudp64 import DEFAULT_LINE_A, DEFAULT_LINE_B

from .moldudp import DEFAULT_WINDOW

LINE_A, LINE_B = 0, 1
MAX_FEEDS = 8

# The control port's default: a private address (the feed's defaults, NASDAQ's A/B
# groups, are ``protocol.moldudp64.DEFAULT_LINE_A`` / ``DEFAULT_LINE_B``).
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
    # the source address each line's packets must come from (0: any), line A first
    feed_src: tuple[int, int] = (0, 0)
    # how far ahead of the expected sequence a packet may jump before it must be confirmed
    seq_window: int = DEFAULT_WINDOW
    # drop what a feed datagram with a failed UDP checksum would have caused (its events,
    # its gap report, its move of the sequence state); the events toward the book then
    # wait for their datagram's last byte (the strategy's taps never wait)
    udp_verify: bool = True
    # hold up to this many packets that arrive ahead of the expected sequence before
    # declaring a gap (0: none; a reordered packet is then a gap), and for at most
    # ``hold_cycles`` cycles of the receive path's clock
    hold_packets: int = 4
    hold_cycles: int = 1 << 16

    @classmethod
    def default(cls, line_a=DEFAULT_LINE_A, line_b=DEFAULT_LINE_B, ctl=DEFAULT_CTL,
                watch=()) -> RxConfig:
        feeds = [FeedFilter(frames.ip_to_int(line_a[0]), line_a[1], LINE_A),
                 FeedFilter(frames.ip_to_int(line_b[0]), line_b[1], LINE_B)]
        return cls(feeds=feeds, ctl_ip=frames.ip_to_int(ctl[0]), ctl_port=ctl[1],
                   watch=list(watch))


# Every frame ends in exactly one of these but ``frames`` itself and the two flags
# ``short_payload`` and ``bad_udp_checksum`` (counted besides the frame's outcome).
ETH_COUNTERS = ("frames", "feed_a", "feed_b", "ctl", "ouch", "filtered", "short_payload",
                "empty_payload", "wrong_source", "bad_udp_checksum") + \
    frames.DROP_REASONS
ETH_FLAGS = ("frames", "short_payload", "bad_udp_checksum")


@dataclass(frozen=True)
class CtlDatagram:
    src_mac: bytes
    src_ip: int
    src_port: int
    payload: bytes


class EthRxModel:
    """Frame → (line, UDP payload) for the feed; control datagrams and the venue's
    answers (to the order port) split off.

    A feed datagram from another source than its line's ``feed_src`` (when not 0) is
    dropped (``wrong_source``). A feed datagram whose UDP checksum fails is counted
    (``bad_udp_checksum``) and still passed on, with the verdict beside it: the verdict
    comes with its last byte, after its first messages have gone downstream, so it is
    the later stages that drop the packet's effects (``RxPathModel``, ``udp_verify``).
    """

    def __init__(self, config: RxConfig):
        self.config = config
        self.counters = Counter({k: 0 for k in ETH_COUNTERS})

    def process(self, frame: bytes):
        """Return ("feed", line, payload, checksum_ok) / ("ctl", CtlDatagram) /
        ("ouch", CtlDatagram) / None (dropped). ``checksum_ok`` is False for a datagram
        counted in ``bad_udp_checksum``."""
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
                src = self.config.feed_src[f.line]
                if src and dg.src_ip != src:
                    c["wrong_source"] += 1
                    return None
                c["feed_b" if f.line else "feed_a"] += 1
                c["bad_udp_checksum"] += not dg.checksum_ok
                c["short_payload"] += dg.truncated
                return ("feed", f.line, dg.payload, dg.checksum_ok)
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



def feed_frame(cfg: RxConfig, line: int, payload: bytes, rng: random.Random | None = None,
               **kw) -> bytes:
    """A frame to the group/port of ``line`` in ``cfg`` (VLAN/options at random if rng)."""
    f = next(f for f in cfg.feeds if f.line == line)
    if rng is not None:
        if rng.random() < 0.2:
            kw.setdefault("vlan", rng.randrange(4096))
        if rng.random() < 0.15:
            kw.setdefault("ip_options", bytes([1]) * (4 * rng.randint(1, 10)))
    return frames.build_udp_frame(f.group, f.port, payload, **kw)
