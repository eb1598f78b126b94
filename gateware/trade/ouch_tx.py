"""``ouch_tx``: order entry — an order that passed risk becomes a whole Ethernet frame.

Golden model: :mod:`gateware.models.order_tx` (``order_frame`` for the bytes,
``OuchTxModel`` for user reference numbers and cancel-all sweeps).
"""

from amaranth import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tick2trade.gateware.bytefield import counter_bank
from tick2trade.gateware.interfaces import order_layout, sym_bits
from tick2trade.protocol import frames, ouch, soupbintcp
from tick2trade.gateware.models.trade.ouch_tx import (CLORDID_PREFIX, ENTER_FIXED, FIRST_USER_REF,
                                                      MAX_CANCELS)
from tick2trade.gateware.stream import beat_layout, lanes
from tick2trade.gateware.udp_header import HEADERS, be_bytes, const_bytes, ipv4_checksum, udp_header

ENTER = ouch.INBOUND["O"]
CANCEL = ouch.INBOUND["X"]
SOUP_HEADER = soupbintcp.LENGTH + 1  # length and packet type in front of the message
ENTER_PAYLOAD = SOUP_HEADER + ENTER.length  # 50
CANCEL_PAYLOAD = SOUP_HEADER + CANCEL.length  # 12
ENTER_FRAME = HEADERS + ENTER_PAYLOAD  # 92
CANCEL_FRAME = max(frames.MIN_FRAME, HEADERS + CANCEL_PAYLOAD)  # 54 bytes, padded to 60
COUNTERS = ("enters", "cancels", "frames", "cancel_sweeps", "cancels_truncated")
# The frame's first beat must not depend on the order (it goes out in the cycle the order
# arrives): up to 16 bytes it holds only MAC addresses, the EtherType and the IPv4
# version/TOS bytes.
MAX_DATA_WIDTH = 128

# Reset values of the configuration registers (the host pushes its own).
VENUE_MAC = 0x02_00_00_00_00_02
VENUE_IP = 0x0A_00_00_02  # 10.0.0.2
VENUE_PORT = 40000
SRC_PORT = 40001


def sent_layout(symbols: int) -> data.StructLayout:
    return data.StructLayout({"stb": 1, "user_ref": 32, "cancel": 1,
                              "sym": sym_bits(symbols)})


def message_bytes(msg, values: dict) -> list[Value]:
    """The bytes of OUCH message ``msg`` in wire order, field by field from its table.

    A value is a signal (big-endian, as wide as the field), an int, an ASCII string
    (left-justified, space-padded) or a list of byte values.
    """
    out = const_bytes(ord(msg.type), 1)
    for f in msg.fields.values():
        v = values[f.name]
        if isinstance(v, str):
            raw = const_bytes(int.from_bytes(v.encode("ascii").ljust(f.size), "big"), f.size)
        elif isinstance(v, list):
            raw = v
        else:
            raw = be_bytes(v, f.size)
        assert len(raw) == f.size, f.name
        out += raw
    assert len(out) == msg.length
    return out


def hex_digits(value, n: int) -> list[Value]:
    """The ``n`` low nibbles of ``value`` as uppercase ASCII hex digits, most significant
    first."""
    digits = []
    for i in reversed(range(n)):
        nibble = value[4 * i:4 * i + 4]
        digits.append(Mux(nibble < 10, Const(ord("0"), 8) + nibble,
                          Const(ord("A") - 10, 8) + nibble)[:8])
    return digits


class OuchTx(wiring.Component):
    """OUCH 5.0 Enter Order and Cancel Order frames, sent the cycle the order arrives.

    Each order leaves as one Ethernet/IPv4/UDP frame to the venue (``venue_mac``,
    ``venue_ip`` : ``venue_port``) from the device (``src_mac``, ``src_ip`` :
    ``src_port``), carrying one SoupBinTCP Unsequenced Data packet with one OUCH message:
    Enter Order (92-byte frame) or Cancel Order (54 bytes, padded with zeros to the
    60-byte Ethernet minimum as the control endpoint's frames are, so the arbiter's
    output is always a valid frame). The bytes are those of ``models.trade.ouch_tx``.

    How it works: the whole header is a template of configuration registers and
    constants, and the first beat of every frame (up to 16 bytes: the MAC addresses, the
    EtherType, the IPv4 version) is the same whatever the order. So ``frames.valid``
    follows ``orders.valid`` combinationally while no frame is in flight, and
    ``orders.ready`` is the consumer taking that first beat: the order is copied to a
    register then, and the following beats come from the copy through a per-beat mux.
    Nothing is sent speculatively: a frame starts only for an order the risk gate
    offers. The combinational path from ``orders`` reaches only ``frames.valid`` and the
    ``sent`` strobe, never ``frames.payload``. The IPv4 checksums of both frame kinds are
    computed from the registers one cycle ahead, so they cost no latency either.

    A frame, once started, is offered beat after beat without gaps (``TxArbiter`` needs
    whole frames) and each beat is held while ``frames.ready`` is low.

    User reference numbers: an Enter takes ``next_user_ref`` (1 after reset) and
    increments it; a Cancel carries the ``user_ref`` of the order it cancels. A write to
    ``user_ref_set`` sets the next number; it wins over an Enter starting in the same
    cycle, which keeps its number.

    Cancel-all: a ``cancel_all`` strobe starts a sweep that sends Cancel Order (quantity 0)
    for each ``user_ref`` from ``cancel_floor`` up to the last one issued (an Enter
    starting in the same cycle included), at most ``max_cancels``; the user refs left
    over are added to ``cancels_truncated`` (the host raises the floor and sweeps again).
    Orders come first: an order waiting at a frame boundary goes before the sweep's next
    Cancel. A strobe while a sweep is still issuing Cancels is ignored. Sweep Cancels
    report ``sym`` 0 on ``sent``.

    The configuration is read while a frame goes out: change it only while no orders
    flow (the host does so before it opens the risk gate).

    Parameters
    ----------
    data_width : int
        Bits per beat, 8 to 128.
    symbols : int
        Instruments (width of ``sym``).
    max_cancels : int
        Cancel frames per sweep.

    Members
    -------
    orders : In(stream.Signature(order_layout(symbols)))
        Orders that passed the risk gate.
    frames : Out(stream.Signature(beat_layout(data_width)))
        Whole frames (first byte in lane 0, ``be`` marks the last beat's bytes), to
        ``TxArbiter`` input 0.
    venue_mac, venue_ip, venue_port, src_mac, src_ip, src_port : In
        Configuration (``src_mac``/``src_ip`` are the control endpoint's).
    user_ref_set : In(StructLayout({"stb": 1, "value": 32}))
        Set the next user reference number.
    cancel_all : In(1)
        The host's strobe (a pulse register).
    risk_cancel_all : In(1)
        The risk gate's strobe (its watchdog tripped with ``watchdog_cancel`` set); either
        starts a sweep.
    cancel_floor : In(32)
        The lowest user reference number a sweep cancels.
    next_user_ref : Out(32)
    sent : Out(sent_layout(symbols))
        ``stb`` for one cycle when a frame's first beat is taken, with the frame's
        ``user_ref``, ``cancel`` and ``sym`` (the "first order byte out" timestamp).
    busy : Out(1)
        A frame or a sweep is in progress.
    counters : Out(StructLayout)
        ``enters``, ``cancels``, ``frames`` (counted at their first beat),
        ``cancel_sweeps``, ``cancels_truncated`` (user refs a sweep left out); 32-bit
        wrapping.

    Latency: 0 cycles from ``orders.valid`` to the first beat on ``frames`` when no
    frame is in flight; a frame is ``ceil(92 / lanes)`` beats (Enter) or
    ``ceil(60 / lanes)`` (Cancel): 12 or 8 at 64 bits, 92 or 60 at 8 bits.
    """

    def __init__(self, data_width: int = 64, symbols: int = 64,
                 max_cancels: int = MAX_CANCELS):
        if data_width > MAX_DATA_WIDTH:
            raise ValueError(f"data width {data_width}: at most {MAX_DATA_WIDTH} (the first "
                             f"beat must not reach the IPv4 total length)")
        self.data_width = data_width
        self.symbols = symbols
        self.max_cancels = max_cancels
        super().__init__({
            "orders": In(stream.Signature(order_layout(symbols))),
            "frames": Out(stream.Signature(beat_layout(data_width))),
            "venue_mac": In(48), "venue_ip": In(32), "venue_port": In(16),
            "src_mac": In(48), "src_ip": In(32), "src_port": In(16),
            "user_ref_set": In(data.StructLayout({"stb": 1, "value": 32})),
            "cancel_all": In(1),
            "risk_cancel_all": In(1),
            "cancel_floor": In(32),
            "next_user_ref": Out(32, init=FIRST_USER_REF),
            "sent": Out(sent_layout(symbols)),
            "busy": Out(1),
            "counters": Out(data.StructLayout({k: 32 for k in COUNTERS})),
        })

    def registers(self):
        """The block's registers: the venue address and source port, the user reference
        counter, the cancel-all sweep, counters. ``src_mac``/``src_ip`` are not here: the
        top level wires them from the control endpoint's ``ctl.mac`` and ``rx.ctl_ip``."""
        from tick2trade.gateware.registers import RegisterBlock

        regs = RegisterBlock("ouch_tx", "Order entry: OUCH 5.0 frames to the venue.")
        regs.rw("venue_mac", self.venue_mac, "destination MAC address of order frames",
                VENUE_MAC)
        regs.rw("venue_ip", self.venue_ip, "the venue's IPv4 address", VENUE_IP)
        regs.rw("venue_port", self.venue_port, "the venue's UDP order port", VENUE_PORT)
        regs.rw("src_port", self.src_port, "source UDP port of order frames", SRC_PORT)
        regs.ro("next_user_ref", self.next_user_ref, "UserRefNum of the next Enter Order")
        regs.rw("user_ref_value", self.user_ref_set.value,
                "what a write to user_ref_set makes next_user_ref")
        regs.pulse("user_ref_set", self.user_ref_set.stb,
                   "write 1: next_user_ref = user_ref_value (from the next order on)")
        regs.rw("cancel_floor", self.cancel_floor, "lowest UserRefNum a sweep cancels "
                "(raise it as orders close)", FIRST_USER_REF)
        regs.pulse("cancel_all", self.cancel_all, "write 1: send Cancel Order for every "
                   "UserRefNum from cancel_floor to the last one sent")
        regs.ro("busy", self.busy, "a frame or a cancel-all sweep is in progress")
        regs.struct("counters", self.counters, "ro", "32-bit wrapping counter")
        return regs

    def elaborate(self, platform):
        m = Module()
        n = lanes(self.data_width)
        inc = counter_bank(m, COUNTERS[:-1], self.counters)
        orders, out = self.orders, self.frames
        order = orders.payload

        # --- the order being sent (user_ref filled in), copied when its first beat goes
        held = Signal(order_layout(self.symbols))
        sending = Signal()  # a frame's first beat has gone, its last has not
        beat = Signal(range(-(-ENTER_FRAME // n)))
        sweep_ref = Signal(32)
        sweep_left = Signal(range(self.max_cancels + 1))
        sweeping = sweep_left != 0
        next_user_ref = self.next_user_ref
        m.d.comb += self.busy.eq(sending | sweeping)

        # --- frame bytes, the header shared by both kinds
        cancel = held.cancel
        checksums = {kind: ipv4_checksum(m, self.src_ip, self.venue_ip, length, "sync")
                     for kind, length in (("enter", ENTER_PAYLOAD), ("cancel", CANCEL_PAYLOAD))}
        header = udp_header(dst_mac=self.venue_mac, src_mac=self.src_mac, src_ip=self.src_ip,
                            dst_ip=self.venue_ip, src_port=self.src_port,
                            dst_port=self.venue_port,
                            payload_length=Mux(cancel, CANCEL_PAYLOAD, ENTER_PAYLOAD),
                            checksum=Mux(cancel, checksums["cancel"], checksums["enter"]))

        def soup(msg) -> list[Value]:
            return const_bytes(1 + msg.length, soupbintcp.LENGTH) + const_bytes(ord("U"), 1)

        enter = header + soup(ENTER) + message_bytes(ENTER, {
            "user_ref": held.user_ref, "side": held.side, "quantity": held.quantity,
            "symbol": held.stock, "price": Cat(held.price, Const(0, 32)), "tif": held.tif,
            "clordid": (const_bytes(ord(CLORDID_PREFIX), 1) + hex_digits(held.tag, 4) +
                        hex_digits(held.user_ref, 8) + const_bytes(ord(" "), 1)),
            "appendage_length": 0, **ENTER_FIXED})
        cancel_frame = header + soup(CANCEL) + message_bytes(CANCEL, {
            "user_ref": held.user_ref, "quantity": held.quantity})
        cancel_frame += const_bytes(0, CANCEL_FRAME - len(cancel_frame))
        assert (len(enter), len(cancel_frame)) == (ENTER_FRAME, CANCEL_FRAME)

        # --- beats: lane i of beat b is frame byte b * n + i
        zero = Const(0, 8)
        enter_beats, cancel_beats = -(-ENTER_FRAME // n), -(-CANCEL_FRAME // n)
        words = []
        for b in range(enter_beats):
            word = []
            for k in range(b * n, (b + 1) * n):
                e = enter[k] if k < ENTER_FRAME else zero
                c = cancel_frame[k] if k < CANCEL_FRAME else zero
                word.append(e if e is c else Mux(cancel, c, e))
            words.append(Cat(*word))
        with m.Switch(beat):
            for b, word in enumerate(words):
                with m.Case(b):
                    m.d.comb += out.payload.data.eq(word)

        def tail_be(length: int) -> int:
            return (1 << (length - 1) % n + 1) - 1

        last = Mux(cancel, beat == cancel_beats - 1, beat == enter_beats - 1)
        m.d.comb += [
            out.payload.first.eq(beat == 0),
            out.payload.last.eq(last),
            out.payload.be.eq(Mux(last, Mux(cancel, tail_be(CANCEL_FRAME),
                                            tail_be(ENTER_FRAME)), (1 << n) - 1)),
        ]

        # --- flow: between frames the first beat is offered for a waiting order (or the
        # sweep's next Cancel) and taking it starts the frame
        m.d.comb += [out.valid.eq(sending | orders.valid | sweeping),
                     orders.ready.eq(~sending & out.ready)]
        take = out.valid & out.ready
        start = ~sending & take
        with m.If(take):
            m.d.sync += [sending.eq(~last), beat.eq(Mux(last, 0, beat + 1))]

        sent = self.sent
        enter_start = start & orders.valid & ~order.cancel
        m.d.comb += [sent.stb.eq(start), inc["frames"].eq(start),
                     inc["enters"].eq(enter_start), inc["cancels"].eq(start & ~enter_start)]
        with m.If(orders.valid):
            m.d.comb += [sent.cancel.eq(order.cancel), sent.sym.eq(order.sym),
                         sent.user_ref.eq(Mux(order.cancel, order.user_ref, next_user_ref))]
        with m.Else():
            m.d.comb += [sent.cancel.eq(1), sent.user_ref.eq(sweep_ref)]
        with m.If(start):
            with m.If(orders.valid):
                m.d.sync += [held.eq(order), held.user_ref.eq(sent.user_ref)]
            with m.Else():
                m.d.sync += [held.cancel.eq(1), held.user_ref.eq(sweep_ref),
                             held.quantity.eq(0), sweep_ref.eq(sweep_ref + 1),
                             sweep_left.eq(sweep_left - 1)]

        with m.If(enter_start):
            m.d.sync += next_user_ref.eq(next_user_ref + 1)
        with m.If(self.user_ref_set.stb):
            m.d.sync += next_user_ref.eq(self.user_ref_set.value)

        # --- cancel-all: the span is taken when the strobe comes, so orders entered
        # during the sweep (the risk gate should have stopped them) are not in it
        issued_end = Signal(32)
        span = Signal(33)
        truncated = Signal(32)
        m.d.comb += [issued_end.eq(next_user_ref + enter_start),
                     span.eq(issued_end - self.cancel_floor),
                     self.counters.cancels_truncated.eq(truncated)]
        with m.If((self.cancel_all | self.risk_cancel_all) & ~sweeping):
            m.d.comb += inc["cancel_sweeps"].eq(1)
            m.d.sync += sweep_ref.eq(self.cancel_floor)
            with m.If(self.cancel_floor < issued_end):
                with m.If(span > self.max_cancels):
                    m.d.sync += [sweep_left.eq(self.max_cancels),
                                 truncated.eq(truncated + span - self.max_cancels)]
                with m.Else():
                    m.d.sync += sweep_left.eq(span)
        return m
