"""OuchTx in Amaranth's simulator: random Enter/Cancel orders with random gaps, random
configuration, backpressure, user reference resets and cancel-all sweeps; every frame
compared byte for byte with models.order_tx in order, every ``sent`` strobe checked, the
first beat in the cycle of the order, no gaps inside a frame. The model's frames are
checked independently (parsed back, IPv4 checksum) and fed to the venue simulator."""

from __future__ import annotations

import pytest

from tick2trade.gateware.control.csr import CsrBank
from tick2trade.protocol import frames, ouch, soupbintcp
from tick2trade.gateware.models.stream import beats_to_frames
from tick2trade.gateware.models.trade.ouch_tx import (Order, OuchTxModel, TxConfig, clordid,
                                                      order_frame)
from tick2trade.gateware.trade.ouch_tx import (CANCEL_FRAME, ENTER_FRAME, SRC_PORT, VENUE_IP,
                                               VENUE_MAC, VENUE_PORT, OuchTx)
from tick2trade.sim.venue.engine import Instrument
from tick2trade.sim.venue.gateway import Gateway
from tick2trade.sim.venue.venue import Venue

from tick2trade.testing.simtools import SEED, rng_for, run

SYMBOLS = 8
STOCKS = ("AAPL", "MSFT", "BTC-USD", "NVDA", "Z", "ABCDEFGH")


def random_config(rng) -> TxConfig:
    return TxConfig(venue_mac=rng.randbytes(6), venue_ip=rng.getrandbits(32),
                    venue_port=rng.getrandbits(16), src_mac=rng.randbytes(6),
                    src_ip=rng.getrandbits(32), src_port=rng.getrandbits(16))


def random_order(rng) -> Order:
    if rng.random() < 0.3:
        return Order(cancel=True, user_ref=rng.getrandbits(32),
                     quantity=rng.choice([0, rng.getrandbits(32)]), sym=rng.randrange(SYMBOLS))
    return Order(side=rng.choice(ouch.SIDES), quantity=rng.getrandbits(32),
                 stock=rng.choice(STOCKS), price=rng.getrandbits(32),
                 tif=rng.choice([ouch.TIF_DAY, ouch.TIF_IOC, ouch.TIF_GTC, ouch.TIF_FOK, "E"]),
                 tag=rng.getrandbits(16), sym=rng.randrange(SYMBOLS),
                 user_ref=rng.getrandbits(32))  # ignored for an Enter


def set_config(ctx, dut: OuchTx, cfg: TxConfig) -> None:
    for name in ("venue_ip", "venue_port", "src_ip", "src_port"):
        ctx.set(getattr(dut, name), getattr(cfg, name))
    ctx.set(dut.venue_mac, int.from_bytes(cfg.venue_mac, "big"))
    ctx.set(dut.src_mac, int.from_bytes(cfg.src_mac, "big"))


def check_frame_parses(frame: bytes, cfg: TxConfig, order: Order, user_ref: int) -> None:
    """An independent reading of a frame: the receive side's parsers, not the encoders."""
    assert frames.ones_complement_sum(frame[14:34]) == 0xFFFF  # IPv4 header checksum
    dgram = frames.parse_udp_frame(frame)
    assert not isinstance(dgram, str), dgram
    assert (frame[:6], dgram.src_mac, dgram.src_ip, dgram.dst_ip, dgram.src_port,
            dgram.dst_port) == (cfg.venue_mac, cfg.src_mac, cfg.src_ip, cfg.venue_ip,
                                cfg.src_port, cfg.venue_port)
    packets, rest = soupbintcp.split(dgram.payload)
    assert rest == b"" and len(packets) == 1
    packet = soupbintcp.decode(packets[0])
    assert packet["type"] == "U"
    msg = ouch.decode_inbound(packet["message"])
    if order.cancel:
        assert (msg["type"], msg["user_ref"], msg["quantity"]) == ("X", user_ref,
                                                                   order.quantity)
        assert len(frame) == CANCEL_FRAME and frame[54:] == bytes(6)
        return
    assert {k: msg[k] for k in ("type", "user_ref", "side", "quantity", "symbol", "price",
                                "tif", "display", "capacity", "iso", "cross_type",
                                "clordid", "appendage")} == {
        "type": "O", "user_ref": user_ref, "side": order.side, "quantity": order.quantity,
        "symbol": order.stock, "price": order.price, "tif": order.tif, "display": "Y",
        "capacity": "A", "iso": "N", "cross_type": "N",
        "clordid": f"T{order.tag:04X}{user_ref:08X}", "appendage": b""}
    assert len(frame) == ENTER_FRAME and packets[0][-16:-2] == clordid(
        order.tag, user_ref).encode().ljust(14)


def test_model_frames_parse_back_to_their_orders():
    rng = rng_for("ouch-model")
    for _ in range(300):
        cfg, order, user_ref = random_config(rng), random_order(rng), rng.getrandbits(32)
        check_frame_parses(order_frame(cfg, order, user_ref), cfg, order, user_ref)


class Bench:
    """Drives orders (random gaps), user reference sets and sweeps; samples every cycle:
    beats taken, frame starts, ``sent``, and the protocol rules (0-cycle start, no gaps
    inside a frame, ``sent`` exactly at a first beat)."""

    def __init__(self, dut: OuchTx, rng, stall: float):
        self.dut, self.rng, self.stall = dut, rng, stall
        self.beats: list[tuple] = []
        self.events: list[dict] = []  # cycles where a frame starts, a set or a sweep strobe
        self.cycle = 0
        self.in_frame = False

    async def monitor(self, ctx):
        dut, out = self.dut, self.dut.frames
        ctx.set(out.ready, 1)
        async for _clk, _rst, valid, ready, beat, o_valid, sent, setter, sweep, floor in \
                ctx.tick().sample(out.valid, out.ready, out.payload, dut.orders.valid,
                                  dut.sent, dut.user_ref_set, dut.cancel_all,
                                  dut.cancel_floor):
            where = f"cycle {self.cycle} (seed {SEED})"
            if self.in_frame:
                assert valid, f"gap inside a frame at {where}"
            elif o_valid:
                assert valid, f"an order waits without a first beat at {where}"
            start = valid and ready and not self.in_frame
            assert sent.stb == start, f"sent.stb at {where}"
            ev = {}
            if start:
                assert beat.first, where
                ev.update(start=True, order=bool(o_valid), user_ref=int(sent.user_ref),
                          cancel=int(sent.cancel), sym=int(sent.sym))
            if valid and ready:
                self.beats.append((int(beat.data), int(beat.be), int(beat.first),
                                   int(beat.last)))
                self.in_frame = not beat.last
            if setter.stb:
                ev["set"] = int(setter.value)
            if sweep:
                ev["sweep"] = int(floor)
            if ev:
                ev["cycle"] = self.cycle
                self.events.append(ev)
            self.cycle += 1
            ctx.set(out.ready, 0 if self.rng.random() < self.stall else 1)

    async def drive(self, ctx, orders: list[Order], gaps: tuple[int, int]) -> None:
        port = self.dut.orders
        for order in orders:
            gap = self.rng.randint(*gaps)
            if gap:
                ctx.set(port.valid, 0)
                await ctx.tick().repeat(gap)
            ctx.set(port.payload, order.fields())
            ctx.set(port.valid, 1)
            await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)

    async def pulse(self, ctx, port, value) -> None:
        ctx.set(port, value)
        await ctx.tick()
        ctx.set(port, 0)

    async def settle(self, ctx) -> None:
        """Wait until every frame has left."""
        quiet = 0
        while quiet < 4:
            await ctx.tick()
            quiet = 0 if ctx.get(self.dut.busy) or ctx.get(self.dut.orders.valid) else quiet + 1

    def frames(self, lanes: int) -> list[bytes]:
        done, rest = beats_to_frames(self.beats, lanes)
        assert rest == b"", f"an unfinished frame (seed {SEED})"
        return done

    def replay(self, cfg: TxConfig, orders: list[Order], max_cancels: int) -> tuple:
        """The frames the model predicts for the observed choices (which frame went when),
        checking each ``sent``; returns (frames, model)."""
        model = OuchTxModel(cfg, max_cancels)
        pending = iter(orders)
        want = []
        for ev in self.events:
            sweeping = bool(model.sweep)  # as it was when the cycle began
            if ev.get("start"):
                order = next(pending) if ev["order"] else None
                user_ref, frame = model.send(order)
                want.append(frame)
                if order is not None:
                    check_frame_parses(frame, cfg, order, user_ref)
                assert (ev["user_ref"], ev["cancel"], ev["sym"]) == (
                    user_ref, order is None or order.cancel,
                    0 if order is None else order.sym), f"sent at {ev} (seed {SEED})"
            if "sweep" in ev and not sweeping:
                model.cancel_all(ev["sweep"])
            if "set" in ev:
                model.set_user_ref(ev["set"])
        assert next(pending, None) is None
        return want, model


async def read_counters(ctx, dut) -> dict:
    return {k: ctx.get(getattr(dut.counters, k)) for k, _ in dut.counters.shape()}


def check_against_model(bench: Bench, dut: OuchTx, cfg: TxConfig, orders, counters) -> int:
    want, model = bench.replay(cfg, orders, dut.max_cancels)
    got = bench.frames(dut.data_width // 8)
    assert len(got) == len(want), f"seed {SEED}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"frame {i} (seed {SEED}):\n got  {g.hex()}\n want {w.hex()}"
    assert counters == model.counters, f"seed {SEED}"
    assert not model.sweep
    return len(got)


@pytest.mark.parametrize("width,count", [(64, 150), (8, 40), (16, 15), (32, 15), (128, 15)])
def test_random_orders_sets_and_sweeps_match_the_model(width, count):
    rng = rng_for(f"ouch{width}")
    dut = OuchTx(width, SYMBOLS)
    cfg = random_config(rng)
    orders = [random_order(rng) for _ in range(count)]
    bench = Bench(dut, rng, stall=0.3)
    beats_per_enter = -(-ENTER_FRAME // (width // 8))
    result = {}

    async def driver(ctx):
        set_config(ctx, dut, cfg)
        await bench.drive(ctx, orders, (0, 2 * beats_per_enter))
        while "host" not in result:
            await ctx.tick()
        await bench.settle(ctx)
        result["counters"] = await read_counters(ctx, dut)

    async def host(ctx):
        # user reference sets and sweeps at random moments, the sweeps kept short
        for _ in range(count // 4):
            await ctx.tick().repeat(rng.randint(1, 4 * beats_per_enter))
            if rng.random() < 0.5:
                ctx.set(dut.user_ref_set.value, rng.choice([rng.getrandbits(32),
                                                            rng.randint(1, 50)]))
                await bench.pulse(ctx, dut.user_ref_set.stb, 1)
            else:
                ctx.set(dut.cancel_floor, max(0, ctx.get(dut.next_user_ref) -
                                              rng.randint(-1, 4)))
                await bench.pulse(ctx, dut.cancel_all, 1)
        result["host"] = True

    run(dut, driver, host, processes=[bench.monitor])
    sent = check_against_model(bench, dut, cfg, orders, result["counters"])
    assert sent >= count


def test_first_beat_leaves_in_the_cycle_the_order_arrives_and_frames_have_no_gaps():
    for width in (64, 8):
        lanes = width // 8
        dut = OuchTx(width, SYMBOLS)
        cfg = random_config(rng_for("latency"))
        orders = [Order(side="S", quantity=100, stock="AAPL", price=1902500, tag=7),
                  Order(cancel=True, user_ref=1, quantity=0)]
        widths = {}

        async def tb(ctx, dut=dut, cfg=cfg, orders=orders, widths=widths):
            set_config(ctx, dut, cfg)
            ctx.set(dut.frames.ready, 1)
            await ctx.tick().repeat(3)
            for order in orders:
                assert not ctx.get(dut.frames.valid)
                ctx.set(dut.orders.payload, order.fields())
                ctx.set(dut.orders.valid, 1)
                # same cycle: the first beat is offered and the order taken
                assert ctx.get(dut.frames.valid) and ctx.get(dut.frames.payload.first)
                assert ctx.get(dut.orders.ready) and ctx.get(dut.sent.stb)
                beats = 0
                while True:
                    assert ctx.get(dut.frames.valid)  # every cycle of the frame
                    beats += 1
                    last = ctx.get(dut.frames.payload.last)
                    await ctx.tick()
                    ctx.set(dut.orders.valid, 0)
                    if last:
                        break
                widths["cancel" if order.cancel else "enter"] = beats

        run(dut, tb)
        assert widths == {"enter": -(-ENTER_FRAME // lanes),
                          "cancel": -(-CANCEL_FRAME // lanes)}
    assert (-(-ENTER_FRAME // 8), -(-CANCEL_FRAME // 8)) == (12, 8)


def test_sweep_is_capped_counts_the_rest_and_lets_orders_go_first():
    rng = rng_for("sweep")
    dut = OuchTx(64, SYMBOLS)
    cfg = random_config(rng)
    orders = [Order(side="B", quantity=5, stock="MSFT", price=4000000, tag=1),
              Order(side="S", quantity=6, stock="NVDA", price=1000000, tag=2)]
    bench = Bench(dut, rng, stall=0.2)
    result = {}

    async def tb(ctx):
        set_config(ctx, dut, cfg)
        ctx.set(dut.user_ref_set.value, 301)
        await bench.pulse(ctx, dut.user_ref_set.stb, 1)
        ctx.set(dut.cancel_floor, 1)
        await bench.pulse(ctx, dut.cancel_all, 1)
        await ctx.tick().repeat(80)  # some cancels out, then orders arrive mid-sweep
        await bench.drive(ctx, orders, (0, 0))
        await bench.settle(ctx)
        result["counters"] = await read_counters(ctx, dut)

    run(dut, tb, processes=[bench.monitor])
    check_against_model(bench, dut, cfg, orders, result["counters"])
    starts = [ev for ev in bench.events if ev.get("start")]
    assert [ev["user_ref"] for ev in starts if not ev["order"]] == list(range(1, 257))
    enters = [i for i, ev in enumerate(starts) if ev["order"]]
    assert enters == [enters[0], enters[0] + 1] and 0 < enters[0] < 256
    assert [starts[i]["user_ref"] for i in enters] == [301, 302]
    assert result["counters"]["cancels_truncated"] == 300 - 256
    assert result["counters"]["cancel_sweeps"] == 1


def test_frames_from_the_gateware_are_accepted_by_the_venue():
    dut = OuchTx(64, SYMBOLS)
    cfg = TxConfig(bytes.fromhex("020000000001"), frames.ip_to_int("10.0.0.1"), 4000,
                   bytes.fromhex("020000000002"), frames.ip_to_int("10.0.0.2"), 40001)
    orders = [Order(side="B", quantity=100, stock="AAPL", price=1900000, tif=ouch.TIF_DAY),
              Order(side="S", quantity=40, stock="AAPL", price=1900000, tif=ouch.TIF_IOC),
              Order(side="B", quantity=10, stock="BTC-USD", price=30000000),
              Order(cancel=True, user_ref=1, quantity=0)]
    bench = Bench(dut, rng_for("venue"), stall=0.0)

    async def tb(ctx):
        set_config(ctx, dut, cfg)
        await bench.drive(ctx, orders, (0, 3))
        await bench.settle(ctx)

    run(dut, tb, processes=[bench.monitor])
    venue = Venue([Instrument("AAPL", 1), Instrument("BTC-USD", 2, tick=50)])
    gateway = Gateway(venue)
    replies = []
    for frame in bench.frames(8):
        dgram = frames.parse_udp_frame(frame)
        gateway.udp_datagram(dgram.payload, ("10.0.0.2", dgram.src_port),
                             lambda data, _addr: replies.append(data))
    got = [ouch.decode_outbound(soupbintcp.decode(r[2:])["message"]) for r in replies]
    assert [(m["type"], m["user_ref"]) for m in got] == [
        ("A", 1), ("A", 2), ("E", 1), ("E", 2), ("A", 3), ("C", 1)]
    assert got[0]["clordid"] == "T000000000001" and got[4]["symbol"] == "BTC-USD"


def test_registers_bind_to_the_ports_with_the_venue_defaults():
    dut = OuchTx(64, SYMBOLS)
    regmap = CsrBank([dut.registers()]).map
    rw = {e.name: e.reset for e in regmap.entries if e.access == "rw"}
    assert rw == {"ouch_tx.venue_mac": VENUE_MAC, "ouch_tx.venue_ip": VENUE_IP,
                  "ouch_tx.venue_port": VENUE_PORT, "ouch_tx.src_port": SRC_PORT,
                  "ouch_tx.user_ref_value": 0, "ouch_tx.cancel_floor": 1}
    assert {e.name for e in regmap.entries if e.access == "pulse"} == {
        "ouch_tx.user_ref_set", "ouch_tx.cancel_all"}
    assert {e.name for e in regmap.entries if e.access == "ro"} >= {
        "ouch_tx.next_user_ref", "ouch_tx.busy", "ouch_tx.counters.cancels_truncated"}
    assert (VENUE_IP, VENUE_PORT) == (frames.ip_to_int("10.0.0.2"), 40000)
