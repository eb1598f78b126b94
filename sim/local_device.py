"""The top level's Verilator model as a ``host.device.Device`` in this process: control
requests go straight into ``TopSim``, no ZeroMQ and no second process. What tests and
``t2t replay --orders`` use to configure the gateware by register name exactly as the
host would a board."""

from __future__ import annotations

from collections import deque

from tick2trade.host.device.base import Device

from tick2trade.sim.topsim import TopSim


class LocalDevice(Device):
    """Register access to ``sim``; frames the gateware sends to anyone but the host
    (orders, events) collect in ``sim.pending``."""

    name = "local Verilator model"

    def __init__(self, sim: TopSim):
        self.sim = sim
        self._replies: deque[bytes] = deque()
        super().__init__(sim.map, timeout=5.0, retries=0)  # replies are already here

    def _send(self, payload: bytes) -> None:
        self._replies.extend(self.sim.request(payload))

    def _recv(self, timeout: float) -> tuple[str, bytes] | None:
        return ("ctl", self._replies.popleft()) if self._replies else None
