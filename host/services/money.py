"""Prices at the API's edge: stored as integers in 1/10000 (``db.PRICE_SCALE``), shown
and accepted as decimals with at most four places, never as binary floats."""

from __future__ import annotations

from decimal import Decimal

from tick2trade.host.services.db import PRICE_SCALE

MAX_PRICE = Decimal(1000000000)  # 1e9 per unit keeps price × qty within 64 bits


def to_ticks(value: Decimal) -> int:
    scaled = value * PRICE_SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError("at most 4 decimal places")
    return int(scaled)


def px(ticks: int | None) -> str | None:
    """Ticks as a decimal string with four places (``None`` stays ``None``)."""
    if ticks is None:
        return None
    return str((Decimal(ticks) / PRICE_SCALE).quantize(Decimal("0.0001")))
