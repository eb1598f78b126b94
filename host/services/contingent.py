"""OCO and bracket orders: orders that follow what happens to other orders.

- **OCO** (one-cancels-other, ``POST /orders/oco``): two or more legs on one symbol,
  stored together with the first leg's id as their ``group_id``. When a leg executes
  (its first fill), every other open leg of the group is canceled. Two legs that
  execute at the same moment at the venue both keep what they executed: the cancel of
  the other is sent as soon as a fill is stored, not before.
- **Bracket**: a market or limit entry with ``take_profit`` and ``stop_loss``. Once the
  entry has finished (filled, or canceled after part of it executed), its exits are
  placed for the quantity that executed, on the other side, good till canceled: a limit
  at ``take_profit`` and a stop at ``stop_loss``, one OCO group whose ``group_id`` and
  ``parent_id`` are the entry's id. An entry that executed nothing gets no exits.

This runs on the OMS's status changes (``Orders.status_hooks``, after their commit),
on a thread of its own: a cancel or a placement waits for the writer, which a hook
(called at the end of the writer's turn) must not.
"""

from __future__ import annotations

import logging
import queue
import threading

from sqlalchemy import select

from tick2trade.host.services.db import Order
from tick2trade.host.services.status import OPEN, TERMINAL, OrderStatus

log = logging.getLogger(__name__)
ACTOR = "oms"
OTHER_SIDE = {"buy": "sell", "sell": "buy"}


class Contingent:
    """See the module docstring; ``orders`` is the OMS (``orders.Orders``)."""

    def __init__(self, orders) -> None:
        self.orders = orders
        self.counters = {"oco_cancels": 0, "brackets": 0}
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = threading.Condition()
        self._busy = 0
        orders.status_hooks.append(self._on_status)
        threading.Thread(target=self._run, name="t2t-contingent", daemon=True).start()

    def _on_status(self, row) -> None:
        if row["group_id"] is None and row["take_profit"] is None:
            return
        with self._idle:
            self._busy += 1
        self._queue.put(dict(row))

    def settle(self, timeout: float = 5.0) -> bool:
        """Wait until every status change seen so far has been acted on (tests)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def _run(self) -> None:
        while True:
            row = self._queue.get()
            try:
                if row["group_id"] is not None and row["filled_qty"] > 0:
                    self._cancel_others(row)
                if row["take_profit"] is not None and row["status"] in TERMINAL \
                        and row["filled_qty"] > 0:
                    self._place_exits(row)
            except Exception:
                log.exception("contingent orders of order %s", row["id"])
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _cancel_others(self, row) -> None:
        with self.orders.sessions() as s:
            others = list(s.execute(select(Order.id).where(
                Order.group_id == row["group_id"], Order.id != row["id"],
                Order.status.in_(OPEN))).scalars())
        for order_id in others:
            self.counters["oco_cancels"] += 1
            try:
                self.orders.cancel(row["user_id"], order_id, ACTOR, any_user=True)
            except Exception:
                log.exception("OCO: cancel of order %s (group %s)", order_id, row["group_id"])

    def _place_exits(self, row) -> None:
        from tick2trade.host.services.orders import NewOrder

        with self.orders.sessions() as s:
            if s.execute(select(Order.id).where(Order.parent_id == row["id"])).first():
                return     # placed already (a repeated status change)
            entry = s.get(Order, row["id"])
        side, qty = OTHER_SIDE[entry.side], entry.filled_qty
        legs = [NewOrder(entry.symbol, side, "limit", qty, "gtc", price=entry.take_profit),
                NewOrder(entry.symbol, side, "stop", qty, "gtc", stop_price=entry.stop_loss)]
        self.counters["brackets"] += 1
        placed = self.orders.place_group(entry.user_id, ACTOR, legs, parent_id=entry.id)
        if any(o.status == OrderStatus.REJECTED for o in placed):
            log.warning("bracket %s: an exit was rejected: %s", entry.id,
                        [(o.id, o.reason) for o in placed])
