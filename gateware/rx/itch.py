"""``itch``: NASDAQ ITCH 5.0 decoder, length check and locate → symbol filter.

Golden model: :class:`gateware.models.rx.ItchModel`. Field offsets come from the message
table in ``models/itch.py`` (through ``event_sources``); none is written here.
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from tick2trade.gateware.bytefield import counter_bank
from tick2trade.protocol import itch as spec
from tick2trade.gateware.models.rx.itch import ITCH_COUNTERS
from tick2trade.gateware.interfaces import (ItchType, event_layout, locate_write_layout, sym_bits,
                                            watch_layout)
from tick2trade.gateware.stream import lanes, msg_beat_layout


class ItchDecoder(wiring.Component):
    """Assemble ITCH messages from lane-preserving message beats, check and decode them,
    and pass the events of traded instruments.

    Message bytes are gathered into a ``MAX_LENGTH`` (50) byte buffer at their offset in
    the message (byte ``k`` of a message starting in lane ``s`` always sits in lane
    ``(s + k) % lanes``, so one lane mux per buffer byte does it). In the beat holding a
    message's last byte it is decoded from the buffer merged with that beat's bytes and
    the event is registered. A message is never shorter than 12 bytes (``moldudp`` drops
    runt blocks), so up to 64-bit beats it never starts and ends in one beat: the message
    that ends is the one open when the beat began, and the head of the next one goes into
    the buffer in the same cycle. Bytes at least one beat before the end of a message of
    the right length are already in the buffer at its last beat; those fields are taken
    from the buffer alone, which keeps the beat-to-event path short. Longer messages keep
    being measured (``bad_length``) without writing past the buffer.

    The locate table (``locates`` entries of traded flag + symbol, ``lib.memory``, all
    untraded at reset) is addressed by the open message's locate bytes as soon as they
    are in; they arrive at least one beat before the last byte, so the entry is out of
    the read port when the message ends. Stock Directory ('R') messages whose stock is on
    the watch list (lowest enabled entry ``i`` wins) write locate → symbol ``i``; the read
    port is transparent to that write, so the very next message sees it. The stock is
    matched against the watch list the cycle before the message's last beat, so a watch
    list write counts for directory messages ending from the second cycle after it.

    Host writes (``loc_wr``) take the write port in their strobe cycle, or one cycle
    later when a directory write has it; either way they are seen by every message whose
    last byte arrives after the strobe cycle (a deferred write is forwarded around the
    memory). Directory writes are at least 4 cycles apart; a host write can be lost only
    if host strobes come in consecutive cycles across a directory write, so keep them at
    most one every other cycle (CSR writes are far slower than that).

    Parameters
    ----------
    data_width : int
        Bits per beat: 8, 16, 32 or 64.
    symbols : int
        Watch-list entries; the event's ``sym`` is ``sym_bits(symbols)`` wide.
    locates : int
        Locate table depth; higher locates are never traded.

    Members
    -------
    msgs : In(stream.Signature(msg_beat_layout(data_width), always_ready=True))
        Message bytes framed per lane (see ``stream.msg_beat_layout``).
    events : Out(stream.Signature(event_layout(symbols), always_ready=True))
        One beat per passing message.
    watch : In(watch_layout(symbols))
        Stocks the directory messages are matched against.
    loc_wr : In(locate_write_layout(symbols))
        Host writes into the locate table.
    counters : Out(StructLayout)
        ``models.rx.ITCH_COUNTERS``, 32-bit wrapping.
    by_type : Out(StructLayout)
        Decoded messages (right type and length, traded or not) per message name.

    early : Out(stream.Signature(event_layout(symbols), always_ready=True))
        The same events a cycle sooner: combinational, in the beat holding the message's
        last byte (for the strategy's fast path, which decides in that cycle).
    open_sym : Out(sym_bits(symbols))
        The symbol the locate table gives the message open at the start of this beat —
        meaningful from the cycle after its locate bytes came in, so in the cycle before
        a message's ``early`` beat it names that message's symbol unless a host write into
        the table moved it meanwhile (``early.payload.sym`` is the one that counts).

    Latency: ``events.valid`` is high for one cycle, 1 cycle after the beat holding the
    message's last byte; ``early.valid`` in that beat.
    """

    def __init__(self, data_width: int = 64, symbols: int = 64, locates: int = 16384):
        if lanes(data_width) > spec.MIN_LENGTH - 4:
            # the locate bytes (1, 2) must be in a beat before the last byte of the
            # shortest message, and no message may fit in one beat
            raise ValueError(f"ItchDecoder supports beats up to 64 bits, not {data_width}")
        if locates < 2 or locates > 1 << 16:
            raise ValueError(f"locates must be 2 .. 65536, not {locates}")
        self.data_width = data_width
        self.symbols = symbols
        self.locates = locates
        super().__init__({
            "msgs": In(stream.Signature(msg_beat_layout(data_width), always_ready=True)),
            "events": Out(stream.Signature(event_layout(symbols), always_ready=True)),
            "early": Out(stream.Signature(event_layout(symbols), always_ready=True)),
            "open_sym": Out(sym_bits(symbols)),
            "watch": In(watch_layout(symbols)),
            "loc_wr": In(locate_write_layout(symbols)),
            "counters": Out(data.StructLayout({n: 32 for n in ITCH_COUNTERS})),
            "by_type": Out(data.StructLayout({m.name: 32 for m in spec.MESSAGES.values()})),
        })

    def elaborate(self, platform):
        m = Module()
        n = lanes(self.data_width)
        lane_bits = (n - 1).bit_length()
        size = spec.MAX_LENGTH
        beat = self.msgs.payload
        valid = self.msgs.valid
        count = counter_bank(m, ITCH_COUNTERS, self.counters)
        by_type = counter_bank(m, [msg.name for msg in spec.MESSAGES.values()], self.by_type)

        def lane(index):
            return beat.data.word_select(index[:lane_bits], 8) if n > 1 else beat.data

        sop = valid & beat.sop.any()
        sop_lane = Signal(range(n))
        eop_lane = Signal(range(n))
        for i in range(n):
            with m.If(beat.sop[i]):
                m.d.comb += sop_lane.eq(i)
            with m.If(beat.eop[i]):
                m.d.comb += eop_lane.eq(i)

        # --- assembly: moff = bytes of the open message before this beat, saturating
        # past the buffer so an overlong message is still measured as overlong
        moff = Signal(range(size + 2))
        buf = [Signal(8, name=f"buf{k}") for k in range(size)]
        view = [Signal(8, name=f"view{k}") for k in range(size)]  # buf + this beat
        buf_next = [Signal(8, name=f"buf_next{k}") for k in range(size)]
        for k in range(size):
            # A continuing message starts at lane 0, so byte k is in lane k - moff. Lanes
            # of the next message land beyond the end of the one ending here, in bytes
            # nobody reads before that message writes them again.
            m.d.comb += view[k].eq(buf[k])
            with m.If(valid & (moff <= k) & (moff + n > k)):
                m.d.comb += view[k].eq(lane(k - moff))
            m.d.comb += buf_next[k].eq(view[k])
        with m.If(sop):
            for k in range(n):
                m.d.comb += buf_next[k].eq(lane(sop_lane + k))
        m.d.sync += [buf[k].eq(buf_next[k]) for k in range(size)]
        # a message runs to the end of every beat but its last (or is aborted there)
        mseq = Signal(64)  # of the open message: the one that ends began in an earlier beat
        with m.If(sop):
            m.d.sync += [moff.eq(n - sop_lane), mseq.eq(beat.seq)]
        with m.Elif(valid & beat.msg[0]):
            m.d.sync += moff.eq(Mux(moff + n > size, size + 1, moff + n))

        # --- decode the message ending in this beat
        def byte(length: int, k: int):
            """Byte k of a message of ``length`` bytes, in the beat of its last byte (that
            beat holds at most its last n bytes)."""
            return buf[k] if k + n < length else view[k]

        def value(length: int, f: spec.Field):
            return Cat(*(byte(length, f.offset + j) for j in reversed(range(f.size))))

        ending = valid & beat.eop.any()
        length = Signal(range(size + n + 2))
        m.d.comb += length.eq(moff + eop_lane + 1)
        mtype = buf[0]
        known = Signal()
        length_ok = Signal()
        with m.Switch(mtype):
            for t, msg in spec.MESSAGES.items():
                with m.Case(ord(t)):
                    m.d.comb += [known.eq(1), length_ok.eq(length == msg.length)]
        good = ending & known & length_ok

        ev = Signal(event_layout(self.symbols))
        m.d.comb += [ev.type.eq(mtype), ev.seq.eq(mseq)]
        for ef in spec.EVENT_FIELDS:
            if ef in ("type", "seq"):
                continue
            # one mux input per distinct source: types whose field sits at the same bytes,
            # equally far from their end, share a case
            cases: dict[tuple, list[tuple[spec.Message, spec.Field]]] = {}
            for t, f in spec.event_sources(ef).items():
                msg = spec.MESSAGES[t]
                settled = tuple(k + n < msg.length for k in range(f.offset, f.offset + f.size))
                cases.setdefault((f.offset, f.size, settled), []).append((msg, f))
            with m.Switch(mtype):
                for sources in cases.values():
                    with m.Case(*(ord(msg.type) for msg, _ in sources)):
                        msg, f = sources[0]
                        m.d.comb += getattr(ev, ef).eq(value(msg.length, f))

        # --- directory: the lowest enabled watch entry with this stock. The compare
        # (8 stock bytes against every watch entry) is registered: done in the message's
        # last beat, it was the one spot of the board build its router could not clear.
        # The stock is in ``buf`` two beats before a directory message's last: that
        # beat holds at most its last n bytes, the one before it n more (so ``value``
        # reads it from ``buf`` alone, a cycle early).
        symbits = sym_bits(self.symbols)
        directory = spec.MESSAGES["R"]
        field = directory.fields["stock"]
        assert field.offset + field.size + 2 * n <= directory.length
        stock = value(directory.length, field)
        watch_hit = Signal()
        watch_sym = Signal(symbits)
        m.d.sync += [watch_hit.eq(0), watch_sym.eq(0)]
        for i in reversed(range(self.symbols)):
            with m.If(self.watch[i].enable & (self.watch[i].stock == stock)):
                m.d.sync += [watch_hit.eq(1), watch_sym.eq(i)]
        in_table = ev.locate < self.locates
        dir_write = good & (mtype == ItchType.STOCK_DIRECTORY) & watch_hit & in_table

        # --- locate table
        entry = data.StructLayout({"traded": 1, "sym": symbits})
        m.submodules.table = table = memory.Memory(shape=entry, depth=self.locates, init=[])
        wr = table.write_port()
        rd = table.read_port(transparent_for=(wr,))
        addr_bits = len(rd.addr)
        # addressed by the message open at the end of this beat, so the entry is out when
        # its last byte comes
        m.d.comb += rd.addr.eq(Cat(buf_next[2], buf_next[1])[:addr_bits])

        # write port: directory > deferred host write > new host write
        host = self.loc_wr
        host_ok = host.stb & (host.locate < self.locates)
        pend = Signal()
        pend_wr = Signal(locate_write_layout(self.symbols))
        with m.If(dir_write):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(ev.locate[:addr_bits]),
                         wr.data.traded.eq(1), wr.data.sym.eq(watch_sym)]
        with m.Elif(pend):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(pend_wr.locate[:addr_bits]),
                         wr.data.traded.eq(pend_wr.traded), wr.data.sym.eq(pend_wr.sym)]
        with m.Elif(host_ok):
            m.d.comb += [wr.en.eq(1), wr.addr.eq(host.locate[:addr_bits]),
                         wr.data.traded.eq(host.traded), wr.data.sym.eq(host.sym)]
        with m.If(host_ok & (dir_write | pend)):
            m.d.sync += [pend.eq(1), pend_wr.eq(host)]
        with m.Elif(~dir_write):
            m.d.sync += pend.eq(0)

        # A deferred host write strobed before this message's last beat goes into the
        # memory only now, after the read the message uses: forward it.
        forward = pend & (pend_wr.locate == ev.locate)
        traded = Mux(forward, pend_wr.traded, rd.data.traded)
        table_sym = Mux(forward, pend_wr.sym, rd.data.sym)

        sym = Signal(symbits)
        passes = Signal()
        with m.If(ev.locate == 0):
            m.d.comb += passes.eq(1)
        with m.Elif(dir_write):
            m.d.comb += [passes.eq(1), sym.eq(watch_sym)]
        with m.Elif(in_table & traded):
            m.d.comb += [passes.eq(1), sym.eq(table_sym)]
        m.d.comb += [ev.sym.eq(sym), self.open_sym.eq(table_sym)]

        # --- counters
        with m.If(ending):
            with m.If(~known):
                m.d.comb += count["unknown_type"].eq(1)
            with m.Elif(~length_ok):
                m.d.comb += count["bad_length"].eq(1)
        with m.Switch(mtype):
            for t, msg in spec.MESSAGES.items():
                with m.Case(ord(t)):
                    m.d.comb += by_type[msg.name].eq(good)
        emit = good & passes
        m.d.comb += [count["aborted"].eq(valid & beat.abort),
                     count["directory_hits"].eq(dir_write),
                     count["untraded"].eq(good & ~passes),
                     count["events"].eq(emit)]

        m.d.comb += [self.early.valid.eq(emit), self.early.payload.eq(ev)]
        m.d.sync += self.events.valid.eq(emit)
        with m.If(emit):
            m.d.sync += self.events.payload.eq(ev)
        return m
