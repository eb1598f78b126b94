"""itch against ItchModel: message assembly across lanes and beats, length and type checks,
aborts, the directory-learned and host-written locate table, W=8..64.

Every test runs a cycle-exact timeline (message beats, idle cycles with junk on the bus,
host locate writes) through the decoder and through the model, and compares each event
*and the cycle it comes out in* (1 cycle after the beat of the message's last byte) and
every counter. A host write strobed in cycle c is seen by the messages whose last byte
arrives after cycle c.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from tick2trade.gateware.export import to_verilog
from tick2trade.gateware.rx.itch import ItchDecoder
from tick2trade.protocol import itch, moldudp64
from tick2trade.gateware.models.stream import message_beats
from tick2trade.gateware.models.rx.itch import ItchModel
from tick2trade.gateware.models.rx.moldudp import MoldMessage
from tick2trade.gateware.models.rx.eth_rx import RxConfig

from tick2trade.testing.simtools import SEED, as_dict, const_to_dict, rng_for, run

SYMBOLS = 8
LOCATES = 64
# (stock, enabled): MSFT twice (entry 1 wins), NVDA disabled at 3 so entry 5 matches,
# TSLA only disabled (never matches)
WATCH = [("AAPL", 1), ("MSFT", 1), ("BTC-USD", 1), ("NVDA", 0), ("MSFT", 1), ("NVDA", 1),
         ("TSLA", 0), ("ETH-USD", 1)]
WATCH_SYM = {"AAPL": 0, "MSFT": 1, "BTC-USD": 2, "NVDA": 5, "ETH-USD": 7}
STOCKS = sorted({s for s, _ in WATCH} | {"SPY", "QQQ", "AMZN"})
TYPES = list(itch.MESSAGES)
UNKNOWN_TYPES = [c for c in range(256) if chr(c) not in itch.MESSAGES]


# --- messages -----------------------------------------------------------------------------

def draw_locate(rng: random.Random, locates: int = LOCATES) -> int:
    r = rng.random()
    if r < 0.1:
        return 0
    if r < 0.2:
        return rng.randrange(locates, 1 << 16)  # beyond the table, often aliasing into it
    return rng.randrange(1, locates)


def message(rng: random.Random, mtype: str | None = None, *, locate: int | None = None,
            stock: str | None = None, locates: int = LOCATES) -> bytes:
    """A well-formed message with random field values (alpha fields: any byte values)."""
    mtype = mtype or rng.choice(TYPES)
    values = {}
    for f in itch.MESSAGES[mtype].fields.values():
        if f.name == "locate":
            values[f.name] = draw_locate(rng, locates) if locate is None else locate
        elif f.name == "stock":
            values[f.name] = stock or rng.choice(STOCKS)
        elif f.kind == "u":
            values[f.name] = rng.getrandbits(8 * f.size)
        else:
            values[f.name] = rng.randbytes(f.size)
    return itch.encode(mtype, **values)


def wrong_length(rng: random.Random, mtype: str, length: int, **kw) -> bytes:
    good = message(rng, mtype, **kw)
    assert length != len(good) and length >= itch.MIN_LENGTH
    return (good + rng.randbytes(max(0, length - len(good))))[:length]


def unknown_type(rng: random.Random, length: int | None = None) -> bytes:
    length = length or rng.randint(itch.MIN_LENGTH, 80)
    return bytes([rng.choice(UNKNOWN_TYPES)]) + rng.randbytes(length - 1)


def random_block(rng: random.Random, locates: int = LOCATES) -> bytes:
    r = rng.random()
    if r < 0.07:
        mtype = rng.choice(TYPES)
        n = itch.MESSAGES[mtype].length
        length = rng.choice([rng.randint(itch.MIN_LENGTH, 49), rng.randint(51, 120)])
        return wrong_length(rng, mtype, length if length != n else n + 1, locates=locates)
    if r < 0.12:
        return unknown_type(rng)
    if r < 0.22:
        return message(rng, "R", locates=locates)
    return message(rng, locates=locates)


# --- stimulus: a cycle-by-cycle timeline ---------------------------------------------------

@dataclass
class Stim:
    lanes: int
    rng: random.Random
    cycles: list = field(default_factory=list)  # [message beat | None, host write | None]

    def idle(self, k: int = 1) -> None:
        self.cycles += [[None, None] for _ in range(k)]

    def packet(self, messages: list[bytes], *, lane0: int | None = None,
               cut: int | None = None, idle: float = 0.0, gap: int = 0) -> list[int]:
        """Append one MoldUDP64 packet's message beats (``cut``: only that many bytes of
        the last message arrive). Returns the cycle in which each message ends."""
        rng = self.rng
        seq = rng.getrandbits(63)
        lane0 = rng.randrange(self.lanes) if lane0 is None else lane0
        payload = moldudp64.encode_packet("ITCHTEST", seq, messages)
        spans, pos = [], moldudp64.HEADER
        for j, raw in enumerate(messages):
            spans.append((seq + j, pos + 2, len(raw), False))
            pos += 2 + len(raw)
        if cut is not None:
            s, start, length, _ = spans[-1]
            assert 1 <= cut < length
            spans[-1] = (s, start, cut, True)
            payload = payload[:start + cut]
        self.idle(gap)
        ends = []
        for b in message_beats(payload, lane0, self.lanes, spans):
            while idle and rng.random() < idle:
                self.idle()
            self.cycles.append([as_dict(b), None])
            ends += [len(self.cycles) - 1] * ((b.eop != 0) + b.abort)
        assert len(ends) == len(messages)
        return ends

    def host(self, cycle: int, locate: int, sym: int, traded: int = 1) -> None:
        assert all(self.cycles[c][1] is None for c in (cycle - 1, cycle, cycle + 1)
                   if 0 <= c < len(self.cycles)), "host writes closer than 2 cycles"
        self.cycles[cycle][1] = {"stb": 1, "locate": locate, "sym": sym, "traded": traded}

    def host_now(self, locate: int, sym: int, traded: int = 1) -> None:
        """A host write on a cycle of its own, followed by an idle cycle."""
        self.idle(2)
        self.host(len(self.cycles) - 2, locate, sym, traded)

    def preload(self, locates, syms=SYMBOLS) -> dict[int, int]:
        table = {loc: self.rng.randrange(syms) for loc in locates}
        for loc, sym in table.items():
            self.host_now(loc, sym)
        return table

    def sprinkle_host_writes(self, p: float, locates: int = LOCATES) -> None:
        for c in range(len(self.cycles)):
            near = [self.cycles[d][1] for d in (c - 1, c, c + 1) if 0 <= d < len(self.cycles)]
            if all(w is None for w in near) and self.rng.random() < p:
                self.host(c, draw_locate(self.rng, locates), self.rng.randrange(SYMBOLS),
                          int(self.rng.random() < 0.8))


# --- model and DUT ----------------------------------------------------------------------

def make_model(locates: int, watch) -> ItchModel:
    model = ItchModel(RxConfig(), locates=locates)
    model.watch = {itch.stock_int(s): i for i, (s, en) in reversed(list(enumerate(watch)))
                   if en}
    return model


def expected(stim: Stim, model: ItchModel) -> list[tuple[int, itch.Event]]:
    """Reassemble the messages from the beats and run them through the model in the
    order the timeline gives them; returns (cycle of the last byte, event)."""
    want, cur, seq = [], None, None
    for c, (b, wr) in enumerate(stim.cycles):
        if b is not None:
            data = b["data"].to_bytes(stim.lanes, "little")
            for i in range(stim.lanes):
                if not b["msg"] >> i & 1:
                    continue
                if b["sop"] >> i & 1:
                    assert cur is None
                    cur, seq = bytearray(), b["seq"]
                cur.append(data[i])
                if b["eop"] >> i & 1:
                    ev = model.process(MoldMessage(seq, bytes(cur), False))
                    cur = None
                    if ev is not None:
                        want.append((c, ev))
            if b["abort"]:
                model.process(MoldMessage(seq, bytes(cur), True))
                cur = None
        if wr is not None:
            model.host_write(wr["locate"], wr["sym"], wr["traded"])
    assert cur is None
    return want


def event_of(payload) -> itch.Event:
    d = const_to_dict(payload)
    return itch.Event(**{**d, "type": chr(d["type"])})


def simulate(width: int, stim: Stim, locates: int, watch):
    dut = ItchDecoder(width, SYMBOLS, locates)
    lanes = width // 8
    junk = random.Random(stim.rng.random())
    got, out = [], {}

    async def tb(ctx):
        for i, (stock, en) in enumerate(watch):
            ctx.set(dut.watch[i], {"enable": en, "stock": itch.stock_int(stock)})
        for c, (b, wr) in enumerate(stim.cycles + [[None, None]] * 3):
            if b is None:
                # whatever sits on the bus while valid is low must not matter
                b = {"data": junk.getrandbits(8 * lanes), "msg": junk.getrandbits(lanes),
                     "sop": junk.getrandbits(lanes), "eop": junk.getrandbits(lanes),
                     "abort": junk.getrandbits(1), "seq": junk.getrandbits(64)}
                ctx.set(dut.msgs.valid, 0)
            else:
                ctx.set(dut.msgs.valid, 1)
            ctx.set(dut.msgs.payload, b)
            ctx.set(dut.loc_wr, wr or {"stb": 0, "locate": junk.getrandbits(16),
                                       "sym": junk.randrange(SYMBOLS), "traded": 1})
            await ctx.tick()
            if ctx.get(dut.events.valid):
                got.append((c, event_of(ctx.get(dut.events.payload))))
        out["counters"] = const_to_dict(ctx.get(dut.counters))
        out["by_type"] = const_to_dict(ctx.get(dut.by_type))

    run(dut, tb)
    return got, out["counters"], out["by_type"]


def check(width: int, stim: Stim, *, locates: int = LOCATES, watch=WATCH) -> ItchModel:
    model = make_model(locates, watch)
    want = expected(stim, model)
    got, counters, by_type = simulate(width, stim, locates, watch)
    where = f"seed {SEED} (T2T_SEED={SEED} to repeat), W={width}"
    for k, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"event {k}: got (cycle, event) {g}, want {w}; {where}"
    assert len(got) == len(want), f"got {len(got)} events, want {len(want)}; {where}"
    assert counters == dict(model.counters), where
    assert by_type == dict(model.by_type), where
    return model


def new_stim(width: int, name: str) -> Stim:
    return Stim(width // 8, rng_for(f"{name}{width}"))


WIDTHS = [8, 64]


# --- random traffic ---------------------------------------------------------------------

@pytest.mark.parametrize("width,messages", [(64, 4000), (32, 300), (16, 300), (8, 400)])
def test_random_feed_matches_model(width, messages):
    """All types, wrong lengths, unknown types, aborts, directory hits and misses, host
    writes, idle gaps with junk and back-to-back beats, random lanes."""
    stim = new_stim(width, "random")
    rng = stim.rng
    stim.preload(rng.sample(range(LOCATES), LOCATES // 2))
    sent = 0
    while sent < messages:
        blocks = [random_block(rng) for _ in range(rng.randint(1, 8))]
        cut = rng.randrange(1, len(blocks[-1])) if rng.random() < 0.15 else None
        stim.packet(blocks, cut=cut, idle=rng.choice([0.0, 0.0, 0.2]),
                    gap=rng.choice([0, 0, 0, 1, 3]))
        sent += len(blocks)
    stim.sprinkle_host_writes(0.02)
    model = check(width, stim)
    c = model.counters
    assert min(c["events"], c["untraded"], c["directory_hits"], c["bad_length"],
               c["unknown_type"], c["aborted"]) > 0, dict(c)
    if messages >= 1000:
        assert all(model.by_type.values()), dict(model.by_type)


@pytest.mark.parametrize("width", WIDTHS)
def test_every_type_back_to_back_at_every_lane(width):
    stim = new_stim(width, "types")
    rng = stim.rng
    stim.preload(range(1, LOCATES))
    for lane0 in range(stim.lanes):
        blocks = [message(rng, t, locate=rng.randrange(LOCATES)) for t in TYPES]
        rng.shuffle(blocks)
        stim.packet(blocks, lane0=lane0)
    model = check(width, stim)
    assert all(v == stim.lanes for v in model.by_type.values()), dict(model.by_type)
    assert model.counters["events"] == len(TYPES) * stim.lanes


def test_two_messages_share_a_beat():
    """Shortest messages back to back at W=64: most beats end one message and start the
    next, so the tail is decoded while the head goes into the buffer."""
    stim = new_stim(64, "share")
    rng = stim.rng
    stim.preload(range(1, LOCATES))
    for lane0 in range(8):
        blocks = [message(rng, rng.choice("SW"), locate=rng.randrange(LOCATES))
                  for _ in range(30)]
        stim.packet(blocks, lane0=lane0)
    shared = sum(1 for b, _ in stim.cycles if b and b["eop"] and b["sop"])
    assert shared > 100
    model = check(64, stim)
    assert model.counters["events"] == 240


@pytest.mark.parametrize("width", WIDTHS)
def test_wrong_length_is_counted_not_decoded(width):
    """Every type shorter (>= 12) and longer than its length, past the 50-byte buffer
    too; each followed by a good message that must still decode."""
    stim = new_stim(width, "length")
    rng = stim.rng
    stim.preload(range(1, LOCATES))
    wrong = 0
    for mtype, msg in itch.MESSAGES.items():
        lengths = {itch.MIN_LENGTH, msg.length - 1, msg.length + 1, itch.MAX_LENGTH,
                   itch.MAX_LENGTH + 1, rng.randint(52, 64)}
        if width == 64 or mtype in "RAI":
            lengths.add(200)
        lengths = sorted(n for n in lengths if n != msg.length and n >= itch.MIN_LENGTH)
        blocks = []
        for n in lengths:
            locate = rng.randrange(1, LOCATES)
            blocks += [wrong_length(rng, mtype, n, locate=locate),
                       message(rng, mtype, locate=locate)]
        wrong += len(lengths)
        stim.packet(blocks, idle=0.1 if width == 64 else 0.0)
    model = check(width, stim)
    assert model.counters["bad_length"] == wrong
    assert model.counters["events"] == wrong and model.counters["unknown_type"] == 0


@pytest.mark.parametrize("width", WIDTHS)
def test_unknown_type_is_counted_not_decoded(width):
    """Every byte value that is not a type, at random lengths (some equal to a real
    type's length), between good messages."""
    stim = new_stim(width, "unknown")
    rng = stim.rng
    stim.preload(range(1, LOCATES))
    types = UNKNOWN_TYPES if width == 64 else rng.sample(UNKNOWN_TYPES, 40)
    for k in range(0, len(types), 6):
        blocks = []
        for t in types[k:k + 6]:
            length = rng.choice([rng.randint(itch.MIN_LENGTH, 60),
                                 itch.MESSAGES[rng.choice(TYPES)].length])
            blocks += [bytes([t]) + rng.randbytes(length - 1),
                       message(rng, locate=rng.randrange(LOCATES))]
        stim.packet(blocks)
    model = check(width, stim)
    assert model.counters["unknown_type"] == len(types)
    assert model.counters["events"] == len(types) and model.counters["bad_length"] == 0


@pytest.mark.parametrize("width", WIDTHS)
def test_aborted_message_is_dropped_and_writes_nothing(width):
    """A packet cut inside its last message, at every cut point: nothing of it is
    decoded (an aborted directory hit does not write the table), and the next packet
    decodes normally."""
    stim = new_stim(width, "abort")
    rng = stim.rng
    stim.preload(range(1, LOCATES // 2))
    cuts = range(1, itch.MESSAGES["R"].length)
    for cut in cuts:
        hit = message(rng, "R", locate=rng.randrange(LOCATES // 2, LOCATES),
                      stock=rng.choice(list(WATCH_SYM)))
        locate = int.from_bytes(hit[1:3], "big")
        first = message(rng, rng.choice([t for t in TYPES if t != "R"]),
                        locate=rng.randrange(LOCATES // 2))
        stim.packet([first, hit], cut=cut)
        stim.packet([message(rng, "A", locate=locate)])
    model = check(width, stim)
    c = model.counters
    assert c["aborted"] == len(cuts) and c["directory_hits"] == 0
    assert c["untraded"] == len(cuts) and c["events"] == len(cuts)


@pytest.mark.parametrize("width", WIDTHS)
def test_directory_hit_is_seen_by_the_very_next_message(width):
    """'R' on the watch list followed at once by a short message with its locate; at
    W=64 some of these end in consecutive beats (the read port must be transparent)."""
    stim = new_stim(width, "dirnext")
    rng = stim.rng
    pairs = []
    for lane0 in range(stim.lanes):
        for stock, sym in WATCH_SYM.items():
            locate = rng.randrange(1, LOCATES)
            ends = stim.packet([message(rng, "R", locate=locate, stock=stock),
                                message(rng, "S", locate=locate)], lane0=lane0)
            pairs.append((ends[1] - ends[0], sym))
            stim.host_now(locate, 0, traded=0)  # forget it again
    if width == 64:
        assert any(d == 1 for d, _ in pairs)
    model = check(width, stim)
    assert model.counters["directory_hits"] == len(pairs) == model.counters["events"] // 2


def test_lowest_enabled_watch_entry_wins():
    stim = new_stim(64, "watch")
    rng = stim.rng
    locates = {}
    for stock in STOCKS:
        locates[stock] = 1 + len(locates)
        stim.packet([message(rng, "R", locate=locates[stock], stock=stock)])
    for stock in STOCKS:
        stim.packet([message(rng, "A", locate=locates[stock])])
    model = check(64, stim)
    want = {locates[s]: sym for s, sym in WATCH_SYM.items()}
    assert model.table == want  # MSFT -> 1 (not 4), NVDA -> 5 (3 is disabled), no TSLA
    assert model.counters["directory_hits"] == len(WATCH_SYM)


@pytest.mark.parametrize("width", WIDTHS)
def test_locate_beyond_table_is_never_traded_nor_aliased(width):
    """A table of 100 (7 address bits): directory hits and host writes to locates past
    it write nothing, not even at the address their low bits point to."""
    stim = new_stim(width, "beyond")
    rng = stim.rng
    locates = 100
    for far in (130, 2 + 128 * 3, 100, 127, 0xFFFF):
        near = far % 128 if far % 128 < locates else 5
        stim.packet([message(rng, "R", locate=far, stock="AAPL"),
                     message(rng, "A", locate=far), message(rng, "A", locate=near)])
        stim.host_now(far, 3)
        stim.packet([message(rng, "A", locate=far), message(rng, "A", locate=near)])
    model = check(width, stim, locates=locates)
    c = model.counters
    assert c["directory_hits"] == 0 and c["events"] == 0 and c["untraded"] == 5 * 5


@pytest.mark.parametrize("width", WIDTHS)
def test_locate_zero_always_passes_as_symbol_zero(width):
    """Locate 0 passes whatever the table says; a directory hit on it counts but the
    event still carries symbol 0."""
    stim = new_stim(width, "zero")
    rng = stim.rng
    stim.packet([message(rng, t, locate=0, stock="SPY") for t in TYPES])
    stim.host_now(0, 5)
    stim.packet([message(rng, "R", locate=0, stock="ETH-USD"), message(rng, "A", locate=0)])
    stim.host_now(0, 6, traded=0)
    stim.packet([message(rng, "D", locate=0)])
    model = check(width, stim)
    assert model.counters["events"] == len(TYPES) + 3
    assert model.counters["directory_hits"] == 1 and model.counters["untraded"] == 0


@pytest.mark.parametrize("width", WIDTHS)
def test_host_write_deferred_by_directory_write_is_not_lost(width):
    """A host write strobed in the very cycle a directory hit takes the write port: the
    next message (at W=64 one beat later, before the deferred write reaches the memory)
    and every later one must see it; to the directory's own locate it lands after it."""
    stim = new_stim(width, "collide")
    rng = stim.rng
    close = 0
    checks = []
    for lane0 in range(stim.lanes):
        for same in (False, True):
            dir_loc, host_loc = rng.sample(range(1, LOCATES), 2)
            if same:
                host_loc = dir_loc
            host_sym = rng.randrange(SYMBOLS)
            ends = stim.packet([message(rng, "R", locate=dir_loc, stock="BTC-USD"),
                                message(rng, "W", locate=host_loc)], lane0=lane0)
            stim.host(ends[0], host_loc, host_sym)
            close += ends[1] - ends[0] == 1
            stim.packet([message(rng, "A", locate=host_loc), message(rng, "A", locate=dir_loc)])
            checks.append((host_loc, dir_loc, host_sym))
            for loc in {host_loc, dir_loc}:
                stim.host_now(loc, 0, traded=0)
    if width == 64:
        assert close > 0
    model = check(width, stim)
    # all of R, W and the two A's pass: nothing was lost
    assert model.counters["directory_hits"] == len(checks)
    assert model.counters["events"] == 4 * len(checks) and model.counters["untraded"] == 0


@pytest.mark.parametrize("width", WIDTHS)
def test_host_write_is_seen_from_the_next_message_on(width):
    """A host write strobed in the beat that ends a message applies to the messages after
    it, not to that one: add, then remove."""
    stim = new_stim(width, "hostnext")
    rng = stim.rng
    for lane0 in range(stim.lanes):
        loc = rng.randrange(1, LOCATES)
        ends = stim.packet([message(rng, "S", locate=loc), message(rng, "S", locate=loc)],
                           lane0=lane0)
        stim.host(ends[0], loc, 4)
        ends = stim.packet([message(rng, "S", locate=loc), message(rng, "S", locate=loc)],
                           lane0=lane0)
        stim.host(ends[0], loc, 4, traded=0)
    model = check(width, stim)
    c = model.counters
    assert c["events"] == 2 * stim.lanes and c["untraded"] == 2 * stim.lanes


@pytest.mark.parametrize("width", WIDTHS)
def test_converts_to_verilog_with_every_port(width):
    text = to_verilog(ItchDecoder(width, SYMBOLS, LOCATES), name="itch")
    for port in ("msgs__payload", "events__valid", "watch", "loc_wr", "counters", "by_type"):
        assert port in text
