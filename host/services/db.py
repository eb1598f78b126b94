"""Storage: the schema as SQLAlchemy 2 models, engines, and migrations by Alembic.

SQLite is the default (a file in the state folder, nothing to set up); PostgreSQL is chosen
by URL (``T2T_DATABASE_URL`` or the config file's ``server.database_url``, e.g.
``postgresql+psycopg://user@host/db``). Both get their
schema from the same Alembic migrations (``host/services/migrations``), never from
``create_all``, so a production database and a test database cannot drift apart.

Money is exact: prices are integers in 1/10000 of the quote currency (ITCH's price unit,
so a price from the feed is stored as it arrives) and quantities are integers; a notional
or a P&L is their product, still an integer. The API converts at its edge.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from tick2trade.host.services.status import OrderStatus

PRICE_SCALE = 10_000
MIGRATIONS = Path(__file__).with_name("migrations")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


# BigInteger primary keys are plain INTEGER on SQLite (so they stay rowid aliases and
# auto-increment) and BIGINT elsewhere.
BigId = BigInteger().with_variant(Integer, "sqlite")


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="trader")
    display_name: Mapped[str] = mapped_column(String(100), default="")
    webhook_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # in every token issued; bumped (so every token refused) when the password changes
    token_version: Mapped[int] = mapped_column(Integer, default=0)


class RefreshToken(Base):
    """A refresh token's identity (its JWT ``jti``); access tokens are not stored.
    Refreshing revokes the presented token and issues a new one (rotation) of the same
    ``family`` (one login; the first token's ``jti``): a family with no live token left
    is ended, its access tokens with it (``auth``)."""
    __tablename__ = "refresh_tokens"
    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    family: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    symbol: Mapped[str] = mapped_column(String(8))
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(16))
    tif: Mapped[str] = mapped_column(String(4))
    qty: Mapped[int] = mapped_column(BigInteger)
    price: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    stop_price: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    filled_qty: Mapped[int] = mapped_column(BigInteger, default=0)
    filled_notional: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(20), default=OrderStatus.PENDING)
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # the order types' own parameters (``ordertypes``); None where a type has none
    trail_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    trail_bps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    trail_ref: Mapped[str | None] = mapped_column(String(5), nullable=True)
    display_qty: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    display_jitter: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    take_profit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    stop_loss: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # OCO: the first leg's id on every leg; a bracket's exits: the entry's id, and
    # ``parent_id`` the entry too
    group_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    parent_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # a synthetic order (stop, stop-limit, trailing stop) released to the market
    triggered: Mapped[bool] = mapped_column(Boolean, default=False)
    # the venue's answer to the last modify: "kept" / "lost" time priority, "none" (a
    # synthetic order held here has no place in a queue)
    priority: Mapped[str | None] = mapped_column(String(8), nullable=True)
    __table_args__ = (Index("ix_orders_user_id_id", "user_id", "id"),
                      Index("ix_orders_status", "status"),
                      Index("ix_orders_group_id", "group_id"))


class Execution(Base):
    __tablename__ = "executions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    symbol: Mapped[str] = mapped_column(String(8))
    side: Mapped[str] = mapped_column(String(4))
    qty: Mapped[int] = mapped_column(BigInteger)
    price: Mapped[int] = mapped_column(BigInteger)
    realized_pnl: Mapped[int] = mapped_column(BigInteger, default=0)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # ``executions`` (the service): who executed it, which side of the trade we were,
    # what it cost; None on rows written before these existed
    exec_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    venue: Mapped[str | None] = mapped_column(String(16), nullable=True)
    liquidity: Mapped[str | None] = mapped_column(String(1), nullable=True)
    fee: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    __table_args__ = (Index("ix_executions_user_id_id", "user_id", "id"),
                      Index("uq_executions_exec_id", "exec_id", unique=True))


class Position(Base):
    """Signed quantity, signed cost basis and realized P&L (see ``portfolio``)."""
    __tablename__ = "positions"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(8), primary_key=True)
    qty: Mapped[int] = mapped_column(BigInteger, default=0)
    cost: Mapped[int] = mapped_column(BigInteger, default=0)
    realized: Mapped[int] = mapped_column(BigInteger, default=0)
    deployed: Mapped[int] = mapped_column(BigInteger, default=0)


class Rfq(Base):
    """A user's request for quote (``rfq``): ``status`` open (quotes may be taken),
    accepting (an accept is at the venue), filled, or rejected (no venue would quote)."""
    __tablename__ = "rfqs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    symbol: Mapped[str] = mapped_column(String(8))
    side: Mapped[str | None] = mapped_column(String(4), nullable=True)
    qty: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12), default="open")
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (Index("ix_rfqs_user_id_id", "user_id", "id"),)


class RfqQuote(Base):
    """One provider's firm quote for an RFQ, as a venue sent it; ``status`` open,
    accepting, filled, expired (the venue said so), or lost (the venue had it taken);
    ``order_id`` the order its accept made."""
    __tablename__ = "rfq_quotes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rfq_id: Mapped[int] = mapped_column(ForeignKey("rfqs.id"), index=True)
    venue: Mapped[str] = mapped_column(String(16))
    venue_quote_id: Mapped[str] = mapped_column(String(40))
    provider: Mapped[str] = mapped_column(String(16))
    bid: Mapped[int] = mapped_column(BigInteger)
    bid_size: Mapped[int] = mapped_column(BigInteger)
    ask: Mapped[int] = mapped_column(BigInteger)
    ask_size: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(12), default="open")
    side: Mapped[str | None] = mapped_column(String(4), nullable=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), nullable=True)
    __table_args__ = (UniqueConstraint("venue", "venue_quote_id",
                                       name="uq_rfq_quotes_venue_quote"),)


class Notification(Base):
    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(20))
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    read: Mapped[bool] = mapped_column(Boolean, default=False)
    # the event's id when it came over the event bus: a redelivered event finds its row
    event_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (Index("ix_notifications_user_id_id", "user_id", "id"),
                      Index("uq_notifications_event_id", "event_id", unique=True))


class OutboxEntry(Base):
    """One delivery still owed (or made) to one channel: written in the same transaction
    as the event that caused it, deleted never; ``delivered_at`` marks success."""
    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"))
    channel: Mapped[str] = mapped_column(String(10))
    target: Mapped[str] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                          nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    __table_args__ = (Index("ix_outbox_due", "delivered_at", "next_attempt_at"),)


class Preference(Base):
    __tablename__ = "preferences"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    channel: Mapped[str] = mapped_column(String(10), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)


class PriceAlert(Base):
    __tablename__ = "price_alerts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    symbol: Mapped[str] = mapped_column(String(8), index=True)
    field: Mapped[str] = mapped_column(String(4))
    op: Mapped[str] = mapped_column(String(5))
    threshold: Mapped[int] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Watchlist(Base):
    """A user's named list of symbols, in the user's order (``watchlists``); the one
    named ``default`` is what a WebSocket subscription without symbols streams."""
    __tablename__ = "watchlists"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbols: Mapped[list] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RiskLimit(Base):
    """Limits per symbol; the row with ``symbol`` = ``*`` applies to every symbol."""
    __tablename__ = "risk_limits"
    symbol: Mapped[str] = mapped_column(String(8), primary_key=True)
    max_order_qty: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_notional: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_position: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Setting(Base):
    """Small platform-wide state that must survive a restart (the kill switch)."""
    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class AuditRecord(Base):
    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(100))
    detail: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    __table_args__ = (UniqueConstraint("hash", name="uq_audit_log_hash"),
                      Index("ix_audit_log_ts", "ts"))


class AuditHead(Base):
    """The chain's head (one row): appends lock it, so concurrent writers serialise and
    each record links to the one before it; ``verify`` checks the tail against it, so
    cutting records off the end is found too."""
    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


def default_url() -> str:
    """``T2T_DATABASE_URL`` (or the config file ``T2T_CONFIG`` names), else SQLite in
    ``t2t.db`` of the state folder (``T2T_VAR_DIR``, default ``~/.local/state/tick2trade``;
    ``host/settings.py``)."""
    from tick2trade.host import settings

    return settings.load().database()


def make_engine(url: str, reads_only: bool = False) -> Engine:
    """An engine for ``url``. SQLite gets WAL (readers never wait for the writer),
    ``synchronous=FULL`` (a commit is on disk when it returns: the API's answer means
    durable), a busy timeout instead of immediate "database is locked" errors, and
    foreign keys on; SQLite's driver may be used from the API's worker threads.

    ``reads_only``: for SQLite, an engine whose statements run without taking the write
    lock (each one sees the last commit, WAL's snapshot), for reads on the order path
    that must not queue behind — or hold up — the writer. (Other databases need no
    such engine: their reads never take a write lock.)"""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False,
                                                  "timeout": 30},
                               pool_size=10 if reads_only else 5)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _record) -> None:
            # pysqlite would defer BEGIN to the first write, so a transaction that reads
            # and then writes (the audit head, a position) could find the database
            # changed under it and fail; we take the write lock when the transaction
            # starts instead. SQLite has one writer at a time anyway.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        if not reads_only:
            @event.listens_for(engine, "begin")
            def _begin(conn) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with Alembic (creating it on an empty database)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
