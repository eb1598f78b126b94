"""The order types: what each one takes, what it may not be combined with, and how a
synthetic one triggers. One table (``TYPES``) and the rules below; the OMS
(``orders``), the synthetic-order broker (``synthetic``) and the API's schema read them.

Types
-----
- ``market``, ``limit``: go to the broker as they are.
- ``stop``: held by the OMS until a sell's bid (a buy's offer) or the last trade reaches
  ``stop_price``, then released as a market order.
- ``stop_limit``: the same trigger, released as a limit order at ``price``.
- ``trailing_stop``: a stop whose trigger follows the market at ``trail_amount`` (ticks)
  or ``trail_bps`` from the reference — the touch on the order's side of the book
  (``trail_ref="quote"``, a sell's bid, a buy's offer) or the last trade (``"last"``) —
  and only tightens: a sell's stop only rises, a buy's only falls. Released as a
  market order.
- ``iceberg``: a limit order of which ``display_qty`` shows at a time; each slice is a
  new order at the venue (so it goes to the back of the queue, as a refreshed reserve
  does), sized ``display_qty`` ± up to ``display_jitter`` at random when given.

Held orders are *synthetic*: they work in the OMS, on the market-data stream, and
reach the venue only when released. TIF: ``day`` ends with the session it was placed
in, ``gtc`` survives restarts and sessions, ``ioc`` / ``fok`` are the released order's
(so they make no sense on an iceberg, which must rest).

A ``market`` or ``limit`` entry with both ``take_profit`` and ``stop_loss`` is a
bracket: once it has executed, its exits go out for what executed — a limit at the
take-profit and a stop at the stop-loss on the other side, one-cancels-other
(``contingent``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SIDES = ("buy", "sell")
TIFS = ("day", "gtc", "ioc", "fok")
TRAIL_REFS = ("quote", "last")
MAX_TRAIL_BPS = 9_999


@dataclass(frozen=True)
class TypeRule:
    """What a type needs (``required``) and takes (``allowed`` ⊇ required) of the
    optional fields; ``synthetic``: held by the OMS until released; ``releases_as``:
    the type it goes to the market as."""
    required: frozenset[str]
    allowed: frozenset[str]
    synthetic: bool
    releases_as: str


def _rule(required: set[str], optional: set[str], synthetic: bool, releases_as: str):
    return TypeRule(frozenset(required), frozenset(required | optional), synthetic,
                    releases_as)


BRACKET = {"take_profit", "stop_loss"}
TYPES: dict[str, TypeRule] = {
    "market": _rule(set(), BRACKET, False, "market"),
    "limit": _rule({"price"}, BRACKET, False, "limit"),
    "stop": _rule({"stop_price"}, set(), True, "market"),
    "stop_limit": _rule({"stop_price", "price"}, set(), True, "limit"),
    "trailing_stop": _rule(set(), {"trail_amount", "trail_bps", "trail_ref"}, True, "market"),
    "iceberg": _rule({"price", "display_qty"}, {"display_jitter"}, True, "limit"),
}
SYNTHETIC = tuple(name for name, rule in TYPES.items() if rule.synthetic)
TRIGGERED = ("stop", "stop_limit", "trailing_stop")   # released once, when triggered
OPTIONAL_FIELDS = ("price", "stop_price", "trail_amount", "trail_bps", "trail_ref",
                   "display_qty", "display_jitter", "take_profit", "stop_loss")


class Invalid(ValueError):
    """An order that no market could take as asked; the text says why (422)."""


def validate(order, reference: int | None = None) -> None:
    """Check ``order`` (anything with ``side``, ``type``, ``tif``, ``qty`` and the
    ``OPTIONAL_FIELDS``); ``reference``, a price the market shows now, lets a market
    bracket's exits be checked against it. Raises ``Invalid``."""
    if order.side not in SIDES:
        raise Invalid(f"side must be one of {', '.join(SIDES)}")
    rule = TYPES.get(order.type)
    if rule is None:
        raise Invalid(f"type must be one of {', '.join(TYPES)}")
    if order.tif not in TIFS:
        raise Invalid(f"tif must be one of {', '.join(TIFS)}")
    if order.qty <= 0:
        raise Invalid("qty must be positive")
    given = {f for f in OPTIONAL_FIELDS if getattr(order, f) is not None}
    a = "an" if order.type[0] in "aeiou" else "a"
    for name in sorted(rule.required - given):
        raise Invalid(f"{a} {order.type} order needs {name}")
    for name in sorted(given - rule.allowed):
        raise Invalid(f"{a} {order.type} order takes no {name}")
    for name in ("price", "stop_price", "trail_amount", "display_qty", "take_profit",
                 "stop_loss"):
        value = getattr(order, name)
        if value is not None and value <= 0:
            raise Invalid(f"{name} must be positive")
    if order.type == "trailing_stop":
        _check_trail(order)
    if order.type == "iceberg":
        _check_iceberg(order)
    if given & BRACKET:
        _check_bracket(order, reference)


def _check_trail(order) -> None:
    if (order.trail_amount is None) == (order.trail_bps is None):
        raise Invalid("a trailing_stop order needs one of trail_amount or trail_bps")
    if order.trail_bps is not None and not 0 < order.trail_bps <= MAX_TRAIL_BPS:
        raise Invalid(f"trail_bps must be 1 to {MAX_TRAIL_BPS}")
    if order.trail_ref is not None and order.trail_ref not in TRAIL_REFS:
        raise Invalid(f"trail_ref must be one of {', '.join(TRAIL_REFS)}")


def _check_iceberg(order) -> None:
    if order.display_qty > order.qty:
        raise Invalid(f"display_qty {order.display_qty} is more than the order's qty "
                      f"{order.qty}")
    jitter = order.display_jitter or 0
    if jitter < 0 or (jitter and jitter >= order.display_qty):
        raise Invalid("display_jitter must be 0 or more and less than display_qty")
    if order.tif in ("ioc", "fok"):
        raise Invalid(f"an iceberg rests: tif {order.tif} is not for it (day or gtc)")


def _check_bracket(order, reference: int | None) -> None:
    if order.take_profit is None or order.stop_loss is None:
        raise Invalid("a bracket needs both take_profit and stop_loss")
    entry = order.price if order.type == "limit" else reference
    # a buy's exits sell: the profit above the entry, the stop below; a sell's the reverse
    low, high = ((order.stop_loss, order.take_profit) if order.side == "buy"
                 else (order.take_profit, order.stop_loss))
    low_name, high_name = (("stop_loss", "take_profit") if order.side == "buy"
                           else ("take_profit", "stop_loss"))
    if low >= high:
        raise Invalid(f"a {order.side} bracket's {low_name} must be below its {high_name}")
    if entry is not None and not low < entry < high:
        raise Invalid(f"a {order.side} bracket's {low_name} must be below the entry "
                      f"({'price' if order.type == 'limit' else 'the market'}) and its "
                      f"{high_name} above it")


def validate_oco(legs) -> None:
    """An OCO group: two or more legs on one symbol, none a bracket, none a market order
    (it would execute before the other leg could be canceled)."""
    if len(legs) < 2:
        raise Invalid("an OCO needs at least two legs")
    symbols = {leg.symbol for leg in legs}
    if len(symbols) > 1:
        raise Invalid(f"the legs of an OCO are on one symbol, not {', '.join(sorted(symbols))}")
    for i, leg in enumerate(legs):
        if leg.type == "market":
            raise Invalid(f"leg {i}: a market order executes at once: not an OCO leg")
        if leg.take_profit is not None or leg.stop_loss is not None:
            raise Invalid(f"leg {i}: a bracket cannot be an OCO leg")


# --- triggers -----------------------------------------------------------------------


def stop_hit(side: str, stop: int, bid: int | None, ask: int | None,
             last: int | None) -> bool:
    """A sell stop triggers when the bid or the last trade is at or below it, a buy
    stop when the offer or the last trade is at or above it."""
    if side == "sell":
        return any(v is not None and v <= stop for v in (bid, last))
    return any(v is not None and v >= stop for v in (ask, last))


def trail_reference(side: str, ref: str, bid: int | None, ask: int | None,
                    last: int | None) -> int | None:
    if ref == "last":
        return last
    return bid if side == "sell" else ask


def trail_stop(side: str, reference: int, amount: int | None, bps: int | None,
               current: int | None) -> int:
    """The trailing stop after the reference printed ``reference``: ``amount`` ticks
    (or ``bps`` of the reference) away on the losing side, never looser than
    ``current``. A stop is at least one tick."""
    distance = amount if amount is not None else reference * bps // 10_000
    if side == "sell":
        new = max(1, reference - distance)
        return new if current is None else max(current, new)
    new = reference + distance
    return new if current is None else min(current, new)


def slice_qty(display: int, jitter: int | None, left: int, rng: random.Random) -> int:
    """The next iceberg slice: ``display`` ± up to ``jitter`` shares, at most what is
    left, at least one."""
    size = display + (rng.randint(-jitter, jitter) if jitter else 0)
    return max(1, min(size, left))
