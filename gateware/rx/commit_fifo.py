"""``CommitFifo``: a synchronous FIFO whose newest entries stay invisible until committed.

The receive path's events toward the book are written as the decoder makes them, but a
packet's events may only be read once its UDP checksum has passed: the verdict comes
with the packet's last byte. Entries written since the last ``commit`` are *tentative*:
they take room but the read side does not see them; ``discard`` forgets them.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out


class CommitFifo(wiring.Component):
    """A FIFO of ``depth`` entries (``depth - 1`` in block RAM, one in the output register,
    as ``amaranth.lib.fifo.SyncFIFOBuffered``) with a commit point.

    With ``hold`` low every write is committed as it is made, and the queue behaves
    cycle for cycle as ``SyncFIFOBuffered``: an entry written into an empty queue is
    readable 2 cycles later. With ``hold`` high a write is tentative until ``commit``
    (which takes a write of the same cycle with it); ``discard`` drops every tentative
    entry (a write of the same cycle too) and gives their room back. ``commit`` and
    ``discard`` must not be high together.

    Members
    -------
    w_data, w_en, w_rdy : the write side (``w_rdy`` low: no room, the write is lost).
    r_data, r_en, r_rdy : the read side, as ``SyncFIFOBuffered``.
    hold, commit, discard : the commit point, as above.
    total : Out(16) — entries committed so far, wrapping: a position in the stream of
        committed entries (what a consumer that counts its reads can wait for).
    """

    def __init__(self, width: int, depth: int):
        if depth < 2:
            raise ValueError("CommitFifo needs a depth of at least 2")
        self.width = width
        self.depth = depth
        super().__init__({
            "w_data": In(width), "w_en": In(1), "w_rdy": Out(1),
            "r_data": Out(width), "r_en": In(1), "r_rdy": Out(1),
            "hold": In(1), "commit": In(1), "discard": In(1), "total": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        inner = self.depth - 1
        m.submodules.storage = storage = Memory(shape=self.width, depth=inner, init=[])
        wr = storage.write_port()
        rd = storage.read_port(domain="sync")

        def step(ptr):
            return Mux(ptr == inner - 1, 0, ptr + 1)

        produce = Signal(range(inner))  # next write, tentative entries included
        mark = Signal(range(inner))  # next write after the last commit
        consume = Signal(range(inner))
        used = Signal(range(inner + 1))  # entries in the memory, tentative ones included
        ready = Signal(range(inner + 1))  # committed entries in the memory

        do_write = self.w_en & self.w_rdy
        do_read = (ready != 0) & (~self.r_rdy | self.r_en)
        m.d.comb += [self.w_rdy.eq(used != inner),
                     wr.addr.eq(produce), wr.data.eq(self.w_data), wr.en.eq(do_write),
                     rd.addr.eq(consume), rd.en.eq(do_read), self.r_data.eq(rd.data)]

        produce_next = Mux(do_write, step(produce), produce)
        used_next = used + do_write - do_read
        with m.If(do_read):
            m.d.sync += consume.eq(step(consume))
        tentative = Signal(range(inner + 1))  # written since the last commit
        with m.If(~self.hold):
            m.d.sync += [self.total.eq(self.total + do_write), tentative.eq(0)]
        with m.Elif(self.commit):
            m.d.sync += [self.total.eq(self.total + tentative + do_write), tentative.eq(0)]
        with m.Elif(self.discard):
            m.d.sync += tentative.eq(0)
        with m.Else():
            m.d.sync += tentative.eq(tentative + do_write)
        with m.If(self.discard & self.hold):
            m.d.sync += [produce.eq(mark), used.eq(ready - do_read), ready.eq(ready - do_read)]
        with m.Elif(self.commit | ~self.hold):
            m.d.sync += [produce.eq(produce_next), mark.eq(produce_next), used.eq(used_next),
                         ready.eq(used_next)]
        with m.Else():
            m.d.sync += [produce.eq(produce_next), used.eq(used_next),
                         ready.eq(ready - do_read)]

        with m.If(do_read):
            m.d.sync += self.r_rdy.eq(1)
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)
        return m
