"""The live venue on loopback, end to end: a participant's OUCH order trades against the
synthetic flow, the feed carries the trade on both lines, a lost stretch of the feed is
recovered from the retransmission server, and the day ends cleanly."""

import asyncio
import socket

from tick2trade.protocol import itch, moldudp64, ouch
from tick2trade.sim.venue.client import SoupClient
from tick2trade.sim.venue.config import VenueConfig, default_instruments
from tick2trade.sim.venue.run import run_venue
from tests.sim.venue.test_feed import SEED, Receiver

PATIENCE = 30.0


def udp_receiver():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def test_order_trades_against_the_flow_and_the_feed_shows_it():
    rx_a, rx_b = udp_receiver(), udp_receiver()
    cfg = VenueConfig(instruments=default_instruments()[:1], line_a=rx_a.getsockname(),
                      line_b=rx_b.getsockname(), retransmit=("127.0.0.1", 0),
                      tcp=("127.0.0.1", 0), udp=None, seed=SEED, rate=400.0,
                      feed_heartbeat=0.05)

    async def scenario():
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        ports = loop.create_future()
        venue = asyncio.create_task(run_venue(cfg, stop=stop, ready=ports.set_result))
        listening = await asyncio.wait_for(ports, PATIENCE)
        feed_a: list[bytes] = []

        async def take(sock, out, until):
            while not until():
                out.append(await asyncio.wait_for(loop.sock_recv(sock, 65536), PATIENCE))

        # wait for a book to hit: the flow rests orders on both sides
        def book_has_asks():
            rx = Receiver()
            rx.take([p for p in feed_a if moldudp64.decode_packet(p).count not in
                     (0, moldudp64.END_OF_SESSION)], 65536)
            return len(rx.book.book(1)["asks"]) >= 3 and len(rx.events) >= 40

        await take(rx_a, feed_a, book_has_asks)
        client = await SoupClient.connect(*listening["ouch_tcp"])
        assert (await client.login("me", ""))["type"] == "A"
        client.send(ouch.encode_inbound("O", user_ref=1, side="B", quantity=100_000,
                                        symbol="AAPL", price=ouch.MARKET_PRICE,
                                        tif=ouch.TIF_IOC, clordid="sweep"))
        responses = []
        while not responses or responses[-1]["type"] != "C":
            p = await asyncio.wait_for(client.recv(), PATIENCE)
            responses.append(p["ouch"])
        assert responses[0]["type"] == "A" and responses[0]["clordid"] == "sweep"
        fills = [r for r in responses if r["type"] == "E"]
        assert fills and all(r["liquidity"] == "R" for r in fills)
        assert sum(r["quantity"] for r in fills) + responses[-1]["quantity"] == 100_000
        matches = {r["match"] for r in fills}
        # the trade reaches the feed; then the day ends
        def feed_has_matches():
            seen = {itch.decode(m)["match"] for p in feed_a
                    for m in moldudp64.decode_packet(p).messages if m[:1] in (b"E", b"P")}
            return matches <= seen

        await take(rx_a, feed_a, feed_has_matches)
        # ask for the first 20 messages again, as a receiver that lost them would
        req = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        req.bind(("127.0.0.1", 0))
        req.setblocking(False)
        await loop.sock_sendto(req, moldudp64.encode_request(cfg.session, 1, 20),
                               listening["retransmit"])
        again = moldudp64.decode_packet(
            await asyncio.wait_for(loop.sock_recv(req, 65536), PATIENCE))
        req.close()
        stop.set()
        stats = await asyncio.wait_for(venue, PATIENCE)
        await take(rx_a, feed_a, lambda: moldudp64.decode_packet(feed_a[-1]).count
                   == moldudp64.END_OF_SESSION)
        await client.close()
        return feed_a, again, stats

    feed_a, again, stats = asyncio.run(scenario())
    feed_b = []
    while True:
        try:
            feed_b.append(rx_b.recv(65536))
        except BlockingIOError:
            break
    assert feed_b and set(feed_b) <= set(feed_a)  # line B: the same packets
    rx_a.close()
    rx_b.close()
    messages = [m for p in feed_a for m in moldudp64.decode_packet(p).messages]
    assert again.seq == 1 and again.messages == messages[:again.count] and again.count == 20
    assert [itch.decode(m)["event_code"] for m in messages[-3:]] == ["M", "E", "C"]
    counters = stats.counters
    assert counters["retransmit"]["answered"] == 1
    assert counters["gateway"]["accepted"] == 1 and counters["gateway"]["logins"] == 1
    assert counters["lines"]["datagrams"] == 2 * counters["lines"]["packets"]
