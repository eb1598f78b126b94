"""``/ws`` market-data streams: a book snapshot and deltas that rebuild ``book_view``,
a snapshot on request after a gap, trades and bars, refused subscriptions, and a slow
client disconnected while a fast one on the same symbol keeps every delta."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from contextlib import contextmanager
from decimal import Decimal

import pytest

from tick2trade.host.api.ws import BEARER
from tick2trade.host.services.hub import Connection
from tick2trade.host.services.marketdata import Level

from tests.host.conftest import SEED, register_login

T = 10_000


def _token(client, name: str) -> str:
    return register_login(client, name)["Authorization"][7:]


def _ticks(price: str) -> int:
    return int(Decimal(price) * T)


class ClientBook:
    """What a client keeps: the book from a snapshot and the deltas after it, by the
    rules of ``host/services/streams.py``."""

    def __init__(self) -> None:
        self.seq, self.bids, self.asks = None, {}, {}
        self.gaps = 0
        self.waiting = False      # saw a gap: deltas are useless until a snapshot

    def take(self, m: dict) -> bool:
        """Apply a book message; False when it shows a gap (a snapshot is needed)."""
        if m["kind"] == "snapshot":
            self.seq, self.waiting = m["seq"], False
            self.bids = {_ticks(p): (s, o) for p, s, o in m["bids"]}
            self.asks = {_ticks(p): (s, o) for p, s, o in m["asks"]}
            return True
        if self.waiting:
            return True
        if self.seq is None or m["seq"] <= self.seq:
            return True           # stale: already in the snapshot
        if m["seq"] != self.seq + 1:
            self.gaps += 1
            self.waiting = True
            return False
        for side, levels in ((self.bids, m["bids"]), (self.asks, m["asks"])):
            for p, s, o in levels:
                if s == 0:      # MarketData passes on removals of absent levels too
                    side.pop(_ticks(p), None)
                else:
                    side[_ticks(p)] = (s, o)
        self.seq = m["seq"]
        return True

    def levels(self):
        return ([Level(p, *self.bids[p]) for p in sorted(self.bids, reverse=True)],
                [Level(p, *self.asks[p]) for p in sorted(self.asks)])


def _random_changes(rng: random.Random, mid: int = 100 * T):
    """A few level changes around ``mid``: new sizes, and removals (size 0)."""
    bids = [(mid - rng.randrange(1, 40) * 100, rng.choice([0, 0, rng.randrange(1, 900)]),
             rng.randrange(0, 5)) for _ in range(rng.randrange(0, 3))]
    asks = [(mid + rng.randrange(0, 40) * 100, rng.choice([0, 0, rng.randrange(1, 900)]),
             rng.randrange(0, 5)) for _ in range(rng.randrange(0 if bids else 1, 3))]
    return bids, asks


def _seed_book(market, symbol: str = "AAPL") -> None:
    market.apply(symbol, bids=[(100 * T - k * 100, 100 + k, 1) for k in range(1, 30)],
                 asks=[(100 * T + k * 100, 200 + k, 2) for k in range(30)])


def _book_messages(ws, until_seq: int, book: ClientBook) -> list[dict]:
    seen = []
    while book.seq is None or book.seq < until_seq or book.waiting:
        m = ws.receive_json()
        if m["type"] == "book":
            seen.append(m)
            book.take(m)
    return seen


@pytest.mark.parametrize("depth", [None, 5])
def test_snapshot_then_deltas_rebuild_the_book(client, platform, depth):
    """Random level changes (and a resync snapshot from the source midway): the client's
    book after the deltas is ``book_view`` at the same depth, level for level."""
    print("T2T_SEED", SEED)
    rng = random.Random(SEED)
    market = platform.market
    _seed_book(market)
    with client.websocket_connect("/ws", subprotocols=[BEARER, _token(client, 'ana')]) as ws:
        assert ws.receive_json()["type"] == "hello"
        ws.send_json({"op": "subscribe", "channels": ["book"], "symbols": ["AAPL"],
                      "depth": depth})
        snap = ws.receive_json()
        assert (snap["type"], snap["kind"], snap["seq"], snap["depth"]) == (
            "book", "snapshot", 1, depth)
        assert snap["bids"][0] == ["99.9900", 101, 1] and snap["source"] == "feed"
        assert ws.receive_json() == {"type": "subscribed", "symbols": ["AAPL"],
                                     "channels": {"book": ["AAPL"]}}
        book = ClientBook()
        book.take(snap)
        for i in range(400):
            if i == 200:
                view = market.book_view("AAPL")
                market.snapshot("AAPL", view.bids[:10], view.asks[:10])
            else:
                market.apply("AAPL", *_random_changes(rng))
        last = market.book_view("AAPL").seq
        msgs = _book_messages(ws, last, book)
    assert book.gaps == 0, f"seed {SEED}"
    assert [m["seq"] for m in msgs] == list(range(2, last + 1)), f"seed {SEED}"
    want = market.book_view("AAPL", depth)
    assert book.levels() == (want.bids, want.asks), f"seed {SEED}"
    assert sum(m["kind"] == "snapshot" for m in msgs) == 1
    if depth is not None:
        assert max(len(m["bids"]) for m in msgs if m["kind"] == "delta") <= 2 * depth


def test_a_client_that_misses_a_delta_asks_for_a_snapshot(client, platform):
    """The client drops one delta (as if lost), sees the seq jump, asks for a snapshot
    and is consistent again from there."""
    print("T2T_SEED", SEED)
    rng = random.Random(SEED)
    market = platform.market
    _seed_book(market)
    with client.websocket_connect("/ws", subprotocols=[BEARER, _token(client, 'bea')]) as ws:
        assert ws.receive_json()["type"] == "hello"
        ws.send_json({"op": "subscribe", "channels": ["book"], "symbols": ["AAPL"]})
        book = ClientBook()
        book.take(ws.receive_json())
        assert ws.receive_json()["type"] == "subscribed"
        for _ in range(20):
            market.apply("AAPL", *_random_changes(rng))
        lost = book.seq + 5
        while book.seq < lost - 1:
            book.take(ws.receive_json())
        assert ws.receive_json()["seq"] == lost            # dropped on the floor
        after = ws.receive_json()
        assert after["seq"] == lost + 1 and not book.take(after)   # the jump shows
        ws.send_json({"op": "snapshot", "symbol": "AAPL"})
        for _ in range(20):
            market.apply("AAPL", *_random_changes(rng))
        last = market.book_view("AAPL").seq
        msgs = _book_messages(ws, last, book)
    assert [m["kind"] for m in msgs].count("snapshot") == 1
    assert book.gaps == 1, f"seed {SEED}"
    want = market.book_view("AAPL")
    assert book.levels() == (want.bids, want.asks), f"seed {SEED}"


def test_trades_bars_and_quotes_channels(client, platform):
    market = platform.market
    _seed_book(market)
    market.trade("AAPL", 100 * T, 10)
    with client.websocket_connect("/ws", subprotocols=[BEARER, _token(client, 'cat')]) as ws:
        assert ws.receive_json()["type"] == "hello"
        ws.send_json({"op": "subscribe", "channels": ["trades", "bars", "quotes"],
                      "symbols": ["AAPL"]})
        first = [ws.receive_json() for _ in range(3)]
        assert [m["type"] for m in first] == ["bar", "quote", "subscribed"]
        assert first[0]["volume"] == 10 and first[1]["last"] == "100.0000"
        assert first[2]["channels"] == {"trades": ["AAPL"], "bars": ["AAPL"],
                                        "quotes": ["AAPL"]}
        market.trade("AAPL", 100 * T + 500, 7, side="sell", match=42)
        got = {m["type"]: m for m in (ws.receive_json() for _ in range(3))}
        assert got["trade"] == {"type": "trade", "symbol": "AAPL", "seq": 2,
                                "price": "100.0500", "size": 7, "side": "sell",
                                "match": 42, "ts": got["trade"]["ts"]}
        assert (got["bar"]["high"], got["bar"]["close"], got["bar"]["volume"]) == (
            "100.0500", "100.0500", 17)
        assert got["quote"]["last"] == "100.0500"
        ws.send_json({"op": "unsubscribe", "channels": ["trades", "bars"]})
        assert ws.receive_json()["channels"] == {"quotes": ["AAPL"]}
        market.trade("AAPL", 100 * T, 1)
        assert ws.receive_json()["type"] == "quote"      # no trade, no bar before it


@pytest.mark.parametrize("message,words", [
    ("not json", ['"op": "subscribe"']),
    ({"op": "dance"}, ['"op": "snapshot"']),
    ({"op": "subscribe", "channels": ["book", "depth"], "symbols": ["AAPL"]},
     ["channels", "quotes, book, trades, bars"]),
    ({"op": "subscribe", "channels": "book", "symbols": ["AAPL"]}, ["channels"]),
    ({"op": "subscribe", "channels": [], "symbols": ["AAPL"]}, ["non-empty"]),
    ({"op": "subscribe", "symbols": ["AAPL", "ZZZZ"]},
     ["unknown symbol ZZZZ", "known: AAPL, MSFT"]),
    ({"op": "subscribe", "symbols": ["aapl"]}, ["1-8 characters"]),
    ({"op": "subscribe", "symbols": "AAPL"}, ["symbols: a list"]),
    ({"op": "subscribe", "symbols": [f"S{i}" for i in range(101)]}, ["at most 100"]),
    ({"op": "subscribe", "channels": ["book"], "symbols": ["AAPL"], "depth": 0},
     ["depth", "1 to 1000"]),
    ({"op": "subscribe", "channels": ["book"], "symbols": ["AAPL"], "depth": "5"},
     ["depth"]),
    ({"op": "subscribe", "channels": ["book"]}, ["no watchlist 'default'"]),
    ({"op": "snapshot", "symbol": "AAPL"}, ["not subscribed to the book of 'AAPL'"]),
    ({"op": "snapshot"}, ["not subscribed"]),
])
def test_a_refused_message_says_what_is_accepted_and_the_socket_stays(client, platform,
                                                                      message, words):
    _seed_book(platform.market)
    platform.market.update("MSFT", bid=1, bid_size=1, ask=2, ask_size=1)
    with client.websocket_connect("/ws", subprotocols=[BEARER, _token(client, 'dan')]) as ws:
        assert ws.receive_json()["type"] == "hello"
        if isinstance(message, str):
            ws.send_text(message)
        else:
            ws.send_json(message)
        err = ws.receive_json()
        assert err["type"] == "error"
        for w in words:
            assert w in err["detail"], err
        ws.send_json({"op": "subscribe", "symbols": ["MSFT"]})
        assert ws.receive_json()["type"] == "quote"
        assert ws.receive_json()["channels"] == {"quotes": ["MSFT"]}   # nothing else took


def test_a_connection_holds_at_most_100_symbols_per_channel(client, platform):
    for i in range(150):
        platform.market.update(f"S{i}", bid=1, bid_size=1, ask=2, ask_size=1)
    with client.websocket_connect("/ws", subprotocols=[BEARER, _token(client, 'eve')]) as ws:
        assert ws.receive_json()["type"] == "hello"
        ws.send_json({"op": "subscribe", "channels": ["trades"],
                      "symbols": [f"S{i}" for i in range(80)]})
        assert len(ws.receive_json()["channels"]["trades"]) == 80
        ws.send_json({"op": "subscribe", "channels": ["trades"],
                      "symbols": [f"S{i}" for i in range(70, 100)]})
        assert len(ws.receive_json()["channels"]["trades"]) == 100     # 20 new
        ws.send_json({"op": "subscribe", "channels": ["trades"],
                      "symbols": ["S100"]})
        err = ws.receive_json()
        assert err["type"] == "error", err
        assert "at most 100 symbols per channel; trades would have 101" in err["detail"]
        ws.send_json({"op": "subscribe", "channels": ["bars"], "symbols": ["S100"]})
        assert ws.receive_json()["channels"]["bars"] == ["S100"]


# --- the hub's bound -------------------------------------------------------------------


def test_a_queue_never_holds_more_than_its_bound():
    """A connection whose loop never drains it: the publisher stops queueing at the
    bound, frees the queue and marks the overflow with its reason."""
    loop = asyncio.new_event_loop()
    try:
        conn = Connection(1, loop, max_bytes=10_000)
        sent = 0
        while conn.put({"type": "book", "pad": "x" * 80}):
            sent += 1
            assert conn.queued()[1] <= 10_000
        assert sent == 10_000 // len('{"type":"book","pad":"' + "x" * 80 + '"}')
        assert conn.queued() == (0, 0)
        assert conn.overflow.startswith(f"too slow: {sent} messages queued")
        assert not conn.put({"type": "more"})
    finally:
        loop.close()


# --- a real server: a slow client beside a fast one ------------------------------------


@contextmanager
def _serve(app):
    import uvicorn

    # uvicorn's default WebSocket implementation, as `t2t api` serves
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(20)


def _connect(port: int, token: str, rcvbuf: int | None = None):
    from websockets.sync.client import connect

    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    return connect(f"ws://127.0.0.1:{port}/ws", subprotocols=[BEARER, token], sock=sock,
                   max_size=None, open_timeout=10)


def test_a_slow_client_is_dropped_and_a_fast_one_keeps_every_delta(platform):
    """One client stops reading: once its queue passes the bound it is disconnected
    with 1013 and the reason, counted; the other, on the same book, gets every delta
    and ends with ``book_view``."""
    import json

    from websockets.exceptions import ConnectionClosed

    from tick2trade.host.api import create_app

    print("T2T_SEED", SEED)
    rng = random.Random(SEED)
    market = platform.market
    platform.hub.max_bytes = 64 * 1024
    platform.users.register("fast", "fast@example.com", "correct horse battery")
    platform.users.register("slow", "slow@example.com", "correct horse battery")
    tokens = {u: platform.users.login(u, "correct horse battery", "t").access_token
              for u in ("fast", "slow")}
    _seed_book(market)
    sub = json.dumps({"op": "subscribe", "channels": ["book"], "symbols": ["AAPL"]})
    with _serve(create_app(platform)) as port, \
            _connect(port, tokens["fast"]) as fast, \
            _connect(port, tokens["slow"], rcvbuf=4096) as slow:
        for ws in (fast, slow):
            assert json.loads(ws.recv(10))["type"] == "hello"
            ws.send(sub)
        book, seen = ClientBook(), []
        done = threading.Event()

        def read_fast() -> None:
            while not done.is_set() or book.seq < market.book_view("AAPL").seq:
                m = json.loads(fast.recv(10))
                if m["type"] == "book":
                    seen.append(m["seq"])
                    book.take(m)

        reader = threading.Thread(target=read_fast)
        reader.start()
        deadline = time.monotonic() + 60
        while platform.hub.stats()["subscriptions"]["book"] < 2:   # both snapshots at 1
            assert time.monotonic() < deadline, "the subscriptions never arrived"
            time.sleep(0.01)
        applied = 0
        while platform.hub.dropped_slow == 0:
            assert time.monotonic() < deadline, "the slow client was never dropped"
            market.apply("AAPL", *_random_changes(rng))
            applied += 1
            # the fast reader is a Python thread too: keep it within reach of the bound
            while book.seq is None or market.book_view("AAPL").seq - book.seq > 50:
                assert reader.is_alive()
                time.sleep(0.0005)
        for _ in range(100):                     # the fast one carries on
            market.apply("AAPL", *_random_changes(rng))
        done.set()
        reader.join(30)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                slow.recv(10)
    assert closed.value.rcvd is not None, "closed without a close frame"
    assert closed.value.rcvd.code == 1013
    assert closed.value.rcvd.reason.startswith("too slow: ")
    assert "messages queued" in closed.value.rcvd.reason
    assert platform.hub.dropped_slow == 1
    from fastapi.testclient import TestClient
    with TestClient(create_app(platform)) as c:
        h = register_login(c, "operator", role="operator", platform=platform)
        stats = c.get("/operator/streams", headers=h).json()
    assert stats == {"connections": 0, "dropped_slow": 1,
                     "subscriptions": {"quotes": 0, "book": 0, "trades": 0, "bars": 0}}
    assert book.gaps == 0 and seen == list(range(1, seen[-1] + 1)), f"seed {SEED}"
    want = market.book_view("AAPL")
    assert book.seq == want.seq and book.levels() == (want.bids, want.asks)
    print(f"slow client dropped after {applied} updates")
