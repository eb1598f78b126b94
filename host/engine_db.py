"""The engine's orders, executions and positions in the platform's database.

The FPGA trades for one account: the user ``fpga`` (created on first use, with no
password that can log in), so the platform's API shows its orders
(``GET /orders``), executions and positions (``GET /portfolio/positions``) like anyone
else's. Rows are written in batches (:meth:`EngineStore.sync`, called by ``t2t run``
with each status refresh and at the end), not per answer: the host's answer handling
never waits for a disk. Orders the platform's users sent through the FPGA
(``EngineOrder.client``, ``host.engine_broker``) are theirs, written by the OMS: not
here. Each run's orders are new rows (UserRefNums start again at 1 with every FPGA
reset); positions are the account's across runs: each execution is applied to the
stored position (``portfolio.apply_fill``) in the transaction that inserts it, so the
positions table is always the sum of the executions, whatever the runs and crashes.

An order of this account still open when a run ends has nothing working it any more (the
run's venue and FPGA are gone): :meth:`EngineStore.close` marks each one canceled with the
reason, and a store opened on a database a killed run left behind does the same for the
orders that run left open (``reconciled``).

Each order row written and each execution also appends a record to the platform's
audit chain (actor ``fpga``, ``order.<state>`` and ``order.executed``, in the sync's
transaction), so operators see the FPGA's trading in ``t2t audit export`` beside the
users'. A sync sees each order as it is then: an order that went from pending to filled
between two syncs has one record, ``order.filled``, and its executions. Not done here:
notifications (nobody subscribes to the account ``fpga``).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Engine

from tick2trade.host.services import audit, db
from tick2trade.host.services.portfolio import PositionState, apply_fill
from tick2trade.host.services.status import OPEN, OrderStatus

from tick2trade.host.engine import HostEngine

ACCOUNT = "fpga"
TIF_NAMES = {"0": "day", "3": "ioc", "1": "gtc", "4": "fok"}  # OUCH codes (host.config)
SIDE_NAMES = {"B": "buy", "S": "sell"}
LEFT_OPEN = ("t2t run ended without closing it (killed?): the venue and the FPGA of that "
             "run are gone, nothing works the order")
ENDED = "t2t run ended: the venue and the FPGA of this run are gone"


class EngineStore:
    def __init__(self, engine: Engine):
        self.sql = engine
        self.sessions = db.session_factory(engine)
        self.ids: dict[int, int] = {}  # UserRefNum -> orders.id of this run
        self._refs: dict[int, int] = {}  # orders.id -> UserRefNum, the other way
        self.written: dict[int, tuple] = {}  # UserRefNum -> (status, filled) on disk
        self.fills_written = 0
        with self.sessions.begin() as s:
            user = s.scalar(select(db.User).where(db.User.username == ACCOUNT))
            if user is None:
                user = db.User(username=ACCOUNT, email="", password_hash="!",
                               display_name="orders fired by the FPGA")
                s.add(user)
                s.flush()
            self.user_id = user.id
        self.reconciled = self.expire(LEFT_OPEN)

    @classmethod
    def open(cls, url: str | None = None) -> EngineStore:
        """The database at ``url`` (default: ``db.default_url``),
        migrated to the current schema."""
        engine = db.make_engine(url or db.default_url())
        db.upgrade(engine)
        return cls(engine)

    def user_ref(self, order_id: int) -> int | None:
        """The UserRefNum of an order row this run wrote (else None)."""
        return self._refs.get(order_id)

    def expire(self, reason: str, refs: set[int] | None = None) -> int:
        """Mark canceled, with ``reason``, every open order row of the account (or only
        those of this run's UserRefNums ``refs``); returns how many."""
        with self.sessions.begin() as s:
            audit.lock(s)
            rows = s.scalars(select(db.Order).where(db.Order.user_id == self.user_id,
                                                    db.Order.status.in_(OPEN))).all()
            if refs is not None:
                rows = [r for r in rows if self._refs.get(r.id) in refs]
            for row in rows:
                row.status, row.reason, row.updated_at = OrderStatus.CANCELED, reason, db.utcnow()
                audit.append(s, ACCOUNT, "order.canceled", f"order:{row.id}",
                             {"reason": reason})
                if row.id in self._refs:
                    ur = self._refs[row.id]
                    self.written[ur] = (OrderStatus.CANCELED, row.filled_qty)
        return len(rows)

    def close(self, eng: HostEngine) -> int:
        """The run ends: write what is left, then mark its orders still open canceled
        (``ENDED``); returns how many were."""
        self.sync(eng)
        return self.expire(ENDED, set(self.ids))

    def sync(self, eng: HostEngine) -> int:
        """Write what changed since the last sync; returns the order and execution rows
        written. Each execution moves the account's stored position in the same
        transaction; the P&L it realized is the stored position's."""
        rows = 0
        with self.sessions.begin() as s:
            audit.lock(s)  # before the positions it reads and writes
            for ur, o in eng.orders.items():
                now = (o.state, o.filled)
                if o.client or self.written.get(ur) == now:
                    continue
                row = s.get(db.Order, self.ids[ur]) if ur in self.ids else None
                if row is not None and row.status not in OPEN:
                    # closed here already (``expire``): the run's late news changes
                    # only what it can still change, its fills below
                    self.written[ur] = now
                    continue
                if row is None:
                    row = db.Order(user_id=self.user_id, symbol=o.symbol,
                                   side=SIDE_NAMES[o.side], type="limit",
                                   tif=TIF_NAMES.get(o.tif, o.tif), qty=o.qty, price=o.price,
                                   reason="host" if o.host else "strategy")
                    s.add(row)
                row.status, row.filled_qty, row.filled_notional = o.state, o.filled, o.fill_cost
                row.updated_at = db.utcnow()
                s.flush()
                self.ids[ur] = row.id
                self._refs[row.id] = ur
                self.written[ur] = now
                audit.append(s, ACCOUNT, f"order.{o.state}", f"order:{row.id}", {
                    "user_ref": ur, "by": row.reason, "symbol": o.symbol,
                    "side": row.side, "type": row.type, "tif": row.tif, "qty": o.qty,
                    "price": o.price, "filled": o.filled})
                rows += 1
            held: dict[str, PositionState] = {}
            for f in eng.fills[self.fills_written:]:
                if f.symbol not in held:
                    p = s.get(db.Position, (self.user_id, f.symbol))
                    held[f.symbol] = (PositionState(p.qty, p.cost, p.realized, p.deployed)
                                      if p else PositionState())
                side = SIDE_NAMES[f.side]
                held[f.symbol], gained = apply_fill(held[f.symbol],
                                                    f.qty if side == "buy" else -f.qty,
                                                    f.price)
                order_id = self.ids[f.user_ref]
                s.add(db.Execution(order_id=order_id, user_id=self.user_id,
                                   symbol=f.symbol, side=side, qty=f.qty, price=f.price,
                                   realized_pnl=gained))
                row = s.get(db.Order, order_id)
                if row.status not in OPEN:  # closed by ``expire``: its fills still count
                    o = eng.orders[f.user_ref]
                    row.filled_qty, row.filled_notional = o.filled, o.fill_cost
                audit.append(s, ACCOUNT, "order.executed", f"order:{order_id}",
                             {"qty": f.qty, "price": f.price, "realized": gained,
                              "match": f.match})
                rows += 1
            self.fills_written = len(eng.fills)
            for symbol, p in held.items():
                s.merge(db.Position(user_id=self.user_id, symbol=symbol, qty=p.qty,
                                    cost=p.cost, realized=p.realized, deployed=p.deployed))
        return rows
