"""Order flows for the book: random, and aimed at each capacity rule (tests and bench)."""

from __future__ import annotations

import random

from tick2trade.gateware.models.book import bucket_of
from tick2trade.protocol.itch import Event


def ev(t, **kw) -> Event:
    return Event(type=t, sym=kw.pop("sym", 0), seq=0, locate=1, tracking=0, timestamp=0, **kw)


def add(ref, side, price, shares, sym=0, t="A") -> Event:
    return ev(t, sym=sym, order_ref=ref, side=ord(side), price=price, shares=shares)


def random_flow(rng: random.Random, n_events: int, symbols: int = 3, *, spread: int = 12,
                refs=None, other: float = 0.0):
    """Adds, partial executes, cancels, deletes and replaces around a mid, with unknown
    and duplicate references now and then. ``spread`` ticks either side of the mid (wide
    spreads make deep books); ``refs`` yields the references of new orders (default: in
    sequence, as venues hand them out); ``other`` is the share of events that do not
    touch the book (trades, system events)."""
    live: list[int] = []
    refs = refs if refs is not None else iter(range(1, 1 << 62))

    def price():
        return 10_000 * (100 + rng.randint(-spread, spread))

    for _ in range(n_events):
        if other and rng.random() < other:
            yield ev(rng.choice("PSH"), order_ref=rng.getrandbits(64), shares=rng.randint(0, 9),
                     price=price(), code=ord("O"))
            continue
        r = rng.random()
        if r < 0.4 or not live:
            ref = next(refs)
            yield add(ref, rng.choice("BS"), price(), rng.randint(1, 500),
                      sym=rng.randrange(symbols), t=rng.choice("AF"))
            live.append(ref)
            continue
        i = rng.randrange(len(live))
        ref = live[i] if rng.random() > 0.03 else rng.getrandbits(64)
        if r < 0.6:
            yield ev(rng.choice("EC"), order_ref=ref, shares=rng.randint(0, 600),
                     match=rng.getrandbits(32), price=rng.randint(1, 10**7))
        elif r < 0.75:
            yield ev("X", order_ref=ref, shares=rng.randint(1, 300))
        elif r < 0.88:
            yield ev("D", order_ref=ref)
            live[i] = live[-1]
            live.pop()
        else:
            new = next(refs)
            yield ev("U", order_ref=ref, new_ref=new, shares=rng.randint(0, 500),
                     price=price())
            live[i] = new
        if live and rng.random() < 0.02:
            yield add(live[0], "B", 1_000_000, 1)  # a live reference added again
        if len(live) > 4000:  # keep the reference list short: forget the oldest
            del live[:1000]


def colliding_refs(rng: random.Random, index_bits: int, buckets: int = 2):
    """References that all fall into ``buckets`` buckets: every bucket overflows."""
    targets = [rng.getrandbits(index_bits) for _ in range(buckets)]
    while True:
        high = rng.getrandbits(40)
        ref = high << index_bits
        want = rng.choice(targets)
        low = want ^ bucket_of(ref, index_bits)  # the fold is linear in the low bits
        ref |= low
        assert bucket_of(ref, index_bits) == want
        yield ref


def sparse_refs(rng: random.Random, mean_gap: int = 8000):
    """References as one symbol's orders see them on NASDAQ: a day-wide sequence shared
    by ~8,000 instruments, so consecutive orders of ours are thousands apart."""
    ref = rng.getrandbits(20)
    while True:
        ref += rng.randint(1, 2 * mean_gap)
        yield ref


def trade_flow(rng: random.Random, n_events: int, symbols: int = 3, *, spread: int = 6,
               trades: float = 0.1, non_printable: float = 0.2, unknown: float = 0.03,
               refs=None):
    """``random_flow`` with what the trade tap must tell apart: sparse references (default),
    C marked printable ('Y') or not ('N', share ``non_printable``), E and C on references
    never added (share ``unknown`` of the executions, on top of random_flow's), and P and
    Q (share ``trades`` of the events, one in four a Q) with a side (a P's), a price and a
    64-bit match number."""
    refs = refs if refs is not None else sparse_refs(rng)
    for e in random_flow(rng, n_events, symbols=symbols, spread=spread, refs=refs):
        if e.type in "EC":
            e.match = rng.getrandbits(64)
            if rng.random() < unknown:
                e.order_ref = rng.getrandbits(64)
            if e.type == "C":
                e.code = ord("N" if rng.random() < non_printable else "Y")
        yield e
        if rng.random() < trades:
            kind = rng.choice("PPPQ")
            yield ev(kind, sym=rng.randrange(symbols), order_ref=0,
                     side=ord(rng.choice("BS")) if kind == "P" else 0,
                     shares=rng.randint(1, 1000),
                     price=10_000 * (100 + rng.randint(-spread, spread)),
                     match=rng.getrandbits(64))
