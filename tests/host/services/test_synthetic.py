"""``SyntheticBroker`` against a scripted broker: the orderings a real venue can produce
that the paper broker never does (a slice filling ahead of its cancel, a released order
refused, a resent order refused after a restart, a venue's Accepted of every slice)."""

from __future__ import annotations

import random

from tick2trade.host.services.broker import OrderTicket
from tick2trade.host.services.marketdata import MarketData
from tick2trade.host.services.synthetic import SyntheticBroker


class Scripted:
    """A broker that only records; the test answers for it."""

    in_process = False
    venue = "TEST"

    def __init__(self) -> None:
        self.submitted: list[OrderTicket] = []
        self.canceled: list[int] = []

    def attach(self, events) -> None:
        self.events = events

    def submit(self, ticket: OrderTicket) -> None:
        self.submitted.append(ticket)

    def cancel(self, order_id: int) -> None:
        self.canceled.append(order_id)


class Oms:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name.removeprefix("on_"), *args))


def rig():
    market, inner, oms = MarketData(), Scripted(), Oms()
    broker = SyntheticBroker(inner, market, rng=random.Random(1))
    broker.attach(oms)
    return market, inner, oms, broker


def iceberg(order_id=1, qty=100, display=30):
    return OrderTicket(order_id, "AAPL", "buy", "iceberg", "gtc", qty, 1_000_000, None,
                       display_qty=display)


def test_iceberg_slices_are_accepted_once_and_follow_each_other():
    _m, inner, oms, broker = rig()
    broker.submit(iceberg())
    assert [t.qty for t in inner.submitted] == [30] and inner.submitted[0].type == "limit"
    broker.on_accepted(1)                       # the venue accepts each slice
    broker.on_executed(1, 30, 1_000_000, "A")
    broker.on_accepted(1)
    broker.on_executed(1, 30, 1_000_000, "A")
    broker.on_accepted(1)
    broker.on_executed(1, 30, 1_000_000, "R")
    broker.on_accepted(1)
    broker.on_executed(1, 10, 1_000_000, "A")
    assert [t.qty for t in inner.submitted] == [30, 30, 30, 10]
    assert oms.calls == [("accepted", 1)] + [("executed", 1, q, 1_000_000, f) for q, f in
                                             ((30, "A"), (30, "A"), (30, "R"), (10, "A"))]
    assert broker.counters["slices"] == 4


def test_a_slice_that_fills_ahead_of_its_cancel_ends_the_iceberg():
    _m, inner, oms, broker = rig()
    broker.submit(iceberg())
    broker.cancel(1)                            # the cancel is on its way to the venue...
    assert inner.canceled == [1]
    broker.on_executed(1, 30, 1_000_000, "A")   # ...and the slice filled before it got there
    assert oms.calls[-2:] == [("executed", 1, 30, 1_000_000, "A"),
                              ("canceled", 1, "canceled by request")]
    assert len(inner.submitted) == 1            # no next slice


def test_a_released_order_the_venue_refuses_is_canceled_saying_why():
    market, inner, oms, broker = rig()
    broker.submit(OrderTicket(2, "AAPL", "sell", "stop", "day", 10, None, 990_000))
    market.update("AAPL", bid=985_000, bid_size=5, ask=986_000, ask_size=5)
    assert inner.submitted[0].type == "market" and inner.submitted[0].stop_price is None
    broker.on_rejected(2, "closed (no trading session)")
    assert oms.calls == [("accepted", 2),
                         ("canceled", 2, "released order rejected: closed (no trading session)")]


def test_an_order_resent_after_a_restart_is_not_accepted_twice_nor_rejected():
    _m, _inner, oms, broker = rig()
    t = OrderTicket(3, "AAPL", "buy", "limit", "gtc", 10, 1_000_000, None)
    broker.submit_again(t)
    broker.on_accepted(3)
    broker.submit_again(OrderTicket(4, "AAPL", "buy", "limit", "gtc", 10, 1_000_000, None))
    broker.on_rejected(4, "unknown symbol")
    broker.submit(OrderTicket(5, "AAPL", "buy", "limit", "gtc", 10, 1_000_000, None))
    broker.on_accepted(5)
    assert oms.calls == [("canceled", 4, "not taken again after the restart: unknown symbol"),
                         ("accepted", 5)]


def test_modify_of_a_live_slice_goes_to_the_venue_and_of_a_held_stop_stays_here():
    market, inner, oms, broker = rig()
    inner.modified = []
    inner.modify = lambda *args: inner.modified.append(args)
    broker.submit(iceberg(qty=100, display=30))
    broker.modify(1, 20, 990_000, None)        # less left than the slice: it shrinks
    assert inner.modified == [(1, 20, 990_000, None)]
    broker.submit(OrderTicket(6, "AAPL", "sell", "stop", "day", 10, None, 900_000))
    broker.modify(6, 8, None, 950_000)
    assert ("replaced", 6, "none") in oms.calls and len(inner.modified) == 1
    market.update("AAPL", bid=949_000, bid_size=5, ask=951_000, ask_size=5)
    assert (inner.submitted[-1].order_id, inner.submitted[-1].qty) == (6, 8)
