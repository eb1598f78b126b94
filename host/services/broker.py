"""The boundary between the OMS and whatever executes orders.

The end-to-end engine (the FPGA's order path, through the host's OUCH session) will
implement ``Broker``; ``paper.PaperBroker`` implements it in-process against the market
data store. The OMS hands over an ``OrderTicket`` after the order is durably stored as
``pending`` (an ``in_process`` broker gets it inside that transaction, see ``orders``),
and learns what happened only through ``BrokerEvents`` — the same calls
whether they come from a paper fill or from an OUCH Accepted/Executed/Canceled/Rejected
message. Callbacks may come from any thread, more than once (the OMS ignores a
transition an order has already made).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class OrderTicket:
    order_id: int
    symbol: str
    side: str             # "buy" | "sell"
    type: str             # one of ``ordertypes.TYPES``
    tif: str              # "day" | "gtc" | "ioc" | "fok"
    qty: int
    price: int | None     # limit price, ticks
    stop_price: int | None
    # the synthetic types' parameters (``ordertypes``), for ``synthetic.SyntheticBroker``
    trail_amount: int | None = None
    trail_bps: int | None = None
    trail_ref: str | None = None
    display_qty: int | None = None
    display_jitter: int | None = None


class BrokerEvents(Protocol):
    def on_accepted(self, order_id: int) -> None: ...

    def on_executed(self, order_id: int, qty: int, price: int,
                    liquidity: str | None = None) -> None:
        """``liquidity``: OUCH's flag, ``A`` the order added it (maker), ``R`` removed
        it (taker); None where the broker cannot tell."""

    def on_canceled(self, order_id: int, reason: str) -> None: ...
    def on_rejected(self, order_id: int, reason: str) -> None: ...

    def on_replaced(self, order_id: int, priority: str) -> None:
        """A ``modify`` took effect; ``priority``: ``kept`` or ``lost`` its place in the
        venue's queue, ``none`` (it had none: a synthetic order held by the OMS)."""

    def on_modify_rejected(self, order_id: int, reason: str) -> None: ...


class Broker(Protocol):
    """``in_process`` (optional, false when absent): the broker's state lives and dies
    with this process and a submit has no effect outside it, so the OMS may submit
    inside the transaction that stores the order (see ``orders``); such a broker also
    has ``withdraw(order_id)``, which forgets an order without any callback (its
    transaction rolled back)."""

    def attach(self, events: BrokerEvents) -> None:
        """Where to report order events; called once before the first submit."""

    def submit(self, ticket: OrderTicket) -> None: ...

    def cancel(self, order_id: int) -> bool | None:
        """Ask to cancel; the answer is an ``on_canceled`` callback (or none, when the
        order has already finished). An ``in_process`` broker returns whether it knew
        the order: False means nothing works it (the OMS then closes it, saying so)."""

    # optional: ``modify(order_id, qty_left, price, stop_price)`` asks for the open
    # quantity and prices to become these (an OUCH Replace); the answer is
    # ``on_replaced`` or ``on_modify_rejected``. Without it the OMS refuses modifies.
    # optional: ``venue``, the name execution reports give (``executions``).
