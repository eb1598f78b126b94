"""``OuchBroker``: the platform's orders to a venue over OUCH 5.0 on SoupBinTCP, in software.

The ``Broker`` of ``t2t api`` when no FPGA is in the path (``engine_broker`` is the one
through the gateware's risk gate). It holds one SoupBinTCP session to the venue's order
entry port and speaks ``protocol.soupbintcp`` and ``protocol.ouch`` only.

Rules
-----
- An order goes out as an Enter Order whose UserRefNum is the session's next (OUCH wants
  them strictly increasing per account) and whose ClOrdID is ``P`` + the OMS's order id,
  so the venue's answers name the order even after a restart of this process.
- A market order is an Enter at OUCH's market price (``ouch.MARKET_PRICE``) with time in
  force IOC (FOK when asked). Time in force maps as ``TIFS``.
- A stop order is synthetic: it waits here, on the market-data service, until the bid
  (sell) or the offer (buy) — or the last trade — reaches its stop price, then goes out
  as a market order. It is accepted at once (it is working, here).
- The venue's answers become the OMS's callbacks: Accepted → ``on_accepted``, Executed →
  ``on_executed`` (each fill), Canceled → ``on_canceled`` with OUCH's reason, Rejected →
  ``on_rejected`` with the venue's reason text.
- Nothing is lost with a connection. The session logs in with the sequence number of the
  next answer it has not processed, so the venue resends what came while it was away;
  a dropped connection is retried with a back-off. Across restarts of this process
  ``state`` (a small JSON file: the venue session, the next sequence number, the highest
  UserRefNum) lets it resume the same way; with no state file it logs in from 1 and
  replays the venue's answers only to learn the UserRefNums it used, without calling
  back (the OMS saw them before).
- An order submitted while the session is down is rejected at once, saying so: an order
  entry that waits for a link nobody knows will return is worse than a clear no.
- A modify is a Replace Order (``U``) with the session's next UserRefNum for the order's
  live one; the venue's Order Replaced says whether the order kept its time priority
  (the same venue order reference: quantity down at the same price) or lost it (a new
  reference: a price change or more shares), which goes back as ``on_replaced``; a
  Rejected of the replace is ``on_modify_rejected`` and leaves the order as it was.
- Executions carry the venue's liquidity flag (``A`` added, ``R`` removed).

Threads: ``submit`` and ``cancel`` come from the API's threads and write to the socket
under a lock; one reader thread handles the venue's answers in order, so the OMS sees an
order's events in the venue's order; a heartbeat is sent after a second of silence.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import Counter
from pathlib import Path

from tick2trade.protocol import ouch, soupbintcp
from tick2trade.host.services import ordertypes
from tick2trade.host.services.broker import BrokerEvents, OrderTicket
from tick2trade.host.services.marketdata import MarketData, Quote

log = logging.getLogger(__name__)

TIFS = {"day": ouch.TIF_DAY, "gtc": ouch.TIF_GTC, "ioc": ouch.TIF_IOC, "fok": ouch.TIF_FOK}
CLORDID_PREFIX = "P"
MAX_BACKOFF = 5.0     # seconds between reconnection attempts, at most


class OuchBroker:
    """A software OUCH session as the OMS's ``Broker``.

    Parameters
    ----------
    address:
        ``(host, port)`` of the venue's SoupBinTCP order entry.
    market:
        Where synthetic stops watch the market (and where a market order's absence of an
        opposite side is seen: it is sent anyway, the venue decides).
    username, password:
        The SoupBinTCP login (at most 6 and 10 ASCII characters).
    state:
        A JSON file to resume the session from after a restart (None: none kept).
    """

    in_process = False

    def __init__(self, address: tuple[str, int], market: MarketData, *,
                 username: str = "T2T", password: str = "",
                 state: Path | None = None, connect_timeout: float = 5.0,
                 venue: str = "T2TV") -> None:
        self.address, self.market = address, market
        self.venue = venue          # the name execution reports give (``executions``)
        self.username, self.password = username, password
        self.state_file = state
        self.connect_timeout = connect_timeout
        self.counters: Counter = Counter()
        self._events: BrokerEvents | None = None
        self._lock = threading.RLock()          # maps, the socket's writes
        self._sock: socket.socket | None = None
        self._logged_in = threading.Event()
        self._stop = threading.Event()
        self._session = ""
        self._next_seq = 1                      # the next sequenced answer to process
        self._replay_until = 0                  # answers before this are not called back
        self._next_user_ref = 1
        self._by_ref: dict[int, int] = {}       # UserRefNum → order id
        self._refs: dict[int, int] = {}         # order id → its live UserRefNum
        self._left: dict[int, int] = {}         # order id → shares still open at the venue
        self._stops: dict[int, OrderTicket] = {}
        self._venue_refs: dict[int, int] = {}   # order id → the venue's order reference
        # UserRefNum of a Replace → (order id, shares it asked to leave open, the
        # UserRefNum it replaced)
        self._replacing: dict[int, tuple[int, int, int]] = {}
        self._last_sent = 0.0
        self._load_state()
        market.subscribe(self._on_quote)
        market.listen("trade", self._on_trade)
        self._reader = threading.Thread(target=self._run, name="t2t-ouch", daemon=True)

    # --- Broker ---------------------------------------------------------------------------

    def attach(self, events: BrokerEvents) -> None:
        self._events = events
        if not self._reader.is_alive():
            self._reader.start()

    def wait_connected(self, timeout: float) -> bool:
        return self._logged_in.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._logged_in.is_set()

    def submit(self, ticket: OrderTicket) -> None:
        if ticket.type == "stop":
            self._events.on_accepted(ticket.order_id)
            with self._lock:
                self._stops[ticket.order_id] = ticket
            quote = self.market.quote(ticket.symbol)
            if quote is not None:
                self._on_quote(quote)
            return
        self._enter(ticket)

    def cancel(self, order_id: int) -> None:
        with self._lock:
            stop = self._stops.pop(order_id, None)
            ref = self._refs.get(order_id)
        if stop is not None:
            self._events.on_canceled(order_id, "canceled by request")
            return
        if ref is None:
            # not working at this venue session (finished, or from a venue that is gone)
            self._events.on_canceled(order_id, "not working at the venue")
            return
        if not self._send(ouch.encode_inbound("X", user_ref=ref, quantity=0)):
            self.counters["cancel_not_sent"] += 1
            raise ConnectionError("the venue session is down: cancel not sent, try again")

    def modify(self, order_id: int, qty_left: int, price: int | None,
               stop_price: int | None) -> None:
        with self._lock:
            ref = self._refs.get(order_id)
            if ref is None:
                reason = "not working at the venue (finished, or still on its way)"
            elif price is None:
                reason = "a market order cannot be replaced"
            else:
                reason = None
                new_ref = self._next_user_ref
                self._next_user_ref += 1
                self._by_ref[new_ref] = order_id
                self._replacing[new_ref] = (order_id, qty_left, ref)
                sent = self._send(ouch.encode_inbound(
                    "U", orig_user_ref=ref, user_ref=new_ref, quantity=qty_left,
                    price=price, tif=" ", display=ouch.DISPLAY_VISIBLE, iso="N",
                    clordid=f"{CLORDID_PREFIX}{order_id}"))
                if not sent:
                    self._by_ref.pop(new_ref, None)
                    self._replacing.pop(new_ref, None)
                    raise ConnectionError("the venue session is down: replace not sent")
                # what follows (a cancel, another replace) names the order by the
                # UserRefNum it will have; a refused replace puts the old one back
                self._refs[order_id] = new_ref
        if reason is not None:
            self._events.on_modify_rejected(order_id, reason)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.sendall(soupbintcp.encode("O"))
            except OSError:
                pass
            sock.close()
        if self._reader.is_alive():
            self._reader.join(timeout=5)
        self._save_state()

    # --- sending --------------------------------------------------------------------------

    def _enter(self, ticket: OrderTicket) -> None:
        if not self._logged_in.is_set():
            self.counters["rejected_disconnected"] += 1
            self._events.on_rejected(ticket.order_id,
                                     f"venue {self.address[0]}:{self.address[1]} is not "
                                     "connected; try again when it is")
            return
        market = ticket.type in ("market", "stop")
        tif = TIFS[ticket.tif]
        if market and tif not in (ouch.TIF_IOC, ouch.TIF_FOK):
            tif = ouch.TIF_IOC
        with self._lock:
            ref = self._next_user_ref
            self._next_user_ref += 1
            self._by_ref[ref] = ticket.order_id
            self._refs[ticket.order_id] = ref
            message = ouch.encode_inbound(
                "O", user_ref=ref, side="B" if ticket.side == "buy" else "S",
                quantity=ticket.qty, symbol=ticket.symbol,
                price=ouch.MARKET_PRICE if market else ticket.price, tif=tif,
                display=ouch.DISPLAY_VISIBLE, capacity="A", iso="N", cross_type="N",
                clordid=f"{CLORDID_PREFIX}{ticket.order_id}")
            sent = self._send(message)
        if not sent:
            with self._lock:
                self._by_ref.pop(ref, None)
                self._refs.pop(ticket.order_id, None)
            self.counters["rejected_disconnected"] += 1
            self._events.on_rejected(ticket.order_id, "the venue session dropped while "
                                     "sending; the order was not sent")
            return
        self.counters["entered"] += 1

    def _send(self, message: bytes) -> bool:
        return self._write(soupbintcp.encode("U", message=message))

    def _write(self, packet: bytes) -> bool:
        with self._lock:
            if self._sock is None:
                return False
            try:
                self._sock.sendall(packet)
            except OSError:
                return False
            self._last_sent = time.monotonic()
            return True

    # --- synthetic stops ------------------------------------------------------------------

    def _on_quote(self, quote: Quote) -> None:
        with self._lock:
            hit = [t for t in self._stops.values() if t.symbol == quote.symbol
                   and _stop_hit(t, quote.bid, quote.ask, quote.last)]
            for t in hit:
                del self._stops[t.order_id]
        for t in hit:
            self.counters["stops_triggered"] += 1
            self._enter(t)

    def _on_trade(self, trade) -> None:
        with self._lock:
            hit = [t for t in self._stops.values() if t.symbol == trade.symbol
                   and _stop_hit(t, None, None, trade.price)]
            for t in hit:
                del self._stops[t.order_id]
        for t in hit:
            self.counters["stops_triggered"] += 1
            self._enter(t)

    # --- the session ----------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self._session_once()
                backoff = 0.2
            except (OSError, soupbintcp.PacketError, ConnectionError) as exc:
                if self._stop.is_set():
                    break
                self.counters["disconnects"] += 1
                log.warning("venue session %s:%s: %s; reconnecting in %.1f s",
                            *self.address, exc, backoff)
            finally:
                self._logged_in.clear()
                with self._lock:
                    sock, self._sock = self._sock, None
                if sock is not None:
                    sock.close()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _session_once(self) -> None:
        sock = socket.create_connection(self.address, timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(0.25)
        with self._lock:
            self._sock = sock
        resume = self._next_seq if self._session else 1
        # any session: a venue that restarted has a new one, which _packet notices
        self._write(soupbintcp.encode("L", username=self.username, password=self.password,
                                      session="", sequence=resume))
        buffer, heard = b"", time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if self._logged_in.is_set() and now - self._last_sent >= soupbintcp.HEARTBEAT_SECONDS:
                self._write(soupbintcp.encode("R"))
            if now - heard > soupbintcp.TIMEOUT_SECONDS:
                raise ConnectionError(f"nothing from the venue for "
                                      f"{soupbintcp.TIMEOUT_SECONDS:g} s")
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise ConnectionError("the venue closed the connection")
            heard = time.monotonic()
            packets, buffer = soupbintcp.split(buffer + data)
            for raw in packets:
                self._packet(soupbintcp.decode(raw))
            self._save_state()

    def _packet(self, p: dict) -> None:
        kind = p["type"]
        if kind == "A":
            session = p["session"].strip()
            if self._session and session != self._session:
                # a new venue session: what this process knew of the old one is void
                log.warning("venue session changed from %s to %s", self._session, session)
                self._replay_until = 0
                self._next_user_ref = 1
            self._session = session
            self._next_seq = p["sequence"]
            self.counters["logins"] += 1
            self._logged_in.set()
            log.info("venue session %s at %s:%s, from answer %d", session, *self.address,
                     self._next_seq)
        elif kind == "J":
            raise ConnectionError(f"login rejected ({p['reason']!r}: "
                                  + {"A": "not authorized", "S": "session not available"}
                                  .get(p["reason"], "unknown reason") + ")")
        elif kind == "S":
            seq, self._next_seq = self._next_seq, self._next_seq + 1
            msg = ouch.decode_outbound(p["message"])
            if msg is None:
                self.counters["undecodable"] += 1
                return
            self._answer(msg, replay=seq < self._replay_until)
        elif kind == "+":
            self.counters["debug_packets"] += 1
            log.warning("venue says: %s", p["text"].decode("ascii", "replace"))
        elif kind == "Z":
            raise ConnectionError("the venue ended the session")

    def _answer(self, m: dict, replay: bool) -> None:
        kind = m["type"]
        if kind in ("A", "U"):
            ref = m["user_ref"]
            with self._lock:
                self._next_user_ref = max(self._next_user_ref, ref + 1)
                order_id = _order_id(m["clordid"]) or self._by_ref.get(m.get("orig_user_ref"))
                if order_id is None:
                    return
                self._by_ref[ref] = order_id
                asked = self._replacing.pop(ref, None)
                before = self._venue_refs.get(order_id)
                self._venue_refs[order_id] = m["order_ref"]
                if m["order_state"] == ouch.STATE_LIVE:
                    self._refs[order_id] = ref
                    # a Replace's answer shows what rests after it matched, and its
                    # executions follow it: count them down from what was asked
                    self._left[order_id] = m["quantity"] if asked is None else asked[1]
                else:
                    self._refs.pop(order_id, None)
                    self._venue_refs.pop(order_id, None)
            if replay:
                return
            if kind == "A":
                self.counters["accepted"] += 1
                self._events.on_accepted(order_id)
            else:
                self.counters["replaced"] += 1
                self._events.on_replaced(order_id, "kept" if before == m["order_ref"]
                                         else "lost")
            return
        if kind == "S":
            return
        ref = m["user_ref"]
        with self._lock:
            self._next_user_ref = max(self._next_user_ref, ref + 1)
            replaced = self._replacing.pop(ref, None) if kind == "J" else None
            order_id = self._by_ref.get(ref)
            if replaced is not None:
                # a refused Replace: the order stands as it was, under its old UserRefNum
                self._by_ref.pop(ref, None)
                if self._refs.get(order_id) == ref:
                    self._refs[order_id] = replaced[2]
            elif order_id is not None:
                if kind == "E":
                    self._left[order_id] = self._left.get(order_id, 0) - m["quantity"]
                if kind in ("C", "J") or self._left.get(order_id, 0) <= 0:
                    self._refs.pop(order_id, None)
                    self._left.pop(order_id, None)
        if order_id is None:
            self.counters["unknown_user_ref"] += 1
            return
        if replay:
            return
        if replaced is not None:
            self.counters["replace_rejected"] += 1
            self._events.on_modify_rejected(order_id, ouch.REJECT_REASONS.get(
                m["reason"], f"venue reason {m['reason']}"))
        elif kind == "E":
            self.counters["executions"] += 1
            self._events.on_executed(order_id, m["quantity"], m["price"],
                                     m["liquidity"] or None)
        elif kind == "C":
            self.counters["canceled"] += 1
            self._events.on_canceled(order_id, ouch.CANCEL_REASONS.get(
                m["reason"], f"venue reason {m['reason']!r}"))
        elif kind == "J":
            self.counters["rejected"] += 1
            self._events.on_rejected(order_id, ouch.REJECT_REASONS.get(
                m["reason"], f"venue reason {m['reason']}"))

    # --- state across restarts ------------------------------------------------------------

    def _load_state(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        try:
            s = json.loads(self.state_file.read_text())
            self._session, self._next_seq = str(s["session"]), int(s["next_seq"])
            self._next_user_ref = int(s["next_user_ref"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s unreadable (%s): logging in from the start", self.state_file, exc)
            self._session, self._next_seq = "", 1
            return
        # log in from 1 all the same, so every live order's UserRefNum is learned again;
        # answers before the saved point are not called back
        self._replay_until, self._next_seq = self._next_seq, 1

    def _save_state(self) -> None:
        if self.state_file is None or not self._session:
            return
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"session": self._session, "next_seq": self._next_seq,
                                   "next_user_ref": self._next_user_ref}))
        os.replace(tmp, self.state_file)


def _order_id(clordid: str) -> int | None:
    text = clordid.strip()
    if text.startswith(CLORDID_PREFIX) and text[1:].isdigit():
        return int(text[1:])
    return None


def _stop_hit(t: OrderTicket, bid: int | None, ask: int | None, last: int | None) -> bool:
    return ordertypes.stop_hit(t.side, t.stop_price, bid, ask, last)
