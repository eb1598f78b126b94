"""Notifications: events, per-user preferences, the stored outbox and its sinks.

Event kinds: ``order_status`` (accepted, partially filled, filled, canceled, rejected),
``price_alert`` (a user's threshold on bid/ask/last crossed), ``risk_alert`` (a limit
near or breached, the kill switch) and ``portfolio_value`` (periodic). Channels:
``in_app`` (the notification list and the WebSocket), ``webhook`` (HTTP POST of JSON to
the user's URL) and ``email`` (SMTP to the configured server). By default only in-app is
on; a user turns channels on per kind. A webhook turned on without a URL in the profile
has nowhere to go and records no delivery (the notification is still listed).

Delivery is at-least-once through a transactional outbox: ``emit`` writes the
notification and one outbox row per external channel in the transaction of the event
that caused it, so an event that committed has its deliveries recorded, and a sink
that is down only delays them. ``Dispatcher.deliver_due`` sends due rows outside any
transaction (a slow webhook must not hold the database), then marks each delivered or
schedules a retry with exponential backoff (capped; rows are never given up or deleted).
A crash between sending and marking sends that one again — receivers get an ``id`` to
de-duplicate on. In-app pushes go to connected WebSockets after commit; a client that was
away reads what it missed from ``GET /notifications``.

With an event bus (``host/services/bus.py``) the API stores no notification itself: the
event (user, kind, payload and a fresh ``event_id``) is published to
``t2t.notifications.<user>`` once its transaction commits, and ``t2t worker notifier``
does the above in its own process (``store_events``): the notification row carries the
event id, unique, so an event delivered twice is stored once; the worker's dispatcher
delivers the outbox, and each stored in-app message goes to ``t2t.inapp.<user>`` for
the API to push.
"""

from __future__ import annotations

import ipaddress
import logging
import smtplib
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Connection, bindparam, event, func, insert, select
from sqlalchemy.exc import IntegrityError, NoResultFound
from sqlalchemy.orm import Session

from tick2trade.host.services import audit, bus
from tick2trade.host.services.audit import as_utc
from tick2trade.host.services.db import (Notification, OutboxEntry, Preference, PriceAlert, User,
                                         utcnow)
from tick2trade.host.services.marketdata import Quote
from tick2trade.host.services.money import px

log = logging.getLogger(__name__)

KINDS = ("order_status", "price_alert", "risk_alert", "portfolio_value")
CHANNELS = ("in_app", "webhook", "email")
DEFAULT_ON = {"in_app"}
MAX_BACKOFF = timedelta(minutes=10)

Push = Callable[[int, dict], None]


def notification_json(n: Notification) -> dict:
    return {"id": n.id, "kind": n.kind, "payload": n.payload,
            "created_at": as_utc(n.created_at).isoformat(), "read": n.read}


# built once: ``record`` runs on the order writer's thread
_PREFERENCES = select(Preference.kind, Preference.channel, Preference.enabled).where(
    Preference.user_id == bindparam("user"))
_ADDRESSES = select(User.email, User.webhook_url).where(User.id == bindparam("user"))
# ids in the order of the rows, also when one statement inserts many
_INSERT_NOTIFICATIONS = insert(Notification).returning(Notification.id,
                                                       sort_by_parameter_order=True)
_INSERT_OUTBOX = insert(OutboxEntry)


def preferences(s: Session | Connection, user_id: int) -> dict[tuple[str, str], bool]:
    prefs = {(k, c): c in DEFAULT_ON for k in KINDS for c in CHANNELS}
    for kind, channel, enabled in s.execute(_PREFERENCES, {"user": user_id}):
        prefs[(kind, channel)] = enabled
    return prefs


def set_preferences(s: Session, user_id: int, changes: list[tuple[str, str, bool]]) -> None:
    for kind, channel, enabled in changes:
        row = s.get(Preference, (user_id, kind, channel))
        if row is None:
            s.add(Preference(user_id=user_id, kind=kind, channel=channel, enabled=enabled))
        else:
            row.enabled = enabled


def page(s: Session, user_id: int, limit: int, offset: int, unread: bool = False,
         after_id: int = 0) -> tuple[int, list[Notification]]:
    """How many of the user's notifications match (only the unread ones, only those after
    ``after_id``), and one page of them, newest first."""
    # clamped: an id past any stored one must still fit the database's integer
    q = select(Notification).where(Notification.user_id == user_id,
                                   Notification.id > min(after_id, 2**62))
    if unread:
        q = q.where(Notification.read.is_(False))
    total = s.execute(select(func.count()).select_from(q.subquery())).scalar_one()
    rows = s.execute(q.order_by(Notification.id.desc()).limit(limit).offset(offset)).scalars()
    return total, list(rows)


def mark_read(s: Session, user_id: int, notification_id: int) -> bool:
    """Mark one of the user's notifications read; False if the user has none of that id."""
    n = s.get(Notification, notification_id)
    if n is None or n.user_id != user_id:
        return False
    n.read = True
    return True


def emit_to_all(s: Session, kind: str, payload: dict) -> None:
    """``emit`` the same event to every user."""
    for user_id in s.execute(select(User.id)).scalars().all():
        emit(s, user_id, kind, payload)


def emit(s: Session, user_id: int, kind: str, payload: dict) -> dict | None:
    """Record a notification and its deliveries in ``s``'s transaction (the in-app
    message goes out after commit); None when the user has every channel of this kind
    off, or when an event bus takes the event (published after commit, see
    ``install_bus``)."""
    if s.info.get("t2t_bus") is not None:
        s.info.setdefault("t2t_bus_events", []).append((user_id, kind, payload))
        return None
    s.flush()
    message = record(s.connection(), user_id, kind, payload)
    if message is not None and message["in_app"]:
        s.info.setdefault("t2t_push", []).append((user_id, message["json"]))
    return message


def record(conn: Connection, user_id: int, kind: str, payload: dict,
           recipients: dict | None = None) -> dict | None:
    """Write a notification and its outbox rows on ``conn`` in the caller's transaction;
    returns ``{"json": …, "in_app": bool}`` for the caller to push once committed, or None
    when the user has every channel of this kind off.

    ``recipients`` (one dict per transaction) keeps each user's preferences and addresses
    for the transaction's next events: a batch of orders reads them once per user.
    """
    outbox = Outbox(conn, recipients)
    message = outbox.add(user_id, kind, payload)
    outbox.write()
    return message


class Outbox:
    """Notifications of one transaction, written together by ``write``: one multi-row
    insert of the notifications and one of their outbox rows, where ``record`` makes a
    round trip per event. The order writer adds a batch's events here and writes them
    before the batch commits; ``add``'s message gets its ``id`` at ``write``, so it
    must not be pushed before (pushes wait for the commit anyway)."""

    def __init__(self, conn: Connection, recipients: dict | None = None,
                 store=None) -> None:
        self.conn = conn
        self.recipients = recipients if recipients is not None else {}
        # a second-level cache of recipients with a TTL, shared by the processes over
        # this database (services/shared.py ``Shared``); None: read them here
        self.store = store
        self._waiting: list[tuple[dict, list[tuple[str, str]], dict]] = []

    def add(self, user_id: int, kind: str, payload: dict,
            event_id: str | None = None) -> dict | None:
        """Queue one event (``event_id``: the bus's, for events that came over it); see
        ``record`` for what it returns."""
        known = self.recipients.get(user_id)
        if known is None and self.store is not None:
            known = self.store.recipients(user_id)
        if known is None:
            email, webhook = self.conn.execute(_ADDRESSES, {"user": user_id}).one()
            known = (preferences(self.conn, user_id), {"email": email, "webhook": webhook})
            if self.store is not None:
                self.store.keep_recipients(user_id, *known)
        self.recipients[user_id] = known
        prefs, targets = known
        channels = [c for c in CHANNELS if prefs[(kind, c)]]
        if not channels:
            return None
        now = utcnow()
        row = {"user_id": user_id, "kind": kind, "payload": payload, "created_at": now,
               "read": False, "event_id": event_id}
        external = [(c, targets[c]) for c in channels if c != "in_app" and targets[c]]
        message = {"id": None, "kind": kind, "payload": payload,
                   "created_at": as_utc(now).isoformat(), "read": False}
        self._waiting.append((row, external, message))
        return {"json": message, "in_app": "in_app" in channels}

    def write(self) -> None:
        if not self._waiting:
            return
        rows = [row for row, _, _ in self._waiting]
        ids = self.conn.execute(_INSERT_NOTIFICATIONS, rows).scalars().all()
        deliveries = []
        for notification_id, (row, external, message) in zip(ids, self._waiting, strict=True):
            message["id"] = notification_id
            deliveries += [{"notification_id": notification_id, "channel": channel,
                            "target": target, "attempts": 0,
                            "next_attempt_at": row["created_at"]}
                           for channel, target in external]
        if deliveries:
            self.conn.execute(_INSERT_OUTBOX, deliveries)
        self._waiting = []


def envelope(message: dict) -> dict:
    """A notification as the WebSocket sends it."""
    return {"type": "notification", **message}


def install_push(sessions, push: Push) -> None:
    """Hand in-app notifications to ``push`` once their transaction has committed (never
    for one that rolled back)."""

    @event.listens_for(sessions, "after_commit")
    def _after_commit(s: Session) -> None:
        for user_id, message in s.info.pop("t2t_push", ()):
            push(user_id, envelope(message))

    @event.listens_for(sessions, "after_rollback")
    def _after_rollback(s: Session) -> None:
        s.info.pop("t2t_push", None)


def publish(event_bus: bus.Bus, user_id: int, kind: str, payload: dict,
            event_id: str | None = None) -> bool:
    """Publish a notification event to the bus (a fresh ``event_id`` unless the caller
    derives one from what caused it, so that a repeat is one event)."""
    event_id = event_id or uuid.uuid4().hex
    return event_bus.publish(bus.subject("T2T_NOTIFICATIONS", user_id),
                             {"event_id": event_id, "user_id": user_id, "kind": kind,
                              "payload": payload}, event_id)


def install_bus(sessions, event_bus: bus.Bus) -> None:
    """Send the notifications ``emit`` is given in ``sessions``' transactions to the bus
    once they commit, instead of storing them."""
    sessions.kw.setdefault("info", {})["t2t_bus"] = event_bus

    @event.listens_for(sessions, "after_commit")
    def _after_commit(s: Session) -> None:
        for user_id, kind, payload in s.info.pop("t2t_bus_events", ()):
            publish(event_bus, user_id, kind, payload)

    @event.listens_for(sessions, "after_rollback")
    def _after_rollback(s: Session) -> None:
        s.info.pop("t2t_bus_events", None)


_KNOWN_EVENTS = select(Notification.event_id).where(
    Notification.event_id.in_(bindparam("ids", expanding=True)))


def store_events(sessions, events: Iterable[dict]) -> list[tuple[int, dict]]:
    """The notifier's effect: store bus events (``publish``'s dicts) as notifications
    and their outbox rows in one transaction, skipping any whose ``event_id`` is stored
    already; returns (user, WebSocket message) of each new in-app one, to push."""
    events = list(events)
    try:
        return _store_events(sessions, events)
    except IntegrityError:
        # another notifier stored one of them meanwhile (a redelivery that overlapped):
        # one at a time, each skipped or stored on its own
        return [m for e in events for m in _store_events(sessions, [e])]


def _store_events(sessions, events: list[dict]) -> list[tuple[int, dict]]:
    with sessions.begin() as s:
        conn = s.connection()
        ids = [e["event_id"] for e in events]
        known = set(conn.execute(_KNOWN_EVENTS, {"ids": ids}).scalars()) if ids else set()
        outbox = Outbox(conn)
        push = []
        for e in events:
            if e["event_id"] in known:
                continue
            known.add(e["event_id"])
            try:
                message = outbox.add(e["user_id"], e["kind"], e["payload"], e["event_id"])
            except NoResultFound:
                log.warning("notification event %s for unknown user %s skipped",
                            e["event_id"], e["user_id"])
                continue
            if message is not None and message["in_app"]:
                push.append((e["user_id"], message["json"]))
        outbox.write()
    return [(user_id, envelope(message)) for user_id, message in push]


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "localhost"
    port: int = 25
    sender: str = "tick2trade@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 5.0


class WebhookRefused(Exception):
    """A webhook URL that the server must not call (its delivery fails and is retried)."""


@dataclass(frozen=True)
class WebhookPolicy:
    """Where webhooks may point. A webhook is a request the server makes on a user's
    behalf, so a URL naming the server itself, its LAN or a cloud metadata service
    (169.254.169.254) would let a user reach what only the server can. The host name is
    resolved and *every* address it gives must be public (``ipaddress``'s
    ``is_global``, and not multicast; for NAT64, 6to4 and Teredo addresses the IPv4
    address inside as well) or inside a network of ``allow`` — e.g. a receiver
    on the LAN, or loopback in tests. Checked before each delivery, not only when the
    URL is saved, because a name can be pointed elsewhere later.

    Not covered: a name whose answer changes between this check and the HTTP client's
    own lookup a moment later (DNS rebinding with a zero TTL).
    """
    allow: tuple[str, ...] = ()

    def check(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WebhookRefused(f"webhook URL {url!r}: only http(s) URLs with a host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        except (OSError, ValueError) as exc:
            raise WebhookRefused(f"webhook host {parts.hostname!r} does not resolve "
                                 f"({exc})") from None
        allowed = [ipaddress.ip_network(net, strict=False) for net in self.allow]
        for *_, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0].split("%")[0])
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
                ip = ip.ipv4_mapped
            if any(ip.version == net.version and ip in net for net in allowed):
                continue
            inner = _embedded_ipv4(ip)
            if inner is not None and any(inner in net for net in allowed if net.version == 4):
                continue
            if not ip.is_global or ip.is_multicast or (
                    inner is not None and (not inner.is_global or inner.is_multicast)):
                ip = inner if inner is not None and not inner.is_global else ip
                raise WebhookRefused(
                    f"webhook host {parts.hostname!r} resolves to {ip}, a {_kind(ip)} "
                    f"address; webhooks go to public addresses only (an operator can "
                    f"allow a network: t2t api --webhook-allow)")


NAT64 = ipaddress.ip_network("64:ff9b::/96")     # RFC 6052's well-known prefix
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")   # RFC 8215


def _embedded_ipv4(ip) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to, where one is written inside it: NAT64
    (the last 32 bits), 6to4 (2002::/16, bits 16-47) and Teredo (the client's, and its
    server's when the client's is public). A translator or relay would deliver to it,
    so it is checked like the address itself."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip in NAT64 or ip in NAT64_LOCAL:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        server, client = ip.teredo
        return client if not client.is_global else server
    return None


def _kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    for attr in ("unspecified", "loopback", "link_local", "multicast", "private"):
        if getattr(ip, f"is_{attr}"):
            return attr.replace("_", "-")
    return "non-public"


class Dispatcher:
    """Delivers due outbox rows to webhooks and SMTP, retrying failures with backoff."""

    def __init__(self, sessions, smtp: SmtpConfig | None = None,
                 http: httpx.Client | None = None, base_backoff: float = 1.0,
                 webhooks: WebhookPolicy | None = None) -> None:
        self.sessions = sessions
        self.smtp = smtp or SmtpConfig()
        self.webhooks = webhooks or WebhookPolicy()
        self.http = http or httpx.Client(timeout=5.0)
        self.base_backoff = base_backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def deliver_due(self, now: datetime | None = None, limit: int = 100) -> tuple[int, int]:
        """One pass: (delivered, failed)."""
        now = now or utcnow()
        with self.sessions() as s:
            due = s.execute(
                select(OutboxEntry, Notification)
                .join(Notification, Notification.id == OutboxEntry.notification_id)
                .where(OutboxEntry.delivered_at.is_(None), OutboxEntry.next_attempt_at <= now)
                .order_by(OutboxEntry.id).limit(limit)).all()
            work = [(o.id, o.channel, o.target, o.attempts, notification_json(n))
                    for o, n in due]
        delivered = failed = 0
        for outbox_id, channel, target, attempts, message in work:
            try:
                self._send(channel, target, message)
                error = None
            except Exception as exc:  # noqa: BLE001 — any sink failure means: retry later
                error = f"{type(exc).__name__}: {exc}"[:500]
            with self.sessions.begin() as s:
                row = s.get(OutboxEntry, outbox_id)
                row.attempts = attempts + 1
                if error is None:
                    row.delivered_at = utcnow()
                    row.last_error = None
                    delivered += 1
                else:
                    delay = min(timedelta(seconds=self.base_backoff * 2 ** attempts),
                                MAX_BACKOFF)
                    row.next_attempt_at = now + delay
                    row.last_error = error
                    failed += 1
                    log.warning("delivery %s to %s failed (attempt %d): %s", outbox_id,
                                channel, attempts + 1, error)
        return delivered, failed

    def _send(self, channel: str, target: str, message: dict) -> None:
        if channel == "webhook":
            self.webhooks.check(target)
            self.http.post(target, json=message).raise_for_status()
        elif channel == "email":
            mail = EmailMessage()
            mail["From"] = self.smtp.sender
            mail["To"] = target
            mail["Subject"] = f"tick2trade: {message['kind'].replace('_', ' ')}"
            mail.set_content(_describe(message))
            with smtplib.SMTP(self.smtp.host, self.smtp.port,
                              timeout=self.smtp.timeout) as smtp:
                if self.smtp.starttls:
                    smtp.starttls()
                if self.smtp.username:
                    smtp.login(self.smtp.username, self.smtp.password or "")
                smtp.send_message(mail)
        else:
            raise ValueError(f"unknown channel {channel!r}")

    def start(self, interval: float = 1.0) -> None:
        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.deliver_due()
                except Exception:
                    log.exception("outbox pass failed; retrying next interval")

        self._thread = threading.Thread(target=loop, name="t2t-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)


def _describe(message: dict) -> str:
    lines = [f"{message['kind'].replace('_', ' ')} at {message['created_at']}"]
    lines += [f"  {k}: {v}" for k, v in message["payload"].items()]
    return "\n".join(lines) + f"\n\nnotification id {message['id']}\n"


class PriceAlerts:
    """User thresholds on a symbol's bid, ask or last. Active alerts are cached in memory
    (read once at start, kept in step by ``create``/``delete``) so a quote costs a dict
    lookup; an alert fires once, on the first quote that crosses it, and is then off."""

    FIELDS = ("bid", "ask", "last")
    OPS = ("above", "below")

    def __init__(self, sessions) -> None:
        self.sessions = sessions
        self._lock = threading.Lock()
        self._active: dict[str, dict[int, tuple[int, str, str, int]]] = {}
        with sessions() as s:
            for a in s.execute(select(PriceAlert).where(PriceAlert.active)).scalars():
                self._active.setdefault(a.symbol, {})[a.id] = (a.user_id, a.field, a.op,
                                                               a.threshold)

    def create(self, user_id: int, symbol: str, field: str, op: str, threshold: int,
               actor: str) -> PriceAlert:
        with self.sessions.begin() as s:
            alert = PriceAlert(user_id=user_id, symbol=symbol, field=field, op=op,
                               threshold=threshold)
            s.add(alert)
            s.flush()
            audit.append(s, actor, "alert.create", f"alert:{alert.id}",
                         {"symbol": symbol, "field": field, "op": op, "threshold": threshold})
        with self._lock:
            self._active.setdefault(symbol, {})[alert.id] = (user_id, field, op, threshold)
        return alert

    def mine(self, user_id: int) -> list[PriceAlert]:
        """The user's alerts, oldest first (a fired one stays, inactive, until deleted)."""
        with self.sessions() as s:
            return list(s.execute(select(PriceAlert).where(PriceAlert.user_id == user_id)
                                  .order_by(PriceAlert.id)).scalars())

    def delete(self, user_id: int, alert_id: int, actor: str) -> bool:
        with self.sessions.begin() as s:
            alert = s.get(PriceAlert, alert_id)
            if alert is None or alert.user_id != user_id:
                return False
            s.delete(alert)
            audit.append(s, actor, "alert.delete", f"alert:{alert_id}")
        with self._lock:
            self._active.get(alert.symbol, {}).pop(alert_id, None)
        return True

    def on_quote(self, quote: Quote) -> None:
        with self._lock:
            fired = []
            for alert_id, (user_id, field, op, threshold) in list(
                    self._active.get(quote.symbol, {}).items()):
                value = getattr(quote, field)
                if value is None:
                    continue
                if (op == "above" and value >= threshold) or (op == "below" and value <= threshold):
                    fired.append((alert_id, user_id, field, op, threshold, value))
                    del self._active[quote.symbol][alert_id]
        if not fired:
            return
        with self.sessions.begin() as s:
            for alert_id, user_id, field, op, threshold, value in fired:
                alert = s.get(PriceAlert, alert_id)
                if alert is None or not alert.active:
                    continue
                alert.active = False
                emit(s, user_id, "price_alert", {
                    "alert_id": alert_id, "symbol": quote.symbol, "field": field, "op": op,
                    "threshold": px(threshold), "value": px(value)})
