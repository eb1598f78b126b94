"""Golden model of the 1GbE MAC (``gateware/phy/mac.py``): what goes on the wire for a frame,
and what the receiver makes of a carrier event.

A *carrier event* is what a GMII receiver sees while RX_DV is high: a byte string, plus
the positions at which RX_ER was asserted. ``wire(frame)`` is the carrier event a MAC
transmits for a frame (without FCS): preamble, SFD, the frame padded to 60 bytes, the
FCS. Between two carrier events a transmitter leaves at least ``MIN_IFG`` idle cycles.
"""

import zlib
from collections import Counter
from dataclasses import dataclass, field

PREAMBLE_BYTE = 0x55
PREAMBLE_LEN = 7
SFD = 0xD5
FCS_LEN = 4
MIN_PAYLOAD = 60  # frame bytes before the FCS, padded up to this
MIN_FRAME = MIN_PAYLOAD + FCS_LEN
MIN_IFG = 12

RX_COUNTERS = ("frames", "bad_fcs", "runt", "phy_error", "no_sfd")
TX_COUNTERS = ("frames", "underrun")
# the ``mac`` register block: both directions, as the board counts them in the core clock
COUNTERS = tuple(f"rx_{n}" for n in RX_COUNTERS) + tuple(f"tx_{n}" for n in TX_COUNTERS)


def fcs(frame: bytes) -> bytes:
    """The Ethernet FCS: CRC-32 (the zlib one), least significant byte first."""
    return zlib.crc32(frame).to_bytes(4, "little")


def wire(frame: bytes) -> bytes:
    """The bytes of the carrier event a MAC sends for ``frame`` (given without FCS)."""
    body = frame + bytes(max(0, MIN_PAYLOAD - len(frame)))
    return bytes([PREAMBLE_BYTE] * PREAMBLE_LEN + [SFD]) + body + fcs(body)


@dataclass(frozen=True)
class Carrier:
    """One carrier event on a GMII receive: ``data`` while RX_DV was high, ``errors``
    the byte positions at which RX_ER was high too."""

    data: bytes
    errors: frozenset = frozenset()


@dataclass(frozen=True)
class Received:
    """A frame delivered by the receiver: its bytes without FCS, and whether it was
    aborted (and so must be dropped by whoever waits for a whole frame)."""

    data: bytes
    abort: bool


@dataclass
class MacRxModel:
    """The receive rules of ``MacRx`` (its docstring is the spec), one carrier event at a
    time."""

    counters: Counter = field(default_factory=lambda: Counter({k: 0 for k in RX_COUNTERS}))

    def receive(self, carrier: Carrier) -> Received | None:
        data = carrier.data
        start = 0
        while start < len(data) and data[start] == PREAMBLE_BYTE:
            start += 1
        if start == len(data) or data[start] != SFD:
            self.counters["no_sfd"] += 1
            return None
        body = data[start + 1:]
        if len(body) <= FCS_LEN:
            self.counters["runt"] += 1
            return None
        if any(i > start for i in carrier.errors):
            reason = "phy_error"
        elif len(body) < MIN_FRAME:
            reason = "runt"
        elif fcs(body[:-FCS_LEN]) != body[-FCS_LEN:]:
            reason = "bad_fcs"
        else:
            reason = "frames"
        self.counters[reason] += 1
        return Received(body[:-FCS_LEN], reason != "frames")
