"""``csr``: our own CSR bank (amaranth-soc is not on PyPI).

A block declares its registers next to itself in a ``registers.RegisterBlock``, each
bound to one of its own ports, so the gateware and the host cannot disagree on an address
or a width. The top level collects the blocks into one ``CsrBank``; its ``map`` (a
``protocol.regmap.RegisterMap``) is what ``t2t regmap`` prints and the host reads. The
golden model is ``models.control.csr.CsrModel``.

Bus timing: an access is a one-cycle strobe (``r_stb`` or ``w_stb``) with ``addr`` and
``w_data``; ``ack`` comes the next cycle with ``r_data`` and ``status`` (``protocol.control``
OK / NO_REGISTER / READ_ONLY). One access per cycle is accepted; the control endpoint
makes one every few cycles. A ``pulse`` register's value reaches its port in the cycle
after the write strobe and stays there for one cycle.
"""

from __future__ import annotations

import operator
from functools import reduce

from amaranth import Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from tick2trade.gateware.interfaces import CSR_BUS
from tick2trade.gateware.registers import RegisterBlock
from tick2trade.protocol.control import NO_REGISTER, OK, READ_ONLY
from tick2trade.protocol.regmap import WORD, RegisterMap

READ_GROUP = 16  # words per registered read multiplexer (see ``CsrBank.elaborate``)


class CsrBank(wiring.Component):
    """The registers of every block, one address space (``self.map``).

    Parameters
    ----------
    blocks : list[RegisterBlock]
        In address order; each block starts on a ``protocol.regmap.BLOCK_ALIGN`` boundary.

    Members
    -------
    bus : In(CSR_BUS)
        One access per strobe, acknowledged the next cycle.

    The bound ports are driven (``rw``, ``pulse``, a ``fifo``'s ``ready``) or read
    (``ro``, ``w1c`` set strobes, a ``fifo``'s ``valid``/``payload``) directly: they are
    not members of this component's signature, because they belong to the blocks.
    """

    def __init__(self, blocks: list[RegisterBlock]):
        self.map = RegisterMap([b.block for b in blocks])
        self.targets = {f"{b.block.name}.{n}": t for b in blocks for n, t in b.targets.items()}
        super().__init__({"bus": In(CSR_BUS)})

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        m.d.sync += [bus.ack.eq(bus.r_stb | bus.w_stb), bus.status.eq(OK)]
        # Each group of READ_GROUP words is chosen and registered on its own (0 unless
        # the read is in it), and ``r_data`` ORs the registered words. One multiplexer
        # over every register's word (about 370 of them, 12k bits) pulled nets from all
        # over the FPGA into one tree, and so did one per block for the largest blocks
        # (rx: 127 words): the board build's router could not fit that corner. This
        # way each group's tree is small and can sit by its sources.
        groups = sorted({address // READ_GROUP for address in self.map.by_address})
        read = {g: Signal(WORD, name=f"csr_read_{g * READ_GROUP:04x}") for g in groups}
        m.d.sync += [word.eq(0) for word in read.values()]
        m.d.comb += bus.r_data.eq(reduce(operator.or_, read.values(), Value.cast(0)))

        # per register: its word values and what a write to word k does
        words: dict[str, list[Value]] = {}
        writers: dict[str, object] = {}
        arms: dict[int, tuple] = {}  # a fifo register's word 0 address: (armed, valid)
        for e in self.map.entries:
            target, width = self.targets[e.name], e.width

            def slices(v, n, width=width):
                return [v[WORD * k:min(width, WORD * (k + 1))] for k in range(n)]
            if e.access == "ro":
                words[e.name] = slices(target, e.words)
            elif e.access == "rw":
                store = Signal(width, init=e.reset, name=f"csr_{e.name}")
                m.d.comb += target.eq(store)
                words[e.name] = slices(store, e.words)

                def write(k, store=store, width=width):
                    n = min(width, WORD * (k + 1)) - WORD * k
                    m.d.sync += store[WORD * k:WORD * k + n].eq(bus.w_data[:n])
                writers[e.name] = write
            elif e.access == "w1c":
                flags = Signal(width, name=f"csr_{e.name}")
                clear = Signal(width, name=f"csr_{e.name}_clear")
                m.d.sync += flags.eq((flags & ~clear) | target)
                words[e.name] = [flags]

                def write(k, clear=clear):
                    m.d.comb += clear.eq(bus.w_data[:len(clear)])
                writers[e.name] = write
            elif e.access == "pulse":
                strobe = Signal(width, name=f"csr_{e.name}")
                m.d.sync += strobe.eq(0)
                m.d.comb += target.eq(strobe)
                words[e.name] = [Value.cast(0)]

                def write(k, strobe=strobe):
                    m.d.sync += strobe.eq(bus.w_data[:len(strobe)])
                writers[e.name] = write
            else:  # fifo
                payload = Value.cast(target.payload)
                pop = Signal(name=f"csr_{e.name}_pop")
                # A pop takes only an entry the host has seen: reading word 0 arms it
                # when an entry is there, a pop disarms it. Without this, an entry that
                # arrived between a request's empty read and its pop was popped unread.
                armed = Signal(name=f"csr_{e.name}_armed")
                m.d.comb += target.ready.eq(pop)
                # no entry reads as 0, not as whatever the FIFO's output register holds
                words[e.name] = [target.valid] + [Mux(target.valid, w, 0)
                                                  for w in slices(payload, e.words - 1)]
                arms[e.address] = (armed, target.valid)

                def write(k, pop=pop, armed=armed, valid=target.valid):
                    if k == 0:
                        m.d.comb += pop.eq(valid & armed)
                        m.d.sync += armed.eq(0)
                    else:
                        m.d.sync += bus.status.eq(READ_ONLY)
                writers[e.name] = write

        with m.If(bus.r_stb | bus.w_stb), m.Switch(bus.addr):
            for e in self.map.entries:
                for k in range(e.words):
                    with m.Case(e.address + k):
                        with m.If(bus.r_stb):
                            m.d.sync += read[(e.address + k) // READ_GROUP].eq(
                                words[e.name][k])
                            if k == 0 and e.address in arms:
                                armed, valid = arms[e.address]
                                m.d.sync += armed.eq(valid)
                        with m.Else():
                            if e.name in writers:
                                writers[e.name](k)
                            else:
                                m.d.sync += bus.status.eq(READ_ONLY)
            with m.Default():
                m.d.sync += bus.status.eq(NO_REGISTER)
        return m
