"""A user's executions as a statement: a page of rows, and the same rows as CSV or PDF.

A row is what ``GET /portfolio/transactions`` lists: prices, notional and realized P&L as
decimal strings (``money.px``), the time in UTC. CSV and PDF carry the same columns in
the same order, so a download says what the JSON says.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tick2trade.host.services import csvcells
from tick2trade.host.services.audit import as_utc
from tick2trade.host.services.db import Execution
from tick2trade.host.services.money import px

COLUMNS = ("id", "ts", "order_id", "symbol", "side", "qty", "price", "notional",
           "realized_pnl")


def execution_row(e: Execution) -> dict:
    return {"id": e.id, "ts": as_utc(e.ts).isoformat(), "order_id": e.order_id,
            "symbol": e.symbol, "side": e.side, "qty": e.qty, "price": px(e.price),
            "notional": px(e.qty * e.price), "realized_pnl": px(e.realized_pnl)}


def transactions(s: Session, user_id: int, limit: int, offset: int) -> tuple[int, list[dict]]:
    """How many executions the user has, and the rows of one page of them, oldest first."""
    mine = Execution.user_id == user_id
    total = s.execute(select(func.count()).select_from(Execution).where(mine)).scalar_one()
    rows = s.execute(select(Execution).where(mine).order_by(Execution.id)
                     .limit(limit).offset(offset)).scalars()
    return total, [execution_row(e) for e in rows]


def as_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csvcells.writer(out)
    writer.writerow(COLUMNS)
    writer.writerows([row[c] for c in COLUMNS] for row in rows)
    return out.getvalue()


def as_pdf(username: str, rows: list[dict]) -> bytes:
    from fpdf import FPDF  # only a PDF download needs it

    pdf = FPDF(orientation="landscape")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 10, f"tick2trade - transactions of {username}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=8)
    pdf.cell(0, 6, f"{len(rows)} executions, generated {datetime.now(UTC).isoformat()}",
             new_x="LMARGIN", new_y="NEXT")
    with pdf.table(text_align="RIGHT") as table:
        table.row(list(COLUMNS))
        for r in rows:
            table.row([str(r[c]) for c in COLUMNS])
    return bytes(pdf.output())
