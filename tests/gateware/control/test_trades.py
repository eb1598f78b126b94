"""The trade tap (gateware/control/events.py ``TradeTap``) behind the book's prints
(``Book.prints``), in Amaranth's simulator: ITCH events straight into the book, the trade
records that leave compared with the models' (``BookModel(keep_prints=True)`` →
``TradeTapModel``) on sparse references, executions of unknown orders, non-printable
C, P and Q, and record streams stalled until the FIFO overflows; the book's own updates must
be the model's whatever the tap does (the top-level run, with the receive path's
filter and the event channel, is in tests/gateware/test_top.py)."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring

from tick2trade.gateware.book import Book
from tick2trade.gateware.control.events import TradeTap
from tick2trade.gateware.interfaces import event_layout
from tick2trade.gateware.models.book import BookModel
from tick2trade.gateware.models.control.events import TRADE_STREAM_COUNTERS, TradeTapModel
from tick2trade.protocol import control as proto
from tick2trade.testing.bookflow import trade_flow
from tick2trade.testing.simtools import SEED, rng_for, run
from tick2trade.testing.stream import StreamSink, StreamSource, random_pauses

from ..test_book import event_payload, update_of

SYMBOLS, CAPACITY, WAYS, N, DEPTH = 4, 256, 4, 3, 5


class Rig(wiring.Component):
    """The book and the trade tap as the top level joins them."""

    def __init__(self, fifo_depth: int):
        self.book = Book(SYMBOLS, CAPACITY, WAYS, N, DEPTH)
        self.tap = TradeTap(SYMBOLS, depth=fifo_depth)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.book, m.submodules.tap = self.book, self.tap
        wiring.connect(m, self.book.prints, self.tap.prints)
        m.d.comb += self.tap.misses.eq(self.book.print_misses)
        return m


def model(flow, enable: bool = True, channel: bool = True):
    book = BookModel(N, depth=DEPTH, capacity=CAPACITY, ways=WAYS, keep_prints=True)
    tap = TradeTapModel()
    tap.enable, tap.channel = enable, channel
    records, updates = [], []
    for e in flow:
        updates += book.apply(e)
        records += [r for p in book.take_prints() if (r := tap.tap(p)) is not None]
    return records, updates, tap, book


def simulate(flow, rng, *, fifo_depth=16, enable=1, channel=1, idle=0.0, stall=0.0,
             update_stall=0.0):
    rig = Rig(fifo_depth)
    book, tap = rig.book, rig.tap
    fields = list(event_layout(SYMBOLS).members)
    events = StreamSource(book.events, random_pauses(rng, idle))
    updates = StreamSink(book.updates, random_pauses(rng, update_stall), name="updates")
    records = StreamSink(tap.records, random_pauses(rng, stall), name="records")
    got = {}

    async def source(ctx):
        ctx.set(tap.enable, enable)
        ctx.set(tap.channel, channel)
        await events.send(ctx, [event_payload(e, fields) for e in flow])
        await ctx.tick().repeat(200 + 40 * fifo_depth)
        got["counters"] = {c: ctx.get(getattr(tap.counters, c))
                           for c in TRADE_STREAM_COUNTERS}
        got["seq"] = ctx.get(tap.seq)

    run(rig, source, processes=[updates.process, records.process])
    got["records"] = [proto.decode_event_record(int(r).to_bytes(proto.EVENT_RECORD, "big"))
                      for r in records.items]
    got["updates"] = [update_of(u) for u in updates.items]
    return got


def check_subsequence(got, want):
    """Records that left are the model's of their ``seq``, in order; the rest were lost."""
    by_seq = {r.seq: r for r in want}
    seqs = [r.seq for r in got]
    assert seqs == sorted(set(seqs)), f"seed {SEED}: out of order or repeated"
    for r in got:
        assert r == by_seq.get(r.seq), f"seed {SEED}: {r} vs model {by_seq.get(r.seq)}"


def test_prints_match_the_model_when_the_channel_keeps_up():
    """Idle cycles on the events, the book's consumer stalling it, no stall on the
    records: every print, in order, with the price the book's order table gave the E."""
    rng = rng_for("trades-keepup")
    flow = list(trade_flow(rng, 1500, symbols=SYMBOLS))
    want, updates, tap, book = model(flow)
    got = simulate(flow, rng, idle=0.5, update_stall=0.3)
    assert got["updates"] == updates, f"seed {SEED}"
    assert got["records"] == want, f"seed {SEED}"
    assert got["counters"] == dict(tap.counters), f"seed {SEED}"
    assert got["seq"] == tap.seq == len(want)
    kinds = {r.kind for r in want}
    c = tap.counters
    assert kinds == {"E", "C", "P", "Q"} and c["unpriced"] > 5 and c["non_printable"] > 5, \
        (kinds, dict(c))
    assert book.counters["table_full"] > 0, "sparse references never filled a bucket"


def test_a_burst_overflows_the_fifo_and_the_holes_are_in_seq():
    """Events back to back, the records often stalled, a 4-entry FIFO: prints are lost,
    each counted in ``overflow``, the ones that leave are the model's of their ``seq``,
    and the book is not held up (its updates are the model's)."""
    rng = rng_for("trades-burst")
    flow = list(trade_flow(rng, 1200, symbols=SYMBOLS, trades=0.4))
    want, updates, tap, _book = model(flow)
    got = simulate(flow, rng, fifo_depth=4, stall=0.97)
    assert got["updates"] == updates, f"seed {SEED}"
    check_subsequence(got["records"], want)
    lost = len(want) - len(got["records"])
    assert lost > 0, f"seed {SEED}: the burst did not overflow the FIFO"
    c = got["counters"]
    assert c["overflow"] == lost and c["records"] == len(got["records"]), (c, SEED)
    assert c["unpriced"] == tap.counters["unpriced"] and got["seq"] == len(want)


def test_off_by_default_and_channel_off_drop_counted_with_seq_moving():
    rng = rng_for("trades-off")
    flow = list(trade_flow(rng, 300, symbols=SYMBOLS, trades=0.2))
    for enable, channel in ((0, 1), (1, 0)):
        want, _updates, tap, _book = model(flow, bool(enable), bool(channel))
        got = simulate(flow, rng, enable=enable, channel=channel)
        assert got["records"] == want == []
        assert got["counters"] == dict(tap.counters), f"seed {SEED}"
        assert got["seq"] == tap.seq > 20
        assert got["counters"]["channel_off"] == (tap.seq if enable else 0)


def test_a_trade_record_round_trips():
    ev = proto.TradeEvent(0xFFFF_FFFF, 7, "C", 1, 1_234_500, 300, (1 << 64) - 2)
    raw = proto.encode_event_record(ev)
    assert len(raw) == proto.EVENT_RECORD and raw[0] == proto.EV_TRADE
    assert proto.decode_event_record(raw) == ev
