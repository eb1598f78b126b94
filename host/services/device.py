"""What the platform needs from an attached FPGA (virtual or board).

Under ``t2t run --api`` the run's FPGA satisfies it (``host/engine_device.py``). Under
``t2t api`` none is attached: the platform has ``device=None`` and the operator endpoints
that need one answer 503 saying so — nothing pretends a device is there.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol


@dataclasses.dataclass(frozen=True)
class TickToTrade:
    """An FPGA's tick-to-trade histogram (``telemetry.histogram``): ``bins[i]`` counts the
    Enters whose frame-in to first-beat-out took ``[i, i+1) * bin_cycles`` cycles, the
    last bin everything beyond; ``max_cycles`` is the most seen (``telemetry.ttt_max``);
    ``clock_hz`` the core clock the cycles are of (None: unknown); ``device`` the FPGA's
    name in a fleet (None for a run's only one)."""

    bins: tuple[int, ...]
    bin_cycles: int
    max_cycles: int
    clock_hz: float | None
    device: str | None = None

    def edges(self) -> list[int]:
        """The bins' upper edges in cycles, the last (open) bin's left out."""
        return [(i + 1) * self.bin_cycles for i in range(len(self.bins) - 1)]

    def sum_cycles(self) -> float:
        """An estimate of the sum of every Enter's tick-to-trade: each bin's count at its
        midpoint, the last bin's at the midpoint of its lower edge and ``max_cycles``."""
        w, last = self.bin_cycles, len(self.bins) - 1
        total = sum(n * (i + 0.5) * w for i, n in enumerate(self.bins[:last]))
        low = last * w
        return total + self.bins[last] * (low + max(self.max_cycles, low)) / 2


class Device(Protocol):
    def status(self) -> dict[str, Any]:
        """Identity and health: e.g. ``{"kind": "sim", "link": "up", "uptime_s": 12}``."""

    def counters(self) -> dict[str, dict[str, int]]:
        """Every counter by stage, as the register map names them."""

    def set_kill_switch(self, engaged: bool) -> None:
        """Engage or release the gateware's host kill switch."""

    def push_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Apply a configuration (the TOML file's content as a dict); returns what was
        written."""

    # optional: a device without it has no histogram to show
    def tick_to_trade(self) -> list[TickToTrade]:
        """The tick-to-trade histogram of each FPGA behind this device (a fleet's one per
        FPGA, each with its ``device`` name); empty when the FPGA keeps none."""


class NoDevice(Exception):
    """Raised when an operation needs a device and none is attached (HTTP 503)."""

    def __init__(self) -> None:
        super().__init__("no FPGA device is attached to this host (start the platform with "
                         "a device to use this endpoint)")


class DeviceRefused(Exception):
    """The device cannot do this, and says why (HTTP 409)."""


class DeviceTimeout(Exception):
    """The device did not answer in time (HTTP 503)."""
