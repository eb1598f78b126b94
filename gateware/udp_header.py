"""Ethernet II / IPv4 / UDP headers of the frames the FPGA sends, built from signals.

The transmit side's half of ``protocol.frames``: the same header ``build_udp_frame`` makes
with its defaults (no VLAN tag, no IP options, ID 0, DF set, TTL 64, UDP checksum 0 —
optional in IPv4, and the Ethernet FCS covers the bytes anyway), as a list of byte-wide
values in wire order. A sender walks the list at its own pace: the control endpoint one
byte per cycle, the order path a beat at a time.
"""

from __future__ import annotations

from amaranth import Cat, Const, Signal, Value

from tick2trade.protocol import frames

HEADERS = frames.ETH_HEADER + frames.IPV4_HEADER + frames.UDP_HEADER  # 42
IP_TTL = 64
IP_FLAGS = 0x4000  # don't fragment
IP_VERSION_IHL = 0x45  # IPv4, 5 words: no options
UDP_IP_OVERHEAD = frames.IPV4_HEADER + frames.UDP_HEADER


def be_bytes(value, n: int) -> list[Value]:
    """The ``n`` bytes of ``value`` (a signal or an int) in wire (big-endian) order; a
    narrower value is zero-extended (Amaranth would clamp the slices past its top)."""
    if isinstance(value, int):
        return const_bytes(value, n)
    value = Value.cast(value)
    if len(value) > 8 * n:
        raise ValueError(f"a {len(value)}-bit value does not fit in {n} bytes")
    value = Cat(value, Const(0, 8 * n - len(value)))
    return [value[8 * (n - 1 - i):8 * (n - i)] for i in range(n)]


def const_bytes(value: int, n: int) -> list[Const]:
    return [Const(b, 8) for b in value.to_bytes(n, "big")]


def _lengths(payload_length) -> tuple:
    """IPv4 total length and UDP length of a UDP payload (a signal or an int)."""
    if isinstance(payload_length, int):
        return payload_length + UDP_IP_OVERHEAD, payload_length + frames.UDP_HEADER
    return ((payload_length + UDP_IP_OVERHEAD)[:16],
            (payload_length + frames.UDP_HEADER)[:16])


def ipv4_checksum(m, src_ip, dst_ip, payload_length, domain: str = "comb") -> Signal:
    """The header checksum of the IPv4 header :func:`udp_header` writes in front of a UDP
    payload of ``payload_length`` bytes (a signal or an int).

    In the ``sync`` domain the checksum is
    registered: one cycle behind its inputs, which costs a sender nothing when its
    addresses are configuration (they change between frames, not within one) and the
    checksum is needed only beats after a frame starts.
    """
    total_length, _ = _lengths(payload_length)
    words = [(IP_VERSION_IHL << 8), total_length, 0, IP_FLAGS,
             (IP_TTL << 8) | frames.IP_PROTO_UDP,
             src_ip[16:], src_ip[:16], dst_ip[16:], dst_ip[:16]]
    total = Signal(20, name="ip_sum")
    m.d.comb += total.eq(sum(Const(w, 16) if isinstance(w, int) else w for w in words))
    # nine 16-bit words sum to less than 2**20: two folds bring the carries back in
    fold1 = Signal(17, name="ip_sum_fold1")
    fold2 = Signal(17, name="ip_sum_fold2")
    m.d.comb += [fold1.eq(total[:16] + total[16:]), fold2.eq(fold1[:16] + fold1[16:])]
    checksum = Signal(16, name="ip_checksum")
    m.d[domain] += checksum.eq(~fold2[:16])
    return checksum


def udp_header(*, dst_mac, src_mac, src_ip, dst_ip, src_port, dst_port, payload_length,
               checksum) -> list[Value]:
    """The :data:`HEADERS` bytes in front of a UDP payload of ``payload_length`` bytes
    (a signal or an int); ``checksum`` comes from :func:`ipv4_checksum` with the same
    addresses and length."""
    ip_total, udp_length = _lengths(payload_length)
    header = (be_bytes(dst_mac, 6) + be_bytes(src_mac, 6) +
              const_bytes(frames.ETHERTYPE_IPV4, 2) +
              const_bytes(IP_VERSION_IHL, 1) + const_bytes(0, 1) + be_bytes(ip_total, 2) +
              const_bytes(0, 2) + const_bytes(IP_FLAGS, 2) + const_bytes(IP_TTL, 1) +
              const_bytes(frames.IP_PROTO_UDP, 1) + be_bytes(checksum, 2) +
              be_bytes(src_ip, 4) + be_bytes(dst_ip, 4) +
              be_bytes(src_port, 2) + be_bytes(dst_port, 2) +
              be_bytes(udp_length, 2) + const_bytes(0, 2))
    assert len(header) == HEADERS
    return header
