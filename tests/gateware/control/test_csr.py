"""The CSR bank (gateware/control/csr.py) against CsrModel: random read/write/w1c/pulse/fifo
sequences, wrong addresses and writes to read-only words included."""

import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.lib import data, fifo, stream

from tick2trade.gateware.control.csr import CsrBank
from tick2trade.gateware.registers import RegisterBlock
from tick2trade.protocol.control import NO_REGISTER, OK, READ_ONLY
from tick2trade.gateware.models.control.csr import CsrModel
from tick2trade.protocol.regmap import BLOCK_ALIGN, Register, RegisterMap

from tick2trade.testing.simtools import SEED, rng_for, run

ENTRY = data.StructLayout({"kind": 3, "first": 40, "count": 20})
WRITE = data.StructLayout({"stb": 1, "index": 9, "value": 7})


def as_int(value) -> int:
    return value.as_value().value if isinstance(value, data.Const) else int(value)


class Client(Elaboratable):
    """A block with one register of every kind, and a FIFO of event records."""

    def __init__(self):
        self.count = Signal(32)
        self.wide = Signal(48)
        self.limit = Signal(20)
        self.mac = Signal(48)
        self.table = Signal(data.ArrayLayout(data.StructLayout({"on": 1, "key": 40}), 2))
        self.sticky_set = Signal(5)
        self.strobe = Signal(WRITE)
        self.kick = Signal(1)
        self.push = Signal(ENTRY)
        self.push_en = Signal()
        self.q = fifo.SyncFIFOBuffered(width=ENTRY.size, depth=4)
        self.events = stream.Signature(ENTRY).flip().create()
        a = RegisterBlock("a", "first block")
        a.ro("count", self.count, "a counter")
        a.ro("wide", self.wide, "a 48-bit value")
        a.rw("limit", self.limit, "a limit", reset=12345)
        a.rw("mac", self.mac, "an address", reset=0x0200_0000_0002)
        b = RegisterBlock("b", "second block")
        b.struct("table", self.table, "rw", "a table", resets={"table[1].key": 77})
        b.w1c("sticky", self.sticky_set, "sticky flags")
        b.pulse("strobe", self.strobe, "a struct strobe")
        b.pulse("kick", self.kick, "a one-bit strobe")
        b.fifo("events", self.events, "event records")
        self.bank = CsrBank([a, b])

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank = self.bank
        m.submodules.q = q = self.q
        m.d.comb += [q.w_data.eq(self.push), q.w_en.eq(self.push_en),
                     self.events.payload.eq(q.r_data), self.events.valid.eq(q.r_rdy),
                     q.r_en.eq(self.events.ready)]
        return m


def test_map_places_blocks_on_boundaries_and_words_in_order():
    dut = Client()
    regmap = dut.bank.map
    assert regmap["a.count"].address == 0 and regmap["a.wide"].address == 1
    assert regmap["a.limit"].address == 3 and regmap["a.mac"].address == 4
    assert regmap["b.table[0].on"].address == BLOCK_ALIGN
    assert regmap["b.table[0].key"].words == 2
    assert regmap["b.events"].words == 1 + 2  # status word + 63 bits
    assert {n: (o, w) for n, o, w in regmap["b.strobe"].fields} == \
        {"stb": (0, 1), "index": (1, 9), "value": (10, 7)}
    again = RegisterMap.from_json(regmap.to_json())
    assert again.to_json() == regmap.to_json() and again.hash == regmap.hash
    with pytest.raises(ValueError):
        Register("x", 33, "pulse")


def test_random_accesses_match_the_model():
    rng = rng_for("csr")
    dut = Client()
    regmap = dut.bank.map
    model = CsrModel(regmap)
    addresses = sorted(regmap.by_address) + [2 * BLOCK_ALIGN, 0x7F, BLOCK_ALIGN - 1, 0xFFFF]
    bus = dut.bank.bus
    checked = {"read": 0, "write": 0, "pulse": 0, "pop": 0, "refused": 0}

    async def tb(ctx):
        await ctx.tick()
        for step in range(3000):
            msg = f"step {step}, seed {SEED}"
            what = rng.random()
            if what < 0.08:  # the blocks change their read-only values
                count, wide = rng.getrandbits(32), rng.getrandbits(48)
                ctx.set(dut.count, count)
                ctx.set(dut.wide, wide)
                model.values["a.count"], model.values["a.wide"] = count, wide
                continue
            if what < 0.16 and len(model.fifos["b.events"]) < 3:
                entry = rng.getrandbits(ENTRY.size)
                ctx.set(dut.push.as_value(), entry)
                ctx.set(dut.push_en, 1)
                await ctx.tick()
                ctx.set(dut.push_en, 0)
                await ctx.tick().repeat(2)  # through the FIFO's output register
                model.fifos["b.events"].append(entry)
                continue
            address = rng.choice(addresses)
            write = rng.random() < 0.5
            value = rng.getrandbits(32)
            sticky = rng.getrandbits(5) if rng.random() < 0.3 else 0
            ctx.set(bus.addr, address)
            ctx.set(bus.w_data, value)
            ctx.set(bus.r_stb if not write else bus.w_stb, 1)
            ctx.set(dut.sticky_set, sticky)
            await ctx.tick()
            ctx.set(bus.r_stb, 0)
            ctx.set(bus.w_stb, 0)
            ctx.set(dut.sticky_set, 0)
            # the model: the access sees the flags before this cycle's set; set wins
            if write:
                want_status, want_value = model.write(address, value), 0
            else:
                want_status, want_value = model.read(address)
            model.set_flags("b.sticky", sticky)
            assert ctx.get(bus.ack) == 1, msg
            assert ctx.get(bus.status) == want_status, msg
            assert ctx.get(bus.r_data) == want_value, f"{msg}: {regmap.by_address.get(address)}"
            hit = regmap.by_address.get(address)
            pulse = bool(write and hit and hit[0].access == "pulse")
            for name, port in (("b.strobe", dut.strobe), ("b.kick", dut.kick)):
                want = model.pulses[-1][1] if pulse and hit[0].name == name else 0
                assert as_int(ctx.get(port)) == want, msg
            await ctx.tick().repeat(2)
            assert ctx.get(bus.ack) == 0 and ctx.get(dut.kick) == 0, msg
            assert as_int(ctx.get(dut.strobe)) == 0, msg
            # rw storage drives the ports
            assert ctx.get(dut.limit) == model.storage["a.limit"], msg
            assert ctx.get(dut.mac) == model.storage["a.mac"], msg
            for i in range(2):
                assert ctx.get(dut.table[i].on) == model.storage[f"b.table[{i}].on"], msg
                assert ctx.get(dut.table[i].key) == model.storage[f"b.table[{i}].key"], msg
            kind = "refused" if want_status != OK else "pulse" if pulse else \
                "pop" if write and hit[0].access == "fifo" else "write" if write else "read"
            checked[kind] += 1

    run(dut, tb)
    assert min(checked.values()) > 5, checked
    statuses = {model.read(a)[0] for a in addresses}
    assert statuses == {OK, NO_REGISTER}
    assert model.write(regmap["a.count"].address, 1) == READ_ONLY


def test_a_pop_takes_only_the_entry_word_0_showed():
    """The race a batched request runs into: word 0 read while the FIFO is empty, an entry
    arrives, then the request's pop. The entry must stay for the next read; a pop with no
    read before it, or a second pop after one read, takes nothing."""
    dut = Client()
    status = dut.bank.map["b.events"].address
    seen = []

    async def access(ctx, write: bool):
        ctx.set(dut.bank.bus.addr, status)
        ctx.set(dut.bank.bus.w_data, 1)
        ctx.set(dut.bank.bus.w_stb if write else dut.bank.bus.r_stb, 1)
        await ctx.tick()
        ctx.set(dut.bank.bus.w_stb, 0)
        ctx.set(dut.bank.bus.r_stb, 0)
        value = ctx.get(dut.bank.bus.r_data)
        await ctx.tick().repeat(2)
        return value

    async def push(ctx, entry):
        ctx.set(dut.push.as_value(), entry)
        ctx.set(dut.push_en, 1)
        await ctx.tick()
        ctx.set(dut.push_en, 0)
        await ctx.tick().repeat(2)

    async def tb(ctx):
        await ctx.tick()
        seen.append(await access(ctx, False))   # empty
        await push(ctx, 0x1234)                 # arrives between the read and the pop
        await access(ctx, True)                 # the request's pop: must not take it
        seen.append(await access(ctx, False))   # still there
        await push(ctx, 0x5678)
        await access(ctx, True)                 # pops the first entry
        await access(ctx, True)                 # a second pop without a read: nothing
        seen.append(await access(ctx, False))   # the second entry is there
        await access(ctx, True)
        seen.append(await access(ctx, False))   # empty again
        seen.append(ctx.get(dut.events.valid))

    run(dut, tb)
    assert seen == [0, 1, 1, 0, 0]
    model = CsrModel(dut.bank.map)
    model.read(status)
    model.fifos["b.events"].append(1)
    model.write(status, 1)
    assert len(model.fifos["b.events"]) == 1
    assert model.read(status) == (OK, 1)
    model.write(status, 1)
    model.write(status, 1)
    assert not model.fifos["b.events"]
