"""``OuchBroker`` against the venue simulator in a child process (``LocalVenue``), on
loopback ports chosen per test: fills, rests and cancels, the venue's reasons, synthetic
stops, a dropped connection and a restart from the state file."""

import threading
import time

import pytest

from tick2trade.host.services.broker import OrderTicket
from tick2trade.host.services.marketdata import MarketData
from tick2trade.host.services.ouch_broker import OuchBroker

FAR_BELOW = 1_000_000           # $100.00: AAPL starts near $190, a buy here rests


class Events:
    """What the OMS would have been told, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.liquidity: list[str | None] = []
        self.changed = threading.Condition()

    def _add(self, *call) -> None:
        with self.changed:
            self.calls.append(call)
            self.changed.notify_all()

    def on_accepted(self, order_id):
        self._add("accepted", order_id)

    def on_executed(self, order_id, qty, price, liquidity=None):
        self._add("executed", order_id, qty, price)
        self.liquidity.append(liquidity)

    def on_replaced(self, order_id, priority):
        self._add("replaced", order_id, priority)

    def on_modify_rejected(self, order_id, reason):
        self._add("modify_rejected", order_id, reason)

    def on_canceled(self, order_id, reason):
        self._add("canceled", order_id, reason)

    def on_rejected(self, order_id, reason):
        self._add("rejected", order_id, reason)

    def of(self, order_id) -> list[tuple]:
        return [c for c in self.calls if c[1] == order_id]

    def wait(self, test, timeout: float = 10.0) -> list[tuple]:
        with self.changed:
            assert self.changed.wait_for(lambda: test(self), timeout), self.calls
        return list(self.calls)


def ticket(order_id, type_="limit", side="buy", qty=100, price=FAR_BELOW, tif="day",
           symbol="AAPL", stop=None):
    return OrderTicket(order_id, symbol, side, type_, tif, qty, price, stop)


def connect(venue, username, **kw):
    events, broker = Events(), OuchBroker(venue.ports.orders, MarketData(),
                                          username=username, **kw)
    broker.attach(events)
    assert broker.wait_connected(10)
    return events, broker


def test_market_order_fills_and_limit_rests_until_canceled(venue):
    events, broker = connect(venue, "U1")
    try:
        # a venue just started may have no offers yet: its flow builds the book
        for order_id in range(100, 200):
            broker.submit(ticket(order_id, "market", qty=100))
            events.wait(lambda e: len(e.of(order_id)) >= 2)
            if any(c[0] == "executed" for c in events.of(order_id)):
                break
            assert events.of(order_id)[1][0] == "canceled"      # IOC, nothing to take
            time.sleep(0.1)
        filled = sum(c[2] for c in events.of(order_id) if c[0] == "executed")
        assert events.of(order_id)[0] == ("accepted", order_id) and 0 < filled <= 100
        assert events.liquidity and set(events.liquidity) == {"R"}   # it took liquidity
        broker.submit(ticket(2))
        events.wait(lambda e: e.of(2) == [("accepted", 2)])
        time.sleep(0.3)
        assert events.of(2) == [("accepted", 2)]   # far below the market: it rests
        broker.cancel(2)
        events.wait(lambda e: len(e.of(2)) == 2)
        assert events.of(2)[1] == ("canceled", 2, "user requested")
    finally:
        broker.close()


def test_the_venues_reasons_reach_the_oms(venue):
    events, broker = connect(venue, "U2")
    try:
        broker.submit(ticket(1, symbol="NOPE"))
        broker.submit(ticket(2, qty=0))
        broker.submit(ticket(3, price=FAR_BELOW + 1))   # off the $0.01 tick
        events.wait(lambda e: all(e.of(i) for i in (1, 2, 3)))
        assert events.of(1) == [("rejected", 1, "unknown symbol")]
        assert events.of(2)[0][0] == "rejected" and "quantity" in events.of(2)[0][2]
        assert events.of(3)[0][0] == "rejected" and "price" in events.of(3)[0][2]
        broker.cancel(99)          # never sent: answered here, nothing goes to the venue
        assert events.of(99) == [("canceled", 99, "not working at the venue")]
    finally:
        broker.close()


def test_a_replace_reports_whether_the_order_kept_its_priority(venue):
    events, broker = connect(venue, "U6")
    try:
        broker.submit(ticket(1, qty=300))
        events.wait(lambda e: e.of(1) == [("accepted", 1)])
        broker.modify(1, 200, FAR_BELOW, None)          # fewer shares, same price
        events.wait(lambda e: len(e.of(1)) == 2)
        assert events.of(1)[1] == ("replaced", 1, "kept")
        broker.modify(1, 250, FAR_BELOW, None)          # more shares: to the back
        broker.modify(1, 250, FAR_BELOW - 100, None)    # a new price: to the back
        events.wait(lambda e: len(e.of(1)) == 4)
        assert events.of(1)[2:] == [("replaced", 1, "lost"), ("replaced", 1, "lost")]
        broker.modify(1, 250, FAR_BELOW + 1, None)      # off the tick: the venue refuses
        events.wait(lambda e: len(e.of(1)) == 5)
        assert events.of(1)[4][0] == "modify_rejected" and "price" in events.of(1)[4][2]
        broker.modify(7, 10, FAR_BELOW, None)           # never sent: answered here
        assert events.of(7)[0][0] == "modify_rejected"
        broker.cancel(1)        # the order stands under its last UserRefNum
        events.wait(lambda e: len(e.of(1)) == 6)
        assert events.of(1)[5] == ("canceled", 1, "user requested")
        assert broker.counters["replaced"] == 3 and broker.counters["replace_rejected"] == 1
    finally:
        broker.close()


def test_a_stop_waits_here_and_goes_out_as_a_market_order_when_the_market_reaches_it(venue):
    events, broker = connect(venue, "U3")
    try:
        broker.submit(ticket(1, "stop", side="buy", price=None, stop=5_000_000))
        assert events.of(1) == [("accepted", 1)]
        broker.market.trade("AAPL", 4_000_000, 100)      # below a buy stop: nothing
        time.sleep(0.3)
        assert events.of(1) == [("accepted", 1)] and broker.counters["entered"] == 0
        broker.market.trade("AAPL", 5_000_000, 100)      # at the stop: it fires
        events.wait(lambda e: any(c[0] in ("executed", "canceled") for c in e.of(1)))
        assert broker.counters["stops_triggered"] == 1 and broker.counters["entered"] == 1
        broker.submit(ticket(2, "stop", side="sell", price=None, stop=1_000_000))
        broker.cancel(2)
        assert events.of(2) == [("accepted", 2), ("canceled", 2, "canceled by request")]
    finally:
        broker.close()


def test_a_dropped_connection_is_resumed_without_losing_or_repeating_an_answer(venue):
    events, broker = connect(venue, "U4")
    try:
        broker.submit(ticket(1))
        events.wait(lambda e: e.of(1) == [("accepted", 1)])
        broker._sock.shutdown(2)              # the link goes down under the session
        deadline = time.monotonic() + 10
        while broker.counters["logins"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert broker.counters["logins"] == 2 and broker.counters["disconnects"] == 1
        broker.submit(ticket(2))
        broker.cancel(1)
        events.wait(lambda e: len(e.of(1)) == 2 and e.of(2))
        assert events.of(1) == [("accepted", 1), ("canceled", 1, "user requested")]
        assert events.of(2) == [("accepted", 2)]      # a new UserRefNum the venue took
    finally:
        broker.close()


def test_a_restart_resumes_from_the_state_file(venue, tmp_path):
    state = tmp_path / "ouch.json"
    events, broker = connect(venue, "U5", state=state)
    broker.submit(ticket(1))
    events.wait(lambda e: e.of(1) == [("accepted", 1)])
    broker.close()
    assert state.exists()

    events, broker = connect(venue, "U5", state=state)
    try:
        time.sleep(0.3)
        assert events.calls == []           # the replayed answers are not told again
        broker.cancel(1)                    # its UserRefNum was learned from the replay
        broker.submit(ticket(2))            # and the next one is above it
        events.wait(lambda e: e.of(1) and e.of(2))
        assert events.of(1) == [("canceled", 1, "user requested")]
        assert events.of(2) == [("accepted", 2)]
    finally:
        broker.close()


def test_an_order_while_the_venue_is_unreachable_is_refused_at_once(tmp_path):
    from tick2trade.host.services.localvenue import free_port

    events = Events()
    broker = OuchBroker(("127.0.0.1", free_port()), MarketData(), connect_timeout=0.2)
    broker.attach(events)
    try:
        assert not broker.wait_connected(0.3)
        broker.submit(ticket(1))
        (call,) = events.of(1)
        assert call[0] == "rejected" and "not connected" in call[2]
        with pytest.raises(ConnectionError):
            broker._refs[5] = 1                # an order it believes is live
            broker.cancel(5)
    finally:
        broker.close()
