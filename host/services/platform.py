"""``Platform``: the services wired together over one database.

Everything the API and the CLI use hangs off this object, built with explicit
dependencies (database URL, broker, device, SMTP server, secret) so tests hand in their
own; ``Platform.open`` fills in the defaults for ``t2t api``.

With an event bus (``bus``, a ``services.bus.Bus``) the platform publishes its orders,
executions, book updates, prints and notifications to it, stores no notification and
delivers no outbox itself (``t2t worker notifier`` does), and pushes to WebSockets what
the notifier stored. History and the risk monitor are then workers too (``t2t api``
opens no history with ``--bus``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace

from sqlalchemy import select

from tick2trade.host.services import bus as events
from tick2trade.host.services import notify
from tick2trade.host.services.auth import Users
from tick2trade.host.services.broker import Broker
from tick2trade.host.services.contingent import Contingent
from tick2trade.host.services.db import Position, make_engine, session_factory, upgrade
from tick2trade.host.services.device import Device
from tick2trade.host.services.hub import Hub
from tick2trade.host.services.marketdata import BookUpdate, MarketData, Quote, Trade
from tick2trade.host.services.money import px
from tick2trade.host.services.orders import Orders
from tick2trade.host.services.paper import PaperBroker
from tick2trade.host.services.portfolio import PositionState, performance
from tick2trade.host.services.rfq import Rfqs
from tick2trade.host.services.shared import Shared
from tick2trade.host.services.streams import Streams
from tick2trade.host.services.synthetic import SyntheticBroker
from tick2trade.host.services.writer import Writer
from tick2trade.host.settings import Settings
from tick2trade.host.settings import load as load_settings

log = logging.getLogger(__name__)


@dataclass
class Limits:
    """Request rates of the API and of failed logins (``limits`` notation)."""
    requests: str = "100/second;2000/minute"
    anonymous: str = "20/second;300/minute"
    login_failures: str = "5/5 minutes"         # per client address and account
    login_failures_address: str = "30/5 minutes"  # per client address, any accounts
    # where the windows are counted (a ``limits`` storage): None, this process's memory;
    # the platform sets Redis's when it has one, so every process counts the same hits
    storage: object | None = None


@dataclass
class Platform:
    url: str
    secret: str
    broker: Broker | None = None
    device: Device | None = None
    smtp: notify.SmtpConfig = field(default_factory=notify.SmtpConfig)
    webhooks: notify.WebhookPolicy = field(default_factory=notify.WebhookPolicy)
    limits: Limits = field(default_factory=Limits)
    market: MarketData = field(default_factory=MarketData)
    migrate: bool = True
    live: object | None = None     # services.live.Live: the venue, feed and order session
    # a History (host/services/history.py): records the market's prints and BBO changes
    # and the fills, and answers /market/{symbol}/history and /trades; None: not kept
    history: object | None = None
    bus: events.Bus | None = None
    # the venues' RFQ ports (``rfq.RfqClient``); None: those of ``live``, if any
    rfq_venues: list | None = None
    # Redis: what several processes over this database share (services/shared.py);
    # None: everything in this process's memory
    redis_url: str | None = None

    def __post_init__(self) -> None:
        self.engine = make_engine(self.url)
        if self.migrate:
            upgrade(self.engine)
        self.sessions = session_factory(self.engine)
        self.shared = Shared(self.redis_url, self.url) if self.redis_url else None
        if self.shared is not None:
            self.limits = replace(self.limits, storage=self.shared.limits_storage())
        self.hub = Hub()
        notify.install_push(self.sessions, self.hub.to_user)
        if self.bus is not None:
            notify.install_bus(self.sessions, self.bus)
            self.bus.subscribe(f"{events.INAPP}.>", self._inapp_to_hub)
        self.users = Users(self.sessions, self.secret, login_failures=self.limits.login_failures,
                           address_failures=self.limits.login_failures_address,
                           storage=self.limits.storage)
        # the OMS's own order types (stops, trailing stops, icebergs) are worked in front
        # of whichever broker executes
        self.broker = SyntheticBroker(self.broker or PaperBroker(self.market), self.market)
        self.reader = (make_engine(self.url, reads_only=True)
                       if self.engine.dialect.name == "sqlite" else self.engine)
        self.writer = Writer(self.engine)
        self.orders = Orders(self.sessions, self.writer, self.broker, self.market.mark,
                             self.hub.to_user, self.reader,
                             on_fill=self.history.record_fill if self.history else None,
                             event_bus=self.bus)
        self.broker.persist = self.orders.note
        self.contingent = Contingent(self.orders)
        venues = (self.rfq_venues if self.rfq_venues is not None
                  else list(getattr(self.live, "rfq", None) or []))
        self.rfqs = Rfqs(self.sessions, self.writer, self.orders, venues, self.hub.to_user)
        if self.history is not None:
            self.history.attach(self.market)
        self.alerts = notify.PriceAlerts(self.sessions)
        self.market.subscribe(self.alerts.on_quote)
        self.market.subscribe(self._quote_to_hub)
        self.streams = Streams(self.market, self.hub)
        if self.bus is not None:
            self.market.listen("book", self._book_to_bus)
            self.market.listen("trade", self._trade_to_bus)
        self.dispatcher = notify.Dispatcher(self.sessions, self.smtp, webhooks=self.webhooks)
        self._stop = threading.Event()
        if self.shared is not None:
            self._share(self.shared)

    def _share(self, shared: Shared) -> None:
        """Pushes and revocations to and from the other processes; recipients cached."""
        hub, users = self.hub, self.users

        def pushed(payload: str) -> None:
            user_id, _, text = payload.partition(" ")
            hub.deliver(int(user_id), text)

        def forgotten(payload: str) -> None:
            users.drop_cached(int(payload))

        hub.relay = lambda user_id, text: shared.publish("push", f"{user_id} {text}")
        users.on_forget = lambda user_id: (shared.drop_recipients(user_id),
                                           shared.publish("forget", str(user_id)))
        self.orders.recipients_store = shared
        shared.on("push", pushed)
        shared.on("forget", forgotten)
        try:
            shared.start()
        except BaseException:
            self.close()
            raise

    def recipients_changed(self, user_id: int) -> None:
        """A user's notification preferences or addresses changed (after the commit)."""
        if self.shared is not None:
            self.shared.drop_recipients(user_id)

    @classmethod
    def open(cls, url: str | None = None, settings: Settings | None = None,
             **kwargs) -> Platform:
        """The defaults of a real deployment (``host/settings.py``): the configured
        database (``T2T_DATABASE_URL``, else SQLite in the state folder), the JWT secret
        of ``T2T_JWT_SECRET`` or of its file (made once, mode 600), Redis when one is
        configured; ``url`` overrides the database."""
        settings = settings or load_settings()
        kwargs.setdefault("redis_url", settings.redis_url)
        return cls(url or settings.database(), settings.secret(), **kwargs)

    def _quote_to_hub(self, quote: Quote) -> None:
        self.hub.to_symbol(quote.symbol, {"type": "quote", **quote_json(quote)})

    def _inapp_to_hub(self, subject: str, event: dict) -> None:
        self.hub.to_user(event["user_id"], event["message"])

    def _book_to_bus(self, u: BookUpdate) -> None:
        q = self.market.quote(u.symbol)
        self.bus.publish(events.subject("T2T_BOOK", u.symbol), {
            "symbol": u.symbol, "seq": u.seq, "kind": u.kind, "source": u.source,
            "depth": u.depth, "ts": u.ts.isoformat(),
            "bids": [[lv.price, lv.size, lv.orders] for lv in u.bids],
            "asks": [[lv.price, lv.size, lv.orders] for lv in u.asks],
            # the BBO after the update, for the history's quotes
            "bbo": None if q is None else [q.bid, q.bid_size, q.ask, q.ask_size]},
            f"book:{self.bus.run}:{u.symbol}:{u.seq}")

    def _trade_to_bus(self, t: Trade) -> None:
        self.bus.publish(events.subject("T2T_TRADES", t.symbol), {
            "symbol": t.symbol, "seq": t.seq, "price": t.price, "size": t.size,
            "side": t.side, "match": t.match, "ts": t.ts.isoformat()},
            f"trade:{self.bus.run}:{t.symbol}:{t.seq}")

    # --- portfolio ------------------------------------------------------------------------

    def positions(self, user_id: int) -> dict[str, PositionState]:
        with self.sessions() as s:
            return {p.symbol: PositionState(p.qty, p.cost, p.realized, p.deployed)
                    for p in s.execute(select(Position).where(Position.user_id == user_id)
                                       .order_by(Position.symbol)).scalars()}

    def marks(self, symbols) -> dict[str, int]:
        return {sym: m for sym in symbols if (m := self.market.mark(sym)) is not None}

    def publish_portfolio_values(self) -> int:
        """Emit ``portfolio_value`` to every user holding positions; returns how many."""
        with self.sessions() as s:
            users = list(s.execute(select(Position.user_id).distinct()).scalars())
        for user_id in users:
            positions = self.positions(user_id)
            perf = performance(positions, self.marks(positions))
            with self.sessions.begin() as s:
                notify.emit(s, user_id, "portfolio_value", {
                    "market_value": px(perf.market_value), "realized": px(perf.realized),
                    "unrealized": px(perf.unrealized), "total_pnl": px(perf.total_pnl)})
        return len(users)

    # --- background work ------------------------------------------------------------------

    def start_background(self, outbox_interval: float = 1.0,
                         portfolio_interval: float | None = 60.0) -> None:
        if self.bus is None:     # else the notifier worker delivers the outbox
            self.dispatcher.start(outbox_interval)
        if portfolio_interval:
            def loop() -> None:
                while not self._stop.wait(portfolio_interval):
                    try:
                        self.publish_portfolio_values()
                    except Exception:
                        log.exception("portfolio value pass failed")
            threading.Thread(target=loop, name="t2t-portfolio", daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        if self.shared is not None:
            self.shared.close()
        self.dispatcher.stop()
        self.writer.close()
        if self.bus is not None:
            self.bus.close()
        if self.history is not None:
            self.history.close()
        self.reader.dispose()
        self.engine.dispose()


def quote_json(q: Quote) -> dict:
    return {"symbol": q.symbol, "bid": px(q.bid), "bid_size": q.bid_size, "ask": px(q.ask),
            "ask_size": q.ask_size, "last": px(q.last), "last_size": q.last_size,
            "ts": q.ts.isoformat() if q.ts else None}
