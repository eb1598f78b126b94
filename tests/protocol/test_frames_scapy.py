"""Our frame builder/parser against scapy, an independent implementation."""

import random

from scapy.layers.inet import IP, UDP, IPOption_NOP
from scapy.layers.l2 import Dot1Q, Ether

from tick2trade.protocol import frames, itch, moldudp64


def test_scapy_reads_our_frames():
    rng = random.Random(7)
    for _ in range(200):
        payload = rng.randbytes(rng.randint(0, 300))
        vlan = rng.choice([None, rng.randrange(4096)])
        opts = bytes([1]) * (4 * rng.randint(0, 3))
        fr = frames.build_udp_frame("233.54.12.111", 26477, payload, vlan=vlan,
                                    ip_options=opts, udp_checksum=True)
        pkt = Ether(fr)
        ip = pkt[IP]
        # scapy recomputes both checksums from scratch: they must equal ours
        again = IP(bytes(ip))
        del again.chksum
        del again[UDP].chksum
        again = IP(bytes(again))
        assert again.chksum == ip.chksum and again[UDP].chksum == pkt[UDP].chksum
        udp = pkt[UDP]
        assert bytes(udp.payload)[:len(payload)] == payload
        assert udp.len == 8 + len(payload)
        assert pkt.dst == "01:00:5e:36:0c:6f"
        if vlan is not None:
            assert pkt[Dot1Q].vlan == vlan


def test_we_read_scapy_frames():
    rng = random.Random(8)
    for _ in range(200):
        msgs = [itch.encode("A", order_ref=rng.getrandbits(64), side="B", shares=100,
                            stock="AAPL", price=1_000_000) for _ in range(rng.randint(1, 5))]
        payload = moldudp64.encode_packet("SCAPY", rng.randrange(1, 1 << 40), msgs)
        layers = Ether(dst="01:00:5e:36:0c:6f")
        if rng.random() < 0.5:
            layers = layers / Dot1Q(vlan=rng.randrange(4096))
        ip = IP(src="10.1.2.3", dst="233.54.12.111",
                options=[IPOption_NOP()] * (4 * rng.randint(0, 2)))
        fr = bytes(layers / ip / UDP(sport=1234, dport=26477) / payload)
        dg = frames.parse_udp_frame(fr)
        assert not isinstance(dg, str), dg
        assert dg.payload == payload and not dg.truncated
        assert frames.int_to_ip(dg.dst_ip) == "233.54.12.111" and dg.dst_port == 26477
        pkt = moldudp64.decode_packet(dg.payload)
        assert pkt.messages == msgs and pkt.complete
