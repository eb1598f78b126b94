"""Paper trading: a ``Broker`` that fills against the market data store's BBO.

Rules, kept small and stated: a buy executes at the offer, a sell at the bid, for at
most the displayed size; what paper fills take from a side's size stays taken until the
next quote replaces it (so two orders cannot both take the same displayed size). Market
and IOC orders fill what they can and cancel the rest; FOK fills completely or cancels;
limit orders that do not fill rest (day and GTC alike, there is no session end in paper
mode) and are re-checked on every quote; a stop order rests until the bid (sell) or
offer (buy) — or the last trade — reaches its stop price, then executes as a market
order. A market order with no opposite quote is rejected. A fill on arrival removed
liquidity (OUCH's ``R``), a fill of a resting order on a later quote added it (``A``).
A modify (``modify``) of a resting order keeps its priority when only its quantity goes
down, loses it otherwise (as the venue's Replace), and is checked against the quote at
once. Paper fills are venue ``PAPER`` (no fees, ``executions``).

Callbacks run on the caller's thread (``submit`` from the API, re-checks from the feed),
outside the broker's lock, so the OMS may call back into it.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from tick2trade.host.services import ordertypes
from tick2trade.host.services.broker import BrokerEvents, OrderTicket
from tick2trade.host.services.marketdata import MarketData, Quote


class PaperBroker:
    in_process = True      # see ``broker.Broker``
    venue = "PAPER"

    def __init__(self, market: MarketData) -> None:
        self.market = market
        self._lock = threading.RLock()
        self._events: BrokerEvents | None = None
        self._resting: dict[int, list] = {}   # order_id → [ticket, remaining, triggered]
        self._taken: dict[tuple[str, str], tuple[object, int]] = {}
        market.subscribe(self._on_quote)

    def attach(self, events: BrokerEvents) -> None:
        self._events = events

    def submit(self, ticket: OrderTicket) -> None:
        calls: list = []
        with self._lock:
            quote = self.market.quote(ticket.symbol) or Quote(ticket.symbol)
            opposite = quote.ask if ticket.side == "buy" else quote.bid
            if ticket.type == "market" and opposite is None:
                calls.append(("on_rejected", ticket.order_id, "no opposite quote to fill against"))
            else:
                calls.append(("on_accepted", ticket.order_id))
                entry = [ticket, ticket.qty, ticket.type != "stop"]
                if not entry[2] and self._stop_hit(ticket, quote):
                    entry[2] = True
                calls += self._work(entry, quote, first=True)
        self._run(calls)

    def cancel(self, order_id: int) -> bool:
        """True when the order was resting here (it is canceled now); False when this
        broker does not know it (finished, or never here)."""
        with self._lock:
            entry = self._resting.pop(order_id, None)
        if entry is not None:
            self._events.on_canceled(order_id, "canceled by request")
        return entry is not None

    def modify(self, order_id: int, qty_left: int, price: int | None,
               stop_price: int | None) -> None:
        calls: list = []
        with self._lock:
            entry = self._resting.get(order_id)
            if entry is None:
                calls.append(("on_modify_rejected", order_id,
                              "not working at the paper broker (finished?)"))
            else:
                ticket, remaining, triggered = entry
                kept = price == ticket.price and qty_left <= remaining
                entry[0] = replace(ticket, price=price, stop_price=stop_price)
                entry[1] = qty_left
                calls.append(("on_replaced", order_id, "kept" if kept else "lost"))
                quote = self.market.quote(ticket.symbol)
                if quote is not None:
                    if not triggered and self._stop_hit(entry[0], quote):
                        entry[2] = True
                    # a new price that crosses takes liquidity, as an order arriving
                    calls += self._work(entry, quote, first=True)
        self._run(calls)

    def withdraw(self, order_id: int) -> None:
        """Forget an order whose storing rolled back, without a callback. Displayed size
        it took stays taken until the next quote: paper fills err on the side of less."""
        with self._lock:
            self._resting.pop(order_id, None)

    def resting(self) -> list[int]:
        with self._lock:
            return sorted(self._resting)

    def _available(self, quote: Quote, side: str) -> tuple[int | None, int]:
        price, size = (quote.ask, quote.ask_size) if side == "buy" else (quote.bid, quote.bid_size)
        if price is None:
            return None, 0
        token, taken = self._taken.get((quote.symbol, side), (None, 0))
        if token is not quote:
            taken = 0
        return price, max(0, size - taken)

    def _take(self, quote: Quote, side: str, qty: int) -> None:
        token, taken = self._taken.get((quote.symbol, side), (None, 0))
        self._taken[(quote.symbol, side)] = (quote, (taken if token is quote else 0) + qty)

    @staticmethod
    def _stop_hit(t: OrderTicket, q: Quote) -> bool:
        return ordertypes.stop_hit(t.side, t.stop_price, q.bid, q.ask, q.last)

    def _work(self, entry: list, quote: Quote, first: bool) -> list:
        """Fill what the quote allows; returns the callbacks to make."""
        ticket, remaining, triggered = entry
        calls: list = []
        if not triggered:
            self._resting[ticket.order_id] = entry
            return calls
        price, available = self._available(quote, ticket.side)
        marketable = price is not None and (
            ticket.type in ("market", "stop")
            or (ticket.side == "buy" and price <= ticket.price)
            or (ticket.side == "sell" and price >= ticket.price))
        fill = min(remaining, available) if marketable else 0
        if ticket.tif == "fok" and fill < remaining:
            self._resting.pop(ticket.order_id, None)
            return [("on_canceled", ticket.order_id, "fill or kill: not fillable in full")]
        if fill:
            self._take(quote, ticket.side, fill)
            remaining -= fill
            calls.append(("on_executed", ticket.order_id, fill, price, "R" if first else "A"))
        entry[1] = remaining
        if remaining == 0:
            self._resting.pop(ticket.order_id, None)
        elif ticket.type in ("market", "stop") or ticket.tif in ("ioc", "fok"):
            self._resting.pop(ticket.order_id, None)
            calls.append(("on_canceled", ticket.order_id,
                          "immediate order: unfilled quantity canceled"))
        else:
            self._resting[ticket.order_id] = entry
        return calls

    def _on_quote(self, quote: Quote) -> None:
        calls: list = []
        with self._lock:
            for entry in [e for e in self._resting.values() if e[0].symbol == quote.symbol]:
                if not entry[2] and self._stop_hit(entry[0], quote):
                    entry[2] = True
                if entry[2]:
                    calls += self._work(entry, quote, first=False)
        self._run(calls)

    def _run(self, calls: list) -> None:
        for name, *args in calls:
            getattr(self._events, name)(*args)
