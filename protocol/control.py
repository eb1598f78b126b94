"""The host ↔ FPGA control protocol, defined once: request, reply and event frames (the
golden models of the CSR bank and the control endpoint are ``gateware/models/control/``).

Used by the gateware tests, the virtual FPGA process (``sim/device.py``), the host driver
(``host/device/``) and the loopback board responder of the tests. The byte layout is
documented in ``docs/control.md``; every integer is big-endian.

A control frame is one UDP payload::

    header (8): magic (2) = 0x5432 "T2", version (1) = 1, kind (1), seq (2), count (2)
    request (kind 1): count ops of 8 bytes: op (1), 0 (1), address (2), value (4)
    reply   (kind 2): the ops echoed in order: op (1), status (1), address (2), value (4)
    event   (kind 3): count records of 32 bytes: type (1), then the type's body

Design decisions
----------------
* Fixed 8-byte ops at 8-byte offsets: the gateware walks them one byte per cycle with a
  counter, no length field to trust. The frame length must be exactly
  ``8 + 8 * count`` with ``1 <= count <= MAX_OPS``, so a frame that was cut, padded or
  glued to another is recognised before anything in it is acted on.
* Checks in order, the first failure names the drop: shorter than a header or longer
  than a request can be (``bad_length``), magic (``bad_magic``), version
  (``bad_version``), kind not a request (``bad_kind``), count and length
  (``bad_length``). Dropped frames get no reply: a reply to garbage could be aimed at
  anyone.
* A well-formed request is executed op by op, in order; an op the bank refuses (no such
  address, write to a read-only word) or an unknown op code gets a status in its reply
  slot and the other ops still run. A read returns the value; a write echoes the value
  written.
* The reply carries the request's ``seq``: the host matches replies to requests and
  retries on a timeout (reads are idempotent; a retried write writes the same value again,
  which every ``rw`` register tolerates — ``pulse`` and FIFO pops are not retried blindly by
  the driver).
* Events carry their own ``seq`` (per event frame, wrapping at 2**16), so the host sees
  lost event frames; events the FPGA could not queue are counted in the FIFO overflow
  counters.
* Book records (``EV_BOOK``) also number the book's updates (32 bits, every update counts,
  sent or not): the host sees a lost update even when no event frame was lost (the
  tap's FIFO was full) and rereads the book (``host.services.fpgabook``).
* Trade records (``EV_TRADE``) number the prints the same way (32 bits, every print
  counts, sent or not). A lost print cannot be read back from the FPGA: the host counts
  it and goes on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = 0x5432
VERSION = 1
DEVICE_ID = 0x54325400 | VERSION  # "T2T", protocol version: sys.id
KIND_REQUEST, KIND_REPLY, KIND_EVENT = 1, 2, 3
HEADER = struct.Struct("!HBBHH")
OP = struct.Struct("!BBHI")
MAX_OPS = 32
MAX_REQUEST = HEADER.size + MAX_OPS * OP.size

OP_READ, OP_WRITE = 1, 2
OK, NO_REGISTER, READ_ONLY, BAD_OP = 0, 1, 2, 3
STATUS_NAMES = {OK: "ok", NO_REGISTER: "no such register", READ_ONLY: "read-only",
                BAD_OP: "unknown op"}

EVENT_RECORD = 32
EV_GAP, EV_ANSWER, EV_BOOK, EV_TRADE = 1, 2, 3, 4
GAP_RECORD = struct.Struct("!BBHQQ10s2x")  # type, line, 0, first, count, session, pad
# type, OUCH type, flags, code, UserRefNum, quantity, price, ref, lag, tif, pad
ANSWER_RECORD = struct.Struct("!BcBBIIqQHBx")
ANSWER_GATE, ANSWER_CLOSED = 1, 2  # flag bits
# type, action, side, level, symbol index, orders, seq, price, shares, flags, pad
BOOK_RECORD = struct.Struct("!BBBBHHIIIB11x")
BOOK_BBO, BOOK_ALL_SYMS = 1, 2  # flag bits
BOOK_ACTIONS = ("modify", "insert", "delete", "clear")  # the update's action code: index
# type, ITCH type (E, C, P, Q), side, 0, symbol index, 0, seq, price, shares, match, pad
TRADE_RECORD = struct.Struct("!BcBxHxxIIIQ4x")

DROP_REASONS = ("bad_length", "bad_magic", "bad_version", "bad_kind", "bad_frame")
COUNTERS = ("requests", "replies", *DROP_REASONS, "busy", "bad_ops", "events")


class ControlError(ValueError):
    """A control frame that does not parse; ``reason`` is one of ``DROP_REASONS``."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Op:
    op: int
    address: int
    value: int = 0
    status: int = OK

    @classmethod
    def read(cls, address: int) -> Op:
        return cls(OP_READ, address)

    @classmethod
    def write(cls, address: int, value: int) -> Op:
        return cls(OP_WRITE, address, value)


@dataclass(frozen=True)
class GapEvent:
    line: int
    session: bytes
    first: int
    count: int


@dataclass(frozen=True)
class AnswerEvent:
    """A venue's OUCH answer as ``ouch_rx`` forwards it (``models.ouch_rx.Answer`` and
    what the gateware did with it: ``gate`` it reported it to the risk gate, ``closed``
    that report closed the order; ``lag`` the cycles its last byte waited in
    ``ouch_rx``'s FIFO). ``ref`` is the Accepted's symbol, the Executed's match number
    or the Rejected's reason."""

    type: str
    user_ref: int
    quantity: int = 0
    price: int = 0
    code: int = 0
    ref: int = 0
    tif: int = 0
    gate: int = 0
    closed: int = 0
    lag: int = 0

    def message(self) -> dict:
        """The answer as ``protocol.ouch.decode_outbound`` names its fields (the fields a
        record does not carry are left out)."""
        base = {"type": self.type, "user_ref": self.user_ref}
        if self.type == "A":
            symbol = self.ref.to_bytes(8, "big").decode("latin-1").rstrip(" ")
            return {**base, "side": chr(self.code), "quantity": self.quantity,
                    "symbol": symbol, "price": self.price, "tif": chr(self.tif)}
        if self.type == "E":
            return {**base, "quantity": self.quantity, "price": self.price,
                    "liquidity": chr(self.code), "match": self.ref}
        if self.type == "C":
            return {**base, "quantity": self.quantity, "reason": chr(self.code)}
        return {**base, "reason": self.ref}


@dataclass(frozen=True)
class BookEvent:
    """One update of the FPGA's book (``models.book.Update``) as the book's tap sends it
    on the event channel. ``seq`` counts every update the book published since reset
    (32 bits, wrapping), sent or not: a jump says records were lost (the tap's FIFO was
    full, the stream or the channel was off). ``action`` is one of ``BOOK_ACTIONS``;
    ``level`` indexes the top N (0 the best); a ``clear`` empties both sides of ``sym``,
    or of every symbol with ``all_syms``."""

    seq: int
    sym: int
    side: int
    action: str
    level: int
    price: int
    shares: int
    orders: int
    bbo: int = 0
    all_syms: int = 0


@dataclass(frozen=True)
class TradeEvent:
    """One print the FPGA's receive path saw on a watched symbol, as the trade tap sends
    it: ``kind`` the ITCH message (``E`` executed, at the resting order's price from
    the book's order table; ``C`` executed at the message's price; ``P`` a trade against
    a non-displayed order; ``Q`` a cross), ``side`` the resting order's (0 buy, 1 sell;
    0 for a Q), ``shares`` as the message says (low 32 bits), ``match`` its match
    number. ``seq`` counts every print since reset (32 bits, wrapping), sent or not: a
    jump is a lost print."""

    seq: int
    sym: int
    kind: str
    side: int
    price: int
    shares: int
    match: int


@dataclass(frozen=True)
class Frame:
    kind: int
    seq: int
    ops: tuple[Op, ...] = ()
    events: tuple = ()


def encode_ops(kind: int, seq: int, ops) -> bytes:
    out = [HEADER.pack(MAGIC, VERSION, kind, seq & 0xFFFF, len(ops))]
    out += [OP.pack(o.op, o.status, o.address, o.value) for o in ops]
    return b"".join(out)


def encode_request(seq: int, ops) -> bytes:
    if not 1 <= len(ops) <= MAX_OPS:
        raise ValueError(f"{len(ops)} ops; a request holds 1 to {MAX_OPS}")
    return encode_ops(KIND_REQUEST, seq, [Op(o.op, o.address, o.value) for o in ops])


def encode_reply(seq: int, ops) -> bytes:
    return encode_ops(KIND_REPLY, seq, ops)


def encode_event_record(ev) -> bytes:
    if isinstance(ev, GapEvent):
        return GAP_RECORD.pack(EV_GAP, ev.line, 0, ev.first, ev.count, ev.session)
    if isinstance(ev, AnswerEvent):
        return ANSWER_RECORD.pack(EV_ANSWER, ev.type.encode("ascii"),
                                  ev.gate * ANSWER_GATE | ev.closed * ANSWER_CLOSED,
                                  ev.code, ev.user_ref, ev.quantity, ev.price, ev.ref,
                                  ev.lag, ev.tif)
    if isinstance(ev, BookEvent):
        return BOOK_RECORD.pack(EV_BOOK, BOOK_ACTIONS.index(ev.action), ev.side, ev.level,
                                ev.sym, ev.orders, ev.seq, ev.price, ev.shares,
                                ev.bbo * BOOK_BBO | ev.all_syms * BOOK_ALL_SYMS)
    if isinstance(ev, TradeEvent):
        return TRADE_RECORD.pack(EV_TRADE, ev.kind.encode("ascii"), ev.side, ev.sym, ev.seq,
                                 ev.price, ev.shares, ev.match)
    raise TypeError(f"no event record for {type(ev).__name__}")


def encode_events(seq: int, events) -> bytes:
    return HEADER.pack(MAGIC, VERSION, KIND_EVENT, seq & 0xFFFF, len(events)) + \
        b"".join(encode_event_record(e) for e in events)


def decode_event_record(raw: bytes):
    if raw[0] == EV_GAP:
        _t, line, _z, first, count, session = GAP_RECORD.unpack(raw)
        return GapEvent(line, session, first, count)
    if raw[0] == EV_ANSWER:
        (_t, mtype, flags, code, user_ref, quantity, price, ref, lag,
         tif) = ANSWER_RECORD.unpack(raw)
        return AnswerEvent(mtype.decode("latin-1"), user_ref, quantity, price, code, ref,
                           tif, flags & ANSWER_GATE, flags >> 1 & 1, lag)
    if raw[0] == EV_BOOK:
        (_t, action, side, level, sym, orders, seq, price, shares,
         flags) = BOOK_RECORD.unpack(raw)
        if action < len(BOOK_ACTIONS):
            return BookEvent(seq, sym, side, BOOK_ACTIONS[action], level, price, shares,
                             orders, flags & BOOK_BBO, flags >> 1 & 1)
    if raw[0] == EV_TRADE:
        _t, kind, side, sym, seq, price, shares, match = TRADE_RECORD.unpack(raw)
        return TradeEvent(seq, sym, kind.decode("latin-1"), side, price, shares, match)
    return ("unknown", raw[0], raw)  # newer gateware: kept, not misread


def check(payload: bytes, kind: int = KIND_REQUEST) -> Frame:
    """Parse a control frame of ``kind``; raise ``ControlError`` naming the first check
    that fails (the order is the gateware's)."""
    n = len(payload)
    record = OP.size if kind != KIND_EVENT else EVENT_RECORD
    longest = HEADER.size + MAX_OPS * record if kind != KIND_EVENT else 1 << 16
    if n < HEADER.size or n > longest:
        raise ControlError("bad_length", f"{n} bytes")
    magic, version, got_kind, seq, count = HEADER.unpack_from(payload)
    if magic != MAGIC:
        raise ControlError("bad_magic", f"magic {magic:#06x}, expected {MAGIC:#06x}")
    if version != VERSION:
        raise ControlError("bad_version", f"version {version}, expected {VERSION}")
    if got_kind != kind:
        raise ControlError("bad_kind", f"kind {got_kind}, expected {kind}")
    if not 1 <= count <= (MAX_OPS if kind != KIND_EVENT else 0xFFFF) or \
            n != HEADER.size + count * record:
        raise ControlError("bad_length", f"{n} bytes for {count} records")
    body = payload[HEADER.size:]
    if kind == KIND_EVENT:
        return Frame(kind, seq, events=tuple(
            decode_event_record(body[i:i + EVENT_RECORD]) for i in range(0, len(body),
                                                                         EVENT_RECORD)))
    ops = tuple(Op(op, address, value, status)
                for op, status, address, value in OP.iter_unpack(body))
    return Frame(kind, seq, ops)


def frame_kind(payload: bytes) -> int | None:
    """The kind byte of something that looks like a control frame, else None."""
    if len(payload) >= HEADER.size and HEADER.unpack_from(payload)[0] == MAGIC:
        return payload[3]
    return None
