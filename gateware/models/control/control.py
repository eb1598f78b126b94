"""Golden model of the control endpoint (``gateware/control/control.py``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tick2trade.protocol.control import (BAD_OP, COUNTERS, DEVICE_ID, KIND_REQUEST, OK, OP_READ, OP_WRITE,
                                         ControlError, Op, check, encode_reply)
from tick2trade.protocol.regmap import RegisterMap

from .csr import CsrModel


@dataclass
class ControlModel:
    """The control endpoint: a request payload in, the reply payload out (or None when
    the frame is dropped), counters named as the gateware's."""

    csr: CsrModel
    counters: Counter = field(default_factory=lambda: Counter({k: 0 for k in COUNTERS}))

    def process(self, payload: bytes) -> bytes | None:
        try:
            req = check(payload, KIND_REQUEST)
        except ControlError as exc:
            self.counters[exc.reason] += 1
            return None
        self.counters["requests"] += 1
        out = []
        for op in req.ops:
            self._publish()
            if op.op == OP_READ:
                status, value = self.csr.read(op.address)
            elif op.op == OP_WRITE:
                status, value = self.csr.write(op.address, op.value), op.value
            else:
                status, value = BAD_OP, op.value
            self.counters["bad_ops"] += status != OK
            out.append(Op(op.op, op.address, value, status))
        self.counters["replies"] += 1
        self._publish()
        return encode_reply(req.seq, out)

    def _publish(self) -> None:
        """The endpoint's counters are registers too (``ctl.counters.*``)."""
        for name, value in self.counters.items():
            key = f"ctl.counters.{name}"
            if key in self.csr.values:
                self.csr.values[key] = value & 0xFFFFFFFF


def device_model(regmap: RegisterMap) -> ControlModel:
    """The endpoint over a bank with the ``sys`` constants in place: what a device with
    this map answers (the loopback responder of the tests serves it over UDP)."""
    csr = CsrModel(regmap)
    for name, value in (("sys.id", DEVICE_ID), ("sys.map_hash", regmap.hash)):
        if name in csr.values:
            csr.values[name] = value
    return ControlModel(csr)
