"""``SyntheticBroker``: the OMS's own order types, in front of whichever broker executes.

Wraps a ``Broker`` (the paper broker, the software OUCH session, the FPGA's gate) and is
the OMS's broker in its place. Market and limit orders pass through untouched; the
synthetic types of ``ordertypes`` are worked here, on the market-data service's stream
(``quote`` and ``trade`` listeners), and reach the wrapped broker only as the plain
orders it knows:

- stop, stop-limit, trailing stop: held until ``ordertypes.stop_hit`` on a quote or a
  trade, then released once as a market (stop, trailing) or limit (stop-limit) order
  under the same order id. A trailing stop's level moves on every reference price
  (``ordertypes.trail_stop``, tightening only). Each move and the release are stored
  (``persist``: the OMS's ``note``) so a restart arms it again where it was.
- iceberg: one slice at a time, a limit order of ``ordertypes.slice_qty`` shares; when
  a slice has executed in full the next one is sent, a new order at the venue, at the
  back of the queue. The venue's Accepted of a later slice is not passed on (the
  iceberg is accepted once); its executions are.

The same order id is used for every child (one at a time), so the wrapped broker's
answers name the OMS's order. A released order the venue rejects is reported canceled
(the OMS accepted it long before), with the venue's reason.

Threads: the market's listeners, the API's threads and the wrapped broker's callbacks
all come here; the map of working orders is under one lock, and every call out (to the
OMS or the wrapped broker) is made outside it. A slice released from inside a fill's
callback is queued and sent once that callback has returned, so a paper broker that
fills slice after slice does not recurse.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, replace

from tick2trade.host.services import ordertypes
from tick2trade.host.services.broker import Broker, BrokerEvents, OrderTicket
from tick2trade.host.services.marketdata import MarketData, Quote, Trade

log = logging.getLogger(__name__)


@dataclass
class Working:
    """A synthetic order: ``left`` shares not executed yet; ``stop`` the trigger level
    (a trailing stop's moves); ``released``: its child is at the wrapped broker;
    ``slice_left``: an iceberg's live slice, shares not executed yet."""
    ticket: OrderTicket
    left: int
    stop: int | None
    released: bool = False
    slice_left: int = 0
    canceling: bool = False


class SyntheticBroker:
    """See the module docstring. ``persist(order_id, **columns)`` stores a working
    order's state; ``rng`` sizes iceberg slices."""

    def __init__(self, inner: Broker, market: MarketData, persist=None,
                 rng: random.Random | None = None) -> None:
        self.inner = inner
        self.in_process = getattr(inner, "in_process", False)
        self.venue = getattr(inner, "venue", "PAPER")
        self.persist = persist or (lambda order_id, **columns: None)
        self.rng = rng or random.Random()
        self.counters = {"triggered": 0, "slices": 0, "trail_moves": 0}
        self._lock = threading.RLock()
        self._working: dict[int, Working] = {}
        self._held: dict[str, dict[int, Working]] = {}   # symbol → its triggered types
        self._again: set[int] = set()     # sent again after a restart, not answered yet
        self._events: BrokerEvents | None = None
        self._local = threading.local()
        market.listen("quote", self._on_quote)
        market.listen("trade", self._on_trade)
        self.market = market

    def __getattr__(self, name: str):
        if name == "inner":
            raise AttributeError(name)
        # what the OMS and the CLI ask of a broker beyond this protocol (connected,
        # wait_connected, close, counters of the wrapped one...) is the wrapped one's
        return getattr(self.inner, name)

    # --- the Broker protocol --------------------------------------------------------

    def attach(self, events: BrokerEvents) -> None:
        self._events = events
        self.inner.attach(self)

    def submit(self, ticket: OrderTicket) -> None:
        if ticket.type not in ordertypes.SYNTHETIC:
            self.inner.submit(ticket)
            return
        self._events.on_accepted(ticket.order_id)
        self.resume(ticket)

    def submit_again(self, ticket: OrderTicket) -> None:
        """Send an order the OMS accepted before a restart to the (empty) wrapped broker:
        its Accepted is not passed on, a Rejected becomes a cancel (the order was
        working, it no longer is)."""
        with self._lock:
            self._again.add(ticket.order_id)
        self.inner.submit(ticket)

    def resume(self, ticket: OrderTicket) -> None:
        """Work ``ticket`` (its ``qty``: what is left of it) again after a restart, as
        ``submit`` does without accepting it a second time."""
        w = Working(ticket, ticket.qty, ticket.stop_price)
        with self._lock:
            self._working[ticket.order_id] = w
            if ticket.type in ordertypes.TRIGGERED:
                self._held.setdefault(ticket.symbol, {})[ticket.order_id] = w
        if ticket.type == "iceberg":
            self._later(lambda: self._next_slice(w))
            return
        quote = self.market.quote(ticket.symbol)
        if quote is not None:
            self._on_quote(quote)

    def cancel(self, order_id: int) -> bool | None:
        """As the wrapped broker's (``Broker.cancel``): an order held here is canceled at
        once (True); any other goes to the wrapped broker, whose answer this returns."""
        with self._lock:
            w = self._working.get(order_id)
            if w is not None and not w.released:
                self._drop(order_id)
            elif w is not None:
                w.canceling = True
        if w is not None and not w.released:
            self._events.on_canceled(order_id, "canceled by request")
            return True
        return self.inner.cancel(order_id)

    def withdraw(self, order_id: int) -> None:
        with self._lock:
            self._drop(order_id)
        withdraw = getattr(self.inner, "withdraw", None)
        if withdraw is not None:
            withdraw(order_id)

    def modify(self, order_id: int, qty_left: int, price: int | None,
               stop_price: int | None) -> None:
        child = qty_left
        with self._lock:
            w = self._working.get(order_id)
            if w is not None:
                trailing = w.ticket.type == "trailing_stop"
                w.ticket = replace(w.ticket, price=price,
                                   stop_price=w.ticket.stop_price if trailing else stop_price)
                w.left = qty_left
                if not trailing:
                    w.stop = stop_price
                if w.released and w.ticket.type == "iceberg":
                    # the live slice shrinks if the order now has less left than it
                    child = w.slice_left = min(w.slice_left, qty_left)
        if w is not None and not w.released:
            self._events.on_replaced(order_id, "none")
            quote = self.market.quote(w.ticket.symbol)
            if quote is not None:
                self._on_quote(quote)
            return
        modify = getattr(self.inner, "modify", None)
        if modify is None:
            self._events.on_modify_rejected(order_id, "the broker cannot modify an order at "
                                            "the market: cancel and place again")
            return
        modify(order_id, child, price, None)

    # --- the wrapped broker's answers ---------------------------------------------------

    def on_accepted(self, order_id: int) -> None:
        with self._lock:
            w = self._working.get(order_id)
            again = order_id in self._again
            self._again.discard(order_id)
        if w is None and not again:
            self._events.on_accepted(order_id)

    def on_executed(self, order_id: int, qty: int, price: int,
                    liquidity: str | None = None) -> None:
        with self._lock:
            w = self._working.get(order_id)
            next_slice = canceled = False
            if w is not None:
                w.left -= qty
                w.slice_left -= qty
                if w.left <= 0:
                    self._drop(order_id)
                elif w.ticket.type == "iceberg" and w.slice_left <= 0:
                    if w.canceling:
                        # the slice filled before the cancel reached it: nothing is left
                        # at the broker to cancel, so the iceberg ends here
                        self._drop(order_id)
                        canceled = True
                    else:
                        w.released = False
                        next_slice = True
        self._events.on_executed(order_id, qty, price, liquidity)
        if canceled:
            self._events.on_canceled(order_id, "canceled by request")
        if next_slice:
            self._later(lambda: self._next_slice(w))

    def on_canceled(self, order_id: int, reason: str) -> None:
        with self._lock:
            self._drop(order_id)
        self._events.on_canceled(order_id, reason)

    def on_rejected(self, order_id: int, reason: str) -> None:
        with self._lock:
            w = self._drop(order_id)
            again = order_id in self._again
            self._again.discard(order_id)
        if again:
            self._events.on_canceled(order_id, f"not taken again after the restart: {reason}")
        elif w is None:
            self._events.on_rejected(order_id, reason)
        else:
            self._events.on_canceled(order_id, f"released order rejected: {reason}")

    def on_replaced(self, order_id: int, priority: str) -> None:
        self._events.on_replaced(order_id, priority)

    def on_modify_rejected(self, order_id: int, reason: str) -> None:
        self._events.on_modify_rejected(order_id, reason)

    # --- triggers on the market's stream ----------------------------------------------

    def _on_quote(self, quote: Quote) -> None:
        self._check(quote.symbol, quote.bid, quote.ask, quote.last)

    def _on_trade(self, trade: Trade) -> None:
        self._check(trade.symbol, None, None, trade.price)

    def _check(self, symbol: str, bid: int | None, ask: int | None,
               last: int | None) -> None:
        moved, hit = [], []
        with self._lock:
            for w in self._held.get(symbol, {}).values():
                t = w.ticket
                if w.released:
                    continue
                seen = (bid, ask, last)
                if t.type == "trailing_stop":
                    ref = t.trail_ref or "quote"
                    price = ordertypes.trail_reference(t.side, ref, bid, ask, last)
                    if price is not None:
                        stop = ordertypes.trail_stop(t.side, price, t.trail_amount,
                                                     t.trail_bps, w.stop)
                        if stop != w.stop:
                            w.stop = stop
                            moved.append((t.order_id, stop))
                    # the reference the trail follows is the one that triggers it
                    seen = (None, None, last) if ref == "last" else (bid, ask, None)
                if w.stop is not None and ordertypes.stop_hit(t.side, w.stop, *seen):
                    w.released = True
                    hit.append(w)
        for order_id, stop in moved:
            self.counters["trail_moves"] += 1
            self.persist(order_id, stop_price=stop)
        for w in hit:
            self.counters["triggered"] += 1
            self.persist(w.ticket.order_id, triggered=True, stop_price=w.stop)
            kind = ordertypes.TYPES[w.ticket.type].releases_as
            self._later(lambda w=w, kind=kind: self.inner.submit(replace(
                w.ticket, type=kind, qty=w.left, stop_price=None,
                price=w.ticket.price if kind == "limit" else None)))

    def _drop(self, order_id: int) -> Working | None:
        """Forget a working order (under the lock); returns it, or None."""
        w = self._working.pop(order_id, None)
        if w is not None:
            held = self._held.get(w.ticket.symbol)
            if held is not None:
                held.pop(order_id, None)
                if not held:
                    del self._held[w.ticket.symbol]
        return w

    def _next_slice(self, w: Working) -> None:
        with self._lock:
            if self._working.get(w.ticket.order_id) is not w or w.released or w.canceling:
                return
            size = ordertypes.slice_qty(w.ticket.display_qty, w.ticket.display_jitter,
                                        w.left, self.rng)
            w.released, w.slice_left = True, size
        self.counters["slices"] += 1
        self.inner.submit(replace(w.ticket, type="limit", qty=size))

    def _later(self, send) -> None:
        """Run ``send`` now, or, when this thread is already sending (a callback of a
        send), once that send has returned: a loop instead of a recursion."""
        queue = getattr(self._local, "queue", None)
        if queue is not None:
            queue.append(send)
            return
        self._local.queue = queue = [send]
        try:
            while queue:
                queue.pop(0)()
        finally:
            self._local.queue = None
