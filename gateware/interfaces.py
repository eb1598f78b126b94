"""What the stages hand each other: every payload layout, signature and code that more
than one stage (or a stage and the top level) shares.

A stage imports this module, never another stage's file: the producer and the consumer
of a payload both read its layout here. Layout fields that carry a code stay plain
unsigned (the generated hardware is the same either way); the codes themselves are the
enums below, and the golden models take their name tuples from them with :func:`names`.

Two sides are in use: the 1-bit ``side`` of the book, the strategy and the risk gate
(:class:`Side`), and the ASCII side byte of the ITCH event and of an OUCH order
(``B``, ``S``, ...).
"""

from __future__ import annotations

from amaranth import Cat, Const, Value
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from tick2trade.gateware.udp_header import be_bytes, const_bytes
from tick2trade.protocol import control as proto
from tick2trade.protocol.itch import EVENT_FIELDS, MESSAGES
from tick2trade.protocol.regmap import ADDRESS_BITS, WORD


def names(codes: type[enum.Enum]) -> tuple[str, ...]:
    """The members' names in lower case, in the order of their values (which must be
    0, 1, 2, ...: the name of code ``i`` is ``names(codes)[i]``)."""
    members = sorted(codes, key=lambda c: c.value)
    assert [c.value for c in members] == list(range(len(members))), codes
    return tuple(c.name.lower() for c in members)


# ---------------------------------------------------------------------------------------
# Codes

class Side(enum.Enum, shape=1):
    """The 1-bit side of the book, the strategy and the risk gate."""
    BUY = 0
    SELL = 1


class ItchType(enum.Enum, shape=8):
    """An ITCH 5.0 message type: the event's ``type`` byte (ASCII), named as in
    ``protocol.itch.MESSAGES``."""
    SYSTEM_EVENT = ord("S")
    STOCK_DIRECTORY = ord("R")
    STOCK_TRADING_ACTION = ord("H")
    REG_SHO_RESTRICTION = ord("Y")
    MARKET_PARTICIPANT_POSITION = ord("L")
    MWCB_DECLINE_LEVEL = ord("V")
    MWCB_STATUS = ord("W")
    IPO_QUOTING_PERIOD = ord("K")
    LULD_AUCTION_COLLAR = ord("J")
    OPERATIONAL_HALT = ord("h")
    ADD_ORDER = ord("A")
    ADD_ORDER_MPID = ord("F")
    ORDER_EXECUTED = ord("E")
    ORDER_EXECUTED_WITH_PRICE = ord("C")
    ORDER_CANCEL = ord("X")
    ORDER_DELETE = ord("D")
    ORDER_REPLACE = ord("U")
    TRADE = ord("P")
    CROSS_TRADE = ord("Q")
    BROKEN_TRADE = ord("B")
    NOII = ord("I")
    RPII = ord("N")
    DIRECT_LISTING = ord("O")


assert {t.value: t.name.lower() for t in ItchType} == \
    {ord(c): m.name for c, m in MESSAGES.items()}, "ItchType is not protocol.itch.MESSAGES"


class BookAction(enum.Enum, shape=2):
    """What a book update did to its level (``models.book.ACTIONS``)."""
    MODIFY = 0
    INSERT = 1
    DELETE = 2
    CLEAR = 3


class TriggerKind(enum.Enum, shape=2):
    """A trigger table entry's kind (``models.trade.strategy``)."""
    TAKE = 0
    STOP = 1
    IMPROVE = 2


class Source(enum.Enum, shape=2):
    """Which path of the strategy made an intent."""
    EVENT = 0
    UPDATE = 1
    HOST = 2
    FAST = 3


class RejectReason(enum.Enum, shape=4):
    """A risk decision's reason, in the order the checks are made (0: it passed)."""
    PASS = 0
    KILL = 1
    RESTRICTED = 2
    BAD_ORDER = 3
    MAX_SHARES = 4
    MAX_NOTIONAL = 5
    NO_REFERENCE = 6
    COLLAR = 7
    POSITION = 8
    GROSS = 9
    OPEN_ORDERS = 10
    RATE_GLOBAL = 11
    RATE_SYMBOL = 12
    DUPLICATE = 13
    TX_BUSY = 14


class KillCause(enum.Enum, shape=2):
    """The bit of ``risk.status.tripped`` that says why the kill switch is on."""
    HOST = 0
    BREACHES = 1
    WATCHDOG = 2


# ---------------------------------------------------------------------------------------
# Payloads, in pipeline order

TIME_BITS = 48  # the risk gate's clock (rate buckets, watchdog, duplicate window)


def sym_bits(symbols: int) -> int:
    """Width of a symbol index (an instrument of the watch list)."""
    return max(1, (symbols - 1).bit_length())


GAP_LAYOUT = data.StructLayout({"line": 1, "session": 80, "first": 64, "count": 64})
# A held run let go by ``moldudp``: its events from sequence ``skip`` on are to be
# delivered; ``forced``: before the events of the packet that let it go (if any).
RELEASE_LAYOUT = data.StructLayout({"skip": 65, "forced": 1})
"""A MoldUDP64 gap report: messages ``first`` .. ``first+count-1`` of ``session`` never
arrived on either line; ``line`` is the line whose packet revealed the gap. ``session`` is
the 10 ASCII bytes as a big-endian integer."""


def event_layout(symbols: int) -> data.StructLayout:
    """The normalized ITCH event (see ``protocol.itch.EVENT_FIELDS``) plus ``sym``, the
    instrument index from the locate table."""
    return data.StructLayout({"sym": sym_bits(symbols), **EVENT_FIELDS})


def watch_layout(symbols: int) -> data.ArrayLayout:
    """Watch list: entry ``i`` names the stock (8 ASCII bytes, big-endian, like
    ``protocol.itch.stock_int``) of symbol ``i``."""
    return data.ArrayLayout(data.StructLayout({"enable": 1, "stock": 64}), symbols)


def locate_write_layout(symbols: int) -> data.StructLayout:
    """A host write into the locate table, ``stb`` high for one cycle; ``traded`` 0
    removes the locate."""
    return data.StructLayout({"stb": 1, "locate": 16, "sym": sym_bits(symbols),
                              "traded": 1})


def update_layout(symbols: int, n: int) -> data.StructLayout:
    """A book update (see ``models.book``): ``action`` a :class:`BookAction`;
    ``best_price``/``best_shares`` are the side's best level after the change (what the
    strategy keys its BBO on; 0, 0 when the side has no tracked level)."""
    return data.StructLayout({
        "sym": sym_bits(symbols), "side": 1, "action": 2,
        "level": max(1, ceil_log2(n)),
        "price": 32, "shares": 32, "orders": 16, "bbo": 1, "all_syms": 1,
        "best_price": 32, "best_shares": 32,
    })


def print_layout(symbols: int) -> data.StructLayout:
    """A print the book saw (``models.book.Print``): ``kind`` the ITCH type byte (E, C,
    P, Q), ``side`` the resting order's, ``price`` the order's (E) or the message's (C,
    P, Q), ``shares`` and ``match`` the message's."""
    return data.StructLayout({"sym": sym_bits(symbols), "kind": 8, "side": 1, "price": 32,
                              "shares": 32, "match": 64})


PRINT_MISSES = data.StructLayout({"unpriced": 1, "non_printable": 1})
"""The book's strobes for executions that are no print: an E or C on a reference the
order table does not hold (no price, no side), a C not marked printable ('Y')."""


def intent_layout(symbols: int) -> data.StructLayout:
    """An order intent (``models.trade.Intent``) with its timestamps: ``t_in`` the cycle
    its frame's first byte arrived (event path; else the cycle its input arrived) and
    ``t_event`` the cycle its input reached the strategy; ``source`` a :class:`Source`."""
    return data.StructLayout({
        "sym": sym_bits(symbols), "side": 1, "price": 32, "quantity": 32, "tif": 8,
        "tag": 16, "ref": 32, "source": 2, "cancel": 1, "user_ref": 32,
        "t_in": 32, "t_event": 32,
    })


def order_layout(symbols: int) -> data.StructLayout:
    """An order from the risk gate (``models.trade.ouch_tx.Order.fields`` gives its values)."""
    return data.StructLayout({
        "cancel": 1,       # 0: Enter Order; 1: Cancel Order for user_ref
        "user_ref": 32,    # cancel: the order to cancel; enter: ignored (the next is taken)
        "side": 8,         # ASCII: B, S, T, E
        "quantity": 32,    # enter: shares; cancel: new remaining quantity (0: all of it)
        "stock": 64,       # 8 ASCII bytes, first character in the top byte
        "price": 32,       # 1/10000, non-negative; zero-extended to OUCH's 8-byte price
        "tif": 8,          # ASCII OUCH time-in-force code (models.ouch TIF_*)
        "tag": 16,         # client tag (in the ClOrdID)
        "sym": sym_bits(symbols),  # instrument index; not on the wire (reporting)
    })


STAMPS = data.StructLayout({"t_in": 32, "t_event": 32, "t_decide": 32})
"""The timestamps of an order, from the risk gate to the telemetry."""


def report_layout(symbols: int) -> data.StructLayout:
    """News about one order for the risk gate: from ``ouch_rx`` or staged by the host."""
    return data.StructLayout({"sym": sym_bits(symbols), "side": 1, "filled": 32,
                              "canceled": 32, "closed": 1, "released": 64})


def decision_layout(symbols: int) -> data.StructLayout:
    """A risk decision record: ``source`` a :class:`Source`, ``reason`` a
    :class:`RejectReason`."""
    return data.StructLayout({
        "sym": sym_bits(symbols), "side": 1, "source": 2, "cancel": 1, "reason": 4,
        "price": 32, "quantity": 32, "t_decide": 32,
    })


# ---------------------------------------------------------------------------------------
# Event records (the control endpoint's event channel)

RECORD_BITS = 8 * proto.EVENT_RECORD


def record_value(byte_list) -> Value:
    """An event record from its bytes in wire order: byte 0 lands in the top bits."""
    assert len(byte_list) == proto.EVENT_RECORD
    return Cat(*reversed(byte_list))


def gap_record(gap) -> Value:
    """A MoldUDP64 gap report (``GAP_LAYOUT``) as event record type 1."""
    return record_value(const_bytes(proto.EV_GAP, 1) + [Cat(gap.line, Const(0, 7))] +
                        const_bytes(0, 2) + be_bytes(gap.first, 8) + be_bytes(gap.count, 8) +
                        be_bytes(gap.session, 10) + const_bytes(0, 2))


def book_entry_layout(symbols: int, n: int) -> data.StructLayout:
    """What the book's tap keeps of an update (``update_layout`` without the strategy's
    best level) and its sequence number: one entry of its FIFO, one book record."""
    full = update_layout(symbols, n)
    keep = ("sym", "side", "action", "level", "price", "shares", "orders", "bbo", "all_syms")
    return data.StructLayout({**{k: full.members[k] for k in keep}, "seq": 32})


def book_record(entry) -> Value:
    """A book update (``book_entry_layout``) as event record type 3
    (``protocol.control.BOOK_RECORD``)."""
    return record_value(const_bytes(proto.EV_BOOK, 1) + be_bytes(entry.action, 1) +
                        be_bytes(entry.side, 1) + be_bytes(entry.level, 1) +
                        be_bytes(entry.sym, 2) + be_bytes(entry.orders, 2) +
                        be_bytes(entry.seq, 4) + be_bytes(entry.price, 4) +
                        be_bytes(entry.shares, 4) +
                        be_bytes(Cat(entry.bbo, entry.all_syms), 1) + const_bytes(0, 11))


def trade_entry_layout(symbols: int) -> data.StructLayout:
    """A print (``print_layout``) and its sequence number: one entry of the trade tap's
    FIFO, one trade record."""
    return data.StructLayout({**print_layout(symbols).members, "seq": 32})


def trade_record(entry) -> Value:
    """A print (``trade_entry_layout``) as event record type 4
    (``protocol.control.TRADE_RECORD``)."""
    return record_value(const_bytes(proto.EV_TRADE, 1) + be_bytes(entry.kind, 1) +
                        be_bytes(entry.side, 1) + const_bytes(0, 1) +
                        be_bytes(entry.sym, 2) + const_bytes(0, 2) +
                        be_bytes(entry.seq, 4) + be_bytes(entry.price, 4) +
                        be_bytes(entry.shares, 4) + be_bytes(entry.match, 8) +
                        const_bytes(0, 4))


# ---------------------------------------------------------------------------------------
# Buses

CSR_BUS = wiring.Signature({
    "addr": Out(ADDRESS_BITS), "r_stb": Out(1), "w_stb": Out(1), "w_data": Out(WORD),
    "ack": In(1), "r_data": In(WORD), "status": In(2),
})
"""The CSR bus from the initiator's side (the control endpoint); see ``control.csr``."""


def gmii_signature() -> wiring.Signature:
    """One byte per cycle, as on a GMII: ``data``, ``en`` (RX_DV / TX_EN), ``er``."""
    return wiring.Signature({"data": Out(8), "en": Out(1), "er": Out(1)})
