"""The software feed handler: the venue's ITCH 5.0 over MoldUDP64, lines A and B, into a
full-depth order book per symbol, for a platform without an FPGA (``t2t api``).

Design decisions
----------------
- **One receive thread** owns every socket (lines A and B, the retransmission socket) and
  all of the book state; the rest of the platform sees the book through
  :class:`MarketData` (``apply`` with the levels that changed, ``trade`` for prints) and
  the handler's own :meth:`FeedHandler.counters` / :meth:`FeedHandler.status`.
- **The wire layouts are the protocol floor's.** Packets are cut by
  ``protocol.moldudp64.decode_packet``; each ITCH message is read by a ``struct`` built at
  import from ``protocol.itch.MESSAGES`` (only the fields the book needs, the rest
  skipped), so no offset is written down here.
- **An L3 book, aggregated when published.** Orders are kept by reference (book, side,
  price, shares); levels per side are a plain ``dict`` price -> [shares, orders]. The
  levels a packet touched are remembered and, once it is applied, each symbol gets one
  ``MarketData.apply`` with exactly those levels (size 0 for a level that left): the
  sorted view and the per-symbol sequence numbers are ``MarketData``'s job. Under a
  backlog (packets waiting in the socket) up to ``burst`` packets are published at
  once: the store's cost is per call far more than per level, so this is what keeps a
  busy feed from falling behind.
- **Every book is kept, only the selected symbols are published**: an execute or a
  replace names an order, not a symbol, so the orders of every instrument must be
  tracked for the book of any one of them to be right.
- ITCH timestamps are nanoseconds after midnight; they become datetimes (UTC) of the day
  the session was first seen. A book update carries the time of the last message of its
  packet; a trade its own message's time.
"""

from __future__ import annotations

import heapq
import ipaddress
import logging
import selectors
import socket
import struct
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Self

from tick2trade.host.services.marketdata import MarketData
from tick2trade.protocol import itch, moldudp64

log = logging.getLogger(__name__)

Address = tuple[str, int]
LINES = ("A", "B")
RETRANSMIT = "R"  # the line name of packets answering a retransmission request
RCVBUF = 1 << 22  # a second of a busy feed, so a slow moment of the thread drops nothing

_UINT = {1: "B", 2: "H", 4: "I", 8: "Q"}


def _layout(mtype: str, *names: str) -> struct.Struct:
    """A struct that reads the fields ``names`` of ITCH message ``mtype``, in the table's
    order, and skips every other field; a 6-byte field reads as two values (high 16 bits,
    low 32 bits)."""
    msg = itch.MESSAGES[mtype]
    in_table = [f.name for f in msg.fields.values() if f.name in names]
    if in_table != list(names):
        raise ValueError(f"ITCH {mtype!r}: fields {names} are not in the table's order "
                         f"{in_table}")
    fmt = "!x"  # the type byte, already dispatched on
    for f in msg.fields.values():
        if f.name not in names:
            fmt += f"{f.size}x"
        elif f.kind == "a":
            fmt += f"{f.size}s"
        elif f.size == 6:
            fmt += "HI"
        else:
            fmt += _UINT[f.size]
    layout = struct.Struct(fmt)
    if layout.size != msg.length:
        raise ValueError(f"ITCH {mtype!r}: layout {fmt} is {layout.size} bytes, the message "
                         f"{msg.length}")
    return layout


_ADD = _layout("A", "locate", "order_ref", "side", "shares", "stock", "price")
_ADD_MPID = _layout("F", "locate", "order_ref", "side", "shares", "stock", "price")
_EXEC = _layout("E", "timestamp", "order_ref", "executed_shares", "match")
_EXEC_PRICE = _layout("C", "timestamp", "order_ref", "executed_shares", "match",
                      "printable", "execution_price")
_CANCEL = _layout("X", "order_ref", "cancelled_shares")
_DELETE = _layout("D", "order_ref")
_REPLACE = _layout("U", "order_ref", "new_ref", "shares", "price")
_TRADE = _layout("P", "locate", "timestamp", "side", "shares", "stock", "price", "match")
_CROSS = _layout("Q", "locate", "timestamp", "shares", "stock", "cross_price", "match")
_DIRECTORY = _layout("R", "locate", "stock")
# every message starts with the common header, and none is shorter than S
_STAMP = _layout("S", "timestamp")
_LENGTH = [-1] * 256  # by type byte; -1: not an ITCH 5.0 type
for _t, _m in itch.MESSAGES.items():
    _LENGTH[ord(_t)] = _m.length
_A, _F, _E, _C, _X, _D, _U, _P, _Q, _R = (ord(t) for t in "AFECXDUPQR")
_SIDE = {b"B": "buy", b"S": "sell"}

COUNTERS = (
    "packets",        # datagrams that were MoldUDP64 packets of the followed session
    "heartbeats",     # of them, heartbeats (count 0)
    "messages",       # ITCH messages taken in sequence (bad ones included)
    "duplicates",     # packets whose every message was applied already (the other line)
    "gaps",           # holes opened in the sequence
    "gap_messages",   # messages missing when those holes opened
    "recovered",      # messages applied from retransmission answers
    "requests",       # retransmission requests sent
    "timeouts",       # requests that went unanswered for ``timeout`` and were sent again
    "malformed",      # datagrams that are no complete MoldUDP64 packet
    "bad_messages",   # ITCH messages of an unknown type or the wrong length (skipped)
    "unknown_ref",    # E, C, X, D, U naming no live order (nothing changed)
    "dup_ref",        # A, F, U onto a live reference (the old order is removed first)
    "clamped",        # executes and cancels of more shares than the order had
    "rejected",       # adds and replaces with no shares or no price
    "trades",         # prints given to the market (E, printable C, P, Q)
    "book_updates",   # MarketData.apply calls
    "wrong_session",  # packets of another session than the followed one
    "sessions",       # sessions followed (a change resets every book)
    "held_dropped",   # packets beyond a gap not held (``max_held``); re-requested later
    "errors",         # datagrams whose handling raised (logged; the thread goes on)
)


class _Book:
    """Both sides of one instrument: price -> [shares, orders], and the prices a packet
    changed (published, then cleared, when the packet is done)."""

    __slots__ = ("asks", "bids", "changed_asks", "changed_bids", "published", "symbol",
                 "touched")

    def __init__(self, symbol: str, published: bool):
        self.symbol = symbol
        self.published = published
        self.bids: dict[int, list[int]] = {}
        self.asks: dict[int, list[int]] = {}
        self.changed_bids: set[int] = set()
        self.changed_asks: set[int] = set()
        self.touched = False


def _symbol(raw: bytes) -> str:
    return raw.decode("latin-1").rstrip(" ")


def _listen(address: Address) -> socket.socket:
    """A UDP socket receiving ``address``: a unicast address and port (port 0: any free
    one), or a multicast group joined on the default interface (best effort: a host
    without a multicast route still gets a socket, logged)."""
    host, port = address
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    except OSError:
        pass
    if ipaddress.IPv4Address(host).is_multicast:
        # lines A and B share a port on different groups: bind the group so each socket
        # sees only its own, and let both bind the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                            socket.inet_aton(host) + socket.inet_aton("0.0.0.0"))
        except OSError as exc:
            log.warning("feed: cannot join multicast group %s (%s); listening anyway",
                        host, exc)
    else:
        sock.bind((host, port))
    sock.setblocking(False)
    return sock


class FeedHandler:
    """The venue's ITCH feed over MoldUDP64 (lines A and B) into a full-depth L3 book per
    symbol, published to ``market``.

    Parameters
    ----------
    market:
        Where books (``apply``, ``source="feed"``, every level: ``depth`` None) and trade
        prints (``trade``) go.
    lines:
        ``[(host, port), ...]`` of lines A and B: a unicast address to bind (port 0: a
        free one, see :attr:`addresses`) or a multicast group to join (on the default
        interface; both lines may share a port). Empty: no sockets, packets come through
        :meth:`process` only (tests, captures). The default is the venue simulator's:
        NASDAQ's groups (``moldudp64.DEFAULT_LINE_A``, ``DEFAULT_LINE_B``).
    retransmit:
        The venue's retransmission server (the venue simulator's default is the
        handler's), or None: gaps are then counted and stay open.
    symbols:
        Publish only these symbols (every book is still kept; see the module's notes).
        None: all.
    session:
        The MoldUDP64 session to follow. None: the first one seen, and a new session
        replaces it (the venue restarted).
    timeout:
        Seconds a retransmission request may go unanswered before it is sent again.
    gap_wait:
        Seconds a gap may stay open before it is requested: the other line's copy of a
        packet is often just behind.
    max_held:
        Packets beyond a gap held for applying once it is filled; more are dropped (and
        requested again with the gap).
    burst:
        Packets read back to back (a backlog) are published together, up to this many:
        one ``apply`` per symbol for all of them. A packet that arrives alone is
        published as soon as it is applied.

    Arbitration
    -----------
    Both lines share one expected sequence number. A packet starting at it is applied
    and the expected number moves past its messages; a packet wholly before it is a
    duplicate (the other line's copy, or a late retransmission) and counted; one that
    overlaps it has only its new messages applied. A heartbeat applies nothing but
    announces the next sequence number, so a lost last packet shows as a gap. The
    end-of-session packet ends the session once everything before it is applied; packets
    of another session are counted and dropped, unless ``session`` is None, when a
    session never seen before starts over: every book is cleared (an empty snapshot of
    each published symbol) and sequence 1 is expected.

    Recovery
    --------
    A packet beyond the expected number opens a gap: it is held (the book is not updated
    past the gap, so it is stale but never wrong), and after ``gap_wait`` a request for
    the missing range (``moldudp64.encode_request``, at most ``MAX_COUNT`` messages) goes
    to ``retransmit``. The server answers with one packet of as many messages as fit its
    payload; each answer that moves the expected number is followed at once by a request
    for what is still missing; a request unanswered for ``timeout`` counts a timeout and
    is sent again, for as long as the gap is open. Once the gap is filled the held packets
    are applied in order. :meth:`status` says whether a gap is open and since when.

    Book rules
    ----------
    A and F add an order (an add onto a live reference replaces it: ``dup_ref``); E and C
    execute shares, X cancels them, D deletes the order, U replaces it by a new
    reference, price and size on the same side (its old place is lost). More shares than
    the order has remove it (``clamped``; the print keeps the shares executed); a
    reference that is not live changes nothing (``unknown_ref``); an add or replace with
    no shares or a zero price is not booked (``rejected``). R maps a stock locate to a symbol. E, printable C, P and Q
    are trade prints (E at the resting order's price, the side the resting order's); P
    and Q change no book.
    """

    def __init__(self, market: MarketData,
                 lines: Iterable[Address] = (moldudp64.DEFAULT_LINE_A,
                                             moldudp64.DEFAULT_LINE_B), *,
                 retransmit: Address | None = ("127.0.0.1", 26478),
                 symbols: set[str] | None = None, session: str | bytes | None = None,
                 timeout: float = 0.25, gap_wait: float = 0.002,
                 max_held: int = 100_000, burst: int = 32) -> None:
        self.market = market
        self.symbols = set(symbols) if symbols is not None else None
        self.retransmit = retransmit
        self.timeout, self.gap_wait, self.max_held = timeout, gap_wait, max_held
        self.burst = burst
        self._fixed_session = moldudp64.session_bytes(session) if session is not None \
            else None
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.Lock()  # the book's readers against the receive thread
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._sockets: dict[str, socket.socket] = {}
        try:
            for name, address in zip(LINES, lines, strict=False):
                try:
                    self._sockets[name] = _listen(address)
                except OSError as exc:
                    raise OSError(exc.errno, f"feed line {name}: cannot listen on "
                                             f"{address[0]}:{address[1]} ({exc.strerror})"
                                  ) from None
            if retransmit is not None:  # answers come back to where the request left
                local = "127.0.0.1" if ipaddress.IPv4Address(retransmit[0]).is_loopback \
                    else "0.0.0.0"
                self._sockets[RETRANSMIT] = _listen((local, 0))
        except BaseException:
            self.close()
            raise
        self._ended_sessions: set[bytes] = set()
        self._reset(self._fixed_session)

    # --- state ----------------------------------------------------------------------------

    def _reset(self, session: bytes | None) -> None:
        self._session = session
        self._expected = 1
        self._known_end = 1        # one past the highest sequence number heard of
        self._end_seq: int | None = None  # where the end-of-session packet said it ends
        self.ended = False
        self._held: dict[int, list[bytes]] = {}
        self._held_seqs: list[int] = []  # a heap of the keys of _held
        self._gap_since: float | None = None
        self._request_at: float | None = None
        self._request_seq = 0
        self._books: dict[int, _Book] = {}  # by stock locate
        self._by_symbol: dict[str, _Book] = {}
        self._orders: dict[int, list] = {}  # ref -> [book, is_bid, price, shares]
        self._touched: list[_Book] = []
        self._prints: list[tuple] = []
        self._cleared: set[str] = set()  # symbols whose book a new session emptied
        self._last = b""  # the last message applied: its time stamps the book updates
        self._midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0,
                                                   microsecond=0)

    @property
    def addresses(self) -> dict[str, Address]:
        """Where each socket listens: ``{"A": (host, port), "B": ..., "R": ...}``."""
        return {name: s.getsockname()[:2] for name, s in self._sockets.items()}

    def counters(self) -> dict[str, int]:
        """Every counter of :data:`COUNTERS`, as of now."""
        return dict(self._counts)

    def status(self) -> dict:
        """The sequence state: ``session``, ``next_seq`` (expected), ``known_end`` (one
        past the highest heard of), ``gap_open`` and ``gap_seconds`` (how long the book
        has been stale), ``held`` (packets waiting), ``ended``."""
        with self._lock:
            since = self._gap_since
            return {"session": self._session.decode("latin-1") if self._session else None,
                    "next_seq": self._expected, "known_end": self._known_end,
                    "gap_open": self._expected < self._known_end,
                    "gap_seconds": time.monotonic() - since if since is not None else 0.0,
                    "held": len(self._held), "ended": self.ended}

    def book(self, symbol: str) -> dict[str, list[tuple[int, int, int]]] | None:
        """The handler's own book of ``symbol``: ``{"bids": [(price, shares, orders)],
        "asks": ...}`` best first, or None when the feed never named it."""
        with self._lock:
            b = self._by_symbol.get(symbol)
            if b is None:
                return None
            return {"bids": [(p, *b.bids[p]) for p in sorted(b.bids, reverse=True)],
                    "asks": [(p, *b.asks[p]) for p in sorted(b.asks)]}

    def book_symbols(self) -> list[str]:
        """Every symbol the feed named (stock directory, adds, prints)."""
        with self._lock:
            return sorted(self._by_symbol)

    def live_orders(self) -> int:
        """Orders resting in the books, all symbols."""
        return len(self._orders)

    # --- the thread -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the receive thread is up (``GET /ready``)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> FeedHandler:
        """Start the receive thread (returns the handler, for ``with``/chaining)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the feed handler is running already")
        if self._wake_r.fileno() == -1:
            raise RuntimeError("the feed handler is closed: make a new one")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="feed", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the receive thread and wait for it; the sockets stay open (``close``), so
        :meth:`start` may run it again. Idempotent: a handler never started, or stopped
        already, returns at once. Called from the feed thread itself (a market listener),
        it only asks the thread to end after the current packet, since a thread cannot
        join itself."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass
        if thread is threading.current_thread():
            return
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"the feed thread did not stop within {timeout} s")
        if self._thread is thread:
            self._thread = None

    def close(self) -> None:
        """Stop, then close every socket; idempotent."""
        self.stop()
        for s in self._sockets.values():
            s.close()
        self._sockets = {}
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        for name, sock in self._sockets.items():
            sel.register(sock, selectors.EVENT_READ, name)
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(self._wait()):
                    if key.data is None:
                        self._wake_r.recv(64)
                        continue
                    sock, line = key.fileobj, key.data
                    burst = 0
                    while True:  # drain: a round reads every line before a gap is judged
                        try:
                            payload = sock.recv(65536)
                        except (BlockingIOError, InterruptedError):
                            break
                        except OSError:  # e.g. ICMP port unreachable from a request
                            break
                        self.process(payload, line, check=False, publish=False)
                        burst += 1
                        if burst == self.burst:
                            self.publish()
                            burst = 0
                            if self._stop.is_set():  # a flood must not hold stop() off
                                break
                self.publish()
                self.check()
        finally:
            sel.close()

    def _wait(self) -> float:
        """Seconds the selector may sleep: until the next gap deadline, else a while."""
        if self._gap_since is None:
            return 0.5
        now = time.monotonic()
        due = (self._request_at + self.timeout if self._request_at is not None
               else self._gap_since + self.gap_wait)
        return max(0.0, min(due - now, 0.5))

    # --- packets --------------------------------------------------------------------------

    def process(self, payload: bytes, line: str = "A", *, check: bool = True,
                publish: bool = True) -> None:
        """One datagram from ``line`` ("A", "B", or "R" for a retransmission answer): the
        receive thread's entry point, and the way to feed a capture without sockets.
        ``check``: judge the gap state afterwards (send a request when one is due);
        ``publish``: hand the market what changed (else :meth:`publish` does, later)."""
        try:
            with self._lock:
                self._packet(payload, line)
        except Exception:
            self._counts["errors"] += 1
            log.exception("feed: a packet from line %s could not be handled", line)
        if publish:
            self.publish()
        if check:
            self.check()

    def _packet(self, payload: bytes, line: str) -> None:
        c = self._counts
        pkt = moldudp64.decode_packet(payload)
        if pkt is None or not pkt.complete:
            c["malformed"] += 1
            return
        if pkt.session != self._session:
            if self._fixed_session is not None or pkt.session in self._ended_sessions \
                    or (line == RETRANSMIT and self._session is not None):
                c["wrong_session"] += 1
                return
            self._new_session(pkt.session)
        c["packets"] += 1
        seq, count = pkt.seq, pkt.count
        if count == moldudp64.END_OF_SESSION:
            self._end_seq = seq
            self._heard(seq, seq)
            self._advance()
            return
        if count == 0:
            c["heartbeats"] += 1
            self._heard(seq, seq)
            return
        if self.ended:
            c["duplicates"] += 1
            return
        end = seq + count
        expected = self._expected
        if end <= expected:
            c["duplicates"] += 1
            return
        self._heard(seq, end)
        if seq > expected:  # beyond a gap: hold it until the gap is filled
            if seq in self._held:
                if len(self._held[seq]) >= count:
                    c["duplicates"] += 1
                    return
            elif len(self._held) >= self.max_held:
                c["held_dropped"] += 1
                return
            else:
                heapq.heappush(self._held_seqs, seq)
            self._held[seq] = pkt.messages
            return
        messages = pkt.messages[expected - seq:]
        self._apply(messages)
        self._expected = end
        if line == RETRANSMIT:
            c["recovered"] += len(messages)
        self._advance()

    def _heard(self, seq: int, end: int) -> None:
        """Messages ``seq`` to ``end`` (exclusive) exist: those before ``seq`` that were
        neither applied nor heard of are a new hole."""
        known = max(self._known_end, self._expected)
        if seq > known:
            self._counts["gaps"] += 1
            self._counts["gap_messages"] += seq - known
            if self._gap_since is None:
                self._gap_since = time.monotonic()
        self._known_end = max(self._known_end, end)

    def _advance(self) -> None:
        """Apply held packets that now start at or before the expected number; close the
        gap when nothing is missing; end the session when its end is reached."""
        held, seqs = self._held, self._held_seqs
        while seqs and seqs[0] <= self._expected:
            seq = heapq.heappop(seqs)
            messages = held.pop(seq)
            end = seq + len(messages)
            if end > self._expected:
                self._apply(messages[self._expected - seq:])
                self._expected = end
        if self._expected >= self._known_end:
            self._gap_since = None
            self._request_at = None
        if self._end_seq is not None and self._expected >= self._end_seq:
            self.ended = True
            self._ended_sessions.add(self._session)

    def _new_session(self, session: bytes) -> None:
        """Start over on ``session``: the books of the old one are emptied, in the market
        too (the handler's lock is held, so the market is told by :meth:`publish`)."""
        self._cleared.update(b.symbol for b in self._books.values() if b.published)
        cleared, prints = self._cleared, self._prints  # not yet told: the market must be
        self._reset(session)
        self._cleared, self._prints = cleared, prints
        self._counts["sessions"] += 1

    # --- gaps -----------------------------------------------------------------------------

    def check(self, now: float | None = None) -> None:
        """Send the retransmission request that is due, if one is: the first after
        ``gap_wait``, the next at once when the last one was answered, again after
        ``timeout`` when it was not."""
        with self._lock:
            if self._gap_since is None or RETRANSMIT not in self._sockets:
                return
            now = time.monotonic() if now is None else now
            if self._request_at is None:
                if now - self._gap_since < self.gap_wait:
                    return
            elif self._expected == self._request_seq:
                if now - self._request_at < self.timeout:
                    return
                self._counts["timeouts"] += 1
            first = self._expected
            stop = self._held_seqs[0] if self._held_seqs else self._known_end
            count = min(stop - first, moldudp64.MAX_COUNT)
            if count <= 0:
                return
            request = moldudp64.encode_request(self._session, first, count)
            self._request_at, self._request_seq = now, first
            self._counts["requests"] += 1
        try:
            self._sockets[RETRANSMIT].sendto(request, self.retransmit)
        except OSError as exc:  # no route: the timeout will try again
            log.warning("feed: retransmission request to %s failed: %s", self.retransmit,
                        exc)

    # --- messages -------------------------------------------------------------------------

    def _book(self, locate: int, stock: bytes) -> _Book:
        symbol = _symbol(stock)
        book = _Book(symbol, self.symbols is None or symbol in self.symbols)
        self._books[locate] = self._by_symbol[symbol] = book
        return book

    def _apply(self, messages: list[bytes]) -> None:
        """The book changes of ``messages``, in order; levels and prints pile up for
        :meth:`publish`. One function with local names: this is the hot path."""
        orders, books, touched, prints = self._orders, self._books, self._touched, \
            self._prints
        lengths = _LENGTH
        add, add_mpid, delete = _ADD.unpack_from, _ADD_MPID.unpack_from, _DELETE.unpack_from
        unknown = dup = clamped = rejected = bad = 0
        for msg in messages:
            t = msg[0] if msg else 0
            if lengths[t] != len(msg):
                bad += 1
                continue
            if t == _F or t == _A:
                locate, ref, side, shares, stock, price = (
                    add_mpid if t == _F else add)(msg)
                if not shares or not price or (side != b"B" and side != b"S"):
                    rejected += 1
                    continue
                book = books.get(locate) or self._book(locate, stock)
                old = orders.get(ref)
                if old is not None:
                    dup += 1
                    self._remove(ref, old)
                bid = side == b"B"
                levels = book.bids if bid else book.asks
                lvl = levels.get(price)
                if lvl is None:
                    levels[price] = [shares, 1]
                else:
                    lvl[0] += shares
                    lvl[1] += 1
                orders[ref] = [book, bid, price, shares]
                (book.changed_bids if bid else book.changed_asks).add(price)
            elif t == _D:  # _remove, written out: the most common message after adds
                ref, = delete(msg)
                o = orders.pop(ref, None)
                if o is None:
                    unknown += 1
                    continue
                book, bid, price, shares = o
                levels = book.bids if bid else book.asks
                lvl = levels[price]
                if lvl[1] == 1:
                    del levels[price]
                else:
                    lvl[0] -= shares
                    lvl[1] -= 1
                (book.changed_bids if bid else book.changed_asks).add(price)
            elif t == _X or t == _E or t == _C:
                if t == _X:
                    ref, shares = _CANCEL.unpack_from(msg)
                elif t == _E:
                    hi, lo, ref, shares, match = _EXEC.unpack_from(msg)
                else:
                    hi, lo, ref, shares, match, printable, xprice = \
                        _EXEC_PRICE.unpack_from(msg)
                o = orders.get(ref)
                if o is None:
                    unknown += 1
                    continue
                book, bid, price, left = o
                if shares >= left:
                    # more than the order has: the book lost something before; the print
                    # below still says what the venue executed
                    clamped += shares > left
                    self._remove(ref, o)
                else:
                    o[3] = left - shares
                    (book.bids if bid else book.asks)[price][0] -= shares
                    (book.changed_bids if bid else book.changed_asks).add(price)
                if t == _E:
                    prints.append((book, price, shares, hi << 32 | lo,
                                   "buy" if bid else "sell", match))
                elif t == _C and printable == b"Y":
                    prints.append((book, xprice, shares, hi << 32 | lo,
                                   "buy" if bid else "sell", match))
            elif t == _U:
                ref, new_ref, shares, price = _REPLACE.unpack_from(msg)
                o = orders.get(ref)
                if o is None:
                    unknown += 1
                    continue
                self._remove(ref, o)
                book, bid = o[0], o[1]
                if not shares or not price:
                    rejected += 1
                else:
                    old = orders.get(new_ref)
                    if old is not None:
                        dup += 1
                        self._remove(new_ref, old)
                    self._insert(new_ref, book, bid, price, shares)
            elif t == _P or t == _Q:
                if t == _P:
                    locate, hi, lo, side, shares, stock, price, match = \
                        _TRADE.unpack_from(msg)
                    side = _SIDE.get(side)
                else:
                    locate, hi, lo, shares, stock, price, match = _CROSS.unpack_from(msg)
                    side = None
                book = books.get(locate) or self._book(locate, stock)
                prints.append((book, price, shares, hi << 32 | lo, side, match))
                continue
            elif t == _R:
                locate, stock = _DIRECTORY.unpack_from(msg)
                old = books.get(locate)
                if old is None or old.symbol != _symbol(stock):
                    self._book(locate, stock)
                continue
            else:
                continue  # system events, halts, imbalances: nothing for the book
            if not book.touched:
                book.touched = True
                touched.append(book)
        if messages:
            self._last = messages[-1]
        c = self._counts
        c["messages"] += len(messages)
        if unknown or dup or clamped or rejected or bad:
            c["unknown_ref"] += unknown
            c["dup_ref"] += dup
            c["clamped"] += clamped
            c["rejected"] += rejected
            c["bad_messages"] += bad

    def _insert(self, ref: int, book, bid: bool, price: int, shares: int) -> None:
        """Put order ``ref`` on its level (the add path has this written out, for speed)."""
        levels = book.bids if bid else book.asks
        lvl = levels.get(price)
        if lvl is None:
            levels[price] = [shares, 1]
        else:
            lvl[0] += shares
            lvl[1] += 1
        self._orders[ref] = [book, bid, price, shares]
        (book.changed_bids if bid else book.changed_asks).add(price)

    def _remove(self, ref: int, o: list) -> None:
        """Take order ``ref`` (``o``: [book, is_bid, price, shares]) off its level."""
        book, bid, price, shares = o
        del self._orders[ref]
        levels = book.bids if bid else book.asks
        lvl = levels[price]
        if lvl[1] == 1:
            del levels[price]
        else:
            lvl[0] -= shares
            lvl[1] -= 1
        (book.changed_bids if bid else book.changed_asks).add(price)
        if not book.touched:
            book.touched = True
            self._touched.append(book)

    def publish(self) -> None:
        """Hand the market what the messages applied since the last call changed: one
        ``apply`` per touched symbol with every level it changed, then the prints in feed
        order. The changes are taken under the handler's lock and handed over outside
        it, so a listener of the market may read the handler."""
        with self._lock:
            if not self._touched and not self._prints and not self._cleared:
                return
            cleared, self._cleared = self._cleared, set()
            updates = self._changes()
            prints = self._prints
            self._prints = []
            midnight = self._midnight
        market = self.market
        for symbol in cleared:
            market.snapshot(symbol, [], [], source="feed")
        for symbol, bids, asks, ts in updates:
            market.apply(symbol, bids, asks, ts=ts, source="feed")
        for book, price, shares, stamp, side, match in prints:
            if book.published:
                market.trade(book.symbol, price, shares,
                             midnight + timedelta(microseconds=stamp // 1000),
                             side=side, match=match)
        self._counts["book_updates"] += len(updates)
        self._counts["trades"] += sum(1 for p in prints if p[0].published)

    def _changes(self) -> list[tuple]:
        """(symbol, bid levels, ask levels, time) of each touched, published book; the
        touched marks are cleared."""
        out = []
        ts = None
        if len(self._last) >= itch.MIN_LENGTH:
            hi, lo = _STAMP.unpack_from(self._last)
            ts = self._midnight + timedelta(microseconds=(hi << 32 | lo) // 1000)
        for book in self._touched:
            book.touched = False
            if book.published:
                bids, asks = book.bids, book.asks
                out.append((book.symbol,
                            [(p, *bids[p]) if p in bids else (p, 0, 0)
                             for p in book.changed_bids],
                            [(p, *asks[p]) if p in asks else (p, 0, 0)
                             for p in book.changed_asks], ts))
            book.changed_bids.clear()
            book.changed_asks.clear()
        self._touched.clear()
        return out
