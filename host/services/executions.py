"""Execution reports: each fill's id, venue, liquidity flag and fee.

- ``exec_id`` is ``venue-order-n`` where ``n`` is how many shares of the order had
  executed before this fill: unique and the same if a report is replayed (the OMS
  writes a fill once, ``orders.on_executed``), and it needs no venue's match number,
  which a restarted venue simulator would start again at 1.
- ``liquidity`` is OUCH's flag: ``A`` the order added liquidity (it rested: maker),
  ``R`` it removed it (taker); None where the broker cannot tell.
- ``fee`` in ticks (1/10000 of the quote currency), per share by the venue's schedule:
  a maker's rebate is negative. Unknown liquidity pays the taker's rate (the fee is
  never understated).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from tick2trade.host.services import audit
from tick2trade.host.services.db import Execution
from tick2trade.host.services.money import px

MAKER, TAKER = "A", "R"


@dataclass(frozen=True)
class FeeSchedule:
    """Ticks per share: ``maker`` (negative: a rebate) and ``taker``."""
    maker: int = -20     # -$0.0020 a share, as lit US equity venues pay for adding
    taker: int = 30      # $0.0030 a share, the US access-fee cap

    def fee(self, liquidity: str | None, qty: int) -> int:
        return qty * (self.maker if liquidity == MAKER else self.taker)


SCHEDULES = {"PAPER": FeeSchedule(0, 0)}   # paper fills cost nothing
DEFAULT = FeeSchedule()


def fee(venue: str, liquidity: str | None, qty: int) -> int:
    return SCHEDULES.get(venue, DEFAULT).fee(liquidity, qty)


def exec_id(venue: str, order_id: int, filled_before: int) -> str:
    return f"{venue}-{order_id}-{filled_before}"[:40]


def execution_json(e: Execution) -> dict:
    return {"exec_id": e.exec_id or f"legacy-{e.id}", "order_id": e.order_id,
            "symbol": e.symbol, "side": e.side, "qty": e.qty, "price": px(e.price),
            "venue": e.venue, "liquidity": {MAKER: "added", TAKER: "removed"}.get(e.liquidity),
            "fee": px(e.fee), "ts": audit.as_utc(e.ts).isoformat()}


def for_order(sessions, order_id: int) -> list[Execution]:
    with sessions() as s:
        return list(s.execute(select(Execution).where(Execution.order_id == order_id)
                              .order_by(Execution.id)).scalars())
