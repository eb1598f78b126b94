"""Capturing protocol fields from a lane-preserving stream.

A parser that keeps lanes where they are (see ``gateware.stream``) finds the byte at
packet offset ``k`` in beat ``k // lanes``, lane ``k % lanes``. The offset may itself be a
signal (a field after a VLAN tag or IP options): one small adder and a lane mux per field
byte, instead of a barrel shifter on the whole datapath.
"""

from amaranth import Mux, Signal, Value, unsigned


class BeatCursor:
    """Where the current beat sits in its packet.

    ``beat`` is the index of the beat in the packet (0 on the beat with ``first``) and
    ``end`` the packet offset just past the beat's last enabled byte, both valid during
    the beat; ``lane0`` is the lane of the packet's first byte (0 for frames from a MAC).
    """

    def __init__(self, m, valid, first, be, lanes: int, width: int = 16, lane0=0):
        self.m = m
        self.lanes = lanes
        self.shift = (lanes - 1).bit_length()
        self.valid = valid
        self.beat_q = Signal(width - self.shift, name="beat_q")
        self.beat = Signal(width - self.shift, name="beat")
        self.lane0 = lane0
        m.d.comb += self.beat.eq(Mux(first, 0, self.beat_q))
        with m.If(valid & (self.beat != (1 << len(self.beat)) - 1)):
            m.d.sync += self.beat_q.eq(self.beat + 1)
        top = Signal(range(lanes + 1), name="lanes_used")
        for i in range(lanes):
            with m.If(be[i]):
                m.d.comb += top.eq(i + 1)
        self.end = Signal(width + 1, name="beat_end")
        m.d.comb += self.end.eq((self.beat << self.shift) + top - lane0)

    def offset(self, lane: int) -> Value:
        """Packet offset of byte ``lane`` of this beat (may be negative before lane0)."""
        return (self.beat << self.shift) + lane - self.lane0

    def have(self, k) -> Value:
        """Byte ``k`` has arrived by the end of this beat."""
        return self.end > k

    def capture(self, data_, offset, nbytes: int, name: str) -> Value:
        """A big-endian field of ``nbytes`` at packet offset ``offset`` (int or signal).

        Returns its value as known during this beat: bytes that arrive in this beat are
        already in it, so a decision can be taken in the beat that completes the field.
        """
        m = self.m
        held = Signal(8 * nbytes, name=f"{name}_q")
        now = Signal(8 * nbytes, name=name)
        m.d.comb += now.eq(held)
        for j in range(nbytes):
            t = offset + j + self.lane0
            if isinstance(t, int):
                beat, lane = t >> self.shift, t & (self.lanes - 1)
            else:
                t = Value.cast(t)
                beat = t >> self.shift
                lane = t[:self.shift] if self.shift else 0
            with m.If(self.valid & (self.beat == beat)):
                m.d.comb += now.word_select(nbytes - 1 - j, 8).eq(
                    data_.word_select(lane, 8) if self.shift else data_)
        with m.If(self.valid):
            m.d.sync += held.eq(now)
        return now


def counter_bank(m, names, port) -> dict[str, Signal]:
    """One 32-bit wrapping counter per name, wired to the ``counters`` struct port;
    returns {name: increment strobe} (comb, default 0)."""
    strobes = {}
    for name in names:
        count = Signal(unsigned(32), name=f"n_{name}")
        inc = Signal(name=f"inc_{name}")
        with m.If(inc):
            m.d.sync += count.eq(count + 1)
        m.d.comb += getattr(port, name).eq(count)
        strobes[name] = inc
    return strobes
