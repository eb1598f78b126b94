"""OUCH 5.0 order entry over SoupBinTCP, on TCP and on UDP (asyncio).

Messages are encoded and decoded by ``protocol.ouch`` and framed by
``protocol.soupbintcp``; this module holds only the session rules and the mapping
between OUCH orders (a participant's UserRefNum) and engine orders (the venue's order
reference).

Design decisions
----------------
- An *account* is what owns orders: a SoupBinTCP user on TCP, a sender address on UDP.
  Its UserRefNums, live orders and (TCP) its sequenced messages outlive a connection, so
  a participant that reconnects with a requested sequence number gets every response it
  missed: nothing that was accepted is lost with a connection.
- Responses are produced from the engine's events (through :meth:`Venue.drain`), so an
  execution against a resting OUCH order caused by anybody — another account, the
  synthetic flow — reaches its owner. Accepted or Rejected comes first, then what the
  order did (Executed per fill, Canceled for an IOC/FOK rest), as OUCH orders them.
- Bad input is counted under a reason and answered: a field the venue refuses is an
  OUCH Rejected (reason codes of ``ouch.REJECT_REASONS``); an OUCH message that does not
  decode, a Cancel or Replace of an unknown UserRefNum get a Debug packet (Cancel/Replace
  of an unknown order also a Rejected, reason 7). A broken SoupBinTCP stream, a client
  packet before login or a second login gets a Debug packet with the reason and the
  connection is closed: past a framing error nothing after it can be trusted.
- Over UDP each datagram carries whole SoupBinTCP packets (Unsequenced Data, one OUCH
  message each); answers go back to the sender as Unsequenced Data, one per datagram.
- What goes out over UDP can be recorded as frames (``recorder``), like the feed; TCP
  responses are not (a capture of them would need a TCP stack's sequence numbers).
- The account's owner name is given to the engine, so self-match prevention (when on)
  works per account.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from tick2trade.protocol import ouch, soupbintcp

from tick2trade.sim.venue.engine import CANCEL, EXEC, R_UNKNOWN, REPLACE
from tick2trade.sim.venue.venue import Venue

TIFS = {ouch.TIF_DAY: ouch.TIF_DAY, ouch.TIF_IOC: ouch.TIF_IOC, ouch.TIF_GTC: ouch.TIF_GTC,
        ouch.TIF_FOK: ouch.TIF_FOK}
R_USER_REF, R_DISPLAY = 6, 9
_MAX_BUFFER = 1 << 20  # a client that sends this much without a whole packet is broken


def _echo(text: str) -> bytes:
    """A decoded alpha field back to its bytes: what a client sent is echoed as it was,
    even when it is not ASCII."""
    return text.encode("latin-1")


class Account:
    """Orders and responses of one participant."""

    def __init__(self, name: str, sequenced: bool):
        self.name = name
        self.sequenced = sequenced
        self.last_user_ref = 0
        self.live: dict[int, int] = {}  # UserRefNum -> engine reference
        self.outbox: list[bytes] = []  # sequenced OUCH messages (TCP accounts)
        self.send: Callable[[bytes], None] | None = None  # the current connection


class Gateway:
    """OUCH order entry for a :class:`Venue`.

    Parameters
    ----------
    venue:
        The engine and publisher the orders go to.
    users:
        ``{username: password}`` allowed to log in over TCP; None lets anyone in.
    session:
        The SoupBinTCP session name (blank in a login request means this one).
    heartbeat, timeout:
        Seconds of silence before the server sends a heartbeat, and before it drops a
        client that has sent nothing.
    """

    def __init__(self, venue: Venue, *, users: dict[str, str] | None = None,
                 session: str = "T2T0000001",
                 heartbeat: float = soupbintcp.HEARTBEAT_SECONDS,
                 timeout: float = soupbintcp.TIMEOUT_SECONDS, recorder=None):
        self.venue = venue
        self.engine = venue.engine
        self.users = users
        self.session = session
        self.heartbeat = heartbeat
        self.timeout = timeout
        self.recorder = recorder  # a sim.venue.lines.Recorder for what UDP sends
        self.accounts: dict[str, Account] = {}
        self.owners: dict[int, tuple[Account, int]] = {}  # engine ref -> account, UserRefNum
        self._replacing: dict[int, tuple[Account, int, int]] = {}
        self.counters: Counter = Counter()
        self._connections: set[asyncio.StreamWriter] = set()
        venue.listeners.append(self.route)

    # -- OUCH ---------------------------------------------------------------------------

    def _respond(self, acct: Account, mtype: str, **values) -> None:
        raw = ouch.encode_outbound(mtype, timestamp=self.venue.clock(), **values)
        self.counters["ouch_out"] += 1
        if acct.sequenced:
            acct.outbox.append(raw)
        if acct.send is not None:
            acct.send(raw)

    def _reject(self, acct: Account, user_ref: int, reason: int,
                clordid: bytes = b"") -> None:
        self.counters[f"rejected_{reason}"] += 1
        self._respond(acct, "J", user_ref=user_ref, reason=reason, clordid=clordid)

    def handle(self, acct: Account, raw: bytes) -> str | None:
        """One inbound OUCH message; returns a reason when it could not be read."""
        self.counters["ouch_in"] += 1
        msg = ouch.decode_inbound(raw)
        if msg is None:
            known = raw[:1].decode("latin-1") in ouch.INBOUND
            reason = "bad_ouch_length" if known else "unknown_ouch_type"
            self.counters[reason] += 1
            return (f"OUCH message of {len(raw)} bytes, type {raw[:1]!r}: "
                    f"{'wrong length' if known else 'unknown type'}")
        mtype = msg["type"]
        if mtype == "O":
            self._enter(acct, msg)
        elif mtype == "U":
            self._replace(acct, msg)
        else:
            self._cancel(acct, msg)
        return None

    def _enter(self, acct: Account, m: dict) -> None:
        ur, clordid = m["user_ref"], _echo(m["clordid"])
        if ur <= acct.last_user_ref:
            return self._reject(acct, ur, R_USER_REF, clordid)
        acct.last_user_ref = ur
        tif = TIFS.get(m["tif"])
        if tif is None:
            return self._reject(acct, ur, 5, clordid)
        if m["display"] not in ("", ouch.DISPLAY_VISIBLE, ouch.DISPLAY_HIDDEN):
            return self._reject(acct, ur, R_DISPLAY, clordid)
        hidden = m["display"] == ouch.DISPLAY_HIDDEN
        price = None if m["price"] == ouch.MARKET_PRICE else m["price"]
        ref = self.engine.submit(m["symbol"], m["side"], m["quantity"], price, tif,
                                 acct.name, hidden)
        if ref < 0:
            return self._reject(acct, ur, -ref, clordid)
        self.counters["accepted"] += 1
        self.owners[ref] = (acct, ur)
        acct.live[ur] = ref
        self._respond(
            acct, "A", user_ref=ur, side=m["side"], quantity=m["quantity"],
            symbol=m["symbol"], price=m["price"], tif=tif, display=m["display"] or "Y",
            order_ref=ref, capacity=_echo(m["capacity"]), iso=_echo(m["iso"]),
            cross_type=_echo(m["cross_type"]),
            order_state=ouch.STATE_LIVE if ref in self.engine.orders else ouch.STATE_DEAD,
            clordid=clordid)
        self.venue.drain()
        self._forget(ref)

    def _replace(self, acct: Account, m: dict) -> None:
        orig, ur, clordid = m["orig_user_ref"], m["user_ref"], _echo(m["clordid"])
        ref = acct.live.get(orig)
        if ref is None:
            return self._reject(acct, ur, R_UNKNOWN, clordid)
        if ur <= acct.last_user_ref:
            return self._reject(acct, ur, R_USER_REF, clordid)
        acct.last_user_ref = ur
        price = None if m["price"] == ouch.MARKET_PRICE else m["price"]
        new = self.engine.replace(ref, m["quantity"], price)
        if new < 0:
            return self._reject(acct, ur, -new, clordid)
        self.counters["replaced"] += 1
        self._replacing[new] = (acct, orig, ur)
        self.venue.drain()
        self._forget(new)

    def _cancel(self, acct: Account, m: dict) -> None:
        ref = acct.live.get(m["user_ref"])
        if ref is None:
            return self._reject(acct, m["user_ref"], R_UNKNOWN)
        self.engine.cancel(ref, m["quantity"])
        self.venue.drain()

    def _forget(self, ref: int) -> None:
        """Drop the mapping of an order that no longer rests."""
        if ref not in self.engine.orders:
            owner = self.owners.pop(ref, None)
            if owner is not None:
                owner[0].live.pop(owner[1], None)

    def route(self, events: list[tuple]) -> None:
        """OUCH responses for the orders of our accounts that ``events`` touched."""
        owners, touched = self.owners, []
        for ev in events:
            kind = ev[0]
            if kind == EXEC:
                _, _, maker, qty, price, match, taker, _side, _hidden = ev
                for ref, liquidity in ((maker, ouch.LIQUIDITY_ADDED),
                                       (taker, ouch.LIQUIDITY_REMOVED)):
                    owner = owners.get(ref)
                    if owner is not None:
                        self._respond(owner[0], "E", user_ref=owner[1], quantity=qty,
                                      price=price, liquidity=liquidity, match=match)
                        touched.append(ref)
            elif kind == CANCEL:
                owner = owners.get(ev[2])
                if owner is not None:
                    self._respond(owner[0], "C", user_ref=owner[1], quantity=ev[3],
                                  reason=ev[5])
                    touched.append(ev[2])
            elif kind == REPLACE:
                _, sym, old, new, qty, price, side, hidden, _old_qty = ev
                info = self._replacing.pop(new, None)
                if info is None:
                    continue
                acct, orig, ur = info
                owners.pop(old, None)
                acct.live.pop(orig, None)
                owners[new] = (acct, ur)
                acct.live[ur] = new
                order = self.engine.orders.get(new)
                self._respond(
                    acct, "U", orig_user_ref=orig, user_ref=ur, side=side, quantity=qty,
                    symbol=sym, price=price, tif=order.tif if order else ouch.TIF_DAY,
                    display=ouch.DISPLAY_HIDDEN if hidden else ouch.DISPLAY_VISIBLE,
                    order_ref=new,
                    order_state=ouch.STATE_LIVE if order else ouch.STATE_DEAD)
                touched.append(new)
        for ref in touched:
            self._forget(ref)

    # -- SoupBinTCP over TCP ---------------------------------------------------------

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
        """Start listening; the bound port is ``server.sockets[0].getsockname()[1]``."""
        return await asyncio.start_server(self._connection, host, port)

    def _login(self, p: dict) -> tuple[Account | None, str]:
        name, password = p["username"], p["password"]
        if self.users is not None and self.users.get(name) != password:
            return None, soupbintcp.NOT_AUTHORIZED
        if p["session"] not in ("", self.session):
            return None, soupbintcp.SESSION_NOT_AVAILABLE
        acct = self.accounts.get(name)
        if acct is None:
            acct = self.accounts[name] = Account(name, sequenced=True)
        if acct.send is not None:  # already logged in elsewhere
            return None, soupbintcp.SESSION_NOT_AVAILABLE
        return acct, ""

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        self.counters["connections"] += 1
        self._connections.add(writer)
        acct: Account | None = None
        clock = {"sent": loop.time(), "heard": loop.time()}

        def write(packet: bytes) -> None:
            if not writer.is_closing():
                writer.write(packet)
                clock["sent"] = loop.time()

        def drop(reason: str, text: str) -> None:
            self.counters[f"disconnect_{reason}"] += 1
            write(soupbintcp.encode("+", text=text.encode("ascii", "replace")[:1000]))

        async def keepalive() -> None:
            tick = min(self.heartbeat, self.timeout) / 4
            while not writer.is_closing():
                await asyncio.sleep(tick)
                now = loop.time()
                if now - clock["heard"] >= self.timeout:
                    drop("timeout", f"no packet from the client for {self.timeout:g} s")
                    writer.close()
                    return
                if acct is not None and now - clock["sent"] >= self.heartbeat:
                    self.counters["heartbeats_sent"] += 1
                    write(soupbintcp.encode("H"))

        ticker = asyncio.create_task(keepalive())
        buffer = b""
        try:
            while not writer.is_closing():
                data = await reader.read(65536)
                if not data:
                    break
                clock["heard"] = loop.time()
                buffer += data
                try:
                    packets, buffer = soupbintcp.split(buffer)
                    if len(buffer) > _MAX_BUFFER:
                        raise soupbintcp.PacketError("oversized partial packet")
                    decoded = [soupbintcp.decode(b) for b in packets]
                except soupbintcp.PacketError as exc:
                    drop("bad_packet", f"bad SoupBinTCP packet: {exc}")
                    break
                for p in decoded:
                    t = p["type"]
                    if acct is None:
                        if t != "L":
                            drop("not_logged_in", f"packet {t!r} before login")
                            return
                        acct, why = self._login(p)
                        if acct is None:
                            self.counters[f"login_rejected_{why}"] += 1
                            write(soupbintcp.encode("J", reason=why))
                            return
                        self.counters["logins"] += 1
                        seq = p["sequence"] or len(acct.outbox) + 1
                        seq = min(seq, len(acct.outbox) + 1)
                        write(soupbintcp.encode("A", session=self.session, sequence=seq))
                        for raw in acct.outbox[seq - 1:]:
                            write(soupbintcp.encode("S", message=raw))
                        acct.send = lambda raw: write(soupbintcp.encode("S", message=raw))
                    elif t == "U":
                        why = self.handle(acct, p["message"])
                        if why:
                            write(soupbintcp.encode("+", text=why.encode("ascii")))
                    elif t == "R":
                        self.counters["heartbeats_received"] += 1
                    elif t == "O":
                        self.counters["logouts"] += 1
                        return
                    else:
                        drop("unexpected_packet", f"packet {t!r} is not a client packet "
                                                  f"after login")
                        return
        except (ConnectionError, OSError):
            self.counters["disconnect_reset"] += 1
        finally:
            ticker.cancel()
            if acct is not None:
                acct.send = None
            self._connections.discard(writer)
            writer.close()

    def end_of_session(self) -> None:
        """Tell every connected client the session has ended (SoupBinTCP ``Z``)."""
        for writer in list(self._connections):
            if not writer.is_closing():
                writer.write(soupbintcp.encode("Z"))
                writer.close()

    # -- SoupBinTCP over UDP ---------------------------------------------------------

    async def serve_udp(self, host: str = "127.0.0.1", port: int = 0):
        """Start the UDP endpoint; returns the transport (``get_extra_info('sockname')``)."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpOrderEntry(self), local_addr=(host, port))
        return transport

    def udp_datagram(self, data: bytes, addr, sendto) -> None:
        self.counters["udp_datagrams"] += 1
        name = f"udp:{addr[0]}:{addr[1]}"
        acct = self.accounts.get(name)
        if acct is None:
            acct = self.accounts[name] = Account(name, sequenced=False)
            acct.send = lambda raw: sendto(soupbintcp.encode("U", message=raw), addr)

        def debug(reason: str, text: str) -> None:
            self.counters[f"udp_{reason}"] += 1
            sendto(soupbintcp.encode("+", text=text.encode("ascii", "replace")[:1000]), addr)

        try:
            packets, rest = soupbintcp.split(data)
            if rest or not packets:
                raise soupbintcp.PacketError(f"{len(rest)} bytes of an incomplete packet")
            decoded = [soupbintcp.decode(b) for b in packets]
        except soupbintcp.PacketError as exc:
            return debug("bad_datagram", f"bad SoupBinTCP datagram: {exc}")
        for p in decoded:
            if p["type"] != "U":
                debug("unexpected_packet", f"packet {p['type']!r}: only unsequenced data "
                                           f"(U) is taken over UDP")
                continue
            why = self.handle(acct, p["message"])
            if why:
                sendto(soupbintcp.encode("+", text=why.encode("ascii")), addr)


class _UdpOrderEntry(asyncio.DatagramProtocol):
    def __init__(self, gateway: Gateway):
        self.gateway = gateway
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.gateway.udp_datagram(data, addr, self.send)

    def send(self, payload: bytes, addr) -> None:
        self.transport.sendto(payload, addr)
        if self.gateway.recorder is not None:
            self.gateway.recorder.record(payload, addr[:2],
                                         self.transport.get_extra_info("sockname")[:2])

    def error_received(self, exc: Exception) -> None:
        self.gateway.counters["udp_errors"] += 1
