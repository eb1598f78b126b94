"""``FpgaBook``: the FPGA's book in the platform's market data, from the book records of
the event channel (``EV_BOOK``, ``protocol.control.BookEvent``); ``FpgaPrints``: its
trade prints, from the trade records (``EV_TRADE``, ``protocol.control.TradeEvent``).

The gateware's book publishes one update per change of its top N levels per side
(``models.book``: modify, insert or delete at a level index; clear). The tap sends each
as a record with a sequence number that counts every update, sent or not
(``gateware/control/events.py``). This class keeps the same top N per (symbol, side),
applies each record to it (``models.book.apply_update``, the model's own rule) and
writes the levels that changed into ``MarketData`` (``apply``: size 0 for a level that
left the top N), so the platform shows exactly the levels the gateware trades on.

Resync. A record whose ``seq`` is not the next one means records were lost (the tap's
FIFO was full, the channel or the stream was off, a frame was lost on the way). The
host cannot know which symbols they touched, so every symbol is read again from the
book itself (``book.peek``, :func:`host.device.book.read_book`) and written as a
snapshot. A read takes several control requests while the book goes on; the tap's
``book_stream.seq`` is read just before and just after each symbol's two level rows: if
it did not move, the read is the book as of that ``seq``, and records below it (still on
their way) are already in it. If it moved, the symbol is read again (``tries`` times;
then the read is taken and counted in ``unsettled``: a later gap or poll corrects it).
``poll`` also resyncs when the tap's loss counters moved without a record showing it
(a flood that ended with records lost and nothing after them).

Counters: ``records`` (taken), ``applied``, ``stale`` (older than the last resync or
the symbol's snapshot), ``gaps``, ``resyncs``, ``unsettled``, ``unwatched`` (a symbol
index not in ``symbols``: kept, not published).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from tick2trade.gateware.models.book import CLEAR, apply_update
from tick2trade.host.device.book import read_book
from tick2trade.host.services.marketdata import MarketData
from tick2trade.protocol.control import BookEvent, TradeEvent

SEQ = "book_stream.seq"
LOSSES = ("book_stream.counters.overflow", "book_stream.counters.channel_off")
TRADE_SEQ = "trade_stream.seq"
SIDES = ("buy", "sell")
MASK = 0xFFFF_FFFF
Level = tuple[int, int, int]  # price, shares, orders


def seq_after(a: int, b: int) -> int:
    """How far ``a`` is after ``b`` on the 32-bit wrapping sequence (negative: before)."""
    d = (a - b) & MASK
    return d - (1 << 32) if d >> 31 else d


def changes(before: list[Level], after: list[Level]) -> list[Level]:
    """The levels that differ between two copies of a side: (price, shares, orders),
    shares 0 for a price that left."""
    now = {lv[0]: lv for lv in after}
    gone = [(p, 0, 0) for p, _s, _o in before if p not in now]
    was = {lv[0]: lv for lv in before}
    return gone + [lv for p, lv in now.items() if was.get(p) != lv]


class FpgaBook:
    """The FPGA's top ``depth`` levels of each watched symbol into ``market``.

    ``device`` is the FPGA's register access (``map``, ``write``, ``read_many``: a
    ``Device``, or the golden models' ``ModelFpga``); ``symbols`` maps the book's symbol
    index to the platform's symbol. :meth:`start` turns the stream on and takes the first
    snapshot; :meth:`on_record` takes each book record of the event channel;
    :meth:`poll` (call it now and then, off the record path) resyncs when needed.
    """

    def __init__(self, market: MarketData, device, symbols: dict[int, str], depth: int = 8,
                 tries: int = 3):
        if not device.map.has_block("book_stream"):
            raise ValueError("this bitstream has no book stream (book_stream registers): "
                             "the FPGA's book cannot reach the platform")
        self.market, self.device, self.symbols = market, device, dict(symbols)
        self.depth, self.tries = depth, tries
        self.tops: dict[tuple[int, int], list[Level]] = {}
        self.expected: int | None = None  # the next record's seq; None: resync first
        self.from_seq: dict[int, int] = {}  # per symbol: records below are in its snapshot
        self.losses: dict[str, int] = {}
        self.counters: Counter = Counter({k: 0 for k in (
            "records", "applied", "stale", "gaps", "resyncs", "unsettled", "unwatched")})

    def start(self) -> None:
        self.device.write("book_stream.enable", 1)
        self.resync()

    # -- records ---------------------------------------------------------------------------

    def on_record(self, ev: BookEvent, ts: datetime | None = None) -> None:
        """Take one book record; ``ts`` (default: now) is when its frame reached the host,
        the time the platform's update carries."""
        self.counters["records"] += 1
        if self.expected is None:  # waiting for a resync: it will hold this one
            self.counters["stale"] += 1
            return
        ahead = seq_after(ev.seq, self.expected)
        if ahead < 0:  # sent before the last resync read the book
            self.counters["stale"] += 1
            return
        if ahead > 0:
            self.counters["gaps"] += 1
            self.expected = None
            return
        self.expected = (ev.seq + 1) & MASK
        if ev.action == CLEAR:
            for sym in (sorted({s for s, _side in self.tops} | set(self.symbols))
                        if ev.all_syms else [ev.sym]):
                if seq_after(ev.seq, self.from_seq.get(sym, ev.seq)) >= 0:
                    self._clear(sym)
            return
        if seq_after(ev.seq, self.from_seq.get(ev.sym, ev.seq)) < 0:
            self.counters["stale"] += 1  # the symbol's snapshot already has it
            return
        key = (ev.sym, ev.side)
        before = self.tops.get(key, [])
        after = self.tops[key] = apply_update(before, ev, self.depth)
        self.counters["applied"] += 1
        symbol = self.symbols.get(ev.sym)
        if symbol is None:
            self.counters["unwatched"] += 1
            return
        diff = changes(before, after)
        if diff:
            self.market.apply(symbol, **{"asks" if ev.side else "bids": diff}, ts=ts,
                              source="fpga", depth=self.depth)

    def _clear(self, sym: int) -> None:
        self.tops[(sym, 0)], self.tops[(sym, 1)] = [], []
        if sym in self.symbols:
            self.market.snapshot(self.symbols[sym], [], [], source="fpga", depth=self.depth)

    # -- resync ------------------------------------------------------------------------------

    def poll(self) -> bool:
        """Resync if a gap was seen or the tap lost records since the last look; True when
        it did."""
        losses = self.device.read_many(LOSSES)
        if self.expected is not None and losses == self.losses:
            return False
        self.resync(losses)
        return True

    def resync(self, losses: dict[str, int] | None = None) -> None:
        """Read every symbol's book from the FPGA and write it as a snapshot."""
        self.losses = losses if losses is not None else self.device.read_many(LOSSES)
        self.counters["resyncs"] += 1
        first = None
        for sym in sorted(self.symbols):
            seq, book = self._read(sym)
            first = seq if first is None else first
            self.from_seq[sym] = seq
            for side, name in ((0, "bids"), (1, "asks")):
                self.tops[(sym, side)] = [tuple(lv) for lv in book[name]["levels"][:self.depth]]
            self.market.snapshot(self.symbols[sym], self.tops[(sym, 0)], self.tops[(sym, 1)],
                                 source="fpga", depth=self.depth)
        self.expected = first if first is not None else self.device.read(SEQ)

    def _read(self, sym: int) -> tuple[int, dict]:
        for _ in range(self.tries):
            book = read_book(self.device, sym, marker=SEQ)
            before, after = book.pop("marker")
            if before == after:
                return before, book
        self.counters["unsettled"] += 1
        return after, book

    # -- what the platform shows -----------------------------------------------------------------

    def levels(self, sym: int) -> dict[str, list[Level]]:
        """This copy of a symbol's top levels, best first."""
        return {"bids": list(self.tops.get((sym, 0), [])),
                "asks": list(self.tops.get((sym, 1), []))}



class FpgaPrints:
    """The prints the FPGA's receive path saw into ``market``: one ``MarketData.trade``
    per trade record (``last``, bars, alerts and history follow from it), stamped as it
    is taken. The gateware makes them (``gateware/control/events.py`` ``TradeTap``): an
    ITCH E at the resting order's price from the book's order table, a C printable
    ('Y') at its own price, a P and a Q with theirs; the side is the resting order's
    (none for a Q).

    Losses. Each record's ``seq`` counts every print since reset, sent or not. A jump
    means prints were lost on the way (the tap's FIFO was full, the stream or the channel
    was off, an event frame was lost): they cannot be read back, since the FPGA keeps no
    tape, so they are counted in ``lost`` (how many) and ``gaps`` (how many jumps), and
    the platform's last and bars go on without them. A loss shows with the next record.
    Counters: ``records`` (taken), ``traded`` (given to the market), ``lost``, ``gaps``,
    ``stale`` (numbered before :meth:`start`), ``unwatched`` (a symbol index not in
    ``symbols``).
    """

    def __init__(self, market: MarketData, device, symbols: dict[int, str]):
        if not device.map.has_block("trade_stream"):
            raise ValueError("this bitstream has no trade stream (trade_stream registers): "
                             "the FPGA's prints cannot reach the platform")
        self.market, self.device, self.symbols = market, device, dict(symbols)
        self.expected: int | None = None  # the next record's seq
        self.counters: Counter = Counter({k: 0 for k in (
            "records", "traded", "lost", "gaps", "stale", "unwatched")})

    def start(self) -> None:
        """Turn the stream on; the prints numbered from here on are the platform's."""
        self.device.write("trade_stream.enable", 1)
        self.expected = self.device.read(TRADE_SEQ)

    def on_record(self, ev: TradeEvent) -> None:
        self.counters["records"] += 1
        ahead = 0 if self.expected is None else seq_after(ev.seq, self.expected)
        if ahead < 0:
            self.counters["stale"] += 1
            return
        if ahead > 0:
            self.counters["gaps"] += 1
            self.counters["lost"] += ahead
        self.expected = (ev.seq + 1) & MASK
        symbol = self.symbols.get(ev.sym)
        if symbol is None:
            self.counters["unwatched"] += 1
            return
        self.market.trade(symbol, ev.price, ev.shares,
                          side=None if ev.kind == "Q" else SIDES[ev.side], match=ev.match)
        self.counters["traded"] += 1
