"""Host device drivers: one ``Device`` API over the virtual FPGA and a board."""

from tick2trade.host.device.base import (Device, DeviceError, DeviceTimeout, MapMismatch,
                                         NotInBitstream, RegisterError)
from tick2trade.host.device.board import BoardDevice
from tick2trade.host.device.sim import DEFAULT_ENDPOINT, SimDevice

__all__ = ["DEFAULT_ENDPOINT", "BoardDevice", "Device", "DeviceError", "DeviceTimeout",
           "MapMismatch", "NotInBitstream", "RegisterError", "SimDevice"]
