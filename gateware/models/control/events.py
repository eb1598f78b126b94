"""Golden models of the book's tap and the trade tap (``gateware/control/events.py``): the
book's updates and the prints as event records, each with its sequence number.

The model has no time, so its FIFO never fills: it predicts every record the gateware
could send. What the gateware sends is a subsequence of it: the records whose ``seq`` is
missing were lost to a full FIFO (``overflow``) or to a channel switched off
(``channel_off``), and each record that did leave equals the model's of the same ``seq``.
"""

from __future__ import annotations

from collections import Counter

from tick2trade.gateware.models.book import ACTIONS, Print, Update
from tick2trade.protocol.control import BOOK_ACTIONS, BookEvent, TradeEvent

assert ACTIONS == BOOK_ACTIONS, (ACTIONS, BOOK_ACTIONS)
# records: updates queued; overflow: lost to a full FIFO (not queued); channel_off: queued,
# then dropped because the event channel was off
BOOK_STREAM_COUNTERS = ("records", "overflow", "channel_off")
# the same three for prints, and the executions that are no print (``models.book.Print``)
TRADE_STREAM_COUNTERS = (*BOOK_STREAM_COUNTERS, "unpriced", "non_printable")
SEQ_MASK = 0xFFFF_FFFF


def book_event(up: Update, seq: int) -> BookEvent:
    """The record of one update."""
    return BookEvent(seq & SEQ_MASK, up.sym, up.side, up.action, up.level, up.price,
                     up.shares, up.orders, int(up.bbo), int(up.all_syms))


class BookTapModel:
    """``tap`` every update the book publishes, in order; it returns the record to send,
    or None while the stream (``enable``) or the event channel (``channel``) is off."""

    def __init__(self) -> None:
        self.seq = 0
        self.enable = False
        self.channel = False
        self.counters = Counter({k: 0 for k in BOOK_STREAM_COUNTERS})

    def tap(self, up: Update) -> BookEvent | None:
        seq, self.seq = self.seq, (self.seq + 1) & SEQ_MASK
        if not self.enable:
            return None
        self.counters["records"] += 1  # queued
        if not self.channel:
            self.counters["channel_off"] += 1  # and dropped at the FIFO's head
            return None
        return book_event(up, seq)


def trade_event(p: Print, seq: int) -> TradeEvent:
    """The record of one print."""
    return TradeEvent(seq & SEQ_MASK, p.sym, p.kind, p.side, p.price, p.shares, p.match)


class TradeTapModel:
    """``tap`` every print the book keeps (``BookModel(keep_prints=True)``), in order; it
    returns the record to send, or None for an execution that is no print (counted in
    ``unpriced`` or ``non_printable``, no ``seq``) and while the stream (``enable``) or
    the event channel (``channel``) is off (those take a ``seq``, as in the book's
    tap)."""

    def __init__(self) -> None:
        self.seq = 0
        self.enable = False
        self.channel = False
        self.counters = Counter({k: 0 for k in TRADE_STREAM_COUNTERS})

    def tap(self, p: Print) -> TradeEvent | None:
        if p.miss is not None:
            self.counters[p.miss] += 1
            return None
        seq, self.seq = self.seq, (self.seq + 1) & SEQ_MASK
        if not self.enable:
            return None
        self.counters["records"] += 1
        if not self.channel:
            self.counters["channel_off"] += 1
            return None
        return trade_event(p, seq)
