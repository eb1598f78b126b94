"""The 1GbE MAC: GMII bytes to frames and back, one byte per cycle (W = 8).

Golden model: :mod:`gateware.models.mac`.

Receive is cut-through: a frame's bytes leave as they arrive, 5 bytes behind the wire,
because the pipeline acts on a price before the frame's FCS has arrived. The FCS (the
frame's last 4 bytes) is checked when the carrier drops; the verdict rides on the
frame's last beat as ``abort``, which is as early as anyone can know it. Stages that
act only on a whole frame (the control endpoint) drop an aborted frame; what the feed
path did with the bytes before the verdict it cannot undo — the price of cut-through.
"""

from amaranth import Module, Signal
from amaranth.lib import crc, data, stream, wiring
from amaranth.lib.wiring import In, Out

from tick2trade.gateware.bytefield import counter_bank
from tick2trade.gateware.interfaces import gmii_signature
from tick2trade.gateware.models.phy import mac as model
from tick2trade.gateware.stream import beat_layout


def rx_beat_layout() -> data.StructLayout:
    """A MAC receive beat: ``beat_layout(8)`` plus ``abort`` on the last beat of a frame
    whose FCS failed, that was a runt, or that carried a PHY error."""
    return beat_layout(8, abort=1)


def _fcs():
    return crc.catalog.CRC32_ETHERNET(data_width=8).create()


class MacRx(wiring.Component):
    """GMII receive: strip preamble and SFD, check and strip the FCS.

    A carrier event starts with any number of preamble bytes (``0x55``) and the SFD
    (``0xD5``); one that shows another byte before the SFD, or drops before it, is
    counted in ``no_sfd`` and delivers nothing. After the SFD every byte but the last
    four (the FCS) is delivered; a frame that ends with 4 bytes or fewer delivers nothing
    and counts as ``runt``. A delivered frame is aborted (``abort`` on its last beat) for
    the first of: a PHY error during it (``phy_error``), fewer than 64 bytes with the FCS
    (``runt``), a bad FCS (``bad_fcs``); otherwise it counts in ``frames``.

    Members
    -------
    gmii : In(gmii_signature())
    frames : Out(stream.Signature(rx_beat_layout(), always_ready=True))
    counters : Out(StructLayout) — ``models.mac.RX_COUNTERS``, 32-bit wrapping.
    events : Out(StructLayout) — the counters' increments, one strobe each (at most one
        per carrier event), for a board that counts them in another clock domain.

    Latency: 6 cycles from a byte on ``gmii`` to the same byte out.
    """

    def __init__(self):
        super().__init__({
            "gmii": In(gmii_signature()),
            "frames": Out(stream.Signature(rx_beat_layout(), always_ready=True)),
            "counters": Out(data.StructLayout({n: 32 for n in model.RX_COUNTERS})),
            "events": Out(data.StructLayout({n: 1 for n in model.RX_COUNTERS})),
        })

    def elaborate(self, platform):
        m = Module()
        count = counter_bank(m, model.RX_COUNTERS, self.counters)
        m.d.comb += [getattr(self.events, n).eq(inc) for n, inc in count.items()]
        m.submodules.fcs = fcs = _fcs()
        g = self.gmii
        # The FCS is the last 4 bytes, known only when the carrier drops: hold 4 bytes
        # back, plus one more so that the frame's real last byte can carry ``last``.
        window = [Signal(8, name=f"window{i}") for i in range(model.FCS_LEN)]
        filled = Signal(range(model.FCS_LEN + 1))
        held = Signal(8)
        held_valid = Signal()
        held_first = Signal()
        length = Signal(range(model.MIN_FRAME + 1))  # bytes after the SFD, saturating
        error = Signal()
        out = self.frames

        m.d.sync += out.valid.eq(0)
        m.d.comb += fcs.data.eq(g.data)

        def emit(last, abort):
            m.d.sync += [out.valid.eq(1), out.payload.data.eq(held), out.payload.be.eq(1),
                         out.payload.first.eq(held_first), out.payload.last.eq(last),
                         out.payload.abort.eq(abort)]

        with m.FSM():
            with m.State("idle"), m.If(g.en):
                with m.If(g.data == model.SFD):
                    m.d.comb += fcs.start.eq(1)
                    m.next = "frame"
                with m.Elif(g.data == model.PREAMBLE_BYTE):
                    m.next = "preamble"
                with m.Else():
                    m.d.comb += count["no_sfd"].eq(1)
                    m.next = "skip"
            with m.State("preamble"):
                with m.If(~g.en):
                    m.d.comb += count["no_sfd"].eq(1)
                    m.next = "idle"
                with m.Elif(g.data == model.SFD):
                    m.d.comb += fcs.start.eq(1)
                    m.next = "frame"
                with m.Elif(g.data != model.PREAMBLE_BYTE):
                    m.d.comb += count["no_sfd"].eq(1)
                    m.next = "skip"
            with m.State("skip"), m.If(~g.en):
                m.next = "idle"
            with m.State("frame"):
                with m.If(g.en):
                    m.d.comb += fcs.valid.eq(1)
                    m.d.sync += window[0].eq(g.data)
                    m.d.sync += [window[i].eq(window[i - 1]) for i in range(1, len(window))]
                    with m.If(length != model.MIN_FRAME):
                        m.d.sync += length.eq(length + 1)
                    with m.If(g.er):
                        m.d.sync += error.eq(1)
                    with m.If(filled == model.FCS_LEN):
                        with m.If(held_valid):
                            emit(last=0, abort=0)
                        m.d.sync += [held.eq(window[-1]), held_valid.eq(1),
                                     held_first.eq(~held_valid)]
                    with m.Else():
                        m.d.sync += filled.eq(filled + 1)
                with m.Else():
                    runt = length < model.MIN_FRAME
                    bad_fcs = ~fcs.match_detected
                    with m.If(~held_valid):
                        m.d.comb += count["runt"].eq(1)
                    with m.Else():
                        emit(last=1, abort=error | runt | bad_fcs)
                        with m.If(error):
                            m.d.comb += count["phy_error"].eq(1)
                        with m.Elif(runt):
                            m.d.comb += count["runt"].eq(1)
                        with m.Elif(bad_fcs):
                            m.d.comb += count["bad_fcs"].eq(1)
                        with m.Else():
                            m.d.comb += count["frames"].eq(1)
                    m.d.sync += [filled.eq(0), held_valid.eq(0), length.eq(0), error.eq(0)]
                    m.next = "idle"
        return m


class MacTx(wiring.Component):
    """GMII transmit: preamble and SFD, the frame, zero padding to 60 bytes, the FCS, and
    at least ``ifg`` idle cycles before the next preamble.

    The frame must arrive without bubbles once started (``TxArbiter`` sends whole
    frames); a beat missing mid-frame cannot be waited for on the wire, so the frame is
    finished with ``er`` (TX_ER) asserted — the link partner sees it as corrupt — and the
    rest of it is discarded, counted in ``underrun``.

    Members
    -------
    frames : In(stream.Signature(beat_layout(8))) — frames without FCS.
    gmii : Out(gmii_signature())
    counters : Out(StructLayout) — ``models.mac.TX_COUNTERS``, 32-bit wrapping.
    events : Out(StructLayout) — the counters' increments, one strobe each.

    Latency: 9 cycles from the first beat accepted (from idle) to the first byte after
    the SFD on ``gmii``; the first beat is accepted in the cycle the preamble starts.
    """

    def __init__(self, ifg: int = model.MIN_IFG):
        self.ifg = ifg
        super().__init__({
            "frames": In(stream.Signature(beat_layout(8))),
            "gmii": Out(gmii_signature()),
            "counters": Out(data.StructLayout({n: 32 for n in model.TX_COUNTERS})),
            "events": Out(data.StructLayout({n: 1 for n in model.TX_COUNTERS})),
        })

    def elaborate(self, platform):
        m = Module()
        count = counter_bank(m, model.TX_COUNTERS, self.counters)
        m.d.comb += [getattr(self.events, n).eq(inc) for n, inc in count.items()]
        m.submodules.fcs = fcs = _fcs()
        src, g = self.frames, self.gmii
        # The first beat is taken with the preamble so that a frame waiting behind the
        # gap starts on time; it waits in ``head`` for the 8 preamble cycles.
        head = Signal(8)
        head_last = Signal()
        step = Signal(range(max(self.ifg, 8) + 1))
        length = Signal(range(model.MIN_PAYLOAD + 1))  # bytes sent, saturating
        out_data = Signal(8)
        out_en = Signal()
        out_er = Signal()
        m.d.sync += [g.data.eq(out_data), g.en.eq(out_en), g.er.eq(out_er)]
        m.d.comb += fcs.data.eq(out_data)

        def send_byte(byte):
            m.d.comb += [out_data.eq(byte), out_en.eq(1), fcs.valid.eq(1)]
            with m.If(length != model.MIN_PAYLOAD):
                m.d.sync += length.eq(length + 1)

        def after_last():
            with m.If(length + 1 < model.MIN_PAYLOAD):
                m.next = "pad"
            with m.Else():
                m.next = "fcs"
            m.d.sync += step.eq(0)

        with m.FSM():
            with m.State("idle"):
                m.d.comb += src.ready.eq(1)
                with m.If(src.valid):
                    with m.If(src.payload.first):
                        m.d.sync += [head.eq(src.payload.data), head_last.eq(src.payload.last),
                                     step.eq(0), length.eq(0)]
                        m.next = "preamble"
                    with m.Else():
                        m.d.comb += count["underrun"].eq(1)  # a stray tail: discard
            with m.State("preamble"):
                m.d.comb += [out_en.eq(1), out_data.eq(model.PREAMBLE_BYTE)]
                m.d.sync += step.eq(step + 1)
                with m.If(step == model.PREAMBLE_LEN):
                    m.d.comb += [out_data.eq(model.SFD), fcs.start.eq(1)]
                    m.next = "head"
            with m.State("head"):
                send_byte(head)
                with m.If(head_last):
                    after_last()
                with m.Else():
                    m.next = "body"
            with m.State("body"):
                m.d.comb += src.ready.eq(1)
                with m.If(src.valid):
                    send_byte(src.payload.data)
                    with m.If(src.payload.last):
                        after_last()
                with m.Else():
                    m.d.comb += [out_en.eq(1), out_er.eq(1), count["underrun"].eq(1)]
                    m.d.sync += step.eq(0)
                    m.next = "discard"
            with m.State("pad"):
                send_byte(0)
                with m.If(length + 1 == model.MIN_PAYLOAD):
                    m.next = "fcs"
            with m.State("fcs"):
                # ``fcs.crc`` is already reflected and inverted: send it low byte first
                m.d.comb += [out_en.eq(1), out_data.eq(fcs.crc.word_select(step[:2], 8))]
                m.d.sync += step.eq(step + 1)
                with m.If(step == model.FCS_LEN - 1):
                    m.d.comb += count["frames"].eq(1)
                    m.d.sync += step.eq(0)
                    m.next = "gap"
            with m.State("discard"):
                m.d.comb += src.ready.eq(1)
                with m.If(src.valid & src.payload.last):
                    m.next = "gap"
            with m.State("gap"):
                m.d.sync += step.eq(step + 1)
                # the idle state's own cycle completes the gap
                with m.If(step == self.ifg - 2):
                    m.next = "idle"
        return m
