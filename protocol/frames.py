"""Ethernet II / 802.1Q / IPv4 / UDP: frame builder and parser.

One definition of the receive stack's framing, shared by the golden model of ``eth_rx``,
the traffic generators, the venue simulator and the tests. Frames are handled without the
FCS (the MAC strips it on receive and appends it on transmit), as in a pcap capture.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ETH_HEADER = 14
VLAN_TAG = 4
IPV4_HEADER = 20
UDP_HEADER = 8
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_VLAN = 0x8100
IP_PROTO_UDP = 17
MIN_FRAME = 60  # without FCS; shorter frames are padded by the sender


def ip_to_int(ip: str | int) -> int:
    return ip if isinstance(ip, int) else int(ipaddress.IPv4Address(ip))


def int_to_ip(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def multicast_mac(group: str | int) -> bytes:
    """The Ethernet address a multicast group maps to: 01:00:5e + low 23 bits of the group."""
    g = ip_to_int(group)
    return bytes([0x01, 0x00, 0x5E, (g >> 16) & 0x7F, (g >> 8) & 0xFF, g & 0xFF])


def ones_complement_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ipv4_checksum(header: bytes) -> int:
    """Checksum to store in a header whose checksum field is zero."""
    return ~ones_complement_sum(header) & 0xFFFF


def build_udp_frame(
    dst_ip: str | int,
    dst_port: int,
    payload: bytes,
    *,
    src_ip: str | int = "10.0.0.1",
    src_port: int = 40000,
    dst_mac: bytes | None = None,
    src_mac: bytes = bytes.fromhex("02000000aa01"),
    vlan: int | None = None,
    ip_options: bytes = b"",
    ttl: int = 64,
    ident: int = 0,
    flags_frag: int = 0x4000,
    protocol: int = IP_PROTO_UDP,
    udp_checksum: bool = False,
    pad: bool = True,
) -> bytes:
    """An Ethernet frame carrying one UDP datagram.

    ``dst_mac`` defaults to the multicast address of ``dst_ip`` when it is a group, else a
    fixed unicast address. ``flags_frag`` is the raw 16-bit flags + fragment offset word
    (0x4000 = don't fragment). Frames are padded to the 60-byte Ethernet minimum.
    """
    if len(ip_options) % 4:
        raise ValueError("IPv4 options must be a multiple of 4 bytes")
    dst = ip_to_int(dst_ip)
    src = ip_to_int(src_ip)
    if dst_mac is None:
        dst_mac = multicast_mac(dst) if (dst >> 28) == 0xE else bytes.fromhex("020000000001")
    udp_len = UDP_HEADER + len(payload)
    udp = struct.pack("!HHHH", src_port, dst_port, udp_len, 0) + payload
    if udp_checksum:
        pseudo = struct.pack("!IIBBH", src, dst, 0, IP_PROTO_UDP, udp_len)
        csum = ~ones_complement_sum(pseudo + udp) & 0xFFFF or 0xFFFF
        udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    ihl = (IPV4_HEADER + len(ip_options)) // 4
    total = ihl * 4 + udp_len
    ip = struct.pack("!BBHHHBBHII", 0x40 | ihl, 0, total, ident, flags_frag, ttl, protocol, 0,
                     src, dst) + ip_options
    ip = ip[:10] + struct.pack("!H", ipv4_checksum(ip)) + ip[12:]
    eth = dst_mac + src_mac
    if vlan is not None:
        eth += struct.pack("!HH", ETHERTYPE_VLAN, vlan & 0xFFFF)
    eth += struct.pack("!H", ETHERTYPE_IPV4)
    frame = eth + ip + udp
    if pad and len(frame) < MIN_FRAME:
        frame += bytes(MIN_FRAME - len(frame))
    return frame


@dataclass(frozen=True)
class UdpDatagram:
    """What the receive path learns from a frame that parses as IPv4/UDP."""

    src_mac: bytes
    src_ip: int
    dst_ip: int
    src_port: int
    dst_port: int
    payload: bytes
    truncated: bool  # the frame ended before the UDP length said it would
    checksum_ok: bool = True  # UDP checksum 0 (none, RFC 768) or right over the datagram


# Drop reasons, in the order the receive path can know them while a frame streams in.
DROP_REASONS = (
    "truncated",        # frame ended inside the headers
    "not_ipv4",         # EtherType (after at most one 802.1Q tag) is not IPv4
    "bad_ip_header",    # version != 4, IHL < 5, or total length too small for IP+UDP
    "bad_ip_checksum",
    "fragment",         # MF set or fragment offset != 0
    "not_udp",
    "bad_udp_length",   # UDP length < 8 or larger than the IP payload
)


def parse_udp_frame(frame: bytes) -> UdpDatagram | str:
    """Parse a frame the way ``eth_rx`` does; return the datagram or a drop reason.

    The UDP checksum does not decide a drop here (it is known only at the datagram's
    end, after ``eth_rx`` has passed the first bytes on): ``checksum_ok`` says whether
    it holds — a zero checksum field means none was sent (RFC 768, IPv4), and a
    datagram cut short cannot be verified, so it fails unless its field is zero.
    """
    n = len(frame)
    if n < ETH_HEADER:
        return "truncated"
    l3 = ETH_HEADER
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == ETHERTYPE_VLAN:
        l3 += VLAN_TAG
        if n < l3:
            return "truncated"
        ethertype = int.from_bytes(frame[16:18], "big")
    if ethertype != ETHERTYPE_IPV4:
        return "not_ipv4"
    if n < l3 + 1:
        return "truncated"
    version, ihl = frame[l3] >> 4, frame[l3] & 0xF
    if version != 4 or ihl < 5:
        return "bad_ip_header"
    l4 = l3 + ihl * 4
    if n < l4:
        return "truncated"
    ip = frame[l3:l4]
    total_len = int.from_bytes(ip[2:4], "big")
    flags_frag = int.from_bytes(ip[6:8], "big")
    if ones_complement_sum(ip) != 0xFFFF:
        return "bad_ip_checksum"
    if total_len < ihl * 4 + UDP_HEADER:
        return "bad_ip_header"
    if flags_frag & 0x3FFF:
        return "fragment"
    if ip[9] != IP_PROTO_UDP:
        return "not_udp"
    if n < l4 + UDP_HEADER:
        return "truncated"
    src_port, dst_port, udp_len = struct.unpack("!HHH", frame[l4:l4 + 6])
    if udp_len < UDP_HEADER or udp_len > total_len - ihl * 4:
        return "bad_udp_length"
    end = l4 + udp_len
    field = int.from_bytes(frame[l4 + 6:l4 + 8], "big")
    if field == 0:
        checksum_ok = True
    elif n < end:
        checksum_ok = False
    else:
        pseudo = ip[12:20] + struct.pack("!BBH", 0, IP_PROTO_UDP, udp_len)
        checksum_ok = ones_complement_sum(pseudo + frame[l4:end]) == 0xFFFF
    return UdpDatagram(
        src_mac=frame[6:12],
        src_ip=int.from_bytes(ip[12:16], "big"),
        dst_ip=int.from_bytes(ip[16:20], "big"),
        src_port=src_port,
        dst_port=dst_port,
        payload=frame[l4 + UDP_HEADER:end],
        truncated=n < end,
        checksum_ok=checksum_ok,
    )
