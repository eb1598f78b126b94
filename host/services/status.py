"""The states of an order, one enum for the database, the API, the OMS and the engine.

The values are the strings stored in ``orders.status`` and returned by the API; a
``StrEnum`` member compares and serializes as its value, so code may hold either.
"""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"


# an open order may still trade; a terminal one never changes again
OPEN = (OrderStatus.PENDING, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
TERMINAL = (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED)
