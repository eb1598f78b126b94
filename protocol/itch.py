"""NASDAQ TotalView-ITCH 5.0: message table, encoder, decoder and the normalized event.

``MESSAGES`` is the one definition of every message's layout. The encoder, the decoder,
the golden model of the ``itch`` stage and the gateware decoder all take their offsets
from it (the gateware through :func:`event_sources`), so a field cannot be at two places.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tick2trade.protocol import msgtable
from tick2trade.protocol.msgtable import Field, Message

# Common header: type (1), stock locate (2), tracking number (2), timestamp (6).
HEADER_FIELDS = (("locate", 2, "u"), ("tracking", 2, "u"), ("timestamp", 6, "u"))
BODY = 11

# Body fields after the common header: (name, size, kind); kind "u" unsigned big-endian,
# "a" alpha (ASCII, space padded). Sizes add up to the spec's total length.
_BODIES: dict[str, tuple[str, tuple[tuple[str, int, str], ...]]] = {
    "S": ("system_event", (("event_code", 1, "a"),)),
    "R": ("stock_directory", (
        ("stock", 8, "a"), ("market_category", 1, "a"), ("financial_status", 1, "a"),
        ("round_lot_size", 4, "u"), ("round_lots_only", 1, "a"),
        ("issue_classification", 1, "a"), ("issue_subtype", 2, "a"),
        ("authenticity", 1, "a"), ("short_sale_threshold", 1, "a"), ("ipo_flag", 1, "a"),
        ("luld_tier", 1, "a"), ("etp_flag", 1, "a"), ("etp_leverage", 4, "u"),
        ("inverse", 1, "a"))),
    "H": ("stock_trading_action", (
        ("stock", 8, "a"), ("trading_state", 1, "a"), ("reserved", 1, "a"),
        ("reason", 4, "a"))),
    "Y": ("reg_sho_restriction", (("stock", 8, "a"), ("reg_sho_action", 1, "a"))),
    "L": ("market_participant_position", (
        ("mpid", 4, "a"), ("stock", 8, "a"), ("primary_market_maker", 1, "a"),
        ("market_maker_mode", 1, "a"), ("market_participant_state", 1, "a"))),
    "V": ("mwcb_decline_level", (("level1", 8, "u"), ("level2", 8, "u"), ("level3", 8, "u"))),
    "W": ("mwcb_status", (("breached_level", 1, "a"),)),
    "K": ("ipo_quoting_period", (
        ("stock", 8, "a"), ("release_time", 4, "u"), ("release_qualifier", 1, "a"),
        ("ipo_price", 4, "u"))),
    "J": ("luld_auction_collar", (
        ("stock", 8, "a"), ("reference_price", 4, "u"), ("upper_price", 4, "u"),
        ("lower_price", 4, "u"), ("extension", 4, "u"))),
    "h": ("operational_halt", (
        ("stock", 8, "a"), ("market_code", 1, "a"), ("halt_action", 1, "a"))),
    "A": ("add_order", (
        ("order_ref", 8, "u"), ("side", 1, "a"), ("shares", 4, "u"), ("stock", 8, "a"),
        ("price", 4, "u"))),
    "F": ("add_order_mpid", (
        ("order_ref", 8, "u"), ("side", 1, "a"), ("shares", 4, "u"), ("stock", 8, "a"),
        ("price", 4, "u"), ("attribution", 4, "a"))),
    "E": ("order_executed", (
        ("order_ref", 8, "u"), ("executed_shares", 4, "u"), ("match", 8, "u"))),
    "C": ("order_executed_with_price", (
        ("order_ref", 8, "u"), ("executed_shares", 4, "u"), ("match", 8, "u"),
        ("printable", 1, "a"), ("execution_price", 4, "u"))),
    "X": ("order_cancel", (("order_ref", 8, "u"), ("cancelled_shares", 4, "u"))),
    "D": ("order_delete", (("order_ref", 8, "u"),)),
    "U": ("order_replace", (
        ("order_ref", 8, "u"), ("new_ref", 8, "u"), ("shares", 4, "u"), ("price", 4, "u"))),
    "P": ("trade", (
        ("order_ref", 8, "u"), ("side", 1, "a"), ("shares", 4, "u"), ("stock", 8, "a"),
        ("price", 4, "u"), ("match", 8, "u"))),
    "Q": ("cross_trade", (
        ("shares", 8, "u"), ("stock", 8, "a"), ("cross_price", 4, "u"), ("match", 8, "u"),
        ("cross_type", 1, "a"))),
    "B": ("broken_trade", (("match", 8, "u"),)),
    "I": ("noii", (
        ("paired_shares", 8, "u"), ("imbalance_shares", 8, "u"),
        ("imbalance_direction", 1, "a"), ("stock", 8, "a"), ("far_price", 4, "u"),
        ("near_price", 4, "u"), ("current_reference_price", 4, "u"), ("cross_type", 1, "a"),
        ("price_variation", 1, "a"))),
    "N": ("rpii", (("stock", 8, "a"), ("interest_flag", 1, "a"))),
    "O": ("direct_listing", (
        ("stock", 8, "a"), ("open_eligibility", 1, "a"), ("min_price", 4, "u"),
        ("max_price", 4, "u"), ("near_execution_price", 4, "u"),
        ("near_execution_time", 8, "u"), ("lower_collar", 4, "u"), ("upper_collar", 4, "u"))),
}


MESSAGES: dict[str, Message] = msgtable.build(_BODIES, HEADER_FIELDS)
MIN_LENGTH = min(m.length for m in MESSAGES.values())  # 12 (S, W)
MAX_LENGTH = max(m.length for m in MESSAGES.values())  # 50 (I)


def encode(mtype: str, **values: int | str | bytes) -> bytes:
    """Encode one message; fields not given are zero (numbers) or spaces (alpha)."""
    return msgtable.encode("ITCH", MESSAGES[mtype], values)


def decode(raw: bytes) -> dict | None:
    """Decode a message into {field: value} (alpha fields as stripped str); None if the
    type is unknown or the length is wrong."""
    msg = MESSAGES.get(chr(raw[0])) if raw else None
    if msg is None or len(raw) != msg.length:
        return None
    return msgtable.decode(msg, raw)


# ---------------------------------------------------------------------------------------
# The normalized event: one per accepted message, the same shape for every type.

# Event field -> width in bits. ``stock`` is the raw 8 ASCII bytes as a big-endian integer
# (first character in the top byte), ``side`` and ``code`` raw ASCII bytes.
EVENT_FIELDS: dict[str, int] = {
    "type": 8, "locate": 16, "tracking": 16, "timestamp": 48, "seq": 64,
    "order_ref": 64, "side": 8, "shares": 64, "price": 32, "new_ref": 64, "match": 64,
    "stock": 64, "code": 8,
}

# For each message type: event field <- message field. Fields not named stay 0.
_EVENT_MAP: dict[str, dict[str, str]] = {
    "S": {"code": "event_code"},
    "R": {"stock": "stock", "code": "market_category"},
    "H": {"stock": "stock", "code": "trading_state"},
    "Y": {"stock": "stock", "code": "reg_sho_action"},
    "L": {"stock": "stock", "code": "market_participant_state"},
    "V": {},
    "W": {"code": "breached_level"},
    "K": {"stock": "stock", "price": "ipo_price"},
    "J": {"stock": "stock", "price": "reference_price"},
    "h": {"stock": "stock", "code": "halt_action"},
    "A": {"order_ref": "order_ref", "side": "side", "shares": "shares", "stock": "stock",
          "price": "price"},
    "F": {"order_ref": "order_ref", "side": "side", "shares": "shares", "stock": "stock",
          "price": "price"},
    "E": {"order_ref": "order_ref", "shares": "executed_shares", "match": "match"},
    "C": {"order_ref": "order_ref", "shares": "executed_shares", "match": "match",
          "code": "printable", "price": "execution_price"},
    "X": {"order_ref": "order_ref", "shares": "cancelled_shares"},
    "D": {"order_ref": "order_ref"},
    "U": {"order_ref": "order_ref", "new_ref": "new_ref", "shares": "shares",
          "price": "price"},
    "P": {"order_ref": "order_ref", "side": "side", "shares": "shares", "stock": "stock",
          "price": "price", "match": "match"},
    "Q": {"shares": "shares", "stock": "stock", "price": "cross_price", "match": "match",
          "code": "cross_type"},
    "B": {"match": "match"},
    "I": {"shares": "paired_shares", "stock": "stock", "price": "current_reference_price",
          "code": "imbalance_direction"},
    "N": {"stock": "stock", "code": "interest_flag"},
    "O": {"stock": "stock"},
}
assert set(_EVENT_MAP) == set(MESSAGES)


def event_sources(efield: str) -> dict[str, Field]:
    """For one event field: message type -> the message field it is taken from."""
    if efield in ("locate", "tracking", "timestamp"):
        return {t: m.fields[efield] for t, m in MESSAGES.items()}
    return {t: MESSAGES[t].fields[src] for t, mp in _EVENT_MAP.items()
            for ef, src in mp.items() if ef == efield}


@dataclass
class Event:
    """A decoded message as the gateware emits it (``sym``: the instrument index from the
    locate table)."""

    type: str
    sym: int
    seq: int
    locate: int
    tracking: int
    timestamp: int
    order_ref: int = 0
    side: int = 0
    shares: int = 0
    price: int = 0
    new_ref: int = 0
    match: int = 0
    stock: int = 0
    code: int = 0
    extra: dict = field(default_factory=dict, repr=False, compare=False)

    def to_json(self) -> dict:
        """The replay output: prices in 1/10000, symbols as stripped strings, ASCII codes
        as characters; only the fields this type carries."""
        out = {"seq": self.seq, "type": self.type, "sym": self.sym, "locate": self.locate,
               "tracking": self.tracking, "timestamp": self.timestamp}
        for ef in _EVENT_MAP[self.type]:
            v = getattr(self, ef)
            if ef == "stock":
                v = stock_str(v)
            elif ef in ("side", "code"):
                v = chr(v)
            out[ef] = v
        return out


def stock_int(stock: str | bytes) -> int:
    raw = stock.encode("ascii") if isinstance(stock, str) else bytes(stock)
    return int.from_bytes(raw.ljust(8, b" "), "big")


def stock_str(value: int) -> str:
    return value.to_bytes(8, "big").decode("latin-1").rstrip(" ")


def to_event(raw: bytes, seq: int, sym: int = 0) -> Event | None:
    """Normalize one message (None if unknown type or wrong length)."""
    msg = MESSAGES.get(chr(raw[0])) if raw else None
    if msg is None or len(raw) != msg.length:
        return None

    def get(f: Field) -> int:
        return int.from_bytes(raw[f.offset:f.offset + f.size], "big")

    ev = Event(type=msg.type, sym=sym, seq=seq, locate=get(msg.fields["locate"]),
               tracking=get(msg.fields["tracking"]),
               timestamp=get(msg.fields["timestamp"]))
    for ef, src in _EVENT_MAP[msg.type].items():
        setattr(ev, ef, get(msg.fields[src]))
    return ev


def encode_event(event: Event) -> bytes:
    """The message an event was decoded from (``to_event``'s inverse, for the fields an
    event keeps; the rest are zero or spaces)."""
    values: dict[str, int | str] = {"locate": event.locate, "tracking": event.tracking,
                                    "timestamp": event.timestamp}
    for efield, mfield in _EVENT_MAP[event.type].items():
        v = getattr(event, efield)
        if efield == "stock":
            v = stock_str(v)
        elif efield in ("side", "code"):
            v = chr(v)
        values[mfield] = v
    return encode(event.type, **values)
