"""The FPGA's book in the platform's market data (host/services/fpgabook.py): book
records from the golden models standing in for the FPGA (``ModelFpga``: receive path →
book → tap → event frames), some of them dropped on the way; after each gap the host
reads the book back through ``book.peek`` and must show exactly the models' top N."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from tick2trade.gateware.models.rx.eth_rx import RxConfig, feed_frame
from tick2trade.host.config import load
from tick2trade.host.device.book import read_book
from tick2trade.host.services.fpgabook import FpgaBook, changes
from tick2trade.host.services.marketdata import Level, MarketData
from tick2trade.protocol import control, frames, itch, moldudp64
from tick2trade.sim.loop import Loop, LoopConfig
from tick2trade.sim.modelfpga import BOOK_TOP, ModelFpga
from tick2trade.sim.topsim import top_map
from tick2trade.testing.bookflow import random_flow
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
    got = []
    for f in out:
        dg = frames.parse_udp_frame(f)
        if isinstance(dg, str) or control.frame_kind(dg.payload) != control.KIND_EVENT:
            continue
        got += [e for e in control.check(dg.payload, control.KIND_EVENT).events
                if isinstance(e, control.BookEvent)]
    return got


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
    loop.fpga_book.start()
    loop.run(300_000)
    assert loop.settle()
    for sym, symbol in enumerate(cfg.watch):
        device = read_book(dev, sym)
        assert shown(market, symbol) == {k: v["levels"][:BOOK_TOP] for k, v in device.items()}
    assert loop.counters["book_events"] > 200
    assert loop.fpga_book.counters["gaps"] == 0
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
