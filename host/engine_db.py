"""The engine's orders, executions and positions in the platform's database.

The FPGA trades for one account: the user ``fpga`` (created on first use, with no
password that can log in), so the platform's API shows its orders
(``GET /orders``), executions and positions (``GET /portfolio/positions``) like anyone
else's. Rows are written in batches (:meth:`EngineStore.sync`, called by ``t2t run``
with each status refresh and at the end), not per answer: the host's answer handling
never waits for a disk. Orders the platform's users sent through the FPGA
(``EngineOrder.client``, ``host.engine_broker``) are theirs, written by the OMS: not
here. Each run's orders are new rows (UserRefNums start again at 1 with every FPGA
reset); positions are the account's, replaced at each sync.

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

from tick2trade.host.engine import HostEngine

ACCOUNT = "fpga"
TIF_NAMES = {"0": "day", "3": "ioc", "1": "gtc", "4": "fok"}  # OUCH codes (host.config)
SIDE_NAMES = {"B": "buy", "S": "sell"}


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

    @classmethod
    def open(cls, url: str | None = None) -> EngineStore:
        """The database at ``url`` (default: ``T2T_DATABASE_URL`` or ``var/t2t.db``),
        migrated to the current schema."""
        engine = db.make_engine(url or db.default_url())
        db.upgrade(engine)
        return cls(engine)

    def user_ref(self, order_id: int) -> int | None:
        """The UserRefNum of an order row this run wrote (else None)."""
        return self._refs.get(order_id)

    def sync(self, eng: HostEngine) -> int:
        """Write what changed since the last sync; returns the order and execution rows
        written (positions are replaced every time)."""
        rows = 0
        with self.sessions.begin() as s:
            for ur, o in eng.orders.items():
                now = (o.state, o.filled)
                if o.client or self.written.get(ur) == now:
                    continue
                row = s.get(db.Order, self.ids[ur]) if ur in self.ids else None
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
                    "side": row.side, "qty": o.qty, "price": o.price, "filled": o.filled})
                rows += 1
            for f in eng.fills[self.fills_written:]:
                s.add(db.Execution(order_id=self.ids[f.user_ref], user_id=self.user_id,
                                   symbol=f.symbol, side=SIDE_NAMES[f.side], qty=f.qty,
                                   price=f.price, realized_pnl=f.realized))
                audit.append(s, ACCOUNT, "order.executed", f"order:{self.ids[f.user_ref]}",
                             {"qty": f.qty, "price": f.price, "realized": f.realized,
                              "match": f.match})
                rows += 1
            self.fills_written = len(eng.fills)
            for symbol, p in eng.positions.items():
                s.merge(db.Position(user_id=self.user_id, symbol=symbol, qty=p.qty,
                                    cost=p.cost, realized=p.realized, deployed=p.deployed))
        return rows
