"""Requests for quote: liquidity providers that answer with firm two-sided quotes.

The venue's RFQ port (``protocol.rfq``: JSON lines over TCP) takes a request for a
quantity of a symbol and hands it to every configured :class:`Provider`; each answers
after its own delay with a bid and an ask for the whole quantity, around the venue's
book at that moment, firm for ``ttl_ms``. Accepting a quote trades it at its price.

Design decisions
----------------
- The mid is the book's: halfway between the best bid and offer, the one side when the
  other is empty, and the instrument's configured starting mid when the book is empty.
  A provider's spread is in basis points of that mid (at least one tick wide), its bid
  rounded down and its ask up to the tick, so a quote never improves on its spread.
- A quote trades once: the first accept in time wins, any later one is refused
  ``taken``; after its time to live it is refused ``expired`` (the venue's monotonic
  clock decides, from when the quote was sent). Quotes are forgotten a minute after
  they expire; an accept of one the venue no longer knows is ``unknown_quote``.
- An RFQ trade is bilateral, off the book: it changes no resting order and is not
  published on the ITCH feed. Its match number comes from the engine's sequence, so a
  match number names one trade at this venue whichever way it happened.
- A provider quotes only up to its ``max_qty``; a request larger than every provider's
  is rejected, naming the largest size on offer.
- Anyone who can reach the port may ask and accept (as UDP order entry, there is no
  login); quotes are named by the venue, so one client cannot guess another's.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from tick2trade.protocol import rfq

from tick2trade.sim.venue.venue import Venue

FORGET_AFTER = 60.0   # seconds past its expiry a quote is still known (as expired)


@dataclass(frozen=True)
class Provider:
    """One liquidity provider: its name (1-16 characters), full spread in basis points
    of the mid, the largest quantity it quotes and how long it takes to answer."""

    name: str
    spread_bps: float = 10.0
    max_qty: int = 100_000
    delay_ms: float = 5.0


DEFAULT_PROVIDERS = (Provider("LP1", spread_bps=6.0, max_qty=50_000, delay_ms=3.0),
                     Provider("LP2", spread_bps=12.0, max_qty=250_000, delay_ms=20.0))
DEFAULT_TTL_MS = 2000


@dataclass
class LiveQuote:
    quote_id: str
    symbol: str
    bid: int
    ask: int
    qty: int
    expires: float      # on the desk's clock
    taken: bool = False


class RfqDesk:
    """The providers' quotes on ``venue``'s instruments (no sockets: :class:`RfqServer`
    puts it on a port). ``mids``: the instruments' starting mids, for an empty book."""

    def __init__(self, venue: Venue, providers: tuple[Provider, ...] = DEFAULT_PROVIDERS,
                 *, ttl_ms: int = DEFAULT_TTL_MS, mids: dict[str, int] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.venue = venue
        self.providers = tuple(providers)
        self.ttl_ms = ttl_ms
        self.mids = dict(mids or {})
        self.clock = clock
        self.quotes: dict[str, LiveQuote] = {}
        self.counters: Counter = Counter()

    def check(self, symbol: str, qty: int) -> tuple[str | None, list[Provider]]:
        """(None, the providers that will quote) or (why the request is refused, [])."""
        book = self.venue.engine.books.get(symbol)
        if book is None:
            return f"unknown symbol {symbol!r}", []
        inst = book.instrument
        if qty <= 0 or qty > inst.max_qty or qty % inst.lot:
            return (f"quantity {qty}: must be 1-{inst.max_qty} in lots of {inst.lot} "
                    f"for {symbol}"), []
        quoting = [p for p in self.providers if qty <= p.max_qty]
        if not quoting:
            largest = max((p.max_qty for p in self.providers), default=0)
            return f"quantity {qty}: no provider quotes more than {largest}", []
        return None, quoting

    def mid(self, symbol: str) -> int:
        book = self.venue.engine.books[symbol]
        bid, ask = book.best_bid(), book.best_ask()
        if bid is not None and ask is not None:
            return (bid + ask) // 2
        if bid is not None or ask is not None:
            return bid if bid is not None else ask
        return self.mids.get(symbol, 1_000_000)

    def quote(self, provider: Provider, ref: str, symbol: str, qty: int) -> dict:
        """``provider``'s quote now, remembered as firm; the fields of a ``quote``."""
        now = self.clock()
        self._forget(now)
        tick = self.venue.engine.books[symbol].instrument.tick
        mid = self.mid(symbol)
        half = mid * provider.spread_bps / 20_000
        bid = max(tick, int((mid - half) // tick) * tick)
        ask = max(bid + tick, -int(-(mid + half) // tick) * tick)
        quote_id = f"{provider.name}-{secrets.token_hex(6)}"
        self.quotes[quote_id] = LiveQuote(quote_id, symbol, bid, ask, qty,
                                          now + self.ttl_ms / 1000)
        self.counters["quotes"] += 1
        return {"ref": ref, "quote_id": quote_id, "provider": provider.name,
                "symbol": symbol, "bid": bid, "bid_size": qty, "ask": ask, "ask_size": qty,
                "ttl_ms": self.ttl_ms}

    def accept(self, quote_id: str, side: str, qty: int) -> tuple[str, dict]:
        """("fill", its fields but ``ref``) or ("refused", {"reason": ...})."""
        q = self.quotes.get(quote_id)
        if q is None:
            return self._refused(rfq.UNKNOWN_QUOTE)
        if q.taken:
            return self._refused(rfq.TAKEN)
        if self.clock() >= q.expires:
            return self._refused(rfq.EXPIRED)
        if side not in rfq.SIDES or qty != q.qty:
            return self._refused(rfq.BAD_ACCEPT)
        q.taken = True
        engine = self.venue.engine
        match = engine.next_match
        engine.next_match = match + 1
        self.counters["fills"] += 1
        return "fill", {"quote_id": quote_id, "side": side, "qty": qty,
                        "price": q.ask if side == "buy" else q.bid, "match": match}

    def _refused(self, reason: str) -> tuple[str, dict]:
        self.counters[f"refused_{reason}"] += 1
        return "refused", {"reason": reason}

    def _forget(self, now: float) -> None:
        old = [k for k, q in self.quotes.items() if now - q.expires > FORGET_AFTER]
        for k in old:
            del self.quotes[k]


class RfqServer:
    """The desk on a TCP port, in the venue's event loop."""

    def __init__(self, desk: RfqDesk):
        self.desk = desk
        self.counters = desk.counters
        self._writers: set[asyncio.StreamWriter] = set()

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
        return await asyncio.start_server(self._connection, host, port,
                                          limit=rfq.MAX_LINE + 1)

    def close(self) -> None:
        for w in list(self._writers):
            w.close()

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        self.counters["connections"] += 1
        self._writers.add(writer)

        def send(mtype: str, **fields) -> None:
            if not writer.is_closing():
                writer.write(rfq.encode(mtype, **fields))

        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:           # longer than the stream's limit
                    send("error", detail=f"a line longer than {rfq.MAX_LINE} bytes")
                    break
                if not line:
                    break
                try:
                    msg = rfq.decode(line)
                except rfq.MessageError as exc:
                    self.counters["bad_lines"] += 1
                    send("error", detail=str(exc))
                    continue
                self._handle(msg, send)
        except (ConnectionError, OSError):
            self.counters["disconnect_reset"] += 1
        finally:
            self._writers.discard(writer)
            writer.close()

    def _handle(self, msg: dict, send) -> None:
        kind = msg["type"]
        if kind == "request":
            self.counters["requests"] += 1
            ref, symbol, qty = msg["ref"], msg["symbol"], msg["qty"]
            reason, providers = self.desk.check(symbol, qty)
            if reason is not None:
                self.counters["rejected"] += 1
                send("reject", ref=ref, reason=reason)
                return
            send("ack", ref=ref, providers=len(providers))
            loop = asyncio.get_running_loop()
            for p in providers:
                loop.call_later(p.delay_ms / 1000,
                                lambda p=p: send("quote", **self.desk.quote(p, ref, symbol,
                                                                            qty)))
        elif kind == "accept":
            self.counters["accepts"] += 1
            outcome, fields = self.desk.accept(msg["quote_id"], msg["side"], msg["qty"])
            if outcome == "fill":
                send("fill", ref=msg["ref"], **fields)
            else:
                send("refused", ref=msg["ref"], quote_id=msg["quote_id"], **fields)
        else:
            send("error", detail=f"{kind!r} is a message the venue sends, not one it takes")
