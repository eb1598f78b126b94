"""``open_live``: what ``t2t api`` trades with — a running venue named by address, the
paper broker on a live market, no venue at all."""

import pytest

from tick2trade.host.services.broker import OrderTicket
from tick2trade.host.services.live import open_live
from tick2trade.host.services.localvenue import VenuePorts
from tick2trade.host.services.paper import PaperBroker

from tests.host.conftest import wait_for
from tests.host.services.test_ouch_broker import Events


def test_a_running_venue_by_address_gives_the_market_and_takes_the_orders(venue, tmp_path):
    p = venue.ports
    live = open_live(tmp_path, p.orders, line_a=p.line_a, line_b=p.line_b,
                     retransmit=p.retransmit, username="EXT")
    try:
        assert live.venue is None                   # nothing of ours was started
        events = Events()
        live.broker.attach(events)
        assert live.broker.wait_connected(10)
        assert wait_for(lambda: (q := live.market.quote("MSFT")) and q.bid and q.ask)
        view = live.market.book_view("MSFT")
        assert view.source == "feed" and view.bids[0].price < view.asks[0].price
        live.broker.submit(OrderTicket(1, "MSFT", "sell", "limit", "day", 100,
                                       view.asks[0].price + 100_000, None))
        events.wait(lambda e: e.of(1))
        assert events.of(1) == [("accepted", 1)]
        c = live.counters()
        assert c["feed"]["messages"] > 0 and c["orders"]["accepted"] == 1
    finally:
        live.close()


def test_paper_keeps_the_live_market_and_leaves_orders_to_the_paper_broker(venue, tmp_path):
    p = venue.ports
    live = open_live(tmp_path, p.orders, paper=True, line_a=p.line_a, line_b=p.line_b,
                     retransmit=p.retransmit)
    try:
        assert live.broker is None and live.feed is not None
        assert wait_for(lambda: (q := live.market.quote("AAPL")) and q.ask)
        paper, events = PaperBroker(live.market), Events()
        paper.attach(events)
        paper.submit(OrderTicket(1, "AAPL", "buy", "market", "day", 1, None, None))
        assert events.of(1)[0] == ("accepted", 1) and events.of(1)[1][0] == "executed"
    finally:
        live.close()


def test_no_venue_means_no_market_and_nothing_started(tmp_path):
    live = open_live(tmp_path, None)
    assert live.broker is live.feed is live.venue is None
    assert live.market.symbols() == [] and "no venue" in live.notes[0]
    live.close()


def test_a_local_venue_that_cannot_start_says_why(tmp_path, venue):
    # its order port is taken (by the module's venue): refused before anything starts
    taken = VenuePorts.ephemeral()
    taken.orders = venue.ports.orders
    with pytest.raises(RuntimeError, match="already listens"):
        open_live(tmp_path, "local", ports=taken)
    assert not (tmp_path / "venue" / "venue.log").exists()
