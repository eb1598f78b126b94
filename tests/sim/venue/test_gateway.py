"""The OUCH gateway over real loopback sockets: random (and bad) orders from several
accounts give exactly the responses a reference built on a second engine predicts;
login, heartbeat, timeout and garbage rules one at a time."""

import asyncio
import os
import random
import socket

import pytest

from tick2trade.protocol import frames, moldudp64, ouch, soupbintcp
from tick2trade.sim.replay import read_frames
from tick2trade.protocol.pcap import PcapWriter
from tick2trade.sim.venue.client import SoupClient
from tick2trade.sim.venue.engine import CANCEL, EXEC, GTC, Engine, Instrument
from tick2trade.sim.venue.gateway import Account, Gateway
from tick2trade.sim.venue.lines import Recorder
from tick2trade.sim.venue.venue import Venue

SEED = int(os.environ.get("T2T_SEED", random.randrange(1 << 32)))
INSTRUMENTS = [Instrument("AAPL", 1, tick=100, max_qty=1000),
               Instrument("BTC-USD", 2, tick=50, lot=5, max_qty=5000, kind="crypto")]
USERS = {"alice": "pw-a", "bob": "pw-b", "carol": "pw-c"}
LOOPBACK = "127.0.0.1"
PATIENCE = 30.0  # seconds before a test gives up waiting (a hang, not a timing check)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


async def until(predicate, what: str) -> None:
    """Wait for the server side to get somewhere; fail only if it never does."""
    loop = asyncio.get_running_loop()
    end = loop.time() + PATIENCE
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.001)


async def start(**kw):
    venue = Venue(INSTRUMENTS, smp=kw.pop("smp", None))
    gw = Gateway(venue, users=kw.pop("users", USERS), **kw)
    server = await gw.serve_tcp(LOOPBACK, 0)
    return venue, gw, server, server.sockets[0].getsockname()[1]


class Reference:
    """What each account must receive, from a second engine fed the same orders."""

    def __init__(self, smp):
        self.engine = Engine(INSTRUMENTS, smp=smp)
        self.last = {u: 0 for u in USERS}
        self.live = {u: {} for u in USERS}
        self.owner = {}
        self.out = {u: [] for u in USERS}

    def _events(self):
        for ev in self.engine.events:
            if ev[0] == EXEC:
                for ref, liq in ((ev[2], "A"), (ev[6], "R")):
                    if ref in self.owner:
                        u, ur = self.owner[ref]
                        self.out[u].append(("E", ur, ev[3], ev[4], liq))
            elif ev[0] == CANCEL and ev[2] in self.owner:
                u, ur = self.owner[ev[2]]
                self.out[u].append(("C", ur, ev[3], ev[5]))
        self.engine.events.clear()
        for ref in [r for r in self.owner if r not in self.engine.orders]:
            u, ur = self.owner.pop(ref)
            self.live[u].pop(ur, None)

    def enter(self, u, ur, side, qty, sym, price, tif, display):
        if ur <= self.last[u]:
            return self.out[u].append(("J", ur, 6))
        self.last[u] = ur
        if tif not in "0314":
            return self.out[u].append(("J", ur, 5))
        if display not in ("", "Y", "N"):
            return self.out[u].append(("J", ur, 9))
        ref = self.engine.submit(sym, side, qty, None if price == ouch.MARKET_PRICE
                                 else price, tif, u, display == "N")
        if ref < 0:
            return self.out[u].append(("J", ur, -ref))
        self.out[u].append(("A", ur, ref))
        self.owner[ref] = (u, ur)
        self.live[u][ur] = ref
        self._events()

    def replace(self, u, orig, ur, qty, price):
        ref = self.live[u].get(orig)
        if ref is None:
            return self.out[u].append(("J", ur, 7))
        if ur <= self.last[u]:
            return self.out[u].append(("J", ur, 6))
        self.last[u] = ur
        new = self.engine.replace(ref, qty, None if price == ouch.MARKET_PRICE else price)
        if new < 0:
            return self.out[u].append(("J", ur, -new))
        rests = next(ev for ev in self.engine.events if ev[0] == "U")[4]
        self.out[u].append(("U", orig, ur, new, rests))
        del self.owner[ref]
        del self.live[u][orig]
        self.owner[new] = (u, ur)
        self.live[u][ur] = new
        self._events()

    def cancel(self, u, ur, qty):
        ref = self.live[u].get(ur)
        if ref is None:
            return self.out[u].append(("J", ur, 7))
        self.engine.cancel(ref, qty)
        self._events()


def summarize(p: dict) -> tuple:
    m = p["ouch"]
    t = m["type"]
    if t == "A":
        return ("A", m["user_ref"], m["order_ref"])
    if t == "J":
        return ("J", m["user_ref"], m["reason"])
    if t == "E":
        return ("E", m["user_ref"], m["quantity"], m["price"], m["liquidity"])
    if t == "C":
        return ("C", m["user_ref"], m["quantity"], m["reason"])
    return ("U", m["orig_user_ref"], m["user_ref"], m["order_ref"], m["quantity"])


def random_action(rng, ref: Reference, u: str, next_ur: dict):
    """(OUCH message, reference call) for account ``u``; about 1 in 6 is bad."""
    ur = next_ur[u] = max(0, next_ur[u] + rng.choice([1] * 20 + [2, 0, -1]))  # u32
    live = list(ref.live[u])
    r = rng.random()
    inst = rng.choice(INSTRUMENTS)
    price = 10000 + inst.tick * rng.randint(-4, 4)
    if rng.random() < 0.06:
        price = rng.choice([0, -100, 10001, 2 ** 33, ouch.MARKET_PRICE])
    qty = inst.lot * rng.choice([1, 2, 5, 10, 50])
    if rng.random() < 0.04:
        qty = rng.choice([0, 3, 10 ** 6])
    if r < 0.6 or not live:
        side = rng.choice("BBSSTEX" if rng.random() < 0.1 else "BS")
        sym = rng.choice([inst.symbol] * 30 + ["MSFT", ""])
        tif = rng.choice("0000000313" + ("42" if rng.random() < 0.2 else ""))
        display = rng.choice("YYYYYYYN" + ("Q" if rng.random() < 0.1 else ""))
        msg = ouch.encode_inbound("O", user_ref=ur, side=side, quantity=qty, symbol=sym,
                                  price=price, tif=tif, display=display, clordid=f"c{ur}")
        return msg, lambda: ref.enter(u, ur, side, qty, sym, price, tif, display)
    target = rng.choice(live + [999_999])
    if r < 0.85:
        q = rng.choice([0, 0, inst.lot])
        msg = ouch.encode_inbound("X", user_ref=target, quantity=q)
        return msg, lambda: ref.cancel(u, target, q)
    msg = ouch.encode_inbound("U", orig_user_ref=target, user_ref=ur, quantity=qty,
                              price=price)
    return msg, lambda: ref.replace(u, target, ur, qty, price)


@pytest.mark.parametrize("case", range(3))
def test_random_orders_over_tcp_get_the_reference_responses(case):
    seed = SEED + case
    where = f"seed {seed} (T2T_SEED={seed - case} to repeat)"
    rng = random.Random(seed)
    smp = [None, "cancel_resting", "cancel_incoming"][case]

    async def scenario():
        venue, gw, server, port = await start(smp=smp)
        ref = Reference(smp)
        clients = {}
        for u, pw in USERS.items():
            clients[u] = await SoupClient.connect(LOOPBACK, port)
            assert (await clients[u].login(u, pw))["type"] == "A"
        next_ur = {u: 0 for u in USERS}
        for n in range(1, 401):
            u = rng.choice(list(USERS))
            msg, expect = random_action(rng, ref, u, next_ur)
            clients[u].send(msg)
            expect()
            await until(lambda n=n: gw.counters["ouch_in"] == n, f"message {n} processed")
        got = {}
        for u, c in clients.items():
            c.write(soupbintcp.encode("O"))
            got[u] = []
            while (p := await c.recv()) is not None:
                assert p["type"] == "S", p
                got[u].append(summarize(p))
            await c.close()
        server.close()
        for u in USERS:
            assert got[u] == ref.out[u], (u, where)
        for sym in ("AAPL", "BTC-USD"):
            assert venue.engine.books[sym].snapshot() == ref.engine.books[sym].snapshot()
        kinds = {t[0] for u in USERS for t in got[u]}
        assert kinds >= {"A", "J", "E", "C", "U"}, (kinds, where)
        assert gw.counters["logouts"] == 3
        # the feed saw the same trading
        assert venue.publisher.next_seq > 1

    run(scenario())


def test_login_rules_and_replay_of_missed_messages():
    async def scenario():
        _, gw, server, port = await start()
        c = await SoupClient.connect(LOOPBACK, port)
        assert await c.login("alice", "wrong") == {"type": "J", "reason": "A"}
        assert await c.recv() is None
        c = await SoupClient.connect(LOOPBACK, port)
        assert await c.login("eve", "pw-a") == {"type": "J", "reason": "A"}
        c = await SoupClient.connect(LOOPBACK, port)
        assert await c.login("alice", "pw-a", session="OTHER") == {"type": "J", "reason": "S"}
        a = await SoupClient.connect(LOOPBACK, port)
        assert await a.login("alice", "pw-a") == {"type": "A", "session": "T2T0000001",
                                                  "sequence": 1}
        twin = await SoupClient.connect(LOOPBACK, port)
        assert await twin.login("alice", "pw-a") == {"type": "J", "reason": "S"}
        a.send(ouch.encode_inbound("O", user_ref=1, side="B", quantity=10, symbol="AAPL",
                                   price=10000, tif=GTC))
        assert (await a.recv())["ouch"]["type"] == "A"
        await a.close()
        await until(lambda: gw.accounts["alice"].send is None, "alice disconnected")
        # executed while alice is away
        b = await SoupClient.connect(LOOPBACK, port)
        await b.login("bob", "pw-b")
        b.send(ouch.encode_inbound("O", user_ref=1, side="S", quantity=4, symbol="AAPL",
                                   price=10000, tif="3"))
        assert [(await b.recv())["ouch"]["type"] for _ in range(2)] == ["A", "E"]
        a = await SoupClient.connect(LOOPBACK, port)
        assert (await a.login("alice", "pw-a", sequence=1))["sequence"] == 1
        replayed = [(await a.recv())["ouch"] for _ in range(2)]
        assert [m["type"] for m in replayed] == ["A", "E"]
        assert replayed[1]["quantity"] == 4 and replayed[1]["liquidity"] == "A"
        again = await SoupClient.connect(LOOPBACK, port)
        await a.close()
        await until(lambda: gw.accounts["alice"].send is None, "alice disconnected")
        assert (await again.login("alice", "pw-a"))["sequence"] == 3  # 0: only new ones
        early = await SoupClient.connect(LOOPBACK, port)
        early.send(ouch.encode_inbound("X", user_ref=1))
        p = await early.recv()
        assert p["type"] == "+" and b"before login" in p["text"]
        assert await early.recv() is None
        server.close()
        assert gw.counters["login_rejected_A"] == 2 and gw.counters["login_rejected_S"] == 2
        assert gw.counters["disconnect_not_logged_in"] == 1

    run(scenario())


def test_heartbeats_both_ways_and_a_silent_client_is_dropped():
    """Two servers, so that neither check depends on how fast the machine is: one that
    heartbeats often and never times out, one that times out soon and never
    heartbeats."""
    async def scenario():
        _, gw, server, port = await start(heartbeat=0.02, timeout=3600)
        c = await SoupClient.connect(LOOPBACK, port)
        await c.login("bob", "pw-b")
        for _ in range(3):
            c.write(soupbintcp.encode("R"))
            assert (await c.recv(skip_heartbeats=False))["type"] == "H"
        await until(lambda: gw.counters["heartbeats_received"] == 3, "client heartbeats")
        await c.close()
        server.close()
        assert gw.counters["heartbeats_sent"] >= 3

        _, gw, server, port = await start(heartbeat=3600, timeout=0.2)
        c = await SoupClient.connect(LOOPBACK, port)
        await c.login("bob", "pw-b")
        p = await c.recv(skip_heartbeats=False)
        assert p["type"] == "+" and b"no packet from the client" in p["text"]
        assert await c.recv() is None
        server.close()
        assert gw.counters["disconnect_timeout"] == 1 and gw.counters["heartbeats_sent"] == 0

    run(scenario())


def test_garbage_is_answered_and_counted_and_trading_goes_on():
    rng = random.Random(SEED)

    async def scenario():
        venue, gw, server, port = await start()
        good = await SoupClient.connect(LOOPBACK, port)
        await good.login("carol", "pw-c")
        good.send(ouch.encode_inbound("O", user_ref=5, side="S", quantity=100,
                                      symbol="AAPL", price=10100, tif="0"))
        assert (await good.recv())["ouch"]["type"] == "A"
        # bad OUCH inside good framing: a Debug answer, the session stays
        for bad in (b"", b"Q" + bytes(10), ouch.encode_inbound("X", user_ref=1)[:-1],
                    ouch.encode_inbound("O", user_ref=9)[:40]):
            good.send(bad)
            p = await good.recv()
            assert p["type"] == "+", p
        garbage = [b"\x00\x00", b"\x00\x05Zabcd", b"\x00\x03L12", rng.randbytes(300),
                   soupbintcp.encode("+", text=b"hi")]
        garbage += [rng.randbytes(rng.randint(1, 200)) for _ in range(20)]
        for junk in garbage:
            c = await SoupClient.connect(LOOPBACK, port)
            c.write(junk)
            c.writer.write_eof()
            while (p := await c.recv()) is not None:
                assert p["type"] in ("+", "J")
            await c.close()
        good.send(ouch.encode_inbound("O", user_ref=6, side="B", quantity=40,
                                      symbol="AAPL", price=10100, tif="3"))
        fills = [(await good.recv())["ouch"] for _ in range(3)]
        assert [(m["type"], m["liquidity"] if m["type"] == "E" else "") for m in fills] == \
            [("A", ""), ("E", "A"), ("E", "R")]
        server.close()
        drops = sum(v for k, v in gw.counters.items() if k.startswith("disconnect_"))
        assert drops >= 3
        assert gw.counters["unknown_ouch_type"] >= 1 and gw.counters["bad_ouch_length"] >= 2
        assert venue.engine.books["AAPL"].snapshot()["S"] == [(10100, [(1, 60)])]

    run(scenario())


def test_udp_order_entry_answers_each_sender(tmp_path):
    async def scenario():
        venue, gw, server, _ = await start()
        pcap = PcapWriter(tmp_path / "udp.pcap")
        gw.recorder = Recorder(pcap)
        transport = await gw.serve_udp(LOOPBACK, 0)
        addr = transport.get_extra_info("sockname")
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        for s in socks:
            s.bind((LOOPBACK, 0))
            s.setblocking(False)
        loop = asyncio.get_running_loop()

        async def ask(s, payload: bytes, answers: int) -> list[dict]:
            await loop.sock_sendto(s, payload, addr)
            out = []
            for _ in range(answers):
                data = await asyncio.wait_for(loop.sock_recv(s, 2048), PATIENCE)
                packets, rest = soupbintcp.split(data)
                assert rest == b"" and len(packets) == 1
                p = soupbintcp.decode(packets[0])
                if p["type"] == "U":
                    p["ouch"] = ouch.decode_outbound(p["message"])
                out.append(p)
            return out

        enter = ouch.encode_inbound("O", user_ref=1, side="S", quantity=30, symbol="AAPL",
                                    price=10000, tif="0")
        (acc,) = await ask(socks[0], soupbintcp.encode("U", message=enter), 1)
        assert acc["ouch"]["type"] == "A" and acc["ouch"]["order_state"] == "L"
        hit = ouch.encode_inbound("O", user_ref=1, side="B", quantity=10, symbol="AAPL",
                                  price=10000, tif="3")
        a, e = await ask(socks[1], soupbintcp.encode("U", message=hit), 2)
        assert (a["ouch"]["type"], e["ouch"]["type"], e["ouch"]["liquidity"]) == \
            ("A", "E", "R")
        maker = soupbintcp.decode(soupbintcp.split(
            await asyncio.wait_for(loop.sock_recv(socks[0], 2048), PATIENCE))[0][0])
        assert ouch.decode_outbound(maker["message"])["quantity"] == 10
        zero = ouch.encode_inbound("O", user_ref=2, side="B", quantity=0, symbol="AAPL",
                                   price=10000, tif="0")
        (j,) = await ask(socks[1], soupbintcp.encode("U", message=zero), 1)
        assert j["ouch"]["type"] == "J" and j["ouch"]["reason"] == 2
        for junk in (b"", b"\x00", b"\x00\x00", b"\x00\x09Uabc", soupbintcp.encode("L"),
                     moldudp64.encode_heartbeat("X", 1), soupbintcp.encode("U", message=b"Z")):
            (d,) = await ask(socks[1], junk, 1)
            assert d["type"] == "+"
        two = soupbintcp.encode("U", message=ouch.encode_inbound("X", user_ref=1)) * 2
        c, j = (a["ouch"] for a in await ask(socks[0], two, 2))
        assert (c["type"], c["quantity"], j["type"], j["reason"]) == ("C", 20, "J", 7)
        senders = {s.getsockname() for s in socks}
        transport.close()
        server.close()
        for s in socks:
            s.close()
        assert gw.counters["udp_bad_datagram"] >= 3
        pcap.close()
        recorded = [frames.parse_udp_frame(f) for f, _ in read_frames(tmp_path / "udp.pcap")]
        kinds = [soupbintcp.decode(d.payload[2:])["type"] for d in recorded]
        assert (kinds.count("U"), kinds.count("+")) == (gw.counters["ouch_out"], 7)
        assert len(kinds) == 7 + gw.counters["ouch_out"]
        assert {(frames.int_to_ip(d.dst_ip), d.dst_port) for d in recorded} == \
            senders
        assert all(d.src_port == addr[1] for d in recorded)
        assert venue.engine.books["AAPL"].snapshot() == {"B": [], "S": []}

    run(scenario())


def test_any_bytes_in_any_field_get_an_answer_and_never_an_exception():
    """Valid messages with random bytes in every field (non-ASCII included), and random
    truncations: each gets a response or a reason, and the books stay consistent."""
    rng = random.Random(SEED)
    venue = Venue(INSTRUMENTS)
    gw = Gateway(venue)
    accounts = [gw.accounts.setdefault(n, Account(n, sequenced=True)) for n in ("a", "b")]
    answered = 0
    for k in range(3000):
        acct = rng.choice(accounts)
        mtype = rng.choice("OOOUX")
        fields = {"O": {"side": "B", "symbol": "AAPL", "price": 10000, "tif": "0",
                        "quantity": 10},
                  "U": {"orig_user_ref": rng.randint(1, k + 1), "price": 10000,
                        "quantity": 10},
                  "X": {"quantity": rng.choice([0, 5])}}[mtype]
        msg = bytearray(ouch.encode_inbound(mtype, user_ref=k + 1, **fields))
        for _ in range(rng.randint(0, 4)):
            msg[rng.randrange(1, len(msg))] = rng.randrange(256)
        if rng.random() < 0.1:
            msg = msg[:rng.randrange(len(msg) + 1)]
        before = len(acct.outbox)
        why = gw.handle(acct, bytes(msg))
        answered += why is not None or len(acct.outbox) > before
        for raw in acct.outbox[before:]:
            assert ouch.decode_outbound(raw) is not None
    assert answered > 2500  # cancels that change nothing are the silent rest
    for sym in ("AAPL", "BTC-USD"):
        book = venue.engine.books[sym]
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is None or ask is None or bid < ask
    assert set(gw.owners) <= set(venue.engine.orders)
