"""Width converters between the MAC's byte stream and a wider core: ``Widen`` packs
bytes into lane-preserving beats (the first byte of a frame in lane 0), ``Narrow`` sends
a beat's enabled lanes one byte per cycle.

They let a 1GbE board run the core at W = 64 on a slow clock instead of W = 8 at 125 MHz
(docs/hardware.md: the W = 8 core places at 34 MHz). Both keep the domain they are in;
the clock crossing is the board's.
"""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tick2trade.gateware.stream import beat_layout, lanes


class Widen(wiring.Component):
    """Bytes to ``data_width``-bit beats. A beat leaves when its top lane is filled or
    its frame ends; ``abort`` (if the layouts carry it) travels with the last byte.

    Members
    -------
    bytes_in : In(stream.Signature(beat_layout(8, **extra), always_ready=True))
    beats : Out(stream.Signature(beat_layout(data_width, **extra), always_ready=True))

    Latency: 1 cycle from the byte that completes a beat to the beat.
    """

    def __init__(self, data_width: int, **extra):
        self.n = lanes(data_width)
        super().__init__({
            "bytes_in": In(stream.Signature(beat_layout(8, **extra), always_ready=True)),
            "beats": Out(stream.Signature(beat_layout(data_width, **extra),
                                          always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        src, out = self.bytes_in.payload, self.beats
        lane = Signal(range(self.n))
        data = Signal(8 * self.n)
        be = Signal(self.n)
        first = Signal()  # the beat being filled holds a frame's first byte
        m.d.sync += out.valid.eq(0)
        with m.If(self.bytes_in.valid):
            at = Signal(range(self.n))
            m.d.comb += at.eq(lane)
            with m.If(src.first):
                m.d.comb += at.eq(0)
            new_data = Signal.like(data)
            new_be = Signal.like(be)
            keep = ~src.first  # a first byte drops a frame left open before it
            m.d.comb += [new_data.eq((data & keep.replicate(len(data))) |
                                     (src.data << (at * 8))),
                         new_be.eq((be & keep.replicate(self.n)) | (1 << at))]
            done = src.last | (at == self.n - 1)
            with m.If(done):
                m.d.sync += [out.valid.eq(1), out.payload.data.eq(new_data),
                             out.payload.be.eq(new_be), out.payload.first.eq(src.first | first),
                             out.payload.last.eq(src.last), data.eq(0), be.eq(0),
                             lane.eq(0), first.eq(0)]
                for name in self.beats.payload.shape().members:
                    if name not in ("data", "be", "first", "last"):
                        m.d.sync += getattr(out.payload, name).eq(getattr(src, name))
            with m.Else():
                m.d.sync += [data.eq(new_data), be.eq(new_be), lane.eq(at + 1),
                             first.eq(first | src.first)]
        return m


class Narrow(wiring.Component):
    """``data_width``-bit beats to bytes: each enabled lane, lowest first, one per cycle.

    The byte leaves a register: the MAC's FCS takes it in the cycle it is sent, and
    straight from the lane select that cycle would also hold the choice of the lowest
    lane still to send.

    A beat's first byte goes to that register straight from the input and the lanes
    after it wait in a hold register. The next beat is taken once the hold register is
    empty, its first byte again straight to the output: ``beats.ready`` is a register and
    the bytes still come one per cycle. A ``ready`` worked out from the incoming lanes
    ("this byte is the beat's last") would run from the clock-crossing FIFO's output
    through the lane arithmetic back to its read enable. What each version routed at on
    the board is in docs/hardware.md (the `sync` clock, MAC transmit).

    A beat with no lane enabled is taken and sends nothing.

    Members
    -------
    beats : In(stream.Signature(beat_layout(data_width)))
    bytes_out : Out(stream.Signature(beat_layout(8)))

    Latency: 1 cycle from a beat offered to its first byte; then a byte every cycle
    ``bytes_out.ready`` is high, so a frame whose beats come in time goes out unbroken.
    """

    def __init__(self, data_width: int):
        self.n = lanes(data_width)
        super().__init__({
            "beats": In(stream.Signature(beat_layout(data_width))),
            "bytes_out": Out(stream.Signature(beat_layout(8))),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.n
        beat, out = self.beats.payload, self.bytes_out
        # the hold register: lanes of the beat in hand not yet sent
        h_data = Signal(8 * n)
        h_left = Signal(n)
        h_first = Signal()  # its next byte is a frame's first
        h_last = Signal()  # the beat ends its frame
        held = Signal()  # h_left != 0, a register of its own: ~held is beats.ready

        # the byte to send comes from the hold register or, when it is empty, from the
        # input; worked out from registers and the input alone, so the MAC's ready only
        # picks among the results (with it earlier, yosys shares the lane arithmetic
        # behind the multiplexer and puts the late ready at the head of the path)
        data, left = Signal.like(h_data), Signal.like(h_left)
        first, last = Signal(), Signal()
        with m.If(held):
            m.d.comb += [data.eq(h_data), left.eq(h_left), first.eq(h_first),
                         last.eq(h_last)]
        with m.Else():
            m.d.comb += [data.eq(beat.data), left.eq(beat.be), first.eq(beat.first),
                         last.eq(beat.last)]
        at = Signal(range(n))
        for i in reversed(range(n)):
            with m.If(left[i]):
                m.d.comb += at.eq(i)
        rest = Signal(n)  # the lanes left after this byte
        m.d.comb += rest.eq(left & ~(1 << at))

        load = Signal()  # the output register is empty or being taken
        m.d.comb += [load.eq(~out.valid | out.ready), self.beats.ready.eq(~held)]
        take = self.beats.valid & ~held
        with m.If(load):
            m.d.sync += out.valid.eq(0)
            with m.If(held | take):
                with m.If(left != 0):
                    m.d.sync += [out.valid.eq(1), out.payload.data.eq(data.word_select(at, 8)),
                                 out.payload.be.eq(1), out.payload.first.eq(first),
                                 out.payload.last.eq(last & (rest == 0))]
                m.d.sync += [h_data.eq(data), h_left.eq(rest), h_first.eq(0),
                             h_last.eq(last), held.eq(rest != 0)]
        with m.Elif(take):  # the output stalled: the beat waits whole
            m.d.sync += [h_data.eq(beat.data), h_left.eq(beat.be), h_first.eq(beat.first),
                         h_last.eq(beat.last), held.eq(beat.be != 0)]
        return m
