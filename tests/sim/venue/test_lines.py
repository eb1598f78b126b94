"""Lines A/B over loopback UDP, a gap on both lines recovered through the retransmission
server, and the recording of everything sent."""

import asyncio
import random
import socket

from tick2trade.protocol import frames, moldudp64
from tick2trade.gateware.models.rx.moldudp import MoldUdpModel
from tick2trade.sim.replay import read_frames
from tick2trade.protocol.pcap import PcapWriter
from tick2trade.sim.venue.engine import Engine
from tick2trade.sim.venue.feed import Publisher
from tick2trade.sim.venue.lines import LineSender, Recorder, RetransmitServer
from tests.sim.venue.test_feed import INSTRUMENTS, SEED, random_step

LOOPBACK = "127.0.0.1"


def receiver() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    s.bind((LOOPBACK, 0))
    s.settimeout(30)
    return s


def test_gap_on_both_lines_is_recovered_by_retransmission(tmp_path):
    rng = random.Random(SEED)
    where = f"T2T_SEED={SEED}"
    engine = Engine(INSTRUMENTS)
    pub = Publisher(INSTRUMENTS, max_payload=300, session="RETRANS001")
    pub.start_of_day(0)
    refs: list[int] = []
    for step in range(400):
        random_step(rng, engine, refs)
        pub.publish(engine.events, step)
        engine.events.clear()
    packets = pub.flush()
    lost = set(rng.sample(range(1, len(packets) - 2, 3), 3)) | {len(packets) - 1}  # apart
    rx_a, rx_b = receiver(), receiver()
    lines = [rx_a.getsockname(), rx_b.getsockname()]
    capture = tmp_path / "sent.pcap"

    async def scenario():
        with PcapWriter(capture) as pcap:
            recorder = Recorder(pcap)
            sender = LineSender(lines, recorder=recorder)
            sent = [p for k, p in enumerate(packets) if k not in lost]
            sender.send(sent)
            sender.close()
            model = MoldUdpModel()
            got, gaps = {}, []
            for _ in sent:
                for line, sock in enumerate((rx_a, rx_b)):
                    msgs, g = model.process(line, sock.recv(65536))
                    gaps += g
                    got.update((m.seq, m.raw) for m in msgs)
            assert model.counters["dup_b"] == len(sent)
            # the last packet's loss only shows with the next packet: a heartbeat
            msgs, g = model.process(0, pub.heartbeat())
            gaps += g
            assert len(gaps) == len(lost), where
            server = await RetransmitServer.start(pub, (LOOPBACK, 0), recorder)
            loop = asyncio.get_running_loop()
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            client.bind((LOOPBACK, 0))
            client.setblocking(False)
            for bad in (b"short", moldudp64.encode_request("OTHER", 1, 5),
                        moldudp64.encode_request(pub.session, len(pub.log) + 1, 5),
                        moldudp64.encode_request(pub.session, 0, 5),
                        moldudp64.encode_request(pub.session, 1, 0) + b"x"):
                await loop.sock_sendto(client, bad, server.address)
            answers = 0
            for gap in gaps:
                first, end = gap.first, gap.first + gap.count
                while first < end:
                    await loop.sock_sendto(
                        client, moldudp64.encode_request(pub.session, first, end - first),
                        server.address)
                    data = await asyncio.wait_for(loop.sock_recv(client, 65536), 30)
                    answers += 1
                    pkt = moldudp64.decode_packet(data)
                    assert pkt.seq == first and pkt.complete and 0 < pkt.count
                    assert len(data) <= pub.max_payload
                    got.update((pkt.seq + k, raw) for k, raw in enumerate(pkt.messages))
                    first += pkt.count
            client.close()
            server.close()
            c = server.counters
            assert (c["bad_request"], c["wrong_session"], c["out_of_range"]) == (2, 1, 2)
            assert c["answered"] == answers and c["messages"] == sum(g.count for g in gaps)
            return got, len(sent), answers

    got, sent, answers = asyncio.run(scenario())
    rx_a.close()
    rx_b.close()
    assert [got[s] for s in sorted(got)] == pub.log and len(got) == len(pub.log), where
    # the capture: both lines' copies and the answers, as frames the receive path takes
    payloads = []
    for frame in read_frames(capture):
        d = frames.parse_udp_frame(frame[0])
        payloads.append(((frames.int_to_ip(d.dst_ip), d.dst_port), d.payload))
    assert [p for a, p in payloads if a == lines[0]] == \
        [p for k, p in enumerate(packets) if k not in lost]
    assert [a for a, _ in payloads].count(lines[1]) == sent
    assert len(payloads) == 2 * sent + answers
