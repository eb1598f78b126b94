"""The ITCH publisher: its packets, decoded by the MoldUDP64 and ITCH models and applied
to the book model, rebuild exactly the engine's displayed book on random order flow."""

import os
import random

import pytest

from tick2trade.protocol import itch, moldudp64
from tick2trade.gateware.models.book import BookModel
from tick2trade.sim.venue.engine import DAY, FOK, GTC, IOC, Engine, Instrument
from tick2trade.sim.venue.feed import Publisher

SEED = int(os.environ.get("T2T_SEED", random.randrange(1 << 32)))
INSTRUMENTS = [Instrument("AAPL", 1, tick=100, max_qty=500),
               Instrument("BTC-USD", 7, tick=50, lot=5, max_qty=2000, kind="crypto")]


def displayed(engine: Engine, symbol: str) -> dict:
    """The engine's book as ITCH shows it: hidden orders left out, levels aggregated."""
    out = {}
    book = engine.books[symbol]
    for name, levels, best_first in (("bids", book.bids, True), ("asks", book.asks, False)):
        rows = []
        for price in sorted(levels, reverse=best_first):
            shown = [o.qty for o in levels[price] if not o.hidden]
            if shown:
                rows.append([price, sum(shown), len(shown)])
        out[name] = rows
    return out


def random_step(rng: random.Random, engine: Engine, refs: list[int]) -> None:
    """One random action; bad ones (unknown refs, bad sizes) included on purpose."""
    inst = rng.choice(INSTRUMENTS)
    r = rng.random()
    mid = 10000
    if r < 0.55 or not refs:
        side = rng.choice("BSST")
        price = mid + inst.tick * rng.randint(-6, 6)
        if rng.random() < 0.05:
            price = None
        qty = inst.lot * rng.choice([1, 2, 5, 10, 40, 100])
        if rng.random() < 0.02:
            qty = 0
        tif = rng.choice([DAY] * 6 + [GTC, IOC, FOK])
        ref = engine.submit(inst.symbol, side, qty, price, tif, owner=rng.choice(["MPA", "MPB", 2, 3]),
                            hidden=rng.random() < 0.15)
        if ref > 0:
            refs.append(ref)
    elif r < 0.85:
        ref = rng.choice(refs)
        o = engine.orders.get(ref)
        lot = engine.books[o.sym].instrument.lot if o else 1
        engine.cancel(ref, rng.choice([0, 0, 0, lot, 3 * lot]))
    else:
        ref = rng.choice(refs)
        o = engine.orders.get(ref)
        inst = engine.books[o.sym].instrument if o else inst
        price = o.price if o and rng.random() < 0.4 else mid + inst.tick * rng.randint(-6, 6)
        new = engine.replace(ref, inst.lot * rng.choice([1, 3, 20, 60]), price)
        if new > 0:
            refs.append(new)


class Receiver:
    """The receive side: sequence checked, every message decoded and applied."""

    def __init__(self):
        self.book = BookModel()
        self.events: list[itch.Event] = []
        self.expected = 1

    def take(self, packets: list[bytes], max_payload: int) -> None:
        for payload in packets:
            pkt = moldudp64.decode_packet(payload)
            assert pkt is not None and pkt.complete and pkt.seq == self.expected
            assert len(payload) <= max_payload
            if pkt.count == moldudp64.END_OF_SESSION:
                continue
            for k, raw in enumerate(pkt.messages):
                ev = itch.to_event(raw, pkt.seq + k, sym=int.from_bytes(raw[1:3], "big"))
                assert ev is not None, raw
                self.book.apply(ev)
                self.events.append(ev)
            self.expected += pkt.count


@pytest.mark.parametrize("run", range(6))
def test_feed_rebuilds_the_engines_displayed_book(run):
    seed = SEED + run
    where = f"seed {seed} (T2T_SEED={seed - run} to repeat)"
    rng = random.Random(seed)
    engine = Engine(INSTRUMENTS, smp=rng.choice([None, "cancel_resting", "cancel_incoming"]))
    max_payload = rng.choice([moldudp64.HEADER + 2 + itch.MAX_LENGTH, 200, 1400])
    pub = Publisher(INSTRUMENTS, max_payload=max_payload, attribution=run % 2 == 1)
    pub.start_of_day(1)
    rx = Receiver()
    refs: list[int] = []
    checks = 0
    for step in range(1500):
        random_step(rng, engine, refs)
        pub.publish(engine.events, timestamp=step)
        engine.events.clear()
        rx.take(pub.packets(), max_payload)
        if rng.random() < 0.1:
            rx.take(pub.flush(), max_payload)
            for inst in INSTRUMENTS:
                assert rx.book.book(inst.locate) == displayed(engine, inst.symbol), where
            checks += 1
    engine.end_of_day()
    pub.publish(engine.events, timestamp=10 ** 6)
    pub.end_of_day(10 ** 6)
    packets = pub.end_of_session()
    rx.take(packets, max_payload)
    assert moldudp64.decode_packet(packets[-1]).count == moldudp64.END_OF_SESSION
    assert [e.seq for e in rx.events] == list(range(1, len(pub.log) + 1)), where
    counters = rx.book.counters
    assert counters["unknown_ref"] == counters["duplicate_ref"] == counters["overfill"] == 0
    assert sum(pub.by_type.get(t, 0) for t in "AEXDUP") > 300, where
    assert pub.by_type.get("F", 0) > 0 if run % 2 else "F" not in pub.by_type
    for inst in INSTRUMENTS:
        assert rx.book.book(inst.locate) == displayed(engine, inst.symbol), where
    assert checks > 50
    assert [chr(m[0]) for m in pub.log[:4]] == ["S", "R", "R", "S"]


def test_retransmit_answers_from_the_log_within_max_payload():
    pub = Publisher(INSTRUMENTS, max_payload=200)
    pub.start_of_day(5)
    engine = Engine(INSTRUMENTS)
    for k in range(40):
        engine.submit("AAPL", "B", 10, 10000 - 100 * (k % 5))
    pub.publish(engine.events, timestamp=6)
    sent = pub.flush()
    assert pub.retransmit(len(pub.log) + 1, 1) is None  # not sent yet
    assert pub.retransmit(0, 5) is None and pub.retransmit(3, 0) is None
    seq = 1
    while seq <= len(pub.log):
        pkt = moldudp64.decode_packet(pub.retransmit(seq, 1000))
        assert pkt.seq == seq and pkt.messages == pub.log[seq - 1:seq - 1 + pkt.count]
        assert 0 < pkt.count and len(pub.retransmit(seq, 1000)) <= 200
        seq += pkt.count
    assert moldudp64.decode_packet(pub.retransmit(2, 3)).messages == pub.log[1:4]
    assert b"".join(sent) and pub.heartbeat() == moldudp64.encode_heartbeat(pub.session,
                                                                            len(pub.log) + 1)


def test_max_payload_too_small_for_one_message_is_refused():
    with pytest.raises(ValueError, match="longest type"):
        Publisher(INSTRUMENTS, max_payload=60)
