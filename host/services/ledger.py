"""The business rows checked against the audit chain: orders, executions, positions.

The chain (``audit``) proves its own records unchanged; this module proves the tables
agree with it, so an edit of an ``orders`` or ``executions`` row — or a positions table
that drifted from the executions — is found by ``t2t audit verify`` too.

Orders: every write of an order row appends a record with subject ``order:<id>`` in the
same transaction, and the chain, read in sequence order, says what the row must hold:

- a record whose detail names order columns (``symbol``, ``side``, ``type``, ``tif``,
  ``qty``, ``price``, ``stop_price``, ``status``, ``reason``) sets them — the placement
  states them all, a later change (a modify) states the new values under those names;
- ``order.<status>`` (``order.accepted``, ``order.canceled``, ...) sets the status, and
  its ``reason`` if it gives one;
- ``order.executed`` adds ``qty`` × ``price`` to the fills and, on an open order, makes it
  ``partially_filled`` or ``filled``;
- the first record's actor is the order's owner.

Only the columns the chain states are compared (older records state fewer). Executions:
an order's rows, in id order, are its ``order.executed`` records in chain order (qty,
price, realized P&L). Positions: replaying every execution in id order through
``portfolio.apply_fill`` gives the positions table exactly — the OMS and the engine's
store both write a fill's execution and its position in one transaction, in that order.

What this does not do, as for the chain: someone who can rewrite rows *and* the chain
consistently is found only by a published head hash.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from tick2trade.host.services.audit import Problem
from tick2trade.host.services.db import AuditRecord, Execution, Order, Position, User
from tick2trade.host.services.portfolio import PositionState, apply_fill
from tick2trade.host.services.status import OPEN, OrderStatus

STATED = ("symbol", "side", "type", "tif", "qty", "price", "stop_price", "status", "reason")
STATUSES = {s.value for s in OrderStatus}


@dataclass
class _Expected:
    owner: str
    seq: int  # the last record about the order
    columns: dict = field(default_factory=dict)
    fills: list = field(default_factory=list)  # (seq, qty, price, realized)


def expected_orders(session: Session) -> dict[int, _Expected]:
    """What the chain says each order row holds, by order id."""
    out: dict[int, _Expected] = {}
    rows = session.execute(
        select(AuditRecord.seq, AuditRecord.actor, AuditRecord.action, AuditRecord.subject,
               AuditRecord.detail)
        .where(AuditRecord.subject.like("order:%"))
        .order_by(AuditRecord.seq).execution_options(yield_per=2000))
    for seq, actor, action, subject, detail in rows:
        try:
            order_id = int(subject.removeprefix("order:"))
            d = json.loads(detail) if detail else {}
        except ValueError:
            continue
        if not isinstance(d, dict):
            continue
        kind = action.removeprefix("order.")
        if kind == "cancel_request":  # a request changes no row
            continue
        e = out.setdefault(order_id, _Expected(actor, seq))
        e.seq = seq
        if kind == "executed":
            e.fills.append((seq, d.get("qty"), d.get("price"), d.get("realized")))
            if e.columns.get("status") in OPEN or "status" not in e.columns:
                filled = sum(q for _s, q, _p, _r in e.fills)
                qty = e.columns.get("qty")
                if qty is not None:
                    e.columns["status"] = (OrderStatus.FILLED if filled >= qty
                                           else OrderStatus.PARTIALLY_FILLED)
            continue
        if kind == "place":  # the placement states every column: one it leaves out is empty
            e.columns.update({name: d.get(name) for name in STATED})
        for name in STATED:
            if name in d:
                e.columns[name] = d[name]
        if e.columns.get("type") == "trailing_stop":
            # its stop_price is working state the OMS moves with the market (``note``),
            # not a stated value
            e.columns.pop("stop_price", None)
        if kind in STATUSES:
            e.columns["status"] = kind
    return out


def order_problems(session: Session, max_problems: int = 100) -> list[Problem]:
    """Where the orders and executions tables differ from what the chain says."""
    problems: list[Problem] = []
    expected = expected_orders(session)
    users = dict(session.execute(select(User.id, User.username)).all())
    execs: dict[int, list[Execution]] = defaultdict(list)
    for ex in session.execute(select(Execution).order_by(Execution.id)
                              .execution_options(yield_per=2000)).scalars():
        execs[ex.order_id].append(ex)
    seen = set()
    for row in session.execute(select(Order).order_by(Order.id)
                               .execution_options(yield_per=2000)).scalars():
        seen.add(row.id)
        e = expected.get(row.id)
        if e is None:
            problems.append(Problem(0, f"order {row.id} has no record in the audit chain "
                                       f"(written behind the log's back)"))
            continue
        wrong = [name for name, value in e.columns.items()
                 if getattr(row, name) != (value[:200] if name == "reason" and value else value)]
        if users.get(row.user_id) != e.owner and e.owner not in ("broker",):
            wrong.append("user_id")
        filled = sum(q or 0 for _s, q, _p, _r in e.fills)
        notional = sum((q or 0) * (p or 0) for _s, q, p, _r in e.fills)
        if e.fills or row.filled_qty:
            if row.filled_qty != filled:
                wrong.append("filled_qty")
            if row.filled_notional != notional:
                wrong.append("filled_notional")
        if wrong:
            problems.append(Problem(e.seq, f"order {row.id}: {', '.join(wrong)} differ from "
                                           f"the audit chain (edited)"))
        rows = execs.get(row.id, [])
        got = [(x.qty, x.price) for x in rows]
        want = [(q, p) for _s, q, p, _r in e.fills]
        if got != want or any(r is not None and x.realized_pnl != r
                              for x, (_s, _q, _p, r) in zip(rows, e.fills)):
            problems.append(Problem(e.fills[-1][0] if e.fills else e.seq,
                                    f"order {row.id}: its executions ({len(got)}) differ "
                                    f"from the audit chain's ({len(want)}) (edited, added "
                                    f"or deleted)"))
        if any(x.user_id != row.user_id or x.symbol != row.symbol or x.side != row.side
               for x in rows):
            problems.append(Problem(e.seq, f"order {row.id}: an execution's account, "
                                           f"symbol or side is not the order's (edited)"))
        if len(problems) >= max_problems:
            return problems
    for order_id in sorted(set(expected) - seen):
        problems.append(Problem(expected[order_id].seq,
                                f"order {order_id} is in the audit chain but not in the "
                                f"orders table (deleted)"))
    for order_id in sorted(set(execs) - seen):
        problems.append(Problem(0, f"executions of order {order_id}, which does not exist"))
    return problems[:max_problems]


def replay_positions(session: Session) -> dict[tuple[int, str], PositionState]:
    """Every account's positions as the executions make them (id order)."""
    out: dict[tuple[int, str], PositionState] = {}
    rows = session.execute(select(Execution.user_id, Execution.symbol, Execution.side,
                                  Execution.qty, Execution.price).order_by(Execution.id)
                           .execution_options(yield_per=5000))
    for user_id, symbol, side, qty, price in rows:
        key = (user_id, symbol)
        out[key], _ = apply_fill(out.get(key, PositionState()),
                                 qty if side == "buy" else -qty, price)
    return out


def position_problems(session: Session) -> list[Problem]:
    """Where the positions table is not what the executions add up to."""
    want = replay_positions(session)
    have = {(p.user_id, p.symbol): PositionState(p.qty, p.cost, p.realized, p.deployed)
            for p in session.execute(select(Position)).scalars()}
    problems = []
    for key in sorted(set(want) | set(have)):
        w, h = want.get(key, PositionState()), have.get(key, PositionState())
        if w != h:
            problems.append(Problem(0, f"position of user {key[0]} in {key[1]}: stored "
                                       f"qty {h.qty} cost {h.cost} realized {h.realized}, "
                                       f"the executions add up to qty {w.qty} cost {w.cost} "
                                       f"realized {w.realized}"))
    return problems


def problems(session: Session) -> list[Problem]:
    """Orders, executions and positions against the chain and each other."""
    return order_problems(session) + position_problems(session)
