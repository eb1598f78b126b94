"""Where ``t2t api``'s market and orders come from: a venue, its feed, its order entry.

``open_live`` puts together what the platform trades with:

- ``venue="local"`` (the default): the venue simulator in a child process
  (``localvenue.LocalVenue``) on loopback ports; its feed read by the software feed
  handler (``feed.FeedHandler``: lines A and B, retransmission requests) into the
  market-data service; orders to it over OUCH/SoupBinTCP (``ouch_broker.OuchBroker``);
  requests for quote to its RFQ port (``rfq.RfqClient``);
- ``venue=(host, port)``: the same, to a venue somebody else runs (its feed lines and
  retransmission server given, NASDAQ's groups by default);
- ``venue=None``: no venue: no market data, orders to the paper broker (what ``t2t api``
  did before it had a market; tests and a machine with no loopback UDP).

``paper=True`` keeps the feed (a live market) and sends orders to the paper broker, which
fills against that market without telling the venue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from tick2trade.protocol.moldudp64 import DEFAULT_LINE_A, DEFAULT_LINE_B
from tick2trade.host.services.localvenue import LocalVenue, VenuePorts
from tick2trade.host.services.marketdata import MarketData

log = logging.getLogger(__name__)

Address = tuple[str, int]
DEFAULT_RETRANSMIT = ("127.0.0.1", 26478)


@dataclass
class Live:
    market: MarketData
    broker: object | None = None         # None: the platform's paper broker
    feed: object | None = None
    venue: LocalVenue | None = None
    orders: Address | None = None
    lines: tuple[Address, Address] | None = None
    rfq: list = field(default_factory=list)      # rfq.RfqClient per venue that quotes
    notes: list[str] = field(default_factory=list)

    def counters(self) -> dict:
        out: dict = {}
        if self.feed is not None:
            out["feed"] = self.feed.counters()
        if self.broker is not None and hasattr(self.broker, "counters"):
            out["orders"] = dict(self.broker.counters)
        return out

    def close(self) -> None:
        """Order entry first (a logout), then the feed, then the venue's day."""
        if self.broker is not None and hasattr(self.broker, "close"):
            self.broker.close()
        for client in self.rfq:
            client.close()
        if self.feed is not None:
            self.feed.stop()
        if self.venue is not None:
            self.venue.stop()


def open_live(var: Path, venue: str | Address | None = "local", *, paper: bool = False,
              line_a: Address = DEFAULT_LINE_A, line_b: Address = DEFAULT_LINE_B,
              retransmit: Address = DEFAULT_RETRANSMIT, ports: VenuePorts | None = None,
              rate: float = 200.0, seed: int | None = None, username: str = "T2T",
              password: str = "", connect_timeout: float = 10.0,
              rfq: Address | None = None) -> Live:
    """Start what ``venue`` asks for (see the module docstring); ``var`` holds the local
    venue's configuration and log, and the order session's state file. ``rfq``: a
    running venue's RFQ port (the local venue's is its own)."""
    market = MarketData()
    live = Live(market)
    if venue is None:
        live.notes.append("no venue: no market data; orders go to the paper broker")
        return live
    from tick2trade.host.services.feed import FeedHandler
    from tick2trade.host.services.ouch_broker import OuchBroker

    try:
        if venue == "local":
            live.venue = LocalVenue(var / "venue", ports or VenuePorts(), rate=rate, seed=seed)
            live.venue.start()
            p = live.venue.ports
            orders, line_a, line_b, retransmit = p.orders, p.line_a, p.line_b, p.retransmit
            rfq = p.rfq
            live.notes.append(f"venue simulator (pid {live.venue.process.pid}, "
                              f"{rate:g} actions/s; log {live.venue.log_path})")
        else:
            orders = venue
        live.orders, live.lines = orders, (line_a, line_b)
        live.feed = FeedHandler(market, lines=[line_a, line_b], retransmit=retransmit)
        live.feed.start()
        live.notes.append(f"feed: line A {line_a[0]}:{line_a[1]}, B {line_b[0]}:{line_b[1]}, "
                          f"retransmissions from {retransmit[0]}:{retransmit[1]}")
        if paper:
            live.notes.append("orders: the paper broker (fills against the feed's market; "
                              "the venue never sees them)")
            return live
        broker = OuchBroker(orders, market, username=username, password=password,
                            state=var / "ouch-session.json")
        live.broker = broker
        if rfq is not None:
            from tick2trade.host.services.rfq import RfqClient

            live.rfq.append(RfqClient(rfq, name=broker.venue).start())
            live.notes.append(f"requests for quote: {rfq[0]}:{rfq[1]}")
        live.notes.append(f"orders: OUCH 5.0 over SoupBinTCP to {orders[0]}:{orders[1]} "
                          f"as {username!r}")
        return live
    except BaseException:
        live.close()
        raise
