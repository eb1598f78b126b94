"""``itch``: NASDAQ ITCH 5.0 decoder, length check and locate → symbol filter.

Golden model: :class:`gateware.models.rx.ItchModel`. Field offsets come from the message
table in ``models/itch.py`` (via ``event_sources``); none is written here.
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .bytefield import counter_bank
from .models import itch as spec
from .models.rx import ITCH_COUNTERS
from .stream import event_layout, lanes, msg_beat_layout


def sym_bits(symbols: int) -> int:
    return max(1, (symbols - 1).bit_length())


def watch_layout(symbols: int) -> data.ArrayLayout:
    """Watch list: entry ``i`` names the stock (8 ASCII bytes, big-endian) of symbol ``i``."""
    return data.ArrayLayout(data.StructLayout({"enable": 1, "stock": 64}), symbols)


def locate_write_layout(symbols: int) -> data.StructLayout:
    """A host write into the locate table (``stb`` for one cycle)."""
    return data.StructLayout({"stb": 1, "locate": 16, "sym": sym_bits(symbols),
                              "traded": 1})


class ItchDecoder(wiring.Component):
    """Assemble ITCH messages from lane-preserving message beats and decode them.

    Message bytes are gathered into a ``MAX_LENGTH`` (50) byte buffer; in the beat that
    holds a message's last byte the decoder reads the buffer *and* that beat's bytes, so
    the event is registered in the same cycle. A message never starts and ends in one
    beat up to 64-bit beats (ITCH messages are >= 12 bytes), so the ending message is
    always the one open when the beat began, and the next one's head can go into the
    buffer in the same cycle.

    The locate table (``locates`` entries, ``lib.memory``) is read with the locate bytes
    as they arrive; they come at least one beat before the last byte, so the entry is
    ready when the event is. Stock Directory ('R') messages whose stock is on the watch
    list write their locate → symbol; the host writes through ``loc_wr``, one write per
    two cycles at most (a write is held a cycle and waits while a directory write has
    the port; directory writes are >= 4 beats apart).

    Parameters
    ----------
    data_width : int
        Bits per beat, 8 to 64.
    symbols : int
        Watch-list entries; symbol index width.
    locates : int
        Locate table depth; higher locates are never traded.

    Members
    -------
    msgs : In(stream.Signature(msg_beat_layout, always_ready=True))
    events : Out(stream.Signature(event_layout, always_ready=True))
    watch : In(watch_layout(symbols))
    loc_wr : In(locate_write_layout(symbols))
    counters : Out(StructLayout) — ``models.rx.ITCH_COUNTERS``
    by_type : Out(StructLayout) — decoded messages per type, by message name

    Latency: the event is valid 1 cycle after the beat with the message's last byte.
    """

    def __init__(self, data_width: int = 64, symbols: int = 64, locates: int = 16384):
        if data_width > 64:
            raise ValueError("ItchDecoder assumes a message never starts and ends in one "
                             "beat, true up to 64-bit beats")
        self.data_width = data_width
        self.symbols = symbols
        self.locates = locates
        super().__init__({
            "msgs": In(stream.Signature(msg_beat_layout(data_width), always_ready=True)),
            "events": Out(stream.Signature(event_layout(symbols), always_ready=True)),
            "watch": In(watch_layout(symbols)),
            "loc_wr": In(locate_write_layout(symbols)),
            "counters": Out(data.StructLayout({n: 32 for n in ITCH_COUNTERS})),
            "by_type": Out(data.StructLayout({m.name: 32 for m in spec.MESSAGES.values()})),
        })

    def elaborate(self, platform):
        m = Module()
        n = lanes(self.data_width)
        beat = self.msgs.payload
        valid = self.msgs.valid
        count = counter_bank(m, ITCH_COUNTERS, self.counters)
        by_type = counter_bank(m, [msg.name for msg in spec.MESSAGES.values()], self.by_type)

        def lane_byte(i):
            return beat.data.word_select(i, 8) if n > 1 else beat.data

        # --- which lanes belong to the message open at the start of the beat (tail)
        # and which to a message starting in it (head)
        has_sop = valid & (beat.sop != 0)
        sop_lane = Signal(range(n))
        eop_lane = Signal(range(n))
        for i in range(n):
            with m.If(beat.sop[i]):
                m.d.comb += sop_lane.eq(i)
            with m.If(beat.eop[i]):
                m.d.comb += eop_lane.eq(i)
        tail = Signal(n)
        for i in range(n):
            m.d.comb += tail[i].eq(valid & beat.msg[i] & (~has_sop | (i < sop_lane)))

        # --- assembly buffer of the open message; moff = its bytes so far (saturating)
        size = spec.MAX_LENGTH
        moff = Signal(range(size + 2))
        buf = [Signal(8, name=f"buf{k}") for k in range(size)]
        view = [Signal(8, name=f"view{k}") for k in range(size)]  # buf + this beat's tail
        for k in range(size):
            m.d.comb += view[k].eq(buf[k])
            for i in range(n):
                with m.If(tail[i] & (moff + i == k)):
                    m.d.comb += view[k].eq(lane_byte(i))
        tail_count = sum(tail[i] for i in range(n))
        head_count = sum((valid & beat.msg[i] & (i >= sop_lane)) for i in range(n))
        grown = moff + tail_count
        with m.If(has_sop):
            m.d.sync += moff.eq(head_count)
            for k in range(min(n, size)):
                m.d.sync += buf[k].eq(lane_byte((sop_lane + k)[:max(1, (n - 1).bit_length())])
                                      if n > 1 else lane_byte(0))
        with m.Elif(valid):
            m.d.sync += moff.eq(Mux(grown > size, size + 1, grown))
            m.d.sync += [buf[k].eq(view[k]) for k in range(size)]

        # --- locate table: read with the locate bytes as they arrive
        symbits = sym_bits(self.symbols)
        entry = data.StructLayout({"traded": 1, "sym": symbits})
        m.submodules.table = table = memory.Memory(shape=entry, depth=self.locates, init=[])
        wr = table.write_port()
        rd = table.read_port(transparent_for=(wr,))
        addr_bits = (self.locates - 1).bit_length()
        locate_q = Signal(16)
        locate_now = Signal(16)
        m.d.comb += locate_now.eq(locate_q)
        with m.If(has_sop):
            # the head's locate bytes, when this beat already holds them
            for i in range(2, n):
                with m.If((sop_lane + 2 == i) & beat.msg[i]):
                    m.d.comb += locate_now.eq(Cat(lane_byte(i), lane_byte(i - 1)))
        with m.Else():
            m.d.comb += locate_now.eq(Cat(view[2], view[1]))
        m.d.sync += locate_q.eq(locate_now)
        m.d.comb += rd.addr.eq(locate_now[:addr_bits])

        # --- decode the message that ends in this beat
        ending = valid & (beat.eop != 0)
        length = Signal(range(size + n + 2))
        m.d.comb += length.eq(moff + eop_lane + 1)

        def field(f: spec.Field):
            return Cat(*reversed([view[f.offset + j] for j in range(f.size)]))

        mtype = view[0]
        known = Signal()
        length_ok = Signal()
        ev = Signal(event_layout(self.symbols))
        hdr = spec.MESSAGES["A"].fields
        m.d.comb += [ev.type.eq(mtype), ev.locate.eq(field(hdr["locate"])),
                     ev.tracking.eq(field(hdr["tracking"])),
                     ev.timestamp.eq(field(hdr["timestamp"]))]
        per_field = {ef: spec.event_sources(ef) for ef in spec.EVENT_FIELDS
                     if ef not in ("type", "seq", "locate", "tracking", "timestamp")}
        with m.Switch(mtype):
            for t, msg in spec.MESSAGES.items():
                with m.Case(ord(t)):
                    m.d.comb += [known.eq(1), length_ok.eq(length == msg.length)]
                    for ef, sources in per_field.items():
                        if t in sources:
                            m.d.comb += getattr(ev, ef).eq(field(sources[t]))

        # directory: the first enabled watch entry with this stock
        watch_hit = Signal()
        watch_sym = Signal(symbits)
        stock = field(spec.MESSAGES["R"].fields["stock"])
        for i in reversed(range(self.symbols)):
            w = self.watch[i]
            with m.If(w.enable & (w.stock == stock)):
                m.d.comb += [watch_hit.eq(1), watch_sym.eq(i)]
        in_table = ev.locate < self.locates
        is_dir = mtype == ord("R")
        good = ending & known & length_ok
        dir_write = good & is_dir & watch_hit & in_table

        # the message open at the end of the beat is cut off: nothing of it is decoded
        with m.If(valid & beat.abort):
            m.d.comb += count["aborted"].eq(1)
        with m.If(ending):
            with m.If(~known):
                m.d.comb += count["unknown_type"].eq(1)
            with m.Elif(~length_ok):
                m.d.comb += count["bad_length"].eq(1)
        with m.Switch(mtype):
            for t, msg in spec.MESSAGES.items():
                with m.Case(ord(t)):
                    m.d.comb += by_type[msg.name].eq(good)

        sym = Signal(symbits)
        passes = Signal()
        with m.If(ev.locate == 0):
            m.d.comb += [passes.eq(1), sym.eq(0)]
        with m.Elif(dir_write):
            m.d.comb += [passes.eq(1), sym.eq(watch_sym)]
        with m.Elif(in_table & rd.data.traded):
            m.d.comb += [passes.eq(1), sym.eq(rd.data.sym)]
        m.d.comb += [count["directory_hits"].eq(dir_write),
                     count["untraded"].eq(good & ~passes), count["events"].eq(good & passes)]

        # --- table writes: the directory wins the port, a host write waits a cycle
        host_pending = Signal()
        host = Signal(locate_write_layout(self.symbols))
        with m.If(self.loc_wr.stb):
            m.d.sync += [host.eq(self.loc_wr), host_pending.eq(1)]
        with m.If(dir_write):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(ev.locate[:addr_bits]),
                         wr.data.traded.eq(1), wr.data.sym.eq(watch_sym)]
        with m.Elif(host_pending):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(host.locate[:addr_bits]),
                         wr.data.traded.eq(host.traded), wr.data.sym.eq(host.sym)]
            with m.If(~self.loc_wr.stb):
                m.d.sync += host_pending.eq(0)

        # the sequence number of the message that ends: it opened in an earlier beat
        mseq = Signal(64)
        with m.If(has_sop):
            m.d.sync += mseq.eq(beat.seq)
        m.d.comb += [ev.seq.eq(mseq), ev.sym.eq(sym)]

        m.d.sync += self.events.valid.eq(good & passes)
        with m.If(good & passes):
            m.d.sync += self.events.payload.eq(ev)
        return m

