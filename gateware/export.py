"""Turning a component into Verilog.

``amaranth.back.verilog.convert`` makes a port of every signature member, and refuses the
constant ``ready`` of an always-ready stream; we leave constants out (the consumer side
needs no wire for a value that never changes).
"""

from amaranth.back import verilog
from amaranth.hdl import Const, Value, ValueCastable
from amaranth.hdl._ir import PortDirection
from amaranth.lib import wiring


def component_ports(component: wiring.Component) -> dict:
    """{verilog port name: (signal, direction)} of every non-constant member."""
    ports = {}
    for path, member, value in component.signature.flatten(component):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        if isinstance(value, Const) or not isinstance(value, Value):
            continue
        direction = PortDirection.Input if member.flow == wiring.In else PortDirection.Output
        ports["__".join(map(str, path))] = (value, direction)
    return ports


def to_verilog(component: wiring.Component, name: str) -> str:
    return verilog.convert(component, name=name, ports=component_ports(component),
                           emit_src=False)
