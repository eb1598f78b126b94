"""Requests for quote: ask every connected venue's liquidity providers for a firm
two-sided quote, stream the quotes to the user, trade the one the user accepts.

``RfqClient`` is one venue's RFQ port (``protocol.rfq``, JSON lines over TCP; the venue
simulator's ``[rfq]``); ``Rfqs`` is the service over any number of them.

Rules
-----
- ``request`` stores the RFQ, sends it to every venue and waits (``ack_timeout``) for
  each one's answer: asked (its providers' quotes will follow), rejected (its reason) or
  unavailable. With no venue asked the RFQ is stored ``rejected``; the caller hears why
  (every venue refused the request: ``RfqError``; none could be reached:
  ``VenueUnavailable``).
- Quotes are stored as they arrive, with ``expires_at`` = arrival + the quote's time to
  live (the venue's own clock started when it sent it, so the venue's expiry is never
  later than ours), and pushed to the user's WebSockets as ``rfq_quote`` messages.
- An RFQ trades once. ``accept`` claims the RFQ and the quote in one transaction (two
  conditional updates: the RFQ ``open``, the quote ``open`` and not expired), so of two
  accepts at once exactly one goes on and the other is ``QuoteTaken``; a quote past its
  expiry is ``QuoteExpired`` without asking the venue. The claim stores the trade as an
  order (limit at the quoted price, fill-or-kill, through the OMS's risk checks and audit
  chain) before the venue hears of it; the venue's fill then goes through the OMS's
  execution path (``Orders.on_executed``: the execution, the position, the audit record
  and the ``order_status`` notification, in one transaction with the quote's
  ``filled``). A venue that refuses the accept (expired by its clock, taken) leaves the
  order ``rejected`` with the reason and the RFQ open for its other quotes.
- A quote's price is the venue's word: ``buy`` trades at its ask, ``sell`` at its bid.
- An accept the venue does not answer within ``accept_timeout`` is ``VenueUnavailable``
  for its caller, and the venue's answer settles it when it comes (the fill, or the
  refusal). One whose connection drops before the answer stays ``accepting``, its order
  ``pending``: whether it traded is the venue's to say, not ours to guess.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import timedelta

from sqlalchemy import insert, select, update

from tick2trade.protocol import rfq as wire
from tick2trade.host.services import audit, executions, notify
from tick2trade.host.services.db import Order, Rfq, RfqQuote, utcnow
from tick2trade.host.services.money import px
from tick2trade.host.services.orders import NewOrder, NotFound, Orders, order_json
from tick2trade.host.services.status import OrderStatus
from tick2trade.host.services.writer import Batch, Writer

log = logging.getLogger(__name__)

ACK_TIMEOUT = 2.0       # seconds a request waits for each venue's ack
ACCEPT_TIMEOUT = 5.0    # seconds an accept waits for the venue's fill
MAX_BACKOFF = 5.0


class RfqError(ValueError):
    """The request or the accept itself is wrong, or every venue refused it (422)."""


class QuoteExpired(Exception):
    """The quote's time to live is over (410)."""


class QuoteTaken(Exception):
    """The quote, or another quote of the same RFQ, has been accepted (409)."""


class VenueUnavailable(Exception):
    """No venue could be asked, or one did not answer in time (503)."""


class NoRfqVenues(Exception):
    """This platform is connected to no venue that quotes (``t2t api --venue off`` or
    ``--paper``): a state of the platform, not a passing fault (409)."""


class RfqClient:
    """One venue's RFQ port, with a reader thread that reconnects (with a back-off) when
    the connection drops. ``on_quote(client, message)`` is called on that thread for
    every quote; ``name`` is the venue's name in execution reports."""

    def __init__(self, address: tuple[str, int], name: str = "T2TV",
                 connect_timeout: float = 5.0) -> None:
        self.address, self.name, self.connect_timeout = address, name, connect_timeout
        self.on_quote: Callable[[RfqClient, dict], None] | None = None
        self.counters: Counter = Counter()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._pending: dict[tuple[str, str], Future] = {}
        self._refs = itertools.count(1)
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"t2t-rfq-{name}",
                                        daemon=True)

    def start(self) -> RfqClient:
        self._thread.start()
        return self

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def request(self, ref: str, symbol: str, side: str | None, qty: int) -> Future:
        """The venue's ``ack`` or ``reject`` for RFQ ``ref``, when it comes."""
        return self._call(("request", ref), wire.encode("request", ref=ref, symbol=symbol,
                                                         side=side, qty=qty))

    def accept(self, quote_id: str, side: str, qty: int) -> Future:
        """The venue's ``fill`` or ``refused`` for this accept, when it comes."""
        ref = f"A{next(self._refs)}"
        return self._call(("accept", ref), wire.encode("accept", ref=ref, quote_id=quote_id,
                                                        side=side, qty=qty))

    def _call(self, key: tuple[str, str], line: bytes) -> Future:
        fut: Future = Future()
        with self._lock:
            if self._sock is None:
                raise VenueUnavailable(f"venue {self.name} ({self.address[0]}:"
                                       f"{self.address[1]}) is not connected")
            self._pending[key] = fut
            try:
                self._sock.sendall(line)
            except OSError as exc:
                self._pending.pop(key, None)
                raise VenueUnavailable(f"venue {self.name}: sending failed "
                                       f"({exc.strerror or exc})") from None
        return fut

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._session()
                backoff = 0.1
            except (OSError, wire.MessageError, ConnectionError) as exc:
                if not self._stop.is_set():
                    self.counters["disconnects"] += 1
                    log.warning("RFQ venue %s at %s:%s: %s; reconnecting in %.1f s",
                                self.name, *self.address, exc, backoff)
            finally:
                self._connected.clear()
                with self._lock:
                    sock, self._sock = self._sock, None
                    pending, self._pending = self._pending, {}
                if sock is not None:
                    sock.close()
                for fut in pending.values():
                    fut.set_exception(VenueUnavailable(
                        f"venue {self.name}: the connection dropped before it answered"))
            self._stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _session(self) -> None:
        sock = socket.create_connection(self.address, timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(0.25)
        with self._lock:
            self._sock = sock
        self._connected.set()
        buffer = b""
        while not self._stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise ConnectionError("the venue closed the connection")
            *lines, buffer = (buffer + data).split(b"\n")
            if len(buffer) > wire.MAX_LINE:
                raise wire.MessageError("a line longer than the protocol allows")
            for line in lines:
                self._message(wire.decode(line))

    def _message(self, msg: dict) -> None:
        kind = msg["type"]
        self.counters[kind] += 1
        if kind == "quote":
            if self.on_quote is not None:
                try:
                    self.on_quote(self, msg)
                except Exception:
                    log.exception("storing a quote of venue %s failed", self.name)
            return
        if kind == "error":
            log.warning("RFQ venue %s says: %s", self.name, msg["detail"])
            return
        key = ("request" if kind in ("ack", "reject") else "accept", msg["ref"])
        with self._lock:
            fut = self._pending.pop(key, None)
        if fut is None:
            self.counters["unexpected"] += 1
        else:
            fut.set_result(msg)


def quote_json(q, now=None) -> dict:
    """A stored quote as the API shows it; an open quote past its expiry is ``expired``."""
    expires = audit.as_utc(q.expires_at)
    status = q.status
    if status == "open" and (now or utcnow()) >= expires:
        status = "expired"
    return {"id": q.id, "rfq_id": q.rfq_id, "venue": q.venue, "provider": q.provider,
            "bid": px(q.bid), "bid_size": q.bid_size, "ask": px(q.ask),
            "ask_size": q.ask_size, "received_at": audit.as_utc(q.received_at).isoformat(),
            "expires_at": expires.isoformat(), "status": status, "side": q.side,
            "order_id": q.order_id}


def rfq_json(r, quotes=()) -> dict:
    now = utcnow()
    return {"id": r.id, "symbol": r.symbol, "side": r.side, "qty": r.qty,
            "status": r.status, "reason": r.reason,
            "created_at": audit.as_utc(r.created_at).isoformat(),
            "quotes": [quote_json(q, now) for q in quotes]}


class Rfqs:
    """RFQs over a session factory, the OMS's writer and order service, the venues'
    RFQ clients and where a user's WebSocket messages go (``Hub.to_user``)."""

    def __init__(self, sessions, writer: Writer, orders: Orders, venues: list[RfqClient],
                 push: notify.Push = lambda user_id, msg: None,
                 ack_timeout: float = ACK_TIMEOUT,
                 accept_timeout: float = ACCEPT_TIMEOUT) -> None:
        self.sessions, self.writer, self.orders = sessions, writer, orders
        self.venues = {v.name: v for v in venues}
        if len(self.venues) != len(venues):
            raise ValueError(f"RFQ venues need names of their own (quotes are stored by "
                             f"venue name): {[v.name for v in venues]}")
        self.push = push
        self.ack_timeout, self.accept_timeout = ack_timeout, accept_timeout
        for v in venues:
            v.on_quote = self._on_quote

    # --- requests -------------------------------------------------------------------------

    def request(self, user_id: int, username: str, symbol: str, side: str | None,
                qty: int) -> dict:
        """The stored RFQ (with ``venues``: each one's answer) once every venue answered
        or ``ack_timeout`` passed."""
        if not self.venues:
            raise NoRfqVenues("no venue takes requests for quote here (t2t api with a "
                              "venue, not --venue off or --paper)")

        def store(b: Batch) -> int:
            rfq_id = b.conn.execute(insert(Rfq).returning(Rfq.id), {
                "user_id": user_id, "symbol": symbol, "side": side, "qty": qty,
                "status": "open", "created_at": utcnow()}).scalar_one()
            b.chain.append(username, "rfq.request", f"rfq:{rfq_id}",
                           {"symbol": symbol, "side": side, "qty": qty})
            return rfq_id

        rfq_id = self.writer.run(store)
        asked: list[tuple[str, Future | None, str | None]] = []
        for name, venue in self.venues.items():
            try:
                asked.append((name, venue.request(str(rfq_id), symbol, side, qty), None))
            except VenueUnavailable as exc:
                asked.append((name, None, str(exc)))
        answers = []
        deadline = time.monotonic() + self.ack_timeout
        for name, fut, problem in asked:
            msg = None
            if fut is not None:
                try:
                    msg = fut.result(max(0.0, deadline - time.monotonic()))
                except FutureTimeout:
                    problem = f"venue {name}: no answer within {self.ack_timeout:g} s"
                except VenueUnavailable as exc:
                    problem = str(exc)
            if msg is None:
                answers.append({"venue": name, "status": "unavailable", "reason": problem})
            elif msg["type"] == "ack":
                answers.append({"venue": name, "status": "asked",
                                "providers": msg["providers"]})
            else:
                answers.append({"venue": name, "status": "rejected",
                                "reason": msg["reason"]})
        if not any(a["status"] == "asked" for a in answers):
            reason = "; ".join(f"{a['venue']}: {a['reason']}" for a in answers)
            with self.sessions.begin() as s:
                s.execute(update(Rfq).where(Rfq.id == rfq_id)
                          .values(status="rejected", reason=reason[:200]))
            if any(a["status"] == "rejected" for a in answers):
                raise RfqError(f"no venue would quote: {reason}")
            raise VenueUnavailable(f"no venue could be asked: {reason}")
        return {**self.get(user_id, rfq_id), "venues": answers}

    def get(self, user_id: int, rfq_id: int) -> dict:
        with self.sessions() as s:
            r = s.get(Rfq, rfq_id)
            if r is None or r.user_id != user_id:
                raise NotFound(f"no rfq {rfq_id}")
            quotes = s.execute(select(RfqQuote).where(RfqQuote.rfq_id == rfq_id)
                               .order_by(RfqQuote.id)).scalars().all()
            return rfq_json(r, quotes)

    # --- quotes ---------------------------------------------------------------------------

    def _on_quote(self, venue: RfqClient, msg: dict) -> None:
        received = utcnow()
        ref = msg["ref"]
        if not ref.isdigit():
            return
        with self.sessions.begin() as s:
            r = s.get(Rfq, int(ref))
            if r is None or r.symbol != msg["symbol"]:
                log.info("venue %s quoted an RFQ %s we do not know", venue.name, ref)
                return
            q = RfqQuote(rfq_id=r.id, venue=venue.name, venue_quote_id=msg["quote_id"][:40],
                         provider=msg["provider"][:16], bid=msg["bid"],
                         bid_size=msg["bid_size"], ask=msg["ask"], ask_size=msg["ask_size"],
                         received_at=received,
                         expires_at=received + timedelta(milliseconds=msg["ttl_ms"]),
                         status="open")
            s.add(q)
            s.flush()
            user_id, message = r.user_id, {"type": "rfq_quote", "rfq_id": r.id,
                                           "quote": quote_json(q, received)}
        self.push(user_id, message)

    # --- accepting ------------------------------------------------------------------------

    def accept(self, user_id: int, username: str, rfq_id: int, quote_id: int,
               side: str) -> dict:
        """Trade quote ``quote_id`` of the caller's RFQ ``rfq_id`` on ``side``; returns
        the fill (with the order it made and its execution report)."""
        with self.sessions() as s:
            r = s.get(Rfq, rfq_id)
            if r is None or r.user_id != user_id:
                raise NotFound(f"no rfq {rfq_id}")
            q = s.get(RfqQuote, quote_id)
            if q is None or q.rfq_id != rfq_id:
                raise NotFound(f"no quote {quote_id} in rfq {rfq_id}")
        if r.side is not None and side != r.side:
            raise RfqError(f"rfq {rfq_id} asked to {r.side}: accept it with side {r.side}")
        venue = self.venues.get(q.venue)
        if venue is None:
            raise VenueUnavailable(f"quote {quote_id} is from venue {q.venue}, which is not "
                                   f"connected here")
        price = q.ask if side == "buy" else q.bid
        new = NewOrder(r.symbol, side, "limit", r.qty, "fok", price)
        outcome, detail = self.writer.run(
            lambda b: self._claim(b, user_id, username, r, q, side, new))
        if outcome == "taken":
            raise QuoteTaken(detail)
        if outcome == "expired":
            raise QuoteExpired(detail)
        if outcome == "refused":
            raise RfqError(detail)
        order_id = detail
        try:
            pending = venue.accept(q.venue_quote_id, side, r.qty)
        except VenueUnavailable as exc:     # not sent: nothing happened at the venue
            self._undo(order_id, r.id, q.id, "open", f"not traded: {exc}")
            raise
        try:
            answer = pending.result(self.accept_timeout)
        except FutureTimeout:
            # the venue's answer, when it comes, settles the trade all the same
            pending.add_done_callback(lambda f: self._late(f, r, q, order_id, venue.name))
            raise VenueUnavailable(f"venue {venue.name} did not answer the accept within "
                                   f"{self.accept_timeout:g} s; order {order_id} settles "
                                   f"when it does") from None
        except VenueUnavailable as exc:
            raise VenueUnavailable(f"{exc}: whether quote {quote_id} traded is unknown; "
                                   f"order {order_id} stays pending") from None
        return self._settle(r, q, order_id, answer, venue.name)

    def _settle(self, r, q, order_id: int, answer: dict, venue: str) -> dict:
        """The venue's answer to an accept: the fill, or the refusal as an exception."""
        if answer["type"] == "fill":
            return self._filled(r, q, order_id, answer, venue)
        reason = answer["reason"]
        self._undo(order_id, r.id, q.id, "expired" if reason == wire.EXPIRED else "lost",
                   f"rfq quote refused by venue {venue}: {reason}")
        if reason == wire.EXPIRED:
            raise QuoteExpired(f"quote {q.id} expired at venue {venue} before the accept "
                               f"reached it")
        if reason == wire.TAKEN:
            raise QuoteTaken(f"quote {q.id} was taken at venue {venue}")
        raise RfqError(f"venue {venue} refused the accept: {reason}")

    def _late(self, pending: Future, r, q, order_id: int, venue: str) -> None:
        """An answer that came after the accept's caller gave up (on the client's
        thread)."""
        if pending.exception() is not None:
            log.warning("accept of quote %s at %s: %s; order %s stays pending", q.id, venue,
                        pending.exception(), order_id)
            return
        try:
            self._settle(r, q, order_id, pending.result(), venue)
        except (QuoteExpired, QuoteTaken, RfqError) as exc:
            log.info("late answer to the accept of quote %s: %s", q.id, exc)
        except Exception:
            log.exception("settling the late accept of quote %s failed", q.id)

    def _claim(self, b: Batch, user_id: int, username: str, r, q, side: str,
               new: NewOrder) -> tuple[str, object]:
        now = utcnow()
        claimed = b.conn.execute(update(Rfq).where(Rfq.id == r.id, Rfq.status == "open")
                                 .values(status="accepting").returning(Rfq.id)).first()
        if claimed is None:
            status = b.conn.execute(select(Rfq.status).where(Rfq.id == r.id)).scalar_one()
            return "taken", f"rfq {r.id} is {status}: another of its quotes was accepted"
        got = b.conn.execute(update(RfqQuote).where(
            RfqQuote.id == q.id, RfqQuote.status == "open", RfqQuote.expires_at > now)
            .values(status="accepting", side=side).returning(RfqQuote.id)).first()
        if got is None:
            b.conn.execute(update(Rfq).where(Rfq.id == r.id).values(status="open"))
            row = b.conn.execute(select(RfqQuote.status, RfqQuote.expires_at)
                                 .where(RfqQuote.id == q.id)).one()
            if row.status == "open":
                return "expired", (f"quote {q.id} expired at "
                                   f"{audit.as_utc(row.expires_at).isoformat()}")
            if row.status == "expired":
                return "expired", f"quote {q.id} has expired"
            return "taken", f"quote {q.id} is {row.status}: it was accepted already"
        order_id, status = self.orders.store(b, user_id, username, new, new.price)
        if status == OrderStatus.REJECTED:
            b.conn.execute(update(Rfq).where(Rfq.id == r.id).values(status="open"))
            b.conn.execute(update(RfqQuote).where(RfqQuote.id == q.id)
                           .values(status="open", side=None))
            reason = b.conn.execute(select(Order.reason).where(Order.id == order_id)
                                    ).scalar_one()
            return "refused", f"order {order_id} refused: {reason}"
        b.conn.execute(update(RfqQuote).where(RfqQuote.id == q.id).values(order_id=order_id))
        b.chain.append(username, "rfq.accept", f"rfq:{r.id}",
                       {"quote_id": q.id, "side": side, "qty": new.qty, "price": new.price,
                        "order_id": order_id})
        return "claimed", order_id

    def _undo(self, order_id: int, rfq_id: int, quote_id: int, quote_status: str,
              reason: str) -> None:
        """The venue did not trade: the order is rejected, the quote ends (or, not sent,
        stays open) and the RFQ is open again."""
        def job(b: Batch) -> None:
            self.orders.on_rejected(order_id, reason)
            b.conn.execute(update(RfqQuote).where(RfqQuote.id == quote_id).values(
                status=quote_status, side=None if quote_status == "open" else RfqQuote.side))
            b.conn.execute(update(Rfq).where(Rfq.id == rfq_id).values(status="open"))
        self.writer.run(job)

    def _filled(self, r, q, order_id: int, fill: dict, venue: str) -> dict:
        def job(b: Batch) -> None:
            self.orders.on_accepted(order_id)
            self.orders.on_executed(order_id, fill["qty"], fill["price"], executions.TAKER,
                                    venue=venue)
            b.conn.execute(update(RfqQuote).where(RfqQuote.id == q.id)
                           .values(status="filled"))
            b.conn.execute(update(Rfq).where(Rfq.id == r.id).values(status="filled"))
        self.writer.run(job)
        order = self.orders.get(r.user_id, order_id)
        reports = executions.for_order(self.sessions, order_id)
        return {"rfq_id": r.id, "quote_id": q.id, "side": fill["side"], "qty": fill["qty"],
                "price": px(fill["price"]), "venue": venue, "order": order_json(order),
                "executions": [executions.execution_json(e) for e in reports]}
