"""``ouch_rx``: the venue's OUCH answers — parsed, forwarded as event records, and fed
to the risk gate.

Golden model: :mod:`gateware.models.ouch_rx` (its docstring gives the rules and the
counters).
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from tick2trade.gateware.bytefield import counter_bank
from tick2trade.gateware.interfaces import RECORD_BITS, record_value, report_layout, sym_bits
from tick2trade.protocol import control as proto
from tick2trade.protocol import ouch
from tick2trade.gateware.models.trade import ouch_rx as model
from tick2trade.gateware.stream import beat_layout, lanes
from tick2trade.gateware.udp_header import be_bytes, const_bytes

LEN0, LEN1, PTYPE, BODY, SKIP = range(5)
# Cycles from the walker taking an answer's last byte to the risk gate writing what it
# changes (read the table, decide, form the notional, offer, the gate's two stages).
GATE_AFTER_LAG = 5


def sent_layout(symbols: int) -> data.StructLayout:
    """An Enter Order as it left ``ouch_tx`` (``stb`` for one cycle)."""
    return data.StructLayout({"stb": 1, "user_ref": 32, "sym": sym_bits(symbols), "side": 1,
                              "price": 32, "quantity": 32})


def entry_layout(symbols: int) -> data.StructLayout:
    return data.StructLayout({"user_ref": 32, "sym": sym_bits(symbols), "side": 1,
                              "price": 32, "open": 32, "accepted": 1})


# (field, size): the record's fields, captured from the message as its bytes go by;
# where each sits in which message comes from the OUCH table
CAPTURED = {"user_ref": 4, "quantity": 4, "price": 8, "code": 1, "ref": 8, "reason": 2,
            "tif": 1, "appendage_length": 2}
CAPTURED_FROM = {  # record field -> {message type: OUCH field}
    "user_ref": {t: "user_ref" for t in model.ANSWER_TYPES},
    "quantity": {"A": "quantity", "E": "quantity", "C": "quantity"},
    "price": {"A": "price", "E": "price"},
    "code": {"A": "side", "E": "liquidity", "C": "reason"},
    "ref": {"A": "symbol", "E": "match"},
    "reason": {"J": "reason"},
    "tif": {"A": "tif"},
    "appendage_length": {"A": "appendage_length", "E": "appendage_length"},
}


class OuchRx(wiring.Component):
    """Parse the venue's answers; one event record per answer; reports to the gate.

    How it works: datagrams from the venue (source ``venue_ip``:``venue_port``, others
    are dropped at their first beat, ``wrong_source``) are written beat by beat into an
    input FIFO of ``in_depth`` beats; a walker takes one byte per cycle out of it and
    follows the SoupBinTCP packets (length, type, message), capturing the fields of
    the record as their bytes go by (offsets from ``protocol.ouch``'s table). A
    message's bytes go up to a beat per cycle — all the head beat holds of it, except
    its type byte and its last byte, which go alone — and a packet's length and type
    a byte per cycle: an Executed takes 10 cycles at W = 64, against 6 beats on the
    wire, so the walker keeps up with answers one after another (and with the wire at
    W = 8). The FIFO (2 KiB by default) takes the bursts. When the FIFO is full the
    datagram is dropped (``overflow``): a cut datagram ends with a marker beat (one
    slot is kept for it) so the walker forgets the packet it was in.

    A message's last byte starts the answer stage: cycle +1 reads the order table
    (``orders`` entries by UserRefNum modulo, written from ``sent`` as each Enter
    leaves; a write in the same cycle as the read's result makes it read again), cycle
    +2 decides (``models.ouch_rx.OrderTable.apply``), writes the table back, queues the
    event record, and offers the report on ``reports`` from cycle +3 until taken. The
    risk gate takes it in its first cycle without an intent and writes the symbol's
    state in the cycle after: a position is updated 5 cycles after the walker took the
    answer's last byte, one more per intent that held the gate. The record's ``lag``
    is how long that byte waited in the FIFO (cycles from its beat arriving on
    ``datagrams`` to the walker taking it): the gate had the answer ``lag + 5`` cycles
    after its last byte arrived.

    Parameters
    ----------
    data_width : int
    symbols : int
    orders : int
        Order table entries (a power of two).
    in_depth, record_depth : int
        Input FIFO beats; records waiting for the event channel (when full, a record is
        lost and counted in ``records_lost``; its report still goes to the gate). The
        channel sends an event frame in about 90 cycles, the walker can parse an answer
        in 10: 64 records take a burst of that many answers.

    Members
    -------
    datagrams : In(stream, always ready) — ``eth_rx``'s ``ouch`` port.
    venue_ip, venue_port : In — where answers must come from.
    to_gate : In(1) — 1: executions, cancels and rejects of known orders go to the gate.
    sent : In(sent_layout(symbols)).
    reports : Out(stream(report_layout(symbols))) — to ``Risk.answers``.
    records : Out(stream(RECORD_BITS)) — event records, type 2 (``docs/control.md``).
    counters : Out — ``models.ouch_rx.COUNTERS``.
    """

    def __init__(self, data_width: int = 64, symbols: int = 64, orders: int = model.ORDERS,
                 in_depth: int = 256, record_depth: int = 64):
        if orders & (orders - 1):
            raise ValueError(f"orders must be a power of two, not {orders}")
        self.data_width, self.symbols, self.orders = data_width, symbols, orders
        self.in_depth, self.record_depth = in_depth, record_depth
        super().__init__({
            "datagrams": In(stream.Signature(beat_layout(data_width, src_mac=48, src_ip=32,
                                                         src_port=16), always_ready=True)),
            "venue_ip": In(32), "venue_port": In(16), "to_gate": In(1),
            "sent": In(sent_layout(symbols)),
            "reports": Out(stream.Signature(report_layout(symbols))),
            "records": Out(stream.Signature(RECORD_BITS)),
            "counters": Out(data.StructLayout({n: 32 for n in model.COUNTERS})),
        })

    def registers(self, records):
        """``to_gate`` (reset 1), the counters, and ``records`` — the stream the top level
        hands the bank when the event channel is off — as a FIFO register."""
        from tick2trade.gateware.registers import RegisterBlock

        regs = RegisterBlock("ouch_rx", "The venue's OUCH answers: parsed, sent on the "
                             "event channel, executions and cancels applied to the gate.")
        regs.rw("to_gate", self.to_gate, "1: executions, cancels and rejects of orders in "
                "the table update the risk gate (the host then reports none of them)", 1)
        regs.struct("counters", self.counters, "ro", "32-bit wrapping counter")
        regs.fifo("answers", records, "answer records (when ctl.event_enable is 0)")
        return regs

    def elaborate(self, platform):
        m = Module()
        n = lanes(self.data_width)
        count = counter_bank(m, model.COUNTERS, self.counters)

        # --- input: whole datagrams from the venue into the FIFO ----------------------
        # each beat carries the (16-bit) cycle it arrived in: the record says how long
        # the answer's last byte waited for the walker
        entry = data.StructLayout({"data": self.data_width, "be": n, "last": 1, "abort": 1,
                                   "t": 16})
        now = Signal(16)
        m.d.sync += now.eq(now + 1)
        m.submodules.inq = inq = fifo.SyncFIFOBuffered(width=entry.size, depth=self.in_depth)
        beat, valid = self.datagrams.payload, self.datagrams.valid
        dropping = Signal()
        room = inq.level < self.in_depth - 1  # the last slot is kept for a cut marker
        w = Signal(entry)
        m.d.comb += [w.data.eq(beat.data), w.be.eq(beat.be), w.last.eq(beat.last),
                     w.t.eq(now), inq.w_data.eq(w)]
        with m.If(valid & beat.first):
            m.d.comb += count["datagrams"].eq(1)
            with m.If((beat.src_ip != self.venue_ip) | (beat.src_port != self.venue_port)):
                m.d.comb += count["wrong_source"].eq(1)
                m.d.sync += dropping.eq(~beat.last)
            with m.Elif(room):
                m.d.comb += inq.w_en.eq(1)
                m.d.sync += dropping.eq(0)
            with m.Else():
                m.d.comb += count["overflow"].eq(1)
                m.d.sync += dropping.eq(~beat.last)
        with m.Elif(valid & ~dropping):
            with m.If(room):
                m.d.comb += inq.w_en.eq(1)
            with m.Else():
                m.d.comb += [count["overflow"].eq(1), w.be.eq(0), w.last.eq(1),
                             w.abort.eq(1), inq.w_en.eq(1)]
                m.d.sync += dropping.eq(~beat.last)

        # --- the walker: one byte per cycle --------------------------------------------
        head = Signal(entry)
        m.d.comb += head.eq(inq.r_data)
        lane = Signal(range(n))  # lowest lane not yet taken from the head beat
        avail = Signal(n)
        m.d.comb += avail.eq(head.be & Cat(*[lane <= j for j in range(n)]))
        cur = Signal(range(n))
        for j in reversed(range(n)):
            with m.If(avail[j]):
                m.d.comb += cur.eq(j)
        run = Signal(range(n + 1))  # bytes of the head beat from cur on (contiguous)
        m.d.comb += run.eq(sum(avail[j] for j in range(n)))
        byte = Signal(8)
        m.d.comb += byte.eq(head.data.word_select(cur, 8) if n > 1 else head.data)
        has_byte = avail != 0

        phase = Signal(range(5), init=LEN0)
        nxt = Signal.like(phase)
        m.d.comb += nxt.eq(phase)
        len_hi = Signal(8)
        left = Signal(16)  # bytes of the packet after this one
        k = Signal(16)  # offset of this byte in the OUCH message
        data_pkt = Signal()
        mtype = Signal(8)
        fields = {name: Signal(8 * size, name=f"f_{name}") for name, size in CAPTURED.items()}
        mtype_now = Signal(8)
        m.d.comb += mtype_now.eq(Mux(k == 0, byte, mtype))
        # A message's bytes go up to a beat per cycle: all of the head beat's, except
        # that its type byte (which says where its fields are) and its last byte (which
        # ends the packet) go alone.
        take = Signal(range(n + 1))  # bytes taken this cycle: offsets k .. k + take - 1
        m.d.comb += take.eq(1)
        with m.If(phase == SKIP):
            m.d.comb += take.eq(run)
        with m.Elif((phase == BODY) & (k != 0) & (left != 0)):
            m.d.comb += take.eq(Mux(left < run, left, run))
        # each captured field as it is with this cycle's bytes in (a field may end in
        # them): byte o of the message is in lane cur + (o - k)
        shift = (n - 1).bit_length()
        have = {}
        for name, by_type in CAPTURED_FROM.items():
            reg = fields[name]
            size = CAPTURED[name]
            parts = []
            for j in range(size):
                held = reg.word_select(size - 1 - j, 8)
                part = Signal(8, name=f"have_{name}_{j}")
                m.d.comb += part.eq(held)
                for t, fname in by_type.items():
                    o = ouch.OUTBOUND[t].fields[fname].offset + j
                    with m.If((phase == BODY) & (mtype_now == ord(t)) & (k <= o) &
                              (o < k + take)):
                        at = (cur + (o - k))[:shift] if shift else 0
                        m.d.comb += part.eq(head.data.word_select(at, 8) if shift
                                            else head.data)
                parts.append(part)
            have[name] = Signal.like(reg, name=f"have_{name}")
            m.d.comb += have[name].eq(Cat(*reversed(parts)))
        emit = Signal()  # this byte ends a packet that is an answer
        more = Signal()  # bytes left in the head beat after this cycle's
        m.d.comb += more.eq(run > take)

        # the answer stage (below) holds one answer; the byte that ends the next
        # packet waits until it is free
        busy = Signal()
        ends_packet = ((phase == PTYPE) | (phase == BODY)) & (left == 0)
        stall = ends_packet & busy
        step = inq.r_rdy & has_byte & ~stall
        pop = inq.r_rdy & ((has_byte & ~more & ~stall) | ~has_byte)
        m.d.comb += inq.r_en.eq(pop)
        with m.If(step):
            m.d.sync += lane.eq(Mux(more, cur + take, 0))
        with m.Elif(pop):
            m.d.sync += lane.eq(0)

        msg_len = Signal(16)
        m.d.comb += msg_len.eq(k + 1)
        lengths_ok = Signal()
        for t, name in model.ANSWER_TYPES.items():
            table = ouch.OUTBOUND[t]
            with m.If(mtype_now == ord(t)):
                if ouch.has_appendage(table):
                    m.d.comb += lengths_ok.eq((msg_len >= table.length) & (
                        have["appendage_length"] == msg_len - table.length))
                else:
                    m.d.comb += lengths_ok.eq(msg_len == table.length)
        known_type = Cat(*[mtype_now == ord(t) for t in model.ANSWER_TYPES]).any()

        with m.If(step):
            with m.Switch(phase):
                with m.Case(LEN0):
                    m.d.sync += len_hi.eq(byte)
                    m.d.comb += nxt.eq(LEN1)
                with m.Case(LEN1):
                    with m.If(Cat(byte, len_hi) == 0):
                        m.d.comb += [count["runt_packet"].eq(1), nxt.eq(SKIP)]
                    with m.Else():
                        m.d.sync += left.eq(Cat(byte, len_hi) - 1)
                        m.d.comb += nxt.eq(PTYPE)
                with m.Case(PTYPE):
                    m.d.sync += [data_pkt.eq((byte == ord("S")) | (byte == ord("U"))),
                                 k.eq(0), left.eq(left - 1)]
                    with m.If(left == 0):
                        m.d.comb += [nxt.eq(LEN0), count["packets"].eq(1)]
                        with m.If((byte == ord("S")) | (byte == ord("U"))):
                            m.d.comb += count["unknown_type"].eq(1)
                        with m.Else():
                            m.d.comb += count["other_packets"].eq(1)
                    with m.Else():
                        m.d.comb += nxt.eq(BODY)
                with m.Case(BODY):
                    m.d.sync += [k.eq(k + take), left.eq(left - take)]
                    with m.If(k == 0):
                        m.d.sync += mtype.eq(byte)
                    m.d.sync += [fields[name].eq(have[name]) for name in fields]
                    with m.If(left == 0):
                        m.d.comb += [nxt.eq(LEN0), count["packets"].eq(1)]
                        with m.If(~data_pkt):
                            m.d.comb += count["other_packets"].eq(1)
                        with m.Elif(~known_type):
                            m.d.comb += count["unknown_type"].eq(1)
                        with m.Else():
                            with m.If(lengths_ok):
                                m.d.comb += [emit.eq(1), count["answers"].eq(1)]
                                for t, name in model.ANSWER_TYPES.items():
                                    m.d.comb += count[name].eq(mtype_now == ord(t))
                            with m.Else():
                                m.d.comb += count["bad_length"].eq(1)
            m.d.sync += phase.eq(nxt)
        # the datagram ends: a packet still open was cut (a FIFO overflow's marker only
        # ends it: that datagram is counted as overflow already)
        with m.If(pop & head.last):
            m.d.sync += phase.eq(LEN0)
            with m.If(~head.abort & ((Mux(step, nxt, phase) == LEN1) |
                                     (Mux(step, nxt, phase) == PTYPE) |
                                     (Mux(step, nxt, phase) == BODY))):
                m.d.comb += count["truncated"].eq(1)

        # --- the answer stage -------------------------------------------------------------
        S = self.symbols
        m.submodules.table = table = memory.Memory(shape=entry_layout(S), depth=self.orders,
                                                   init=[])
        wr = table.write_port()
        rd = table.read_port(transparent_for=(wr,))
        idx = (self.orders - 1).bit_length()

        a_type = Signal(8)
        a_lag = Signal(16)
        a = {name: Signal(8 * size, name=f"a_{name}") for name, size in CAPTURED.items()}
        with m.If(emit):
            m.d.sync += [a_type.eq(mtype_now), a_lag.eq(now - head.t),
                         *(a[name].eq(have[name]) for name in fields)]

        sent = self.sent
        new = Signal(entry_layout(S))
        m.d.comb += [new.user_ref.eq(sent.user_ref), new.sym.eq(sent.sym),
                     new.side.eq(sent.side), new.price.eq(sent.price),
                     new.open.eq(sent.quantity)]

        st = rd.data
        known = (st.user_ref == a["user_ref"]) & (st.open != 0)
        is_e, is_c = a_type == ord("E"), a_type == ord("C")
        is_a, is_j = a_type == ord("A"), a_type == ord("J")
        qty = a["quantity"]
        fits = (qty != 0) & (qty <= st.open)
        done = Signal(32)
        m.d.comb += done.eq(Mux(is_j, st.open, qty))
        apply = Signal()
        m.d.comb += apply.eq(known & Mux(is_j, ~st.accepted, (is_e | is_c) & fits))
        left_open = Signal(32)
        m.d.comb += left_open.eq(st.open - done)
        rep = Signal(report_layout(S))
        price = Signal(32)

        m.submodules.recq = recq = fifo.SyncFIFOBuffered(width=RECORD_BITS,
                                                         depth=self.record_depth)
        gate, flag_closed = Signal(), Signal()
        record = record_value(
            const_bytes(proto.EV_ANSWER, 1) + [a_type, Cat(gate, flag_closed, Const(0, 6))] +
            [Mux(is_a | is_e | is_c, a["code"], 0)] + be_bytes(a["user_ref"], 4) +
            be_bytes(Mux(is_j, 0, qty), 4) + be_bytes(Mux(is_a | is_e, a["price"], 0), 8) +
            be_bytes(Mux(is_a | is_e, a["ref"], Mux(is_j, a["reason"], 0)), 8) +
            be_bytes(a_lag, 2) + [Mux(is_a, a["tif"], 0)] + const_bytes(0, 1))
        m.d.comb += [recq.w_data.eq(record), self.records.payload.eq(recq.r_data),
                     self.records.valid.eq(recq.r_rdy), recq.r_en.eq(self.records.ready)]
        m.d.comb += [self.reports.payload.eq(rep)]
        m.d.comb += wr.data.eq(new)
        with m.If(sent.stb):
            m.d.comb += [wr.addr.eq(sent.user_ref[:idx]), wr.en.eq(1)]

        with m.FSM():
            with m.State("IDLE"), m.If(emit):
                m.next = "READ"
            with m.State("READ"):
                m.d.comb += [busy.eq(1), rd.addr.eq(a["user_ref"][:idx])]
                m.next = "DECIDE"
            with m.State("DECIDE"):
                m.d.comb += busy.eq(1)
                with m.If(sent.stb):
                    m.next = "READ"  # the slot may just have changed: read it again
                with m.Else():
                    with m.If(self.to_gate):
                        m.d.comb += [count["unknown_order"].eq(~known),
                                     count["bad_fill"].eq(known & (is_e | is_c) & ~fits),
                                     count["late_reject"].eq(known & is_j & st.accepted)]
                        with m.If(known & is_a):
                            m.d.comb += [wr.addr.eq(a["user_ref"][:idx]), wr.en.eq(1),
                                         wr.data.eq(st), wr.data.accepted.eq(1)]
                        with m.If(apply):
                            m.d.comb += [wr.addr.eq(a["user_ref"][:idx]), wr.en.eq(1),
                                         wr.data.eq(st), wr.data.open.eq(left_open),
                                         gate.eq(1), flag_closed.eq(left_open == 0),
                                         count["to_gate"].eq(1)]
                            m.d.sync += [rep.sym.eq(st.sym), rep.side.eq(st.side),
                                         rep.filled.eq(Mux(is_e, done, 0)),
                                         rep.canceled.eq(Mux(is_e, 0, done)),
                                         rep.closed.eq(left_open == 0), price.eq(st.price)]
                    m.d.comb += [recq.w_en.eq(1), count["records_lost"].eq(~recq.w_rdy)]
                    with m.If(self.to_gate & apply):
                        m.next = "PRODUCT"
                    with m.Else():
                        m.next = "IDLE"
            with m.State("PRODUCT"):
                # the notional released, registered: the multiplier is not on the
                # report's path to the gate
                m.d.comb += busy.eq(1)
                m.d.sync += rep.released.eq(price * (rep.filled + rep.canceled))
                m.next = "REPORT"
            with m.State("REPORT"):
                m.d.comb += [busy.eq(1), self.reports.valid.eq(1)]
                with m.If(self.reports.ready):
                    m.next = "IDLE"
        return m
