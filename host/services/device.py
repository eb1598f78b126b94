"""What the platform needs from an attached FPGA (virtual or board).

Under ``t2t run --api`` the run's FPGA satisfies it (``host/engine_device.py``). Under
``t2t api`` none is attached: the platform has ``device=None`` and the operator endpoints
that need one answer 503 saying so — nothing pretends a device is there.
"""

from __future__ import annotations

from typing import Any, Protocol


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


class NoDevice(Exception):
    """Raised when an operation needs a device and none is attached (HTTP 503)."""

    def __init__(self) -> None:
        super().__init__("no FPGA device is attached to this host (start the platform with "
                         "a device to use this endpoint)")


class DeviceRefused(Exception):
    """The device cannot do this, and says why (HTTP 409)."""


class DeviceTimeout(Exception):
    """The device did not answer in time (HTTP 503)."""
