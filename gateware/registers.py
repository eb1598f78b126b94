"""``RegisterBlock``: the registers one block declares, each bound to one of its own
ports (the Glasgow way: ``add_rw_register(component.manual_cyc)``), so the gateware and
the host cannot disagree on an address or a width::

    regs = RegisterBlock("rx", "Market-data receive path")
    regs.struct("counters", rx.counters, "ro", "receive-path counters")
    regs.rw("ctl_port", rx.ctl_port, "UDP port of the control endpoint", reset=7000)
    regs.pulse("reset_session", rx.reset_session, "forget the MoldUDP64 session")

Every stage builds its block in its ``registers()`` method; the top level hands the
blocks to ``control.csr.CsrBank``, which lays them out in one address space.
"""

from __future__ import annotations

from amaranth import Value
from amaranth.lib import data

from tick2trade.protocol.regmap import Block, Register


def layout_fields(layout: data.StructLayout) -> tuple[tuple[str, int, int], ...]:
    return tuple((name, f.offset, f.width) for name, f in layout)


def _leaves(prefix: str, view):
    """(dotted name, Value) of every leaf of a struct/array view."""
    layout = view.shape() if isinstance(view, data.View) else None
    if isinstance(layout, data.StructLayout):
        for name, _f in layout:
            yield from _leaves(f"{prefix}.{name}" if prefix else name, getattr(view, name))
    elif isinstance(layout, data.ArrayLayout):
        for i in range(layout.length):
            yield from _leaves(f"{prefix}[{i}]", view[i])
    else:
        yield prefix, Value.cast(view)


class RegisterBlock:
    """The registers one block declares, each bound to a port of that block.

    ``ro``: a value the block drives (a counter); ``rw``: storage in the bank that drives
    a configuration input; ``w1c``: sticky flags, ``set`` is the block's strobe vector;
    ``pulse``: a write drives the port for one cycle; ``fifo``: the head of a stream of
    event records (the bank drives ``ready`` to pop it).
    """

    def __init__(self, name: str, doc: str):
        self.block = Block(name, doc)
        self.targets: dict[str, object] = {}

    def _add(self, reg: Register, target) -> None:
        self.block.registers.append(reg)
        self.targets[reg.name] = target

    def ro(self, name: str, value, doc: str) -> None:
        value = Value.cast(value)
        self._add(Register(name, len(value), "ro", 0, doc), value)

    def rw(self, name: str, port, doc: str, reset: int = 0) -> None:
        fields = layout_fields(port.shape()) if isinstance(port, data.View) and \
            isinstance(port.shape(), data.StructLayout) else ()
        port = Value.cast(port)
        self._add(Register(name, len(port), "rw", reset, doc, fields), port)

    def w1c(self, name: str, set_bits, doc: str) -> None:
        set_bits = Value.cast(set_bits)
        self._add(Register(name, len(set_bits), "w1c", 0, doc), set_bits)

    def pulse(self, name: str, port, doc: str) -> None:
        fields = layout_fields(port.shape()) if isinstance(port, data.View) else ()
        port = Value.cast(port)
        self._add(Register(name, len(port), "pulse", 0, doc, fields), port)

    def fifo(self, name: str, stream_port, doc: str) -> None:
        shape = stream_port.payload.shape()
        fields = layout_fields(shape) if isinstance(shape, data.StructLayout) else ()
        self._add(Register(name, len(Value.cast(stream_port.payload)), "fifo", 0, doc, fields),
                  stream_port)

    def struct(self, prefix: str, view, access: str, doc: str, resets=None,
               docs=None) -> None:
        """One register per leaf field of a struct/array port (counters, filter tables).
        ``resets`` gives the reset value of ``rw`` leaves by name, ``docs`` the leaves
        whose description is not ``doc``'s."""
        resets = resets or {}
        docs = docs or {}
        for name, value in _leaves(prefix, view):
            leaf_doc = f"{docs.get(name, doc)}: {name.removeprefix(prefix).lstrip('.') or name}"
            if access == "ro":
                self.ro(name, value, leaf_doc)
            elif access == "rw":
                self.rw(name, value, leaf_doc, resets.get(name, 0))
            else:
                raise ValueError(f"struct registers are ro or rw, not {access}")
