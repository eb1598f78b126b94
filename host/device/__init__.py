"""Host device drivers: one ``Device`` API over the virtual FPGA and a board."""

from .base import Device, DeviceError, DeviceTimeout, MapMismatch, NotInBitstream, RegisterError
from .board import BoardDevice
from .sim import DEFAULT_ENDPOINT, SimDevice

__all__ = ["DEFAULT_ENDPOINT", "BoardDevice", "Device", "DeviceError", "DeviceTimeout",
           "MapMismatch", "NotInBitstream", "RegisterError", "SimDevice"]
