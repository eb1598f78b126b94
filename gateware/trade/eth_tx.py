"""``eth_tx``: the MAC transmit side — whole frames from several sources, one at a time.

Golden model: none needed beyond the rule below; ``tests/gateware/test_eth_tx.py`` checks
it on random frames with random stalls.
"""

from amaranth import Array, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tick2trade.gateware.stream import beat_layout


class TxArbiter(wiring.Component):
    """Frame-level priority arbiter in front of the MAC.

    Input 0 has the highest priority (the top level puts orders there, control replies
    next, host frames last). A frame, once its first beat has gone out, owns the output
    until its last beat: frames are never interleaved. Between frames the lowest-numbered
    input with a beat waiting wins, so a lower priority input waits only for the frame in
    flight. Sources must offer whole frames without gaps (the control endpoint's FIFO does
    that); the arbiter adds no latency (a combinational mux).

    Parameters
    ----------
    data_width : int
    inputs : int

    Members
    -------
    in0, in1, ... : In(stream.Signature(beat_layout(data_width)))
    out : Out(stream.Signature(beat_layout(data_width)))
    """

    def __init__(self, data_width: int = 64, inputs: int = 2):
        self.inputs = inputs
        layout = beat_layout(data_width)
        super().__init__({**{f"in{i}": In(stream.Signature(layout)) for i in range(inputs)},
                          "out": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        ins = [getattr(self, f"in{i}") for i in range(self.inputs)]
        locked = Signal()
        owner = Signal(range(self.inputs))
        choice = Signal(range(self.inputs))
        for i in reversed(range(self.inputs)):
            with m.If(ins[i].valid):
                m.d.comb += choice.eq(i)
        sel = Signal(range(self.inputs))
        with m.If(locked):
            m.d.comb += sel.eq(owner)
        with m.Else():
            m.d.comb += sel.eq(choice)
        m.d.comb += [self.out.payload.eq(Array(s.payload for s in ins)[sel]),
                     self.out.valid.eq(Array(s.valid for s in ins)[sel])]
        for i, s in enumerate(ins):
            m.d.comb += s.ready.eq(self.out.ready & (sel == i))
        with m.If(self.out.valid & self.out.ready):
            m.d.sync += [locked.eq(~self.out.payload.last), owner.eq(sel)]
        return m
