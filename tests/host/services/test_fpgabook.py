"""The FPGA's book in the platform's market data (host/services/fpgabook.py): book
records from the golden models standing in for the FPGA (``ModelFpga``: receive path →
book → tap → event frames), some of them dropped on the way; after each gap the host
reads the book back through ``book.peek`` and must show exactly the models' top N. Its
prints (``FpgaPrints``): every trade record one ``MarketData.trade``, a lost one
counted."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from tick2trade.gateware.models.rx.eth_rx import RxConfig, feed_frame
from tick2trade.host.config import load
from tick2trade.host.device.book import read_book
from tick2trade.host.services.fpgabook import FpgaBook, FpgaPrints, changes
from tick2trade.host.services.marketdata import Level, MarketData
from tick2trade.protocol import control, frames, itch, moldudp64
from tick2trade.sim.control_frames import event_records
from tick2trade.sim.loop import Loop, LoopConfig
from tick2trade.sim.modelfpga import BOOK_TOP, ModelFpga
from tick2trade.sim.topsim import top_map
from tick2trade.testing.bookflow import random_flow, trade_flow
from tick2trade.testing.simtools import SEED, rng_for

DEMO = Path(__file__).resolve().parents[3] / "docs" / "demo.toml"
SYMBOLS = 8
SESSION = "FPGABOOK01"
EVENTS = {"ctl.event_enable": 1, "ctl.event_ip": frames.ip_to_int("10.0.0.1"),
          "ctl.event_port": 40002, "book_stream.enable": 1}


@pytest.fixture(scope="module")
def regmap():
    return top_map(64, SYMBOLS, 64)


@pytest.fixture
def fpga(regmap):
    cfg = load(DEMO, symbols=SYMBOLS)
    dev = ModelFpga(cfg, regmap, SYMBOLS)
    dev.write_many(EVENTS)
    return cfg, dev


def feed(cfg, rng, n_events: int) -> list[bytes]:
    """The directory of the watch list, then a random flow on it, a message a frame."""
    rx = RxConfig.default(watch=cfg.watch)
    msgs = [itch.encode("R", locate=1 + i, stock=s, market_category="Q")
            for i, s in enumerate(cfg.watch)]
    for e in random_flow(rng, n_events, symbols=len(cfg.watch), spread=10, other=0.05):
        e.locate = 1 + e.sym
        if e.type in "AFP":
            e.stock = itch.stock_int(cfg.watch[e.sym])
        msgs.append(itch.encode_event(e))
    return [feed_frame(rx, 0, moldudp64.encode_packet(SESSION, 1 + i, [m]))
            for i, m in enumerate(msgs)]


def book_records(out: list[bytes]) -> list[control.BookEvent]:
    return event_records(out, control.BookEvent)


UNWATCHED = ("ZZZZ", 60)  # in the venue's directory, not on the watch list
NOT_LISTED = 61  # a locate the directory never named


def trade_feed(cfg, rng, n_events: int) -> list[bytes]:
    """The directory (with one stock we do not watch), then ``trade_flow`` on the watch
    list, with P's on the unwatched stock and on a locate no directory named."""
    rx = RxConfig.default(watch=cfg.watch)
    msgs = [itch.encode("R", locate=1 + i, stock=s, market_category="Q")
            for i, s in enumerate(cfg.watch)]
    msgs.append(itch.encode("R", locate=UNWATCHED[1], stock=UNWATCHED[0],
                            market_category="Q"))
    for e in trade_flow(rng, n_events, symbols=len(cfg.watch)):
        e.locate = 1 + e.sym
        if e.type in "AFPQ":
            e.stock = itch.stock_int(cfg.watch[e.sym])
        msgs.append(itch.encode_event(e))
        if rng.random() < 0.05:
            msgs.append(itch.encode("P", locate=rng.choice([UNWATCHED[1], NOT_LISTED]),
                                    order_ref=0, side="B", shares=100, stock=UNWATCHED[0],
                                    price=1_000_000, match=rng.getrandbits(64)))
    return [feed_frame(rx, 0, moldudp64.encode_packet(SESSION, 1 + i, [m]))
            for i, m in enumerate(msgs)]


def prints_setup(cfg, dev):
    market = MarketData()
    seen = []
    market.listen("trade", seen.append)
    prints = FpgaPrints(market, dev, dict(enumerate(cfg.watch)))
    prints.start()
    return market, prints, seen


def shown(market: MarketData, symbol: str) -> dict[str, list[list[int]]]:
    view = market.book_view(symbol)
    return {"bids": [[x.price, x.size, x.orders] for x in view.bids],
            "asks": [[x.price, x.size, x.orders] for x in view.asks]}


def model_top(dev: ModelFpga, sym: int) -> dict[str, list[list[int]]]:
    """The models' top N as the platform shows it: a level whose orders were all replaced
    down to 0 shares (the flow sends such U's) holds a slot in the FPGA's top N but has
    nothing to trade, and ``MarketData`` shows no level of size 0."""
    return {name: [list(lv) for lv in dev.book.top(sym, side) if lv[1] > 0]
            for side, name in ((0, "bids"), (1, "asks"))}


def assert_same_books(market, dev, cfg):
    for sym, symbol in enumerate(cfg.watch):
        want = model_top(dev, sym)
        assert shown(market, symbol) == want, f"{symbol} (seed {SEED})"
        assert market.book_view(symbol).source == "fpga"
        assert market.book_view(symbol).depth == BOOK_TOP


def test_every_record_applied_gives_the_models_top_n(fpga):
    cfg, dev = fpga
    market = MarketData()
    book = FpgaBook(market, dev, dict(enumerate(cfg.watch)), depth=BOOK_TOP)
    book.start()
    records = book_records(dev.run(feed(cfg, rng_for("fpgabook-all"), 800)))
    assert len(records) > 400
    for r in records:
        book.on_record(r)
    assert not book.poll()
    assert_same_books(market, dev, cfg)
    assert book.counters["gaps"] == 0 and book.counters["resyncs"] == 1
    assert book.counters["applied"] == len(records)


def test_a_dropped_record_is_seen_as_a_gap_and_the_resync_reads_the_book(fpga):
    cfg, dev = fpga
    market = MarketData()
    book = FpgaBook(market, dev, dict(enumerate(cfg.watch)), depth=BOOK_TOP)
    book.start()
    rng = rng_for("fpgabook-gap")
    frames_in = feed(cfg, rng, 900)
    for start in range(0, len(frames_in), 100):
        records = book_records(dev.run(frames_in[start:start + 100]))
        lost = set(rng.sample(range(len(records)), 2)) if records else set()
        for i, r in enumerate(records):
            if i not in lost:
                book.on_record(r)
        if lost:
            assert book.expected is None or max(lost) == len(records) - 1
        book.poll()
        assert_same_books(market, dev, cfg)
    assert book.counters["gaps"] >= 8 and book.counters["resyncs"] >= 9


def test_records_older_than_the_snapshot_are_skipped(fpga):
    """Records still on their way when the host read the book are already in it."""
    cfg, dev = fpga
    market = MarketData()
    book = FpgaBook(market, dev, dict(enumerate(cfg.watch)), depth=BOOK_TOP)
    book.start()
    late = book_records(dev.run(feed(cfg, rng_for("fpgabook-late"), 300)))
    book.resync()  # reads the book with every one of them in it
    for r in late:
        book.on_record(r)
    assert book.counters["stale"] == len(late) and book.counters["applied"] == 0
    assert_same_books(market, dev, cfg)


def test_losses_with_no_record_after_them_are_caught_by_poll(fpga):
    """The tap's FIFO overflowed at the end of a flood: no later record shows a hole,
    but its counter moved, and the next poll resyncs."""
    cfg, dev = fpga
    market = MarketData()
    book = FpgaBook(market, dev, dict(enumerate(cfg.watch)), depth=BOOK_TOP)
    book.start()
    records = book_records(dev.run(feed(cfg, rng_for("fpgabook-tail"), 300)))
    for r in records[:-5]:
        book.on_record(r)
    dev.book_tap.counters["overflow"] += 5  # what the gateware counts for the lost tail
    assert book.poll()
    assert_same_books(market, dev, cfg)
    assert not book.poll()


def test_a_record_carries_the_time_its_frame_reached_the_host(fpga):
    """``on_record``'s ``ts`` is the time on the platform's update (what the WebSocket
    clients see), not the time the host got round to applying it."""
    cfg, dev = fpga
    market = MarketData()
    book = FpgaBook(market, dev, dict(enumerate(cfg.watch)), depth=BOOK_TOP)
    book.start()
    seen = []
    market.listen("book", seen.append)
    arrived = datetime(2026, 12, 2, 9, 30, 0, 123456, tzinfo=timezone.utc)
    for r in book_records(dev.run(feed(cfg, rng_for("fpgabook-ts"), 200))):
        book.on_record(r, arrived)
    assert seen and all(u.ts == arrived for u in seen)


def test_changes_name_the_levels_that_moved():
    before = [(100, 5, 1), (99, 7, 2), (98, 1, 1)]
    after = [(100, 5, 1), (99, 9, 3), (97, 4, 1)]
    assert sorted(changes(before, after)) == [(97, 4, 1), (98, 0, 0), (99, 9, 3)]


def test_the_model_loop_shows_the_fpgas_book_in_the_platform(regmap):
    """End to end on the golden models: the venue's flow through the FPGA stand-in, the
    book records through the loop's event channel into the platform; after the run the
    platform's book of every symbol is what ``t2t book`` reads from the device."""
    cfg = load(DEMO, symbols=SYMBOLS)
    dev = ModelFpga(cfg, regmap, SYMBOLS)
    loop = Loop(dev, dev, cfg, LoopConfig(seed=3))
    market = MarketData()
    loop.fpga_book = FpgaBook(market, dev, dict(enumerate(cfg.watch)), depth=BOOK_TOP)
    loop.fpga_prints = FpgaPrints(market, dev, dict(enumerate(cfg.watch)))
    loop.fpga_book.start()
    loop.fpga_prints.start()
    loop.run(300_000)
    assert loop.settle()
    for sym, symbol in enumerate(cfg.watch):
        device = read_book(dev, sym)
        assert shown(market, symbol) == {k: v["levels"][:BOOK_TOP] for k, v in device.items()}
    assert loop.counters["book_events"] > 200
    assert loop.fpga_book.counters["gaps"] == 0
    # the venue's executions came back as the FPGA's prints: last and bars from them
    p = loop.fpga_prints.counters
    assert p["traded"] == loop.counters["trade_events"] == dev.trade_tap.seq > 20, dict(p)
    assert p["lost"] == 0 and any(market.quote(s) and market.quote(s).last is not None
                                  for s in cfg.watch)
    assert market.book_view(cfg.watch[0]).bids[0] == Level(*dev.book.top(0, 0)[0])


class MovingBook:
    """The models' FPGA whose book moves while the host reads it: after every read of a
    level row, the next of ``frames_in`` goes in (its records kept for later, as if
    still on their way)."""

    def __init__(self, dev: ModelFpga, frames_in: list[bytes]):
        self.dev, self.frames_in, self.map = dev, list(frames_in), dev.map
        self.in_flight: list[control.BookEvent] = []

    def write(self, name, value):
        self.dev.write(name, value)

    def read(self, name):
        return self.read_many([name])[name]

    def read_many(self, names):
        got = self.dev.read_many(names)
        if any(n.startswith("book.peek.") for n in names) and self.frames_in:
            self.in_flight += book_records(self.dev.run([self.frames_in.pop(0)]))
        return got


def test_a_book_that_moves_while_it_is_read_is_read_again(fpga):
    """The tap's seq moved between the two level rows: that read is not the book of any
    one moment, so the symbol is read again; the records that arrive afterwards finish
    the job."""
    cfg, dev = fpga
    frames_in = feed(cfg, rng_for("fpgabook-moving"), 400)
    warm, rest = frames_in[:200], frames_in[200:]
    dev.run(warm)
    moving = MovingBook(dev, rest)
    market = MarketData()
    book = FpgaBook(market, moving, dict(enumerate(cfg.watch)), depth=BOOK_TOP, tries=40)
    book.start()
    assert len(moving.frames_in) < len(rest) - len(cfg.watch)  # some reads were redone
    while moving.in_flight:
        book.on_record(moving.in_flight.pop(0))
    assert book.counters["unsettled"] == book.counters["gaps"] == 0
    assert book.counters["stale"] > 0
    assert_same_books(market, dev, cfg)


def test_every_print_reaches_the_market_as_the_fpga_sent_it(fpga):
    """Each trade record is one print of its symbol (price, shares, the resting order's
    side, none for a cross, the match number); nothing of the unwatched stock or of a
    locate no directory named; last and the bars' volume follow."""
    cfg, dev = fpga
    market, prints, seen = prints_setup(cfg, dev)
    records = event_records(dev.run(trade_feed(cfg, rng_for("fpgaprints-all"), 1500)),
                            control.TradeEvent)
    assert len(records) > 200 and {r.kind for r in records} == set("ECPQ")
    for r in records:
        prints.on_record(r)
    want = [(cfg.watch[r.sym], r.price, r.shares,
             None if r.kind == "Q" else ("buy", "sell")[r.side], r.match) for r in records]
    assert [(t.symbol, t.price, t.size, t.side, t.match) for t in seen] == want, SEED
    assert prints.counters["traded"] == len(records) and prints.counters["lost"] == 0
    assert prints.counters["unwatched"] == 0 and UNWATCHED[0] not in {t.symbol for t in seen}
    for symbol in {w[0] for w in want}:
        mine = [w for w in want if w[0] == symbol]
        assert market.quote(symbol).last == mine[-1][1]
        assert sum(b.volume for b in market.bars(symbol)) == sum(w[2] for w in mine)
    tap = dev.trade_tap.counters
    assert tap["unpriced"] > 0 and tap["non_printable"] > 0, dict(tap)
    assert dev.read("trade_stream.seq") == len(records)


def test_a_lost_print_is_counted_and_the_tape_goes_on(fpga):
    """Records dropped on the way (a full FIFO, a lost frame) leave holes in ``seq``: the
    host counts each lost print (a snapshot cannot bring it back) and gives the market
    the rest; records numbered before ``start`` are stale."""
    cfg, dev = fpga
    rng = rng_for("fpgaprints-lost")
    dev.write("trade_stream.enable", 1)
    early = event_records(dev.run(trade_feed(cfg, rng, 200)), control.TradeEvent)
    market, prints, seen = prints_setup(cfg, dev)
    records = event_records(dev.run(trade_feed(cfg, rng, 1500)), control.TradeEvent)
    dropped = set(rng.sample(range(len(records) - 1), 30))  # the last one shows the holes
    for r in early[-5:]:  # late, from before the start
        prints.on_record(r)
    kept = [r for i, r in enumerate(records) if i not in dropped]
    for r in kept:
        prints.on_record(r)
    runs = sum(1 for i in dropped if i - 1 not in dropped)
    c = prints.counters
    assert (c["lost"], c["gaps"], c["stale"]) == (len(dropped), runs, 5), (dict(c), SEED)
    assert [t.match for t in seen] == [r.match for r in kept]
