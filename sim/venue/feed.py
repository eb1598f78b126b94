"""ITCH 5.0 publisher: the engine's events as market data in MoldUDP64 packets.

The publisher turns :mod:`sim.venue.engine` events into ITCH messages (encoded by
``protocol.itch``, the one definition of the layouts), numbers them, keeps every
message of the session in a log for retransmission, and packs them into MoldUDP64
packets (``protocol.moldudp64``) no larger than ``max_payload`` bytes.

Design decisions
----------------
- Only what the displayed book needs is published, so a receiver that applies the feed to
  an order book (``gateware.models.book.BookModel``) holds exactly the venue's displayed
  book: hidden orders never appear; an execution of a displayed order is ``E``; of a
  hidden one a ``P`` trade (order reference 0, the resting side), which changes no book.
- A cancel that leaves shares is ``X`` (shares cancelled), one that leaves none ``D``.
- A cancel-replace that kept its priority (same price, fewer shares, same reference) is an
  ``X`` of the difference: ITCH's ``U`` always means a new reference and lost priority.
  A replace with a new reference is ``U`` when the new order rests, and ``D`` of the old
  reference when the replacement executed in full on arrival.
- With ``attribution`` on, orders whose owner is a short string (an MPID, at most 4
  characters) go out as ``F`` (add with attribution); the rest as ``A``.
- Message order is the engine's: executions are published in the order they happened,
  and each message carries the timestamp given to :meth:`Publisher.publish` (the caller's
  clock, so a seeded run is reproducible byte for byte).
- Packets are cut when the next message would not fit ``max_payload`` (the UDP payload:
  20-byte header plus a 2-byte length per message) or the count would pass MoldUDP64's
  maximum; :meth:`Publisher.flush` sends a partly filled packet.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from tick2trade.protocol import itch, moldudp64

from tick2trade.sim.venue.engine import ADD, CANCEL, EXEC, REPLACE, Instrument

DEFAULT_SESSION = "T2T0000001"
DEFAULT_MAX_PAYLOAD = 1400  # fits a 1500-byte MTU with IPv4/UDP and VLAN headers
START_EVENTS = ("O", "S", "Q")  # start of messages, of system hours, of market hours
END_EVENTS = ("M", "E", "C")  # end of market hours, of system hours, of messages


def ns_since_midnight() -> int:
    """Wall-clock ITCH timestamp (UTC)."""
    return time.time_ns() % 86_400_000_000_000


class Publisher:
    """Engine events in, numbered ITCH messages and MoldUDP64 packets out.

    Parameters
    ----------
    instruments:
        Every instrument the engine trades; the stock locate comes from each.
    session:
        The MoldUDP64 session (up to 10 ASCII characters).
    max_payload:
        Largest MoldUDP64 packet, header included (bytes).
    attribution:
        Publish adds of orders with a string owner of 1-4 characters as ``F``.

    Members
    -------
    log:
        Every message of the session; message ``seq`` is ``log[seq - 1]``.
    counters:
        ``messages``, ``packets``, ``heartbeats`` sent and ``by_type`` per ITCH type.
    """

    def __init__(self, instruments: Iterable[Instrument], *, session: str = DEFAULT_SESSION,
                 max_payload: int = DEFAULT_MAX_PAYLOAD, attribution: bool = False):
        self.instruments = {i.symbol: i for i in instruments}
        self.locates = {s: i.locate for s, i in self.instruments.items()}
        self.session = moldudp64.session_bytes(session)
        smallest = moldudp64.HEADER + 2 + itch.MAX_LENGTH
        if max_payload < smallest:
            raise ValueError(f"max_payload {max_payload}: a packet must hold at least one "
                             f"message of the longest type ({smallest} bytes)")
        self.max_payload = max_payload
        self.attribution = attribution
        self.log: list[bytes] = []
        self._pending: list[bytes] = []  # published, not yet in a packet
        self._pending_bytes = moldudp64.HEADER
        self._pending_seq = 1
        self.ended = False
        self.counters = {"messages": 0, "packets": 0, "heartbeats": 0}
        self.by_type: dict[str, int] = {}

    @property
    def next_seq(self) -> int:
        """Sequence number the next message will get."""
        return len(self.log) + 1

    # -- messages -----------------------------------------------------------------------

    def _emit(self, raw: bytes) -> None:
        self.log.append(raw)
        self._pending.append(raw)
        self.by_type[chr(raw[0])] = self.by_type.get(chr(raw[0]), 0) + 1

    def start_of_day(self, timestamp: int) -> None:
        """System events up to the open and one stock directory per instrument."""
        self.system_event("O", timestamp)
        for inst in self.instruments.values():
            self._emit(itch.encode(
                "R", locate=inst.locate, timestamp=timestamp, stock=inst.symbol,
                market_category="Q" if inst.kind == "equity" else " ", financial_status="N",
                round_lot_size=inst.round_lot, round_lots_only="N",
                issue_classification="C" if inst.kind == "equity" else " ",
                authenticity="P", short_sale_threshold="N", ipo_flag="N", luld_tier="1",
                etp_flag="N", inverse="N"))
        for code in START_EVENTS[1:]:
            self.system_event(code, timestamp)

    def end_of_day(self, timestamp: int) -> None:
        for code in END_EVENTS:
            self.system_event(code, timestamp)

    def system_event(self, code: str, timestamp: int) -> None:
        self._emit(itch.encode("S", locate=0, timestamp=timestamp, event_code=code))

    def publish(self, events: Iterable[tuple], timestamp: int) -> int:
        """Turn engine events into ITCH messages; returns how many were published."""
        before = len(self.log)
        locates, emit, enc = self.locates, self._emit, itch.encode
        for ev in events:
            kind, sym = ev[0], ev[1]
            loc = locates[sym]
            if kind == ADD:
                _, _, ref, side, qty, price, hidden, owner = ev
                if hidden:
                    continue
                if self.attribution and isinstance(owner, str) and 0 < len(owner) <= 4:
                    emit(enc("F", locate=loc, timestamp=timestamp, order_ref=ref, side=side,
                             shares=qty, stock=sym, price=price, attribution=owner))
                else:
                    emit(enc("A", locate=loc, timestamp=timestamp, order_ref=ref, side=side,
                             shares=qty, stock=sym, price=price))
            elif kind == EXEC:
                _, _, ref, qty, price, match, _taker, side, hidden = ev
                if hidden:
                    emit(enc("P", locate=loc, timestamp=timestamp, order_ref=0, side=side,
                             shares=qty, stock=sym, price=price, match=match))
                else:
                    emit(enc("E", locate=loc, timestamp=timestamp, order_ref=ref,
                             executed_shares=qty, match=match))
            elif kind == CANCEL:
                _, _, ref, cancelled, remaining, _reason, published = ev
                if not published:
                    continue
                if remaining:
                    emit(enc("X", locate=loc, timestamp=timestamp, order_ref=ref,
                             cancelled_shares=cancelled))
                else:
                    emit(enc("D", locate=loc, timestamp=timestamp, order_ref=ref))
            elif kind == REPLACE:
                _, _, old, new, qty, price, _side, hidden, old_qty = ev
                if hidden:
                    continue
                if new == old:
                    if qty < old_qty:
                        emit(enc("X", locate=loc, timestamp=timestamp, order_ref=old,
                                 cancelled_shares=old_qty - qty))
                elif qty:
                    emit(enc("U", locate=loc, timestamp=timestamp, order_ref=old,
                             new_ref=new, shares=qty, price=price))
                else:
                    emit(enc("D", locate=loc, timestamp=timestamp, order_ref=old))
            else:
                raise ValueError(f"unknown engine event {ev!r}")
        return len(self.log) - before

    # -- packets ------------------------------------------------------------------------

    def packets(self) -> list[bytes]:
        """Full packets of the messages published so far; a partial last packet stays
        pending until more messages fill it or :meth:`flush`."""
        return self._pack(final=False)

    def flush(self) -> list[bytes]:
        """Every pending message in packets, the last one possibly short."""
        return self._pack(final=True)

    def _pack(self, final: bool) -> list[bytes]:
        out = []
        pending, seq = self._pending, self._pending_seq
        start, size, limit = 0, moldudp64.HEADER, self.max_payload
        for i, raw in enumerate(pending):
            if size + 2 + len(raw) > limit or i - start == moldudp64.MAX_COUNT:
                out.append(moldudp64.encode_packet(self.session, seq, pending[start:i]))
                seq += i - start
                start, size = i, moldudp64.HEADER
            size += 2 + len(raw)
        if final and start < len(pending):
            out.append(moldudp64.encode_packet(self.session, seq, pending[start:]))
            seq += len(pending) - start
            start = len(pending)
        self._pending = pending[start:]
        self._pending_seq = seq
        self.counters["packets"] += len(out)
        self.counters["messages"] = seq - 1
        return out

    def heartbeat(self) -> bytes:
        """A heartbeat announcing the next sequence number (send after a quiet second)."""
        self.counters["heartbeats"] += 1
        return moldudp64.encode_heartbeat(self.session, self._pending_seq)

    def end_of_session(self) -> list[bytes]:
        """Pending messages, then the end-of-session packet; nothing may follow."""
        out = self.flush()
        self.ended = True
        return out + [moldudp64.encode_end_of_session(self.session, self._pending_seq)]

    def retransmit(self, seq: int, count: int) -> bytes | None:
        """One packet re-sending up to ``count`` logged messages from ``seq`` (fewer when
        they do not fit ``max_payload`` or were not sent yet); None when ``seq`` is not a
        message that was sent."""
        sent = self._pending_seq - 1
        if count <= 0 or not 1 <= seq <= sent:
            return None
        msgs, size = [], moldudp64.HEADER
        for raw in self.log[seq - 1:min(sent, seq - 1 + count, seq - 1 + moldudp64.MAX_COUNT)]:
            if size + 2 + len(raw) > self.max_payload:
                break
            msgs.append(raw)
            size += 2 + len(raw)
        return moldudp64.encode_packet(self.session, seq, msgs)
