"""Synthetic participants: seeded, reproducible order flow for the venue.

Design decisions
----------------
- One ``random.Random(seed)`` drives everything, and every choice that depends on the
  market (which order to cancel, where the mid is) reads the engine, which is itself
  deterministic: the same seed and the same instruments give the same orders, the same
  events and the same ITCH bytes, run after run.
- Arrivals are a Poisson process: exponential gaps with mean ``1 / rate`` seconds of
  *flow time*. Flow time is not wall time; a live venue (``t2t venue``) sleeps to follow
  it, ``t2t venue gen`` just uses it for timestamps.
- Each instrument's mid is a random walk in whole ticks (never below 10 ticks). Orders are
  mostly passive, a few ticks behind the mid, geometric in distance, so the book has
  depth near the touch and thins out; some cross (marketable limits and IOCs), and now
  and then a participant sweeps several levels with a large IOC or market order.
- Cancels and replaces pick among the participant's own live orders, oldest first more
  often, so stale orders left behind by the moving mid do not pile up; the open-order
  count stays roughly flat at a steady state set by the mix.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tick2trade.sim.venue.engine import BUY, DAY, GTC, IOC, SELL, Instrument
from tick2trade.sim.venue.venue import Venue


@dataclass
class Mix:
    """Shares of each action (they need not add up to 1: they are weights)."""

    passive: float = 0.50
    marketable: float = 0.06
    cancel: float = 0.32
    replace: float = 0.10
    sweep: float = 0.005
    hidden: float = 0.05  # of new orders
    gtc: float = 0.1  # of resting orders


class Flow:
    """Participants trading on a :class:`Venue`.

    Parameters
    ----------
    venue:
        Where the orders go (its engine and publisher).
    seed:
        Everything random follows from it.
    rate:
        Mean actions per second of flow time (new orders, cancels and replaces).
    participants:
        Owners the orders are spread over (names ``P00``, ``P01``...: 1-4 characters, so
        an attributing publisher can show them as MPIDs).
    """

    def __init__(self, venue: Venue, *, seed: int = 1, rate: float = 1000.0,
                 participants: int = 8, mix: Mix | None = None,
                 start_mid: dict[str, int] | None = None):
        if rate <= 0:
            raise ValueError(f"rate {rate}: must be > 0 actions per second")
        self.venue = venue
        self.engine = venue.engine
        self.rng = random.Random(seed)
        self.rate = rate
        self.mix = mix or Mix()
        self.owners = [f"P{k:02d}" for k in range(participants)]
        self.instruments: list[Instrument] = list(venue.instruments)
        start_mid = start_mid or {}
        self.mid = {i.symbol: max(10, start_mid.get(i.symbol, 1_000_000) // i.tick)
                    for i in self.instruments}  # in ticks
        self.live: dict[str, list[int]] = {o: [] for o in self.owners}
        self.now = 0.0  # flow time, seconds
        self.actions = 0
        weights = self.mix
        self._kinds = ("passive", "marketable", "cancel", "replace", "sweep")
        self._weights = [weights.passive, weights.marketable, weights.cancel,
                         weights.replace, weights.sweep]

    def step(self) -> float:
        """One action (its events drained into the publisher); returns its flow time."""
        rng = self.rng
        self.now += rng.expovariate(self.rate)
        self.actions += 1
        inst = rng.choice(self.instruments)
        sym = inst.symbol
        if rng.random() < 0.3:
            self.mid[sym] = max(10, self.mid[sym] + rng.choice((-1, 1)))
        owner = rng.choice(self.owners)
        kind = rng.choices(self._kinds, self._weights)[0]
        if kind in ("cancel", "replace") and not self._prune(owner):
            kind = "passive"
        if kind == "passive":
            self._new(inst, owner, rng.choice((BUY, SELL)), -self._distance(), DAY)
        elif kind == "marketable":
            self._new(inst, owner, rng.choice((BUY, SELL)), rng.randint(0, 2),
                      IOC if rng.random() < 0.5 else DAY)
        elif kind == "sweep":
            side = rng.choice((BUY, SELL))
            qty = min(self._size(inst) * rng.randint(4, 12), inst.max_qty)
            qty -= qty % inst.lot
            price = None if rng.random() < 0.3 else self._price(inst, side, 8)
            self.engine.submit(sym, side, qty, price, IOC, owner)
        else:
            mine = self.live[owner]
            ref = mine[min(int(rng.expovariate(1 / 3)), len(mine) - 1)]
            if kind == "cancel":
                self.engine.cancel(ref)
            else:
                order = self.engine.orders[ref]
                book_inst = self.engine.books[order.sym].instrument
                price = self._price(book_inst, order.side, -self._distance())
                new = self.engine.replace(ref, self._size(book_inst), price)
                if new > 0 and new != ref:
                    mine.append(new)
        self.venue.drain()
        return self.now

    def _prune(self, owner: str) -> bool:
        """Drop the owner's orders that no longer rest; True when any is left."""
        orders = self.engine.orders
        mine = self.live[owner]
        if any(r not in orders for r in mine):
            mine[:] = [r for r in mine if r in orders]
        return bool(mine)

    def _size(self, inst: Instrument) -> int:
        """A few round lots, within the instrument's limits."""
        qty = self.rng.choice((1, 1, 1, 2, 2, 3, 5, 10)) * max(inst.round_lot, inst.lot)
        qty = min(qty, inst.max_qty)
        return max(qty - qty % inst.lot, inst.lot)

    def _distance(self) -> int:
        """Ticks behind the mid for a passive order: 1 most often, geometric beyond."""
        return 1 + min(int(self.rng.expovariate(0.35)), 40)

    def _price(self, inst: Instrument, side: str, through: int) -> int:
        """A price ``through`` ticks past the mid on the aggressive side (negative:
        behind it), on the tick and above zero."""
        ticks = self.mid[inst.symbol] + (through if side == BUY else -through)
        return max(1, ticks) * inst.tick

    def _new(self, inst: Instrument, owner: str, side: str, through: int, tif: str) -> None:
        rng = self.rng
        if tif == DAY and rng.random() < self.mix.gtc:
            tif = GTC
        ref = self.engine.submit(inst.symbol, side, self._size(inst),
                                 self._price(inst, side, through), tif, owner,
                                 rng.random() < self.mix.hidden)
        if ref > 0:
            self.live[owner].append(ref)
