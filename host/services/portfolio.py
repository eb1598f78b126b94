"""Positions and P&L arithmetic, exact in integers.

A position is a signed quantity, a signed cost basis (what the open quantity cost: the
sum of price × quantity of the trades that opened it, negative for a short) and the
realized P&L so far, all integers (prices in 1/10000). Fills follow the average-cost
method: a fill that reduces the position takes away the closed fraction of the cost
basis, rounded down, and realizes the difference to the fill price; a fill that crosses
zero closes the whole position and opens the rest on the other side at the fill price.

Rounding can move at most one unit between realized and unrealized P&L per reducing
fill, and never changes their sum: for any sequence of fills,

    realized + unrealized(mark) = mark × qty − Σ signed_qty × price   (exactly)

i.e. P&L is what the cash flows and the marked position say it is. The property tests
check that identity and compare with a rational-number reference.

Total return is total P&L over the capital deployed: the notional of every trade that
opened or added to a position. A portfolio that never traded has a return of zero.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PositionState:
    qty: int = 0
    cost: int = 0
    realized: int = 0
    deployed: int = 0

    def unrealized(self, mark: int) -> int:
        return self.qty * mark - self.cost

    def market_value(self, mark: int) -> int:
        return self.qty * mark


def apply_fill(pos: PositionState, signed_qty: int, price: int) -> tuple[PositionState, int]:
    """The position after a fill of ``signed_qty`` (buy > 0, sell < 0) at ``price``,
    and the P&L the fill realized."""
    if signed_qty == 0:
        return pos, 0
    qty, cost, realized, deployed = pos.qty, pos.cost, pos.realized, pos.deployed
    gained = 0
    if qty != 0 and (qty > 0) != (signed_qty > 0):
        closed = min(abs(signed_qty), abs(qty))
        removed = cost * closed // abs(qty)
        closed_signed = closed if qty > 0 else -closed
        gained = closed_signed * price - removed
        qty -= closed_signed
        cost -= removed
        signed_qty += closed_signed
    if signed_qty:
        qty += signed_qty
        cost += signed_qty * price
        deployed += abs(signed_qty) * price
    return PositionState(qty, cost, realized + gained, deployed), gained


@dataclass(frozen=True)
class Performance:
    realized: int
    unrealized: int
    market_value: int
    deployed: int

    @property
    def total_pnl(self) -> int:
        return self.realized + self.unrealized

    @property
    def total_return(self) -> float:
        return self.total_pnl / self.deployed if self.deployed else 0.0


def performance(positions: dict[str, PositionState], marks: dict[str, int]) -> Performance:
    """Sum over positions; a position without a mark is valued at its cost (unrealized
    P&L zero) — there is no price to say otherwise."""
    realized = unrealized = value = deployed = 0
    for symbol, pos in positions.items():
        realized += pos.realized
        deployed += pos.deployed
        if symbol in marks:
            unrealized += pos.unrealized(marks[symbol])
            value += pos.market_value(marks[symbol])
        else:
            value += pos.cost
    return Performance(realized, unrealized, value, deployed)
