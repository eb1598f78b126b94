"""The venue's RFQ desk: quotes around the book's mid at each provider's spread, firm
once, for their time to live; its port over real loopback sockets; its configuration."""

import asyncio
import os
import random

import pytest

from tick2trade.protocol import rfq
from tick2trade.sim.venue.config import ConfigError, load_config
from tick2trade.sim.venue.engine import BUY, GTC, SELL, Instrument
from tick2trade.sim.venue.rfq import Provider, RfqDesk, RfqServer
from tick2trade.sim.venue.venue import Venue

SEED = int(os.environ.get("T2T_SEED", random.randrange(1 << 32)))
INSTRUMENTS = [Instrument("AAPL", 1, tick=100, max_qty=10_000),
               Instrument("BTC-USD", 2, tick=50, lot=5, max_qty=5000, kind="crypto")]
PROVIDERS = (Provider("TIGHT", spread_bps=4, max_qty=1000, delay_ms=1),
             Provider("WIDE", spread_bps=30, max_qty=5000, delay_ms=5))


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def desk_with_book(rng, clock=None):
    venue = Venue(INSTRUMENTS)
    bid = rng.randrange(1000, 3000) * 100
    ask = bid + rng.randrange(1, 20) * 100
    venue.engine.submit("AAPL", BUY, 100, bid, GTC, "P1")
    venue.engine.submit("AAPL", SELL, 100, ask, GTC, "P2")
    venue.drain()
    return RfqDesk(venue, PROVIDERS, ttl_ms=500, mids={"BTC-USD": 600_000_000},
                   **({"clock": clock} if clock else {})), bid, ask


def test_each_provider_quotes_its_spread_around_the_mid_on_the_tick():
    rng = random.Random(SEED)
    for _ in range(50):
        desk, bid, ask = desk_with_book(rng)
        mid = (bid + ask) // 2
        for p in PROVIDERS:
            q = desk.quote(p, "r1", "AAPL", 300)
            assert q["bid"] % 100 == 0 and q["ask"] % 100 == 0, f"seed {SEED}"
            assert q["bid"] < q["ask"] and q["bid"] <= mid <= q["ask"], f"seed {SEED}"
            # never tighter than the provider's spread, at most a tick wider each side
            half = mid * p.spread_bps / 20_000
            assert mid - half - 100 < q["bid"] <= mid - half, f"seed {SEED}: {q}"
            assert mid + half <= q["ask"] < mid + half + 100 or q["ask"] == q["bid"] + 100
            assert (q["bid_size"], q["ask_size"], q["ttl_ms"]) == (300, 300, 500)
    # an empty book quotes around the configured mid
    q = desk.quote(PROVIDERS[1], "r2", "BTC-USD", 10)
    assert q["bid"] < 600_000_000 < q["ask"] and q["bid"] % 50 == 0


def test_a_quote_trades_once_at_its_price_and_not_after_its_ttl():
    clock = Clock()
    desk, _bid, _ask = desk_with_book(random.Random(SEED), clock)
    q = desk.quote(PROVIDERS[0], "r", "AAPL", 200)
    match = desk.venue.engine.next_match
    assert desk.accept(q["quote_id"], "buy", 200) == ("fill", {
        "quote_id": q["quote_id"], "side": "buy", "qty": 200, "price": q["ask"],
        "match": match})
    assert desk.accept(q["quote_id"], "sell", 200) == ("refused", {"reason": rfq.TAKEN})
    late = desk.quote(PROVIDERS[0], "r", "AAPL", 200)
    clock.now += 0.499
    assert desk.accept(late["quote_id"], "sell", 100) == ("refused", {"reason": rfq.BAD_ACCEPT})
    clock.now += 0.001
    assert desk.accept(late["quote_id"], "sell", 200) == ("refused", {"reason": rfq.EXPIRED})
    assert desk.accept("LP-nope", "sell", 200) == ("refused", {"reason": rfq.UNKNOWN_QUOTE})


def test_requests_the_venue_refuses_say_why():
    desk, _bid, _ask = desk_with_book(random.Random(SEED))
    assert "unknown symbol 'ZZZZ'" in desk.check("ZZZZ", 100)[0]
    assert "lots of 5" in desk.check("BTC-USD", 7)[0]
    assert "1-10000" in desk.check("AAPL", 0)[0]
    assert desk.check("AAPL", 4000) == (None, [PROVIDERS[1]])
    desk.providers = (PROVIDERS[0],)
    assert "no provider quotes more than 1000" in desk.check("AAPL", 4000)[0]


def test_the_port_acks_then_streams_each_providers_quote_and_fills_one_accept():
    async def main():
        desk, _bid, _ask = desk_with_book(random.Random(SEED))
        server = RfqServer(desk)
        srv = await server.serve("127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def next_message():
            return rfq.decode(await asyncio.wait_for(reader.readline(), 10))

        writer.write(rfq.encode("request", ref="7", symbol="AAPL", side=None, qty=500))
        writer.write(rfq.encode("request", ref="8", symbol="NOPE", side="buy", qty=5))
        writer.write(b'{"type": "quote"}\n')
        got = [await next_message() for _ in range(5)]
        kinds = [m["type"] for m in got]
        assert kinds[:3] == ["ack", "reject", "error"], got
        assert got[0]["providers"] == 2 and "unknown symbol" in got[1]["reason"]
        quotes = got[3:]
        # the tighter provider answers first (its delay is shorter)
        assert [q["provider"] for q in quotes] == ["TIGHT", "WIDE"]
        assert all(q["ref"] == "7" for q in quotes)
        best = quotes[0]
        for ref in ("a", "b"):
            writer.write(rfq.encode("accept", ref=ref, quote_id=best["quote_id"],
                                    side="sell", qty=500))
        first, second = await next_message(), await next_message()
        assert (first["type"], first["price"], first["ref"]) == ("fill", best["bid"], "a")
        assert (second["type"], second["reason"]) == ("refused", rfq.TAKEN)
        writer.close()
        srv.close()
        server.close()
        assert desk.counters["fills"] == 1 and desk.counters["refused_taken"] == 1

    asyncio.run(asyncio.wait_for(main(), 60))


def test_messages_are_checked_both_ways():
    with pytest.raises(rfq.MessageError, match="qty"):
        rfq.encode("request", ref="1", symbol="AAPL", side=None, qty="5")
    with pytest.raises(rfq.MessageError, match="side"):
        rfq.decode(b'{"type":"accept","ref":"1","quote_id":"q","side":"short","qty":1}')
    with pytest.raises(rfq.MessageError, match="unknown field"):
        rfq.decode(b'{"type":"ack","ref":"1","providers":1,"extra":2}')
    assert rfq.decode(rfq.encode("ack", ref="1", providers=2)) == {
        "type": "ack", "ref": "1", "providers": 2}


def test_rfq_configuration(tmp_path):
    path = tmp_path / "venue.toml"
    path.write_text('[rfq]\ntcp = "127.0.0.1:0"\nquote_ttl_ms = 250\n'
                    '[[rfq.provider]]\nname = "A1"\nspread_bps = 3.5\nmax_qty = 10\n'
                    '[[rfq.provider]]\nname = "B2"\ndelay_ms = 0\n')
    cfg = load_config(path)
    assert cfg.rfq_tcp == ("127.0.0.1", 0) and cfg.quote_ttl_ms == 250
    assert cfg.providers == (Provider("A1", 3.5, 10, 5.0), Provider("B2", 10.0, 100_000, 0.0))
    assert load_config(None).rfq_tcp is None
    for text, where in (('[rfq]\nquote_ttl_ms = 0\n', "rfq.quote_ttl_ms"),
                        ('[[rfq.provider]]\nspread_bps = 1\n', "rfq.provider[0].name"),
                        ('[[rfq.provider]]\nname = "X"\nfee = 1\n', "rfq.provider[0].fee"),
                        ('[[rfq.provider]]\nname = "X"\n[[rfq.provider]]\nname = "X"\n',
                         "rfq.provider[1].name")):
        path.write_text(text)
        with pytest.raises(ConfigError, match=where.replace("[", r"\[").replace("]", r"\]")):
            load_config(path)
