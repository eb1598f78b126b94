"""The feed on the wire: MoldUDP64 packets to lines A and B, and the retransmission
request server.

Design decisions
----------------
- Lines A and B carry identical packets (the receive path keeps the first copy), sent to
  any IPv4 address: a multicast group (TTL and loopback settable, an outgoing interface
  by address) or a unicast address, which is what the tests use on 127.0.0.1.
- Every packet sent — on either line, or as a retransmission — can be recorded as an
  Ethernet frame (``protocol.frames``) into a pcap file (``protocol.pcap``), so a
  recorded session replays through ``t2t replay`` like a capture from the wire.
- A retransmission request has the MoldUDP64 header's layout (session, sequence,
  count; ``moldudp64.encode_request``); it is answered with one downstream packet from the
  publisher's log, to the requester only. Anything else is dropped and counted: a wrong
  size, another session, a range that was never sent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import Counter
from collections.abc import Callable

from tick2trade.protocol import frames, moldudp64

from tick2trade.sim.venue.feed import Publisher

Address = tuple[str, int]


def is_multicast(host: str) -> bool:
    return ipaddress.IPv4Address(host).is_multicast


class Recorder:
    """Packets as Ethernet/IPv4/UDP frames into a :class:`sim.pcap.PcapWriter`."""

    def __init__(self, writer, src: Address = ("10.0.0.1", 40000),
                 clock: Callable[[], float] = time.time):
        self.writer, self.src, self.clock = writer, src, clock

    def record(self, payload: bytes, dst: Address, src: Address | None = None) -> None:
        src = src or self.src
        self.writer.write(frames.build_udp_frame(dst[0], dst[1], payload, src_ip=src[0],
                                                 src_port=src[1]), self.clock())


class LineSender:
    """Sends every packet to each line's address (A first, then B).

    Parameters
    ----------
    lines:
        ``[(address, port), ...]``, usually line A and line B.
    ttl, loop:
        Multicast TTL and whether this host's own sockets see the packets.
    interface:
        IPv4 address of the interface multicast leaves by (default: the routing table's).
    recorder:
        Records each packet sent as a frame.
    """

    def __init__(self, lines: list[Address], *, ttl: int = 1, loop: bool = True,
                 interface: str | None = None, recorder: Recorder | None = None):
        self.lines = [(str(ipaddress.IPv4Address(h)), int(p)) for h, p in lines]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if any(is_multicast(h) for h, _ in self.lines):
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, int(loop))
            if interface:
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                     socket.inet_aton(interface))
        self.recorder = recorder
        self.counters = Counter(packets=0, datagrams=0, send_errors=0)

    def send(self, packets: list[bytes]) -> None:
        for payload in packets:
            self.counters["packets"] += 1
            for addr in self.lines:
                try:
                    self.sock.sendto(payload, addr)
                    self.counters["datagrams"] += 1
                except OSError:  # no route, buffer full: the receiver will see a gap
                    self.counters["send_errors"] += 1
                if self.recorder is not None:
                    self.recorder.record(payload, addr)

    def close(self) -> None:
        self.sock.close()


class RetransmitServer(asyncio.DatagramProtocol):
    """Answers MoldUDP64 retransmission requests from a publisher's log."""

    def __init__(self, publisher: Publisher, recorder: Recorder | None = None):
        self.publisher = publisher
        self.recorder = recorder
        self.transport: asyncio.DatagramTransport | None = None
        self.counters = Counter(requests=0, answered=0, messages=0, bad_request=0,
                                wrong_session=0, out_of_range=0)

    @classmethod
    async def start(cls, publisher: Publisher, address: Address = ("127.0.0.1", 0),
                    recorder: Recorder | None = None) -> RetransmitServer:
        loop = asyncio.get_running_loop()
        _, server = await loop.create_datagram_endpoint(
            lambda: cls(publisher, recorder), local_addr=address)
        return server

    @property
    def address(self) -> Address:
        return self.transport.get_extra_info("sockname")[:2]

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        c = self.counters
        c["requests"] += 1
        if len(data) != moldudp64.HEADER:
            c["bad_request"] += 1
            return
        request = moldudp64.decode_packet(data)  # a request has the header's layout
        if request.session != self.publisher.session:
            c["wrong_session"] += 1
            return
        answer = self.publisher.retransmit(request.seq, request.count)
        if answer is None:
            c["out_of_range"] += 1
            return
        c["answered"] += 1
        c["messages"] += moldudp64.decode_packet(answer).count
        self.transport.sendto(answer, addr)
        if self.recorder is not None:
            self.recorder.record(answer, addr[:2], self.address)

    def error_received(self, exc: Exception) -> None:
        self.counters["send_errors"] += 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
