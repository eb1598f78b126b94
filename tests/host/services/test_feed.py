"""The software feed handler: the venue's feed on loopback rebuilds the venue's displayed
book level by level; a packet lost on one line is covered by the other, one lost on both
is recovered by retransmission, an unanswered request leaves a stale but never a wrong
book; bad input is counted; a random deep, sparse ITCH stream gives the same book as a
plain dict model and as itch-book."""

import asyncio
import contextlib
import datetime as dt
import os
import random
import socket
import struct
import threading
import time
from typing import ClassVar

import itch_book
import numpy as np
import pytest

from tests.sim.venue.test_feed import INSTRUMENTS, displayed, random_step
from tick2trade.host.services.feed import COUNTERS, FeedHandler
from tick2trade.host.services.marketdata import MarketData
from tick2trade.protocol import itch, moldudp64
from tick2trade.sim.venue import run as venue_run
from tick2trade.sim.venue.config import VenueConfig
from tick2trade.sim.venue.engine import Engine
from tick2trade.sim.venue.feed import Publisher
from tick2trade.sim.venue.flow import Flow
from tick2trade.sim.venue.lines import RetransmitServer

SEED = int(os.environ.get("T2T_SEED", random.randrange(1 << 32)))
WHERE = f"T2T_SEED={SEED}"
LOOPBACK = "127.0.0.1"
PATIENCE = 30.0
SESSION = "FEEDTEST01"


def wait_for(condition, what: str, patience: float = PATIENCE) -> None:
    deadline = time.monotonic() + patience
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} ({WHERE})")
        time.sleep(0.005)


def handler_on_loopback(market: MarketData, retransmit, **kw) -> FeedHandler:
    return FeedHandler(market, [(LOOPBACK, 0), (LOOPBACK, 0)], retransmit=retransmit, **kw)


def as_lists(book: dict) -> dict:
    return {side: [list(level) for level in book[side]] for side in ("bids", "asks")}


def market_book(market: MarketData, symbol: str) -> dict:
    view = market.book_view(symbol)
    if view is None:
        return {"bids": [], "asks": []}
    return {"bids": [[x.price, x.size, x.orders] for x in view.bids],
            "asks": [[x.price, x.size, x.orders] for x in view.asks]}


def assert_books_match(handler: FeedHandler, market: MarketData, expected: dict,
                       where: str = WHERE) -> None:
    """``expected``: {symbol: {"bids": [[price, shares, orders]], "asks": ...}}."""
    for symbol, book in expected.items():
        got = handler.book(symbol)
        assert as_lists(got or {"bids": [], "asks": []}) == book, (symbol, where)
        assert market_book(market, symbol) == book, (symbol, where)


# --- a plain model of the book: every message decoded by protocol.itch, a dict of orders --

class DictBook:
    """Orders by reference, aggregated when asked; the handler's rules, written plainly:
    an add onto a live reference replaces it, more shares than the order has remove it (the
    print says the shares executed), no shares or no price is not booked."""

    def __init__(self):
        self.orders: dict[int, list] = {}  # ref -> [locate, side, price, shares]
        self.symbols: dict[int, str] = {}
        self.prints: list[tuple] = []  # (symbol, price, shares, side, match)
        self.kinds: list[str] = []  # the message type of each print

    def add(self, ref, locate, side, price, shares):
        self.orders.pop(ref, None)
        if shares and price:
            self.orders[ref] = [locate, side, price, shares]

    def take(self, ref, shares):
        o = self.orders.get(ref)
        if o is None:
            return None
        done = min(shares, o[3])
        o[3] -= done
        if not o[3]:
            del self.orders[ref]
        return o, done

    def apply(self, raw: bytes) -> None:
        m = itch.decode(raw)
        if m is None:
            return
        t = m["type"]
        if t == "R":
            self.symbols[m["locate"]] = m["stock"]
        elif t in "AF":
            self.symbols.setdefault(m["locate"], m["stock"])
            self.add(m["order_ref"], m["locate"], m["side"], m["price"], m["shares"])
        elif t in "EC":
            got = self.take(m["order_ref"], m["executed_shares"])
            if got is not None and (t == "E" or m["printable"] == "Y"):
                o, _ = got
                price = o[2] if t == "E" else m["execution_price"]
                self.prints.append((self.symbols[o[0]], price, m["executed_shares"],
                                    "buy" if o[1] == "B" else "sell", m["match"]))
                self.kinds.append(t)
        elif t == "X":
            self.take(m["order_ref"], m["cancelled_shares"])
        elif t == "D":
            self.orders.pop(m["order_ref"], None)
        elif t == "U":
            o = self.orders.pop(m["order_ref"], None)
            if o is not None:
                self.add(m["new_ref"], o[0], o[1], m["price"], m["shares"])
        elif t == "P":
            self.symbols.setdefault(m["locate"], m["stock"])
            self.prints.append((m["stock"], m["price"], m["shares"],
                                {"B": "buy", "S": "sell"}.get(m["side"]), m["match"]))
            self.kinds.append(t)

    def books(self) -> dict:
        levels: dict = {}
        for locate, side, price, shares in self.orders.values():
            lvl = levels.setdefault((locate, side), {}).setdefault(price, [price, 0, 0])
            lvl[1] += shares
            lvl[2] += 1
        out = {}
        for locate, symbol in self.symbols.items():
            out[symbol] = {
                "bids": sorted(levels.get((locate, "B"), {}).values(), reverse=True),
                "asks": sorted(levels.get((locate, "S"), {}).values())}
        return out


# --- the live venue ---------------------------------------------------------------------

class PausableFlow(Flow):
    """The venue's flow, which a test can hold still (flow time goes on, nothing trades)
    to compare books while the feed is quiet."""

    made: ClassVar[list["PausableFlow"]] = []
    paused = False

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        PausableFlow.made.append(self)

    def step(self) -> float:
        if self.paused:
            self.now += 0.001
            return self.now
        return super().step()


def test_book_matches_the_venues_displayed_book_level_by_level(monkeypatch):
    PausableFlow.made = []
    monkeypatch.setattr(venue_run, "Flow", PausableFlow)
    market = MarketData()
    handler = handler_on_loopback(market, retransmit=(LOOPBACK, 9))
    cfg = VenueConfig(line_a=handler.addresses["A"], line_b=handler.addresses["B"],
                      retransmit=(LOOPBACK, 0), tcp=None, udp=None, seed=SEED, rate=3000.0,
                      feed_heartbeat=0.05)
    trades: list = []
    market.listen("trade", trades.append)

    async def scenario():
        stop = asyncio.Event()
        ports = asyncio.get_running_loop().create_future()
        venue = asyncio.create_task(venue_run.run_venue(cfg, stop=stop,
                                                        ready=ports.set_result))
        handler.retransmit = (await asyncio.wait_for(ports, PATIENCE))["retransmit"]
        flow = PausableFlow.made[-1]
        pub, engine = flow.venue.publisher, flow.engine
        checks = []
        for _ in range(3):
            await asyncio.sleep(0.5)
            flow.paused = True
            deadline = time.monotonic() + PATIENCE
            # everything published is on the wire once a tick has flushed it
            while not (pub.counters["messages"] == len(pub.log)
                       and handler.status()["next_seq"] == pub.next_seq):
                assert time.monotonic() < deadline, (handler.status(), WHERE)
                await asyncio.sleep(0.005)
            expected = {i.symbol: displayed(engine, i.symbol) for i in cfg.instruments}
            assert_books_match(handler, market, expected)
            checks.append(sum(len(b["bids"]) + len(b["asks"]) for b in expected.values()))
            flow.paused = False
        stop.set()
        return await asyncio.wait_for(venue, PATIENCE), engine, checks

    with handler:
        stats, engine, checks = asyncio.run(scenario())
        wait_for(lambda: handler.status()["ended"], "the end of session")
        expected = {i.symbol: displayed(engine, i.symbol) for i in cfg.instruments}
        assert_books_match(handler, market, expected)
    c = handler.counters()
    assert c["messages"] == stats.messages
    assert c["duplicates"] >= stats.counters["feed"]["packets"] // 2  # line B's, mostly
    assert c["malformed"] == c["bad_messages"] == c["unknown_ref"] == c["errors"] == 0
    by_type = stats.counters["by_type"]
    assert c["trades"] == len(trades) == by_type.get("E", 0) + by_type.get("P", 0) > 0
    assert min(checks) > 40, checks  # the books compared had some depth


def multicast_port() -> int:
    """A port free for both groups, or a skip where this host cannot join a group."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with probe:
        try:
            probe.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                             socket.inet_aton(moldudp64.DEFAULT_LINE_A[0])
                             + socket.inet_aton("0.0.0.0"))
        except OSError as exc:
            pytest.skip(f"no multicast here: {exc}")
        probe.bind(("0.0.0.0", 0))
        return probe.getsockname()[1]


def test_lines_on_multicast_groups_sharing_a_port_each_see_their_own():
    """The venue's default layout (NASDAQ's two groups, one port), with the venue's
    multicast kept to this host (TTL 0): each socket gets only its group's copy."""
    port = multicast_port()
    a, b = (moldudp64.DEFAULT_LINE_A[0], port), (moldudp64.DEFAULT_LINE_B[0], port)
    market = MarketData()
    handler = FeedHandler(market, [a, b], retransmit=None)
    cfg = VenueConfig(instruments=VenueConfig().instruments[:2], line_a=a, line_b=b, ttl=0,
                      retransmit=(LOOPBACK, 0), tcp=None, udp=None, seed=SEED, rate=1000.0,
                      feed_heartbeat=0.05)
    with handler:
        stats = asyncio.run(venue_run.run_venue(cfg, duration=0.5))
        wait_for(lambda: handler.status()["ended"], "the end of session")
    c = handler.counters()
    assert c["messages"] == stats.messages > 0
    # one copy per line: a socket that saw both groups would make three duplicates each
    assert c["duplicates"] == stats.counters["feed"]["packets"], (c, stats.counters)


# --- packets from a publisher, sent by the test with losses chosen per line --------------

def published_session(rng: random.Random, steps: int = 600, max_payload: int = 300):
    """A random day on the sim engine: (engine, publisher, packets), everything flushed."""
    engine = Engine(INSTRUMENTS)
    pub = Publisher(INSTRUMENTS, max_payload=max_payload, session=SESSION, attribution=True)
    pub.start_of_day(1_000)
    refs: list[int] = []
    for step in range(steps):
        random_step(rng, engine, refs)
        pub.publish(engine.events, 34_200_000_000_000 + step)
        engine.events.clear()
    return engine, pub, pub.flush()


def send(handler: FeedHandler, packets: list[bytes], drop_a=(), drop_b=()) -> None:
    """Each packet to line A, then to line B, as the venue's LineSender does."""
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with out:
        for k, payload in enumerate(packets):
            if k not in drop_a:
                out.sendto(payload, handler.addresses["A"])
            if k not in drop_b:
                out.sendto(payload, handler.addresses["B"])


@contextlib.contextmanager
def silent_server():
    """A retransmission address that reads requests and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    sock.setblocking(False)
    with sock:
        yield sock


def requests_at(sock: socket.socket) -> list[moldudp64.Packet]:
    got = []
    while True:
        try:
            got.append(moldudp64.decode_packet(sock.recv(65536)))
        except BlockingIOError:
            return got


@contextlib.contextmanager
def retransmit_server(pub: Publisher):
    """The venue's RetransmitServer on its own asyncio loop in a thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(
        RetransmitServer.start(pub, (LOOPBACK, 0)), loop).result(PATIENCE)
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(PATIENCE)
        loop.close()


def engine_books(engine: Engine) -> dict:
    return {i.symbol: displayed(engine, i.symbol) for i in INSTRUMENTS}


def test_gap_on_line_a_only_is_covered_by_b():
    rng = random.Random(SEED)
    engine, pub, packets = published_session(rng)
    lost = set(rng.sample(range(len(packets) - 1), len(packets) // 5))  # not the last
    market = MarketData()
    with silent_server() as server, \
            handler_on_loopback(market, server.getsockname(), session=SESSION) as handler:
        send(handler, packets, drop_a=lost)
        wait_for(lambda: handler.status()["next_seq"] == pub.next_seq, "the whole feed")
        time.sleep(0.05)  # a request, had one been sent, would have arrived by now
        assert requests_at(server) == []
        assert_books_match(handler, market, engine_books(engine))
    c = handler.counters()
    assert c["requests"] == c["recovered"] == 0, (c, WHERE)
    assert c["packets"] == 2 * len(packets) - len(lost)
    # every packet applied once, directly or after being held: the other copies are
    assert c["duplicates"] == len(packets) - len(lost)
    assert c["messages"] == len(pub.log)


def test_gap_on_both_lines_is_recovered_by_retransmission():
    rng = random.Random(SEED + 1)
    engine, pub, packets = published_session(rng)
    # single packets apart, a run of three (more than one answer's worth), and the last
    # (which only the heartbeat after it reveals)
    singles = set(rng.sample(range(1, len(packets) - 8, 4), 4))
    run = {len(packets) - 6, len(packets) - 5, len(packets) - 4}
    lost = singles | run | {len(packets) - 1}
    lost_messages = sum(moldudp64.decode_packet(packets[k]).count for k in lost)
    market = MarketData()
    with retransmit_server(pub) as server, \
            handler_on_loopback(market, server.address, session=SESSION) as handler:
        send(handler, packets + [pub.heartbeat()], drop_a=lost, drop_b=lost)
        wait_for(lambda: handler.status()["next_seq"] == pub.next_seq, "the recovery")
        assert_books_match(handler, market, engine_books(engine))
        assert not handler.status()["gap_open"]
    c = handler.counters()
    assert c["gaps"] == len(singles) + 2, (c, lost, WHERE)
    assert c["gap_messages"] == c["recovered"] == lost_messages, (c, WHERE)
    assert c["requests"] >= c["gaps"] + 1  # the run needs more than one answer
    assert server.counters["answered"] >= c["gaps"] + 1
    assert c["messages"] == len(pub.log)


def test_a_late_joiner_recovers_the_session_from_its_first_message():
    """A handler started while the venue has been publishing for a while (``t2t api``
    joining a running venue): everything before its first packet is requested, answer by
    answer, while the live packets wait."""
    rng = random.Random(SEED + 5)
    engine, pub, packets = published_session(rng)
    missed = set(range(len(packets) * 2 // 3))
    missed_messages = sum(moldudp64.decode_packet(packets[k]).count for k in missed)
    market = MarketData()
    with retransmit_server(pub) as server, \
            handler_on_loopback(market, server.address, session=SESSION) as handler:
        send(handler, packets, drop_a=missed, drop_b=missed)
        wait_for(lambda: handler.status()["next_seq"] == pub.next_seq, "the catching up")
        assert_books_match(handler, market, engine_books(engine))
    c = handler.counters()
    assert c["gaps"] == 1 and c["gap_messages"] == c["recovered"] == missed_messages
    assert c["requests"] >= missed_messages // 10  # a 300-byte answer holds fewer


def test_unanswered_requests_time_out_and_the_book_stops_before_the_gap():
    rng = random.Random(SEED + 2)
    _, pub, packets = published_session(rng)
    lost = len(packets) // 2
    first_missing = moldudp64.decode_packet(packets[lost]).seq
    before = DictBook()
    for raw in pub.log[:first_missing - 1]:
        before.apply(raw)
    market = MarketData()
    with silent_server() as server, \
            handler_on_loopback(market, server.getsockname(), session=SESSION,
                                timeout=0.05) as handler:
        send(handler, packets, drop_a={lost}, drop_b={lost})
        wait_for(lambda: handler.counters()["timeouts"] >= 3, "three timeouts")
        status = handler.status()
        assert status["gap_open"] and status["gap_seconds"] >= 0.1, status
        assert status["next_seq"] == first_missing and status["known_end"] == pub.next_seq
        assert status["held"] == len(packets) - lost - 1
        assert_books_match(handler, market, before.books())
        handler.stop()
        asked = requests_at(server)
    assert len(asked) >= 4 and len(asked) == handler.counters()["requests"]
    count = moldudp64.decode_packet(packets[lost]).count
    assert {(r.session, r.seq, r.count) for r in asked} == {
        (pub.session, first_missing, count)}, WHERE
    c = handler.counters()
    assert c["messages"] == first_missing - 1 and c["recovered"] == 0


# --- bad input ---------------------------------------------------------------------------

def add(ref: int, side: str = "B", price: int = 100_000, shares: int = 100,
        locate: int = 1, stock: str = "AAPL") -> bytes:
    return itch.encode("A", locate=locate, order_ref=ref, side=side, shares=shares,
                       stock=stock, price=price)


def test_malformed_packets_and_itch_garbage_are_counted_not_fatal():
    rng = random.Random(SEED + 3)
    market = MarketData()
    handler = FeedHandler(market, [], retransmit=None, session=SESSION)
    good = moldudp64.encode_packet(SESSION, 1, [add(1), add(2, "S", 100_100)])
    truncated = moldudp64.encode_packet(SESSION, 3, [add(3), add(4)])[:-5]
    garbage = moldudp64.encode_packet(SESSION, 3, [
        b"", b"z" + bytes(20), add(3)[:-1], b"A" * 36,  # "A" * 36: side "A", not booked
        itch.encode("D", order_ref=999), itch.encode("E", order_ref=1,
                                                     executed_shares=150, match=7)])
    for payload in (b"", b"short", good, truncated, garbage,
                    moldudp64.encode_packet("OTHER", 9, [add(9)])):
        handler.process(payload)
    for _ in range(300):  # random datagrams, some with the right session
        head = moldudp64.session_bytes(SESSION) if rng.random() < 0.5 else b""
        handler.process(head + rng.randbytes(rng.randrange(0, 120)))
    c = handler.counters()
    assert c["errors"] == 0, WHERE
    assert c["malformed"] >= 3 and c["wrong_session"] >= 1
    assert c["bad_messages"] >= 3 and c["unknown_ref"] >= 1 and c["clamped"] >= 1
    assert c["rejected"] >= 1
    # the execute of 150 cleared order 1 (100 shares); order 2 is still there, unless a
    # random datagram of the right session happened to be a valid packet deleting it
    assert handler.book("AAPL")["bids"] == [] and market_book(market, "AAPL")["bids"] == []
    assert market.quote("AAPL").last == 100_000 and market.quote("AAPL").last_size == 150


def test_heartbeat_reveals_a_lost_last_packet_and_end_of_session_ends_it():
    market = MarketData()
    handler = FeedHandler(market, [], retransmit=None)
    handler.process(moldudp64.encode_packet(SESSION, 1, [add(1)]))
    handler.process(moldudp64.encode_heartbeat(SESSION, 2))
    assert not handler.status()["gap_open"]
    handler.process(moldudp64.encode_heartbeat(SESSION, 4))  # 2 and 3 were lost
    assert handler.status()["gap_open"] and handler.counters()["gaps"] == 1
    handler.process(moldudp64.encode_packet(SESSION, 2, [add(2), add(3)]), "B")
    handler.process(moldudp64.encode_end_of_session(SESSION, 4))
    status = handler.status()
    assert status["ended"] and not status["gap_open"] and status["session"] == SESSION
    assert handler.book("AAPL")["bids"] == [(100_000, 300, 3)]
    handler.process(moldudp64.encode_packet(SESSION, 4, [add(4)]))  # after the end
    assert handler.book("AAPL")["bids"] == [(100_000, 300, 3)]
    # a new session: the venue restarted; every book starts over
    handler.process(moldudp64.encode_packet("NEXTDAY001", 1, [add(1, price=99_000)]))
    assert handler.status()["session"] == "NEXTDAY001" and not handler.status()["ended"]
    assert market_book(market, "AAPL")["bids"] == [[99_000, 100, 1]]
    handler.process(moldudp64.encode_packet(SESSION, 5, [add(5)]))  # the old one, late
    c = handler.counters()
    assert c["sessions"] == 2 and c["wrong_session"] == 1 and c["heartbeats"] == 2
    assert set(c) == set(COUNTERS)


def test_only_the_selected_symbols_are_published():
    market = MarketData()
    handler = FeedHandler(market, [], retransmit=None, symbols={"MSFT"})
    seen = []  # a listener may read the handler: the market is called outside its lock
    market.listen("book", lambda update: seen.append(handler.book(update.symbol)))
    handler.process(moldudp64.encode_packet(SESSION, 1, [
        add(1), add(2, locate=2, stock="MSFT"), itch.encode("E", order_ref=1,
                                                            executed_shares=10),
        itch.encode("E", order_ref=2, executed_shares=10)]))
    assert market.book_view("AAPL") is None and market.quote("AAPL") is None
    assert market_book(market, "MSFT")["bids"] == [[100_000, 90, 1]]
    assert handler.book("AAPL")["bids"] == [(100_000, 90, 1)]  # kept, not published
    assert handler.counters()["trades"] == 1
    assert seen == [{"bids": [(100_000, 90, 1)], "asks": []}]


# --- a random day: thousands of instruments, sparse references, deep books ---------------

DAY = dt.date(2026, 1, 2)


def random_day(rng: random.Random, instruments: int = 3000, actions: int = 40_000):
    """ITCH messages of a random day: stock directory, then adds (A and F), executes (E,
    C printable or not), cancels, deletes, replaces and hidden prints, on references
    drawn from one increasing day-wide sequence with gaps; five deep symbols take most of
    the flow, over hundreds of price levels; now and then an unknown reference or an
    over-sized execute."""
    locates = rng.sample(range(1, 65536), instruments)
    names = [f"S{k:05d}" for k in range(instruments)]
    deep = list(range(5))
    msgs = [itch.encode("S", event_code="O")]
    msgs += [itch.encode("R", locate=loc, stock=name, market_category="Q")
             for loc, name in zip(locates, names, strict=True)]
    live: list[int] = []  # live references, for picking one
    orders: dict[int, list] = {}  # ref -> [instrument, side, shares, index in live]
    # itch-book refuses references past its cap (between 2**34 and 2**36): start lower
    ref = rng.randrange(1, 1 << 32)
    match = 1
    ts = 34_200_000_000_000

    def rest(ref: int, k: int, side: str, shares: int) -> None:
        orders[ref] = [k, side, shares, len(live)]
        live.append(ref)

    def gone(ref: int) -> None:
        k = orders.pop(ref)[3]
        last = live.pop()
        if last != ref:
            live[k] = last
            orders[last][3] = k

    def take(ref: int, shares: int) -> None:
        if ref in orders:
            orders[ref][2] -= shares
            if orders[ref][2] <= 0:
                gone(ref)

    def level(k: int, side: str) -> int:
        span = 400 if k in deep else 20
        return 1_000_000 + (-1 if side == "B" else 1) * 100 * rng.randrange(1, span)

    for _ in range(actions):
        ts += rng.randrange(1, 50_000)
        r = rng.random()
        if r < 0.45 or len(live) < 50:
            k = rng.choice(deep) if rng.random() < 0.7 else rng.randrange(instruments)
            side = rng.choice("BS")
            ref += rng.randrange(1, 5000)
            kind = "A" if rng.random() < 0.8 else "F"
            extra = {"attribution": "MPID"} if kind == "F" else {}
            shares = rng.choice((1, 10, 100, 250))
            msgs.append(itch.encode(kind, locate=locates[k], timestamp=ts, order_ref=ref,
                                    side=side, shares=shares, stock=names[k],
                                    price=level(k, side), **extra))
            rest(ref, k, side, shares)
            continue
        victim = live[rng.randrange(len(live))]
        k, side = orders[victim][:2]
        if rng.random() < 0.01:
            victim = ref + 1 + rng.randrange(1000)  # not added (yet)
        loc = locates[k]
        if r < 0.60:
            shares = rng.choice((1, 10, 100, 400))
            msgs.append(itch.encode("E", locate=loc, timestamp=ts, order_ref=victim,
                                    executed_shares=shares, match=match))
            take(victim, shares)
            match += 1
        elif r < 0.65:
            shares = rng.choice((1, 10))
            msgs.append(itch.encode("C", locate=loc, timestamp=ts, order_ref=victim,
                                    executed_shares=shares, match=match,
                                    printable=rng.choice("YN"), execution_price=999_900))
            take(victim, shares)
            match += 1
        elif r < 0.75:
            shares = rng.choice((1, 5, 300))
            msgs.append(itch.encode("X", locate=loc, timestamp=ts, order_ref=victim,
                                    cancelled_shares=shares))
            take(victim, shares)
        elif r < 0.88:
            msgs.append(itch.encode("D", locate=loc, timestamp=ts, order_ref=victim))
            if victim in orders:
                gone(victim)
        elif r < 0.97:
            ref += rng.randrange(1, 5000)
            shares = rng.choice((10, 100))
            msgs.append(itch.encode("U", locate=loc, timestamp=ts, order_ref=victim,
                                    new_ref=ref, shares=shares, price=level(k, side)))
            if victim in orders:
                gone(victim)
                rest(ref, k, side, shares)
        else:
            msgs.append(itch.encode("P", locate=loc, timestamp=ts, order_ref=0, side=side,
                                    shares=rng.choice((5, 50)), stock=names[k],
                                    price=1_000_000, match=match))
            match += 1
    return msgs, [names[k] for k in deep]


def in_packets(rng: random.Random, messages: list[bytes]) -> list[bytes]:
    out, seq = [], 1
    while seq <= len(messages):
        n = min(rng.choice((1, 3, 20, 60)), len(messages) - seq + 1)
        out.append(moldudp64.encode_packet(SESSION, seq, messages[seq - 1:seq - 1 + n]))
        seq += n
    return out


def itch_book_tables(path, messages: list[bytes], deep: list[str]):
    path.write_bytes(b"".join(struct.pack("!H", len(m)) + m for m in messages))
    feed = itch_book.open(str(path), date=DAY, price_type="fixed")
    bbo, trades, depth = [], [], []
    for batch in feed.batches(tables=("bbo", "trades", "symbols"), rows=1 << 20):
        bbo.append(batch.bbo)
        trades.append(batch.trades)
        symbols = dict(zip(batch.symbols["locate"], batch.symbols["symbol"], strict=True))
    for batch in feed.batches(tables=("depth",), depth=50, rows=1 << 20, symbols=tuple(deep)):
        depth.append(batch.depth)

    def cat(tables):
        return {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}

    return cat(bbo), cat(trades), cat(depth), symbols, feed.stats


def last_rows(table: dict) -> dict[int, int]:
    """locate -> index of its last row."""
    return {int(loc): i for i, loc in enumerate(table["locate"])}


def test_random_deep_sparse_day_matches_a_dict_model_and_itch_book(tmp_path):
    rng = random.Random(SEED + 4)
    messages, deep = random_day(rng)
    market = MarketData()
    prints: list = []
    market.listen("trade", lambda t: prints.append((t.symbol, t.price, t.size, t.side,
                                                    t.match)))
    handler = FeedHandler(market, [], retransmit=None)
    model = DictBook()
    packets = in_packets(rng, messages)
    checkpoints = set(rng.sample(range(len(packets)), 4)) | {len(packets) - 1}
    seq = 1
    for k, payload in enumerate(packets):
        handler.process(payload)
        pkt = moldudp64.decode_packet(payload)
        for raw in pkt.messages:
            model.apply(raw)
        seq += pkt.count
        if k in checkpoints:
            books = model.books()
            for symbol in deep + rng.sample(sorted(books), 50):
                assert as_lists(handler.book(symbol)) == books[symbol], (symbol, k, WHERE)
    books = model.books()
    assert_books_match(handler, market, books)
    assert max(len(books[s]["bids"]) for s in deep) > 200, WHERE  # deep, as promised
    assert prints == model.prints, WHERE
    c = handler.counters()
    assert c["messages"] == len(messages) and c["unknown_ref"] > 0 and c["clamped"] > 0
    assert c["bad_messages"] == c["errors"] == 0

    bbo, trades, depth, symbols, stats = itch_book_tables(tmp_path / "day.itch", messages,
                                                          deep)
    assert stats["missing_ref"] == c["unknown_ref"] and stats["clamped"] == c["clamped"]
    assert stats["live_orders"] == handler.live_orders() == len(model.orders)
    # the top of every book, as itch-book last saw it
    for loc, i in last_rows(bbo).items():
        book = books[symbols[loc]]
        for side, px in (("bids", "bid"), ("asks", "ask")):
            top = book[side][0] if book[side] else [0, 0, 0]
            assert [bbo[f"{px}_px"][i], bbo[f"{px}_sz"][i], bbo[f"{px}_ct"][i]] == top, \
                (symbols[loc], side, WHERE)
    # fifty levels a side of the deep books
    for loc, i in last_rows(depth).items():
        book = books[symbols[loc]]
        for side, px in (("bids", "bid"), ("asks", "ask")):
            theirs = [[int(depth[f"{px}_{f}_{n:02d}"][i]) for f in ("px", "sz", "ct")]
                      for n in range(50)]
            ours = book[side][:50] + [[0, 0, 0]] * (50 - len(book[side][:50]))
            assert theirs == ours, (symbols[loc], side, WHERE)
    # every print, in order (itch-book's E/C carry the resting side; its P side is "N")
    side = {b"B": "buy", b"S": "sell", b"N": None}
    theirs = [(symbols[int(loc)], int(px), int(size), side[bytes(s)], int(match))
              for loc, px, size, s, match in zip(trades["locate"], trades["price"],
                                                 trades["size"], trades["side"],
                                                 trades["match_number"], strict=True)]
    assert theirs == [(s, p, n, sd if kind != "P" else None, m)
                      for (s, p, n, sd, m), kind in zip(prints, model.kinds, strict=True)], \
        WHERE
    assert len(prints) > 1000


def test_a_handler_stops_and_closes_cleanly():
    handler = handler_on_loopback(MarketData(), retransmit=(LOOPBACK, 9)).start()
    with pytest.raises(RuntimeError):
        handler.start()
    t0 = time.monotonic()
    handler.close()
    assert time.monotonic() - t0 < 1.0
    assert not any(t.name == "feed" and t.is_alive() for t in threading.enumerate())


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def test_named_unicast_lines_as_the_platform_opens_them_and_stop_is_idempotent():
    """``FeedHandler(market, lines=[...], retransmit=...)`` with fixed loopback ports, as
    ``host/services/live.py`` calls it: the lines listen where they were told, packets
    sent there reach the market, ``stop`` joins the thread (nothing is read while it is
    stopped), may be called any number of times, and ``start`` runs it again."""
    rng = random.Random(SEED + 7)
    _, pub, packets = published_session(rng)
    pa, pb = free_udp_port(), free_udp_port()
    market = MarketData()
    with silent_server() as server:
        pr = server.getsockname()[1]
        handler = FeedHandler(market, lines=[(LOOPBACK, pa), (LOOPBACK, pb)],
                              retransmit=(LOOPBACK, pr))
        try:
            assert handler.addresses["A"] == (LOOPBACK, pa)
            assert handler.addresses["B"] == (LOOPBACK, pb)
            handler.stop()  # never started: nothing to do
            handler.start()
            half = len(packets) // 2
            send(handler, packets[:half])
            wait_for(lambda: handler.counters()["packets"] == 2 * half, "the first half")
            handler.stop()
            assert not any(t.name == "feed" and t.is_alive() for t in threading.enumerate())
            handler.stop()
            send(handler, packets[half:], drop_b=range(len(packets)))  # line A only
            time.sleep(0.05)
            assert handler.counters()["packets"] == 2 * half, WHERE  # stopped: unread
            handler.start()  # what waited in the socket is read now
            wait_for(lambda: handler.status()["next_seq"] == pub.next_seq, "the rest")
            assert market.book_view(INSTRUMENTS[0].symbol) is not None
            assert requests_at(server) == []
        finally:
            handler.close()
    handler.close()
    handler.stop()
    with pytest.raises(RuntimeError, match="closed"):
        handler.start()


def test_a_market_listener_may_stop_the_handler():
    """stop() from the feed thread (a listener of the market) cannot join its own thread:
    it asks the thread to end, and a close() from outside then joins it."""
    market = MarketData()
    handler = handler_on_loopback(market, retransmit=None, session=SESSION)
    raised = []

    def stop_it(update) -> None:
        try:
            handler.stop()
        except RuntimeError as exc:  # the market would only log it
            raised.append(exc)

    market.listen("book", stop_it)

    def feed_running() -> bool:
        return any(t.name == "feed" and t.is_alive() for t in threading.enumerate())

    with handler:
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with out:
            out.sendto(moldudp64.encode_packet(SESSION, 1, [add(1)]), handler.addresses["A"])
        wait_for(lambda: not feed_running(), "the thread to end")
    assert raised == []
    assert handler.counters()["book_updates"] == 1
    assert not feed_running()


def test_a_line_that_cannot_listen_says_which_and_where():
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with taken:
        taken.bind((LOOPBACK, 0))
        host, port = taken.getsockname()
        with pytest.raises(OSError, match=f"feed line B: cannot listen on {host}:{port}"):
            FeedHandler(MarketData(), [(LOOPBACK, 0), (host, port)], retransmit=None)
