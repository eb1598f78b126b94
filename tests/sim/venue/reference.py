"""A brute-force matching engine: resting orders in one flat list, sorted afresh for every
incoming order. Slow and obviously right; ``sim.venue.engine.Engine`` must agree with it
event for event."""

from __future__ import annotations

from dataclasses import dataclass

from tick2trade.sim.venue.engine import (ADD, BUY, CANCEL, DAY, EXEC, FOK, IOC, R_CLOSED,
                                         R_MARKET_REPLACE, R_PRICE, R_QTY, R_SIDE, R_SYMBOL, R_TIF,
                                         R_UNKNOWN, REPLACE, SELL, TIFS)

SIDES = ("B", "S", "T", "E")


@dataclass
class Resting:
    ref: int
    sym: str
    side: str
    qty: int
    price: int
    tif: str
    owner: object
    hidden: bool
    prio: int


class ReferenceEngine:
    def __init__(self, instruments, smp=None):
        self.inst = {i.symbol: i for i in instruments}
        self.smp = smp
        self.resting: list[Resting] = []
        self.events: list[tuple] = []
        self.next_ref = self.next_match = 1
        self.clock = 0
        self.open = True

    def _qty_ok(self, inst, qty):
        return 0 < qty <= inst.max_qty and qty % inst.lot == 0

    def _price_ok(self, inst, price):
        return 0 < price <= inst.max_price and price % inst.tick == 0

    def _crosses(self, side, limit, o):
        if o.side == side:
            return False
        return limit is None or (o.price <= limit if side == BUY else o.price >= limit)

    def _queue(self, sym, side, limit):
        opp = [o for o in self.resting if o.sym == sym and self._crosses(side, limit, o)]
        return sorted(opp, key=lambda o: (o.price if side == BUY else -o.price, o.prio))

    def _self(self, a, b):
        return self.smp is not None and a is not None and a == b

    def _execute(self, sym, side, limit, qty, ref, owner):
        """Returns (open quantity left, killed by self-match prevention)."""
        for maker in self._queue(sym, side, limit):
            if qty == 0:
                break
            if self._self(maker.owner, owner):
                if self.smp == "cancel_resting":
                    self.resting.remove(maker)
                    self.events.append((CANCEL, sym, maker.ref, maker.qty, 0, "Q",
                                        not maker.hidden))
                    continue
                self.events.append((CANCEL, sym, ref, qty, 0, "Q", False))
                return 0, True
            fill = min(qty, maker.qty)
            self.events.append((EXEC, sym, maker.ref, fill, maker.price, self.next_match,
                                ref, maker.side, maker.hidden))
            self.next_match += 1
            maker.qty -= fill
            qty -= fill
            if maker.qty == 0:
                self.resting.remove(maker)
        return qty, False

    def _add(self, **kw):
        self.clock += 1
        self.resting.append(Resting(prio=self.clock, **kw))

    def submit(self, symbol, side, qty, price, tif=DAY, owner=None, hidden=False):
        inst = self.inst.get(symbol)
        if inst is None:
            return -R_SYMBOL
        if not self.open:
            return -R_CLOSED
        if side not in SIDES:
            return -R_SIDE
        side = BUY if side == BUY else SELL
        if not self._qty_ok(inst, qty):
            return -R_QTY
        if price is not None and not self._price_ok(inst, price):
            return -R_PRICE
        if tif not in TIFS:
            return -R_TIF
        ref = self.next_ref
        self.next_ref += 1
        if tif == FOK:
            avail = 0
            for o in self._queue(symbol, side, price):
                if self._self(o.owner, owner):
                    if self.smp == "cancel_incoming":
                        break
                    continue
                avail += o.qty
            if avail < qty:
                self.events.append((CANCEL, symbol, ref, qty, 0, "I", False))
                return ref
        left, killed = self._execute(symbol, side, price, qty, ref, owner)
        if left and not killed:
            if price is None or tif in (IOC, FOK):
                self.events.append((CANCEL, symbol, ref, left, 0, "I", False))
            else:
                self._add(ref=ref, sym=symbol, side=side, qty=left, price=price, tif=tif,
                          owner=owner, hidden=hidden)
                self.events.append((ADD, symbol, ref, side, left, price, hidden, owner))
        return ref

    def _find(self, ref):
        return next((o for o in self.resting if o.ref == ref), None)

    def cancel(self, ref, qty=0, reason="U"):
        o = self._find(ref)
        if o is None:
            return -R_UNKNOWN
        if qty >= o.qty:
            return True
        cancelled = o.qty - qty
        o.qty = qty
        if qty == 0:
            self.resting.remove(o)
        self.events.append((CANCEL, o.sym, ref, cancelled, qty, reason, not o.hidden))
        return True

    def replace(self, ref, qty, price):
        o = self._find(ref)
        if o is None:
            return -R_UNKNOWN
        if price is None:
            return -R_MARKET_REPLACE
        inst = self.inst[o.sym]
        if not self._qty_ok(inst, qty):
            return -R_QTY
        if not self._price_ok(inst, price):
            return -R_PRICE
        old_qty = o.qty
        if price == o.price and qty <= o.qty:
            o.qty = qty
            self.events.append((REPLACE, o.sym, ref, ref, qty, price, o.side, o.hidden,
                                old_qty))
            return ref
        self.resting.remove(o)
        new_ref = self.next_ref
        self.next_ref += 1
        slot = len(self.events)
        self.events.append(None)
        left, killed = self._execute(o.sym, o.side, price, qty, new_ref, o.owner)
        if killed:
            left = 0
        if left:
            self._add(ref=new_ref, sym=o.sym, side=o.side, qty=left, price=price, tif=o.tif,
                      owner=o.owner, hidden=o.hidden)
        self.events[slot] = (REPLACE, o.sym, ref, new_ref, left, price, o.side, o.hidden,
                             old_qty)
        return new_ref

    def end_of_day(self):
        for o in sorted((o for o in self.resting if o.tif == DAY), key=lambda o: o.ref):
            self.cancel(o.ref, 0, "E")
        self.open = False

    def snapshot(self, sym):
        out = {}
        for side, sign in ((BUY, -1), (SELL, 1)):
            mine = sorted((o for o in self.resting if o.sym == sym and o.side == side),
                          key=lambda o: (sign * o.price, o.prio))
            levels: list = []
            for o in mine:
                if not levels or levels[-1][0] != o.price:
                    levels.append((o.price, []))
                levels[-1][1].append((o.ref, o.qty))
            out[side] = levels
        return out
