"""The event channel's sources: the book's tap, the trade tap and the arbiter in front of
the control endpoint.

Golden models: :class:`gateware.models.control.events.BookTapModel` and
:class:`~gateware.models.control.events.TradeTapModel` (the records and their sequence
numbers; which of them a full FIFO loses depends on time, which the models do not have:
the lost ones are the gaps in ``seq``, and ``overflow`` counts them).
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from tick2trade.gateware.bytefield import counter_bank
from tick2trade.gateware.interfaces import (GAP_LAYOUT, PRINT_MISSES, RECORD_BITS,
                                            book_entry_layout, book_record, gap_record,
                                            print_layout, trade_entry_layout, trade_record,
                                            update_layout)
from tick2trade.gateware.models.control.events import (BOOK_STREAM_COUNTERS,
                                                       TRADE_STREAM_COUNTERS)


def queue_records(m: Module, tap, src, layout: data.StructLayout, to_record,
                  depth: int) -> dict:
    """What both taps do with their input stream ``src`` (always ready): number every
    item (``tap.seq``), queue it with ``tap.enable`` into a FIFO of ``depth`` entries of
    ``layout`` (lost when full: ``overflow``), send the FIFO's head as ``to_record(entry)``
    on ``tap.records`` while ``tap.channel`` is on, and drop it (``channel_off``) while it
    is off. Returns the counter strobes."""
    count = counter_bank(m, tap.counter_names, tap.counters)
    m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=layout.size, depth=depth)
    entry = Signal(layout)
    m.d.comb += [getattr(entry, k).eq(getattr(src.payload, k)) for k, _f in layout
                 if k != "seq"]
    m.d.comb += entry.seq.eq(tap.seq)
    seq = Signal(32)
    m.d.comb += tap.seq.eq(seq)
    take = src.valid & tap.enable
    with m.If(src.valid):
        m.d.sync += seq.eq(seq + 1)
    m.d.comb += [q.w_data.eq(entry), q.w_en.eq(take & q.w_rdy),
                 count["records"].eq(take & q.w_rdy),
                 count["overflow"].eq(take & ~q.w_rdy)]
    head = layout(q.r_data)
    channel = tap.channel
    m.d.comb += [
        tap.records.payload.eq(to_record(head)),
        tap.records.valid.eq(q.r_rdy & channel),
        q.r_en.eq(Mux(channel, tap.records.ready, 1)),
        count["channel_off"].eq(q.r_rdy & ~channel),
    ]
    return count


def stream_registers(tap, name: str, doc: str, what: str):
    """A tap's register block: ``enable`` (reset 0: off until the host asks), the ``seq``
    the next ``what`` gets, and its counters."""
    from tick2trade.gateware.registers import RegisterBlock

    regs = RegisterBlock(name, doc)
    regs.rw("enable", tap.enable, f"1: every {what} is queued as an event record "
            "(needs ctl.event_enable)")
    regs.ro("seq", tap.seq, f"sequence number the next {what} gets (every {what} counts, "
            "sent or not)")
    regs.struct("counters", tap.counters, "ro", "32-bit wrapping counter")
    return regs


class BookTap(wiring.Component):
    """A copy of the book's update stream for the host, as event records.

    The tap only watches: ``updates`` is the book's stream as its consumer (the strategy)
    takes it — ``valid`` high in the cycle an update is taken — so the strategy sees
    every update with no added latency and is never stalled by the tap. Each update gets
    the next ``seq`` (every update counts, whether it is queued or not); with ``enable``
    set it is written into a FIFO of ``depth`` entries, and when that is full it is lost
    and counted in ``overflow``: the host sees the hole in ``seq`` (or the counter) and
    reads the book again (``book.peek``). A record the FIFO holds while ``channel`` (the
    control endpoint's ``event_enable``) is low is popped and dropped, counted in
    ``channel_off``, so the FIFO never holds stale news for a channel switched on later.

    Parameters
    ----------
    symbols, n : int
        As for ``Book``.
    depth : int
        FIFO entries.

    Members
    -------
    updates : In(stream(update_layout), always ready) — the updates the consumer takes.
    enable : In(1) — queue updates (``book_stream.enable``).
    channel : In(1) — the event channel is on.
    records : Out(stream(RECORD_BITS)) — book records (``protocol.control.BOOK_RECORD``).
    seq : Out(32) — the ``seq`` the next update will get.
    counters : Out(StructLayout) — ``models.control.events.BOOK_STREAM_COUNTERS``.
    """

    counter_names = BOOK_STREAM_COUNTERS

    def __init__(self, symbols: int, n: int, depth: int = 16):
        self.symbols, self.n, self.depth = symbols, n, depth
        super().__init__({
            "updates": In(stream.Signature(update_layout(symbols, n), always_ready=True)),
            "enable": In(1),
            "channel": In(1),
            "records": Out(stream.Signature(RECORD_BITS)),
            "seq": Out(32),
            "counters": Out(data.StructLayout({c: 32 for c in BOOK_STREAM_COUNTERS})),
        })

    def registers(self):
        """``enable`` (reset 0: the stream is off until the host asks for it), ``seq``
        and the counters."""
        return stream_registers(self, "book_stream", "The book's updates as event records "
                                "(EV_BOOK) for the host's copy of the top N.", "book update")

    def elaborate(self, platform):
        m = Module()
        queue_records(m, self, self.updates, book_entry_layout(self.symbols, self.n), book_record,
                      self.depth)
        return m


class TradeTap(wiring.Component):
    """The prints of the receive path's executions, as event records.

    ``prints`` is the book's (``Book.prints``: an E at the resting order's price, which
    only the book's order table knows, a C at its own, a P or Q with its own), registered
    there, so the tap sits beside the path to the strategy and adds nothing to it; it
    never stalls the book (always ready). Each print gets the next ``seq`` (every
    print counts, queued or not); with ``enable`` set it goes into a FIFO of ``depth``
    entries, lost and counted in ``overflow`` when that is full, and dropped
    (``channel_off``) at the FIFO's head while the channel is off, as in
    :class:`BookTap`. A lost print cannot be read back: the host counts the hole in
    ``seq``. ``misses`` (the book's ``print_misses``) are counted only: ``unpriced``
    (an execution of an order the book does not hold), ``non_printable``.

    Parameters
    ----------
    symbols : int
        As for ``Book``.
    depth : int
        FIFO entries.

    Members
    -------
    prints : In(stream(print_layout), always ready).
    misses : In(PRINT_MISSES).
    enable : In(1) — queue prints (``trade_stream.enable``).
    channel : In(1) — the event channel is on.
    records : Out(stream(RECORD_BITS)) — trade records (``protocol.control.TRADE_RECORD``).
    seq : Out(32) — the ``seq`` the next print will get.
    counters : Out(StructLayout) — ``models.control.events.TRADE_STREAM_COUNTERS``.
    """

    counter_names = TRADE_STREAM_COUNTERS

    def __init__(self, symbols: int, depth: int = 16):
        self.symbols, self.depth = symbols, depth
        super().__init__({
            "prints": In(stream.Signature(print_layout(symbols), always_ready=True)),
            "misses": In(PRINT_MISSES),
            "enable": In(1),
            "channel": In(1),
            "records": Out(stream.Signature(RECORD_BITS)),
            "seq": Out(32),
            "counters": Out(data.StructLayout({c: 32 for c in TRADE_STREAM_COUNTERS})),
        })

    def registers(self):
        """``enable`` (reset 0, like ``book_stream``: the host turns both on), ``seq`` and
        the counters."""
        return stream_registers(self, "trade_stream", "The prints of the executions the "
                                "receive path sees (ITCH E, C, P, Q) as event records "
                                "(EV_TRADE).", "print")

    def elaborate(self, platform):
        m = Module()
        count = queue_records(m, self, self.prints, trade_entry_layout(self.symbols),
                              trade_record, self.depth)
        m.d.comb += [count["unpriced"].eq(self.misses.unpriced),
                     count["non_printable"].eq(self.misses.non_printable)]
        return m


class EventArbiter(wiring.Component):
    """The four sources of the event channel in front of the control endpoint.

    Gap reports and the venue's answers take turns when both wait (as they did alone);
    trade records go when neither waits, and book records only when none of the three
    waits: they are the flood, and a lost one costs the host a read of the book, while a
    lost print cannot be read back and a gap report or an answer has nowhere else to go. The
    winner is registered in ``events`` (one record held), so no combinational path runs
    from the sources' FIFOs into the endpoint, nor from the endpoint's ``ready`` back to
    them; the endpoint needs tens of cycles per record, so the held slot costs nothing.

    With ``enable`` (the endpoint's ``event_enable``) low, gap reports and answers go to
    their FIFO registers (``gap_register``, ``answer_register``) as before, and book
    and trade records are not taken (the taps drop them themselves). A record already held waits
    for the channel to come back.

    Members
    -------
    gaps : In(stream(GAP_LAYOUT)); answers, trades, book : In(stream(RECORD_BITS)).
    enable : In(1).
    events : Out(stream(RECORD_BITS)) — to ``ControlEndpoint.events``.
    gap_register : Out(stream(GAP_LAYOUT)); answer_register : Out(stream(RECORD_BITS)).
    """

    def __init__(self):
        super().__init__({
            "gaps": In(stream.Signature(GAP_LAYOUT)),
            "answers": In(stream.Signature(RECORD_BITS)),
            "trades": In(stream.Signature(RECORD_BITS)),
            "book": In(stream.Signature(RECORD_BITS)),
            "enable": In(1),
            "events": Out(stream.Signature(RECORD_BITS)),
            "gap_register": Out(stream.Signature(GAP_LAYOUT)),
            "answer_register": Out(stream.Signature(RECORD_BITS)),
        })

    def elaborate(self, platform):
        m = Module()
        en = self.enable
        gaps, answers, trades, book = self.gaps, self.answers, self.trades, self.book
        held = Signal()
        free = en & ~held
        gap_turn = Signal()  # the gap stream goes first when both wait
        pick_gap = gaps.valid & (gap_turn | ~answers.valid)
        pick_answer = answers.valid & ~pick_gap
        pick_trade = trades.valid & ~gaps.valid & ~answers.valid
        pick_book = book.valid & ~gaps.valid & ~answers.valid & ~trades.valid
        with m.If(self.events.ready):
            m.d.sync += held.eq(0)
        with m.If(free & (gaps.valid | answers.valid | trades.valid | book.valid)):
            m.d.sync += [held.eq(1), self.events.payload.eq(
                Mux(pick_gap, gap_record(gaps.payload),
                    Mux(pick_answer, answers.payload,
                        Mux(pick_trade, trades.payload, book.payload))))]
        with m.If(free & (gaps.valid | answers.valid)):
            m.d.sync += gap_turn.eq(~pick_gap)
        m.d.comb += [
            self.events.valid.eq(held),
            self.gap_register.payload.eq(gaps.payload),
            self.gap_register.valid.eq(gaps.valid & ~en),
            self.answer_register.payload.eq(answers.payload),
            self.answer_register.valid.eq(answers.valid & ~en),
            gaps.ready.eq(Mux(en, free & pick_gap, self.gap_register.ready)),
            answers.ready.eq(Mux(en, free & pick_answer, self.answer_register.ready)),
            trades.ready.eq(free & pick_trade),
            book.ready.eq(free & pick_book),
        ]
        return m
