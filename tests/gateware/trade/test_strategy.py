"""``strategy`` against ``models.trade.strategy``, cycle by cycle (Amaranth simulator).

The main test offers random events, book updates and host injections with random
timing and a random trigger table (rewritten mid-stream), most events also as the
decoder's early event a cycle before (sometimes with the wrong symbol named for the
fast path's read, so the event path has to take over), and compares every intent — its
fields and the cycle it is offered — with ``run_strategy``. Last, the receive path,
the strategy and the risk gate together take packets of Adds at every lane offset, back
to back and of the same symbol, and every take's decision must come 3 cycles after the
MAC beat that completed it, with the models' verdicts.
"""

from __future__ import annotations

import random

import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out
from amaranth.sim import Simulator

from tick2trade.protocol import itch
from tick2trade.gateware.models.trade import strategy as model
from tick2trade.gateware.models.trade import risk as risk_model
from tick2trade.gateware.models.stream import frame_beats
from tick2trade.gateware.models.book import (ACTIONS, BUY, CLEAR, DELETE, INSERT, MODIFY, SELL,
                                             Update)
from tick2trade.protocol.itch import Event
from tick2trade.gateware.trade.risk import Risk
from tick2trade.gateware.rx.rx_path import RxPath
from tick2trade.gateware.trade.strategy import Strategy

from tick2trade.testing.simtools import SEED, as_dict, rng_for, run
from tests.gateware.trade.test_risk import limits_payload

S = 8
MID = 1_000_000  # $100.0000
TICK = 100


def random_entry(rng: random.Random) -> model.Trigger:
    kind = rng.choice((model.TAKE, model.STOP, model.IMPROVE))
    side = rng.choice((BUY, SELL))
    return model.Trigger(
        enable=rng.random() < 0.9, kind=kind, side=side, one_shot=rng.random() < 0.3,
        price=MID + TICK * rng.randint(-8, 8), quantity=rng.randint(1, 500),
        tif=ord(rng.choice("03")), offset=TICK * rng.randint(0, 3),
        min_spread=TICK * rng.randint(0, 4), tag=rng.randrange(1 << 16))


def random_event(rng: random.Random, sym: int, cycle: int) -> Event:
    t = rng.choice("AAAFPPCQEXDS")
    price = MID + TICK * rng.randint(-10, 10) if t in "AFPCQ" else 0
    if t in "PC" and rng.random() < 0.1:
        price = 0  # a print with no price moves nothing
    return Event(type=t, sym=sym, seq=cycle, locate=sym + 1, tracking=0, timestamp=cycle,
                 order_ref=rng.randrange(1 << 40), side=ord(rng.choice("BS")),
                 shares=rng.randint(1, 1000), price=price)


def random_update(rng: random.Random, sym: int) -> Update:
    if rng.random() < 0.03:
        return Update(sym, 0, CLEAR, 0, 0, 0, 0, False, rng.random() < 0.5)
    side = rng.choice((BUY, SELL))
    best = MID + TICK * (rng.randint(-10, 2) if side == BUY else rng.randint(-2, 10))
    shares = 0 if rng.random() < 0.1 else rng.randint(1, 900)
    return Update(sym, side, rng.choice((MODIFY, INSERT, DELETE)), rng.randint(0, 7), best,
                  shares, 1, True, False, best if shares else 0, shares)


def event_payload(e: Event) -> dict:
    return {"sym": e.sym, "type": ord(e.type), "locate": e.locate, "seq": e.seq,
            "order_ref": e.order_ref, "side": e.side, "shares": e.shares, "price": e.price}


def update_payload(u: Update) -> dict:
    return {"sym": u.sym, "side": u.side, "action": ACTIONS.index(u.action), "level": u.level,
            "price": u.price, "shares": u.shares, "orders": u.orders, "bbo": int(u.bbo),
            "all_syms": int(u.all_syms), "best_price": u.best_price,
            "best_shares": u.best_shares}


def entry_payload(e: model.Trigger) -> dict:
    return {"enable": int(e.enable), "kind": e.kind, "side": e.side,
            "one_shot": int(e.one_shot), "price": e.price, "quantity": e.quantity,
            "tif": e.tif, "offset": e.offset, "min_spread": e.min_spread, "tag": e.tag}


INTENT_FIELDS = ("sym", "side", "price", "quantity", "tif", "tag", "ref", "cancel", "user_ref")


def intent_key(it: model.Intent) -> tuple:
    return (*(int(getattr(it, f)) for f in INTENT_FIELDS), model.SOURCES.index(it.source))


def drive_strategy(cycles: int, schedule: dict, updates: list, writes: dict, early: dict,
                   named: dict) -> tuple[list, list, model.Strategy]:
    """Offer the inputs to the gateware and to ``run_strategy``; every intent must agree
    in its fields, its source and the cycle it is offered, and its stamps must say when
    its input reached the strategy. ``schedule[c]`` is (event, host injection) for cycle
    ``c``, ``updates`` (cycle wanted from, update) pairs, ``early[c]`` (event, the symbol
    named in ``c - 1``) and ``named[c]`` the ``early_sym`` of cycle ``c``. Returns (the
    intents as (cycle, Intent), the arrivals, the model)."""
    dut = Strategy(S)
    arrivals: dict[int, tuple] = {}
    got: list[tuple[int, tuple, int, int]] = []

    async def bench(ctx):
        ctx.set(dut.intents.ready, 1)
        pending = list(updates)
        for c in range(cycles + 40):
            ctx.set(dut.now, c)
            ctx.set(dut.t_in, (c * 7) & 0xFFFFFFFF)
            ctx.set(dut.t_in_early, (c * 5) & 0xFFFFFFFF)
            ctx.set(dut.early_sym, named.get(c, 0))
            fev, _ = early.get(c, (None, None))
            ctx.set(dut.early.valid, fev is not None)
            if fev is not None:
                ctx.set(dut.early.payload, event_payload(fev))
            (sym, entry), = writes.get(c, [(0, None)])
            ctx.set(dut.entry_wr, {"stb": entry is not None, "sym": sym})
            if entry is not None:
                ctx.set(dut.entry, entry_payload(entry))
            ev, inj = schedule.get(c, (None, None))
            ctx.set(dut.events.valid, ev is not None)
            if ev is not None:
                ctx.set(dut.events.payload, event_payload(ev))
            ctx.set(dut.inject_stb, inj is not None)
            if inj is not None:
                ctx.set(dut.inject, {"sym": inj.sym, "side": inj.side,
                                     "price": inj.price, "quantity": inj.quantity,
                                     "tif": inj.tif, "tag": inj.tag, "cancel": int(inj.cancel),
                                     "user_ref": inj.user_ref})
            up = pending[0][1] if pending and pending[0][0] <= c else None
            ctx.set(dut.updates.valid, up is not None)
            if up is not None:
                ctx.set(dut.updates.payload, update_payload(up))
            taken_up = up if up is not None and ctx.get(dut.updates.ready) else None
            if taken_up is not None:
                pending.pop(0)
            if ev or taken_up or inj:
                arrivals[c] = (ev, taken_up, inj)
            if ctx.get(dut.intents.valid):
                p = ctx.get(dut.intents.payload)
                got.append((c, (*(int(getattr(p, f)) for f in INTENT_FIELDS), int(p.source)),
                            int(p.t_event), int(p.t_in)))
            await ctx.tick()
        assert not pending

    run(dut, bench)
    strategy = model.Strategy(S)
    want = model.run_strategy(strategy, arrivals, writes, early)
    assert [(c, k) for c, k, _, _ in got] == [(c, intent_key(it)) for c, it in want], SEED
    for c, key, t_event, t_in in got:
        if key[-1] == model.SOURCES.index("fast"):  # in its early event's cycle
            assert t_event == c - model.FAST_LATENCY and t_in == t_event * 5
        elif key[-1] == model.SOURCES.index("event"):  # 2 cycles after its event, exactly
            assert t_event == c - model.STRATEGY_LATENCY and t_in == t_event * 7
        else:  # the others may wait behind event-path intents
            assert t_event <= c - model.STRATEGY_LATENCY and t_in == t_event
    return want, arrivals, strategy


def test_strategy_matches_model():
    rng = rng_for("strategy")
    cycles = 4000
    schedule = {}  # cycle -> event, inject
    writes: dict[int, list] = {s: [(s, random_entry(rng))] for s in range(S)}  # one a cycle
    for c in range(S, cycles):
        if rng.random() < 0.02:
            writes[c] = [(rng.randrange(S), random_entry(rng))]
    updates = [(c, random_update(rng, rng.randrange(S))) for c in range(S + 2, cycles)
               if rng.random() < 0.45]
    for c in range(S + 2, cycles):
        ev = random_event(rng, rng.randrange(S), c) if rng.random() < 0.5 else None
        inj = None
        if rng.random() < 0.02 and c not in writes:
            inj = model.Intent(rng.randrange(S), rng.choice((BUY, SELL)), MID, 100,
                               ord("0"), rng.randrange(1 << 16), 0, "host",
                               cancel=rng.random() < 0.3, user_ref=rng.randrange(1 << 20))
        schedule[c] = (ev, inj)
    # the early event of cycle c is the event of c + 1; the symbol named in c - 1 is
    # mostly the right one
    early: dict[int, tuple[Event, int]] = {}
    named = {c: rng.randrange(S) for c in range(cycles + 40)}
    for c, (ev, _inj) in schedule.items():
        if ev is not None and rng.random() < 0.85:
            if rng.random() < 0.85:
                named[c - 2] = ev.sym
            early[c - 1] = (ev, named[c - 2])

    want, arrivals, strategy = drive_strategy(cycles, schedule, updates, writes, early, named)
    fired = {k: v for k, v in strategy.counters.items() if k.startswith("fired")}
    assert all(v > 2 for v in fired.values()), fired
    assert sum(1 for _c, it in want if it.source == "update") > 20
    # both ways to a take are exercised: the fast path and its fallback
    fallback = [c for c, it in want if it.source == "event"
                and arrivals[c - model.STRATEGY_LATENCY][0].type in "AF"]
    fast = [c for c, it in want if it.source == "fast"]
    assert len(fast) > 10 and len(fallback) > 2, (len(fast), len(fallback))


def add(sym: int, cycle: int, price: int = MID) -> Event:
    """An ITCH Add (sell) of ``sym`` that a buy take at ``MID`` or above crosses."""
    return Event(type="A", sym=sym, seq=cycle, locate=sym + 1, tracking=0, timestamp=cycle,
                 order_ref=cycle, side=ord("S"), shares=100, price=price)


@pytest.mark.parametrize("one_shot", [True, False])
def test_fast_path_and_event_path_fire_one_entry_in_one_cycle(one_shot):
    """A fallback take (no early event) decided in the cycle the fast path decides the
    next Add of the same symbol: a one-shot entry fires once, on the fast path; a
    standing one fires on both. A third Add whose early cycle meets the event path's
    intent gives way and is decided on the event path."""
    entry = model.Trigger(enable=True, kind=model.TAKE, side=BUY, one_shot=one_shot,
                          price=MID + TICK, quantity=10)
    writes = {2: [(3, entry)]}
    first, second, third = add(3, 20), add(3, 22), add(3, 23)
    schedule = {20: (first, None), 22: (second, None), 23: (third, None)}
    early = {21: (second, 3), 22: (third, 3)}
    want, _arrivals, _strategy = drive_strategy(40, schedule, [], writes, early,
                                                {20: 3, 21: 3})
    if one_shot:
        assert [(c, it.source) for c, it in want] == [(21, "fast")]
    else:
        # the event path's intent for the first Add holds cycle 22, so the third Add's
        # take falls back to the event path (2 cycles after its event)
        assert [(c, it.source) for c, it in want] == [(21, "fast"), (22, "event"),
                                                       (25, "event")]


class TradePath(wiring.Component):
    """``RxPath`` → ``Strategy`` → ``Risk``, wired as in ``Top`` (no book: takes decide
    from the decoder's events alone)."""

    def __init__(self, width: int):
        self.rx = RxPath(width, symbols=S, locates=64)
        self.strategy = Strategy(S)
        self.risk = Risk(S)
        super().__init__({"now": Out(48)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx, m.submodules.strategy, m.submodules.risk = \
            rx, strat, risk = self.rx, self.strategy, self.risk
        wiring.connect(m, rx.taps, strat.events)
        wiring.connect(m, rx.early, strat.early)
        wiring.connect(m, strat.intents, risk.intents)
        m.d.comb += [strat.early_sym.eq(rx.open_sym), strat.now.eq(self.now[:32]),
                     risk.now.eq(self.now), rx.events.ready.eq(1), rx.gaps.ready.eq(1),
                     risk.orders.ready.eq(1), risk.decisions.ready.eq(1)]
        m.d.sync += self.now.eq(self.now + 1)
        return m


FAST_STOCKS = ("AAA", "BBB", "CCC", "DDD")
LOCATE0 = 10
FAST_ENTRIES = {  # a standing buy, a standing sell, a one-shot buy; DDD has none
    0: model.Trigger(enable=True, kind=model.TAKE, side=BUY, price=MID, quantity=100),
    1: model.Trigger(enable=True, kind=model.TAKE, side=SELL, price=MID, quantity=100),
    2: model.Trigger(enable=True, kind=model.TAKE, side=BUY, one_shot=True, price=MID,
                     quantity=70),
}


def fast_limits(width: int) -> risk_model.Limits:
    """The second identical order of a symbol within about two messages' time is a
    duplicate; after 3 open ones the position limit refuses: decisions depend on the same
    symbol's earlier orders."""
    return risk_model.Limits(dup_window=45 * 64 // width, position_limit=300)


def add_message(mtype: str, sym: int, side: str, price: int, ref: int
                ) -> tuple[bytes, Event | None]:
    """An Add (A or F) and the event it decodes to (None for an untraded locate)."""
    raw = itch.encode(mtype, locate=LOCATE0 + sym, order_ref=ref, side=side, shares=100,
                      stock="AAA", price=price)
    if sym >= len(FAST_STOCKS):
        return raw, None
    return raw, Event(type=mtype, sym=sym, seq=0, locate=LOCATE0 + sym, tracking=0,
                      timestamp=0, order_ref=ref, side=ord(side), shares=100, price=price)


def lane_packet(lane: int) -> list[tuple[bytes, Event | None]]:
    """Two crossing Adds of one symbol back to back, the first starting ``lane`` lanes
    further than a packet's first message (an Order Cancel block is 25 bytes: one lane
    on)."""
    cancel = itch.encode("X", locate=LOCATE0)
    return [(cancel, None)] * lane + [add_message("A", 0, "S", MID, 1),
                                      add_message("F", 0, "S", MID, 2)]


def random_packet(rng: random.Random) -> list[tuple[bytes, Event | None]]:
    """1–5 ITCH messages: Adds (A, F) of the watched symbols or of an untraded locate,
    around fillers of other lengths that move the next message to another lane; an Add
    is often followed by another of the same symbol."""
    out: list[tuple[bytes, Event | None]] = []
    while len(out) < rng.randint(1, 5):
        if rng.random() < 0.35:
            mtype = rng.choice("SDXEPC")
            out.append((itch.encode(mtype, locate=LOCATE0 + rng.randrange(4)), None))
            continue
        same = out and out[-1][1] is not None and rng.random() < 0.5
        sym = out[-1][1].sym if same else rng.randrange(len(FAST_STOCKS) + 1)
        side = ("SB"[sym % 2] if rng.random() < 0.8 else "BS"[sym % 2])  # mostly takeable
        price = MID + TICK * rng.randint(-2, 2)
        out.append(add_message(rng.choice("AAF"), sym, side, price, rng.randrange(1 << 40)))
    return out


@pytest.mark.parametrize("width,packets", [(64, 100), (8, 45)])
def test_takes_decide_three_cycles_after_the_price_at_the_mac(width, packets):
    """Adds at every lane offset, back to back in one packet, the same symbol twice in a
    row, idle cycles between and inside frames: every take is decided on the fast path
    exactly 3 cycles after the MAC beat holding its price's (its message's) last byte,
    and the decisions (which orders, which reasons) are the models'."""
    from tick2trade.protocol import frames, moldudp64
    from tick2trade.gateware.models.rx.eth_rx import RxConfig

    from tests.gateware.rx.test_rx_path import configure

    rng = rng_for(f"fast{width}")
    lanes = width // 8
    cfg = RxConfig.default(watch=FAST_STOCKS)
    feed = cfg.feeds[0]
    session, seq = "FASTPATH01", 1
    directory = [itch.encode("R", locate=LOCATE0 + i, stock=s, market_category="Q")
                 for i, s in enumerate(FAST_STOCKS)]
    plan = [([(m, None) for m in directory], None),
            *((lane_packet(k % lanes), None) for k in range(max(lanes, 4))),
            *((random_packet(rng), 5 if rng.random() < 0.3 else None)  # a tag: 4 lanes on
              for _ in range(packets))]
    framed = []  # (frame bytes, [(offset of the message's last byte, event)])
    for msgs, vlan in plan:
        at = frames.ETH_HEADER + (4 if vlan else 0) + frames.IPV4_HEADER + \
            frames.UDP_HEADER + 20
        ends = []
        for raw, ev in msgs:
            at += 2 + len(raw)
            ends.append((at - 1, ev))
        packet = moldudp64.encode_packet(session, seq, [raw for raw, _ in msgs])
        seq += len(msgs)
        framed.append((frames.build_udp_frame(feed.group, feed.port, packet, vlan=vlan), ends))

    dut = TradePath(width)
    got, beat_cycles = [], []

    async def bench(ctx):
        configure(ctx, dut.rx, cfg)
        ctx.set(dut.risk.limits, limits_payload(fast_limits(width)))
        for sym, entry in FAST_ENTRIES.items():
            ctx.set(dut.strategy.entry, entry_payload(entry))
            ctx.set(dut.strategy.entry_wr, {"stb": 1, "sym": sym})
            await ctx.tick()
        ctx.set(dut.strategy.entry_wr, {"stb": 0, "sym": 0})
        for frame, _ in framed:
            cycles = []
            for _ in range(rng.randint(0, 3)):
                await ctx.tick()
            for beat in frame_beats(frame, lanes):
                while rng.random() < 0.05:  # the MAC may pause inside a frame
                    ctx.set(dut.rx.mac.valid, 0)
                    await ctx.tick()
                ctx.set(dut.rx.mac.payload, as_dict(beat))
                ctx.set(dut.rx.mac.valid, 1)
                cycles.append(ctx.get(dut.now))
                await ctx.tick()
            ctx.set(dut.rx.mac.valid, 0)
            beat_cycles.append(cycles)

    async def drain(ctx):
        async for _clk, _rst, valid, rec in ctx.tick().sample(dut.risk.decisions.valid,
                                                              dut.risk.decisions.payload):
            if valid:
                got.append((rec.sym, rec.side, rec.price, rec.quantity,
                            risk_model.REASONS[rec.reason], model.SOURCES[rec.source],
                            rec.t_decide))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_process(drain)
    total = sum(len(f) // lanes + 8 for f, _ in framed) + 40
    sim.run_until(total * 1e-8 * 1.3 + len(FAST_ENTRIES) * 1e-8)

    strategy, risk = model.Strategy(S), risk_model.Risk(S, fast_limits(width))
    for sym, entry in FAST_ENTRIES.items():
        strategy.write(sym, entry)
    want, lanes_taken, repeats, last_sym = [], set(), 0, None
    for (_frame, ends), cycles in zip(framed, beat_cycles, strict=True):
        for end, ev in ends:
            if ev is None:
                last_sym = None
                continue
            decide = cycles[end // lanes] + 3
            for it in strategy.cycle(early=ev):
                why = risk.check(it, decide)
                want.append((it.sym, it.side, it.price, it.quantity, why, it.source, decide))
                lanes_taken.add((end + 1 - len(itch.encode(ev.type))) % lanes)
                repeats += last_sym == ev.sym
            last_sym = ev.sym
    assert got == want, SEED
    # what the test is about happened: takes in every lane, on the same symbol twice in a
    # row, refused by the per-symbol state the previous order left
    assert lanes_taken == set(range(lanes)), (lanes_taken, SEED)
    assert repeats >= 3 and {"pass", "duplicate", "position"} <= {w[4] for w in want}, SEED
