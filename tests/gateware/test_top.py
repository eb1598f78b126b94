"""The whole trade path in the Verilator model of the top level, against the models.

Frames of ITCH in MoldUDP64 go into the MAC RX port; the configuration (watch list,
trigger table, risk limits, venue) is pushed by register name from a TOML file exactly
as ``t2t config push`` does. The models — receive path (a message per frame), book,
strategy, risk and order entry — predict every order frame byte for byte, every
decision and its reason, the reject counters and the UserRefNums; the telemetry records
give each order's tick-to-trade, checked against the cycle its frame went in.
"""

from __future__ import annotations

import copy
import math

import pytest

from tick2trade.protocol import itch, moldudp64
from tick2trade.gateware.models.trade import ouch_tx as order_tx
from tick2trade.gateware.models.trade import risk as trade
from tick2trade.gateware.models.trade.strategy import FAST_LATENCY, Strategy
from tick2trade.gateware.models.book import BookModel
from tick2trade.gateware.models.rx.eth_rx import RxConfig
from tick2trade.gateware.trade.telemetry import EARLY_TAP_LATENCY
from tick2trade.host.config import parse
from tick2trade.testing.bookflow import random_flow
from tick2trade.sim.control_frames import event_records
from tick2trade.sim.local_device import LocalDevice
from tick2trade.sim.topsim import TopSim
from tick2trade.gateware.models.rx.eth_rx import feed_frame

from tick2trade.testing.simtools import SEED, rng_for

WATCH = ["AAA", "BBB", "CCC", "DDD"]
LOCATE0 = 100
MID, TICK = 1_000_000, 10_000  # random_flow's prices: 100.00 ± whole dollars
CONFIG = """
[symbols]
watch = ["AAA", "BBB", "CCC", "DDD"]

[venue]
ip = "10.0.0.2"
port = 40000
mac = "02:00:00:00:00:0a"

[[trigger]]
symbol = "AAA"
kind = "take"
side = "buy"
limit = "101.00"
quantity = 100

[[trigger]]
symbol = "BBB"
kind = "take"
side = "sell"
limit = "99.00"
quantity = 40
tif = "day"

[[trigger]]
symbol = "CCC"
kind = "stop"
side = "sell"
stop = "97.00"
ticks = 2
tick = "1.00"
quantity = 10

[[trigger]]
symbol = "DDD"
kind = "improve"
side = "buy"
limit = "100.00"
ticks = 1
tick = "1.00"
spread = 3
quantity = 5
tif = "day"

[risk]
max_order_shares = 500
position_limit = 1000
collar_bps = 150
max_open_orders = 60
"""
IDLE = 40  # cycles between frames: each message is through the trade path before the next
BATCH = 40


@pytest.fixture(scope="module")
def top():
    sim = TopSim(64)
    dev = LocalDevice(sim)
    cfg = parse(CONFIG, symbols=64)
    assert cfg.push(dev) == []
    return sim, dev, cfg


def directory(session: str) -> list[bytes]:
    msgs = [itch.encode("R", locate=LOCATE0 + i, stock=s, market_category="Q")
            for i, s in enumerate(WATCH)]
    return [moldudp64.encode_packet(session, 1 + i, [m]) for i, m in enumerate(msgs)]


def uncrossed(e: itch.Event) -> itch.Event:
    """Bids below 100.00, asks above: a book with a spread, as markets have."""
    if e.type in "AF":
        away = max(1, abs(e.price - MID) // TICK) * TICK
        e.price = MID - away if e.side == ord("B") else MID + away
    return e


def models(cfg):
    """The book, strategy and risk models for CONFIG."""
    book = BookModel(8, depth=16, capacity=16384, ways=4)
    strategy = Strategy(64)
    for sym, entry in cfg.triggers.items():
        strategy.write(sym, entry)
    return book, strategy, trade.Risk(64, cfg.limits())


def intents_of(e: itch.Event, book, strategy, updates: list | None = None) -> list:
    """The models, in the gateware's order: an add's take (the fast path decides it from
    the early event), the event, then the book's updates (appended to ``updates``)."""
    add = e.type in "AF"
    intents = strategy.cycle(early=e) if add else []
    intents += strategy.cycle(event=e, taken=add)
    for up in book.apply(e):
        intents += strategy.cycle(update=up)
        if updates is not None:
            updates.append(up)
    return intents


def busy_flow(rng, cfg) -> list[itch.Event]:
    """A random flow on which the models send more than 12 orders, refuse some for
    position or collar, and fire a stop or improve trigger besides the takes (a few seeds'
    flows cross the triggers too rarely to mean much: seed 551522605's first flow fired
    neither a stop nor an improve)."""
    while True:
        flow = [uncrossed(e) for e in random_flow(rng, 1600, symbols=len(WATCH), spread=4,
                                             other=0.08)]
        book, strategy, risk = models(cfg)
        for e in copy.deepcopy(flow):
            e.locate = LOCATE0 + e.sym
            if e.type in "AFP":
                e.stock = itch.stock_int(WATCH[e.sym])
            for it in intents_of(e, book, strategy):
                risk.check(it, 0)
        fired = strategy.counters
        if (risk.counters["pass"] > 12 and risk.counters["position"] + risk.counters["collar"]
                and fired["fired_take"] > 10 and fired["fired_stop"] + fired["fired_improve"]):
            return flow


def test_orders_decisions_and_latency_match_the_models(top):
    sim, dev, cfg = top
    rng = rng_for("trade-top")
    rx = RxConfig.default()
    session = "TRADETOP01"
    sim.run([feed_frame(rx, 0, p) for p in directory(session)], idle=IDLE, quiet=64)
    seq = 1 + len(WATCH)

    flow = busy_flow(rng, cfg)
    book, strategy, risk = models(cfg)
    txcfg = order_tx.TxConfig(bytes.fromhex("02000000000a"), cfg.venue["venue_ip"],
                              cfg.venue["venue_port"], bytes.fromhex("020000000002"),
                              rx.ctl_ip, 40001)
    tx = order_tx.OuchTxModel(txcfg)

    want_frames, want_decisions, want_ttt = [], [], []
    got_frames, got_decisions, got_records = [], [], []
    for start in range(0, len(flow), BATCH):
        batch, frames, first_beats = flow[start:start + BATCH], [], []
        t = sim.cycles
        for k, e in enumerate(batch):
            e.locate, e.seq = LOCATE0 + e.sym, seq
            if e.type in "AFP":
                e.stock = itch.stock_int(WATCH[e.sym])
            raw = itch.encode_event(e)
            frame = feed_frame(rx, 0, moldudp64.encode_packet(session, seq, [raw]))
            seq += 1
            frames.append(frame)
            first_beats.append(t)
            t += math.ceil(len(frame) / 8) + IDLE
            for it in intents_of(e, book, strategy):
                why = risk.check(it, 0)
                want_decisions.append((it.sym, it.side, it.price, it.quantity, why))
                if why != "pass":
                    continue
                order = order_tx.Order(side="BS"[it.side], quantity=it.quantity,
                                       stock=WATCH[it.sym], price=it.price, tif=chr(it.tif),
                                       tag=it.tag, sym=it.sym)
                want_frames.append(tx.send(order)[1])
                if it.source == "fast":
                    # an add that is its packet's only message: its price's last byte is
                    # frame byte 99, in beat 12 at 8 bytes a beat
                    want_ttt.append((first_beats[k], 99 // 8 + EARLY_TAP_LATENCY
                                     + FAST_LATENCY + trade.RISK_LATENCY))
                else:
                    want_ttt.append(None)
        out = sim.run(frames, idle=IDLE, quiet=64)
        got_frames += [f for f in out if f[:6] == txcfg.venue_mac]
        got_decisions += dev.drain_fifo("risk.decisions")
        got_records += dev.drain_fifo("telemetry.records")

    assert got_frames == want_frames, SEED
    assert [(d["sym"], d["side"], d["price"], d["quantity"], trade.REASONS[d["reason"]])
            for d in got_decisions] == want_decisions, SEED
    counters = {r: dev.read(f"risk.counters.{r}") for r in trade.REASONS}
    assert counters == {r: risk.counters[r] for r in trade.REASONS}, SEED
    # enough happened for this to mean something (every kind is covered cycle by cycle
    # in test_strategy.py and test_risk.py; here the point is the whole chain)
    assert len(want_frames) > 12 and counters["position"] + counters["collar"] > 0, counters
    fired = strategy.counters
    assert fired["fired_take"] > 10 and fired["fired_stop"] + fired["fired_improve"] > 0

    assert len(got_records) == len(want_frames)
    assert [r["user_ref"] for r in got_records] == list(range(1, len(want_frames) + 1))
    timed = [(r, w) for r, w in zip(got_records, want_ttt) if w is not None]
    assert len(timed) > 10
    for rec, (first_beat, ttt) in timed:
        assert rec["t_in"] == first_beat & 0xFFFFFFFF, (rec, first_beat)
        assert (rec["t_out"] - rec["t_in"]) & 0xFFFFFFFF == ttt, rec
        assert (rec["t_decide"] - rec["t_event"]) & 0xFFFFFFFF == \
            FAST_LATENCY + trade.RISK_LATENCY - 1
        # the decision: 3 cycles after the beat that completed the price at the MAC
        assert (rec["t_decide"] - rec["t_in"]) & 0xFFFFFFFF == 99 // 8 + 3


@pytest.mark.parametrize("idle", [200, 0])
def test_book_records_on_the_event_channel_match_the_models(top, idle):
    """The book's tap on in the RTL (a fresh instance of the build): the order frames
    are the models' byte for byte as with the tap off, and the book records are the
    tap model's — all of them when the frames are far enough apart for the channel (a
    record takes about 90 cycles), else the ones that left, each equal to the model's
    of its ``seq``, with the missing ones counted in ``book_stream.counters.overflow``."""
    from tick2trade.gateware.models.control.events import BookTapModel
    from tick2trade.protocol import control, frames as wire

    _built, _dev, cfg = top
    sim = TopSim(64)
    dev = LocalDevice(sim)
    assert cfg.push(dev) == []
    dev.write_many({"ctl.event_enable": 1, "ctl.event_ip": wire.ip_to_int("10.0.0.1"),
                    "ctl.event_port": 40002, "book_stream.enable": 1})
    rng = rng_for(f"trade-top-book-{idle}")
    rx = RxConfig.default()
    session = "TRADEBOOK1"
    sim.run([feed_frame(rx, 0, p) for p in directory(session)], idle=IDLE, quiet=64)
    seq = 1 + len(WATCH)
    flow = busy_flow(rng, cfg)
    book, strategy, risk = models(cfg)
    tap = BookTapModel()
    tap.enable = tap.channel = True
    txcfg = order_tx.TxConfig(bytes.fromhex("02000000000a"), cfg.venue["venue_ip"],
                              cfg.venue["venue_port"], bytes.fromhex("020000000002"),
                              rx.ctl_ip, 40001)
    tx = order_tx.OuchTxModel(txcfg)
    want_frames, want_records, got_frames, got_records = [], [], [], []
    for start in range(0, len(flow), BATCH):
        frames = []
        for e in flow[start:start + BATCH]:
            e.locate, e.seq = LOCATE0 + e.sym, seq
            if e.type in "AFP":
                e.stock = itch.stock_int(WATCH[e.sym])
            frames.append(feed_frame(rx, 0, moldudp64.encode_packet(
                session, seq, [itch.encode_event(e)])))
            seq += 1
            updates = []
            intents = intents_of(e, book, strategy, updates)
            want_records += [tap.tap(up) for up in updates]
            for it in intents:
                if risk.check(it, 0) == "pass":
                    want_frames.append(tx.send(order_tx.Order(
                        side="BS"[it.side], quantity=it.quantity, stock=WATCH[it.sym],
                        price=it.price, tif=chr(it.tif), tag=it.tag, sym=it.sym))[1])
        out = sim.run(frames, idle=idle, quiet=64) + sim.step(2000)
        got_frames += [f for f in out if f[:6] == txcfg.venue_mac]
        got_records += event_records(out, control.BookEvent)
    assert got_frames == want_frames, SEED
    counters = dev.read_many(["book_stream.seq", "book_stream.counters.records",
                              "book_stream.counters.overflow", "strategy.counters.updates"])
    assert counters["book_stream.seq"] == len(want_records) == \
        counters["strategy.counters.updates"] > 1000
    by_seq = {r.seq: r for r in want_records}
    assert [r.seq for r in got_records] == sorted(r.seq for r in got_records)
    assert all(r == by_seq[r.seq] for r in got_records), SEED
    lost = len(want_records) - len(got_records)
    assert counters["book_stream.counters.overflow"] == lost, SEED
    assert counters["book_stream.counters.records"] == len(got_records)
    if idle >= 200:
        assert got_records == want_records, SEED
    else:
        assert lost > 0, "back-to-back frames did not overflow the tap"
    print(f"idle {idle}: {len(got_records)} of {len(want_records)} book records sent, "
          f"{lost} lost to the full FIFO")


@pytest.mark.parametrize("idle", [200, 0])
def test_trade_records_on_the_event_channel_match_the_models(top, idle):
    """Both taps on in the RTL (a fresh instance of the build), a flow rich in
    executions (sparse references, E and C on unknown ones, C not printable, P and Q,
    P on a stock the venue lists but we do not watch and on a locate never listed):
    the trade records are ``ModelFpga``'s — all of them when the frames are far apart,
    else the ones that left, each the model's of its ``seq``, the missing ones counted
    in ``trade_stream.counters.overflow`` — and the counters of what is no print agree."""
    from tick2trade.protocol import control, frames as wire
    from tick2trade.sim.modelfpga import ModelFpga
    from tick2trade.testing.bookflow import trade_flow

    _built, _dev, cfg = top
    sim = TopSim(64)
    dev = LocalDevice(sim)
    assert cfg.push(dev) == []
    model = ModelFpga(cfg, sim.map, 64)
    setup = {"ctl.event_enable": 1, "ctl.event_ip": wire.ip_to_int("10.0.0.1"),
             "ctl.event_port": 40002, "book_stream.enable": 1, "trade_stream.enable": 1}
    dev.write_many(setup)
    model.write_many(setup)
    rng = rng_for(f"trade-top-prints-{idle}")
    rx = RxConfig.default()
    session = "TRADEPRNT1"
    unwatched, unlisted = LOCATE0 + 10, LOCATE0 + 11
    msgs = [itch.encode("R", locate=LOCATE0 + i, stock=s, market_category="Q")
            for i, s in enumerate(WATCH)]
    msgs.append(itch.encode("R", locate=unwatched, stock="ZZZZ", market_category="Q"))
    for e in trade_flow(rng, 1500, symbols=len(WATCH), trades=0.3 if idle else 0.6):
        e.locate = LOCATE0 + e.sym
        if e.type in "AFPQ":
            e.stock = itch.stock_int(WATCH[e.sym])
        msgs.append(itch.encode_event(uncrossed(e)))
        if rng.random() < 0.05:
            msgs.append(itch.encode("P", locate=rng.choice([unwatched, unlisted]),
                                    side="S", shares=7, stock="ZZZZ", price=1_000_000,
                                    match=rng.getrandbits(64)))
    frames_in = [feed_frame(rx, 0, moldudp64.encode_packet(session, 1 + i, [m]))
                 for i, m in enumerate(msgs)]

    def trade_records(out):
        return event_records(out, control.TradeEvent)

    got, want = [], []
    for start in range(0, len(frames_in), 100):
        batch = frames_in[start:start + 100]
        got += trade_records(sim.run(batch, idle=idle, quiet=64) + sim.step(3000))
        want += trade_records(model.run(batch))
    names = ["trade_stream.seq", *(f"trade_stream.counters.{k}" for k in
                                   ("records", "overflow", "unpriced", "non_printable"))]
    counters = dev.read_many(names)
    tap = model.trade_tap.counters
    assert counters["trade_stream.seq"] == model.trade_tap.seq == len(want) > 300, SEED
    assert {r.kind for r in want} == set("ECPQ")
    for k in ("unpriced", "non_printable"):
        assert counters[f"trade_stream.counters.{k}"] == tap[k] > 0, (k, SEED)
    by_seq = {r.seq: r for r in want}
    assert [r.seq for r in got] == sorted({r.seq for r in got})
    assert all(r == by_seq[r.seq] for r in got), SEED
    lost = len(want) - len(got)
    assert counters["trade_stream.counters.overflow"] == lost, SEED
    assert counters["trade_stream.counters.records"] == len(got)
    if idle >= 200:
        assert got == want, SEED
    else:
        assert lost > 0, "back-to-back frames did not overflow the trade tap"
    print(f"idle {idle}: {len(got)} of {len(want)} trade records sent, {lost} lost")
