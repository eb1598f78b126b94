"""The market routes over a live feed: the symbols listed, a book marked stale while
the feed waits for a retransmission (never a silently wrong book), and the operator's
view of the feed's counters."""

from tick2trade.protocol import moldudp64
from tick2trade.host.services.feed import FeedHandler
from tick2trade.host.services.live import Live

from tests.host.conftest import register_login
from tests.host.services.test_feed import add

SESSION = "APITEST001"


def test_a_feed_gap_marks_the_book_stale_until_it_is_filled(client, platform):
    feed = FeedHandler(platform.market, [], retransmit=None, session=SESSION)
    platform.live = Live(platform.market, feed=feed)
    h = register_login(client, "watcher")
    feed.process(moldudp64.encode_packet(SESSION, 1, [add(1), add(2, "S", 100_100)]))
    book = client.get("/market/AAPL/book", headers=h).json()
    assert book["source"] == "feed" and book["stale"] is False
    assert [x["price"] for x in book["bids"]] == ["10.0000"]
    # messages 3 and 4 are lost on both lines: 5 is held, the book stays as before the gap
    feed.process(moldudp64.encode_packet(SESSION, 5, [add(5, "B", 99_900)]))
    book = client.get("/market/AAPL/book", headers=h).json()
    assert book["stale"] is True and [x["price"] for x in book["bids"]] == ["10.0000"]
    # the retransmission fills it: 3, 4, then the held 5
    feed.process(moldudp64.encode_packet(SESSION, 3, [add(3, "B", 99_800), add(4)]), "R")
    book = client.get("/market/AAPL/book", headers=h).json()
    assert book["stale"] is False
    assert [(x["price"], x["size"]) for x in book["bids"]] == [
        ("10.0000", 200), ("9.9900", 100), ("9.9800", 100)]
    listed = client.get("/market", headers=h).json()["symbols"]
    assert [(x["symbol"], x["source"]) for x in listed] == [("AAPL", "feed")]
    op = register_login(client, "oper", "operator", platform)
    m = client.get("/operator/market", headers=op).json()
    assert m["live"] and m["feed"]["gaps"] == 1 and m["feed"]["recovered"] >= 2
    assert client.get("/operator/market", headers=h).status_code == 403


def test_without_a_venue_the_operator_is_told_so(client, platform):
    op = register_login(client, "op2", "operator", platform)
    assert client.get("/operator/market", headers=op).json() == {"live": False}
    assert client.get("/market", headers=op).json() == {"symbols": []}
