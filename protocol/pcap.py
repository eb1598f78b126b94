"""A minimal pcap (libpcap classic format) writer for captures made by our own encoders.

Reading goes through scapy's ``RawPcapReader`` (see ``host.replay``), which also takes
pcapng; writing a million frames is faster without building scapy packets.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Self

LINKTYPE_ETHERNET = 1
MAGIC_USEC = 0xA1B2C3D4
SNAPLEN = 65535
_RECORD = struct.Struct("<IIII")


class PcapWriter:
    """Frames appended one at a time, each with its own time (seconds since the epoch,
    microsecond resolution): what a live sender records as it goes."""

    def __init__(self, path: str | Path, linktype: int = LINKTYPE_ETHERNET):
        self._out = open(path, "wb")  # noqa: SIM115 (closed by close()/__exit__)
        self._out.write(struct.pack("<IHHiIII", MAGIC_USEC, 2, 4, 0, 0, SNAPLEN, linktype))
        self.count = 0

    def write(self, frame: bytes, when: float) -> None:
        usec = round(when * 1e6)
        self._out.write(_RECORD.pack(usec // 1_000_000, usec % 1_000_000, len(frame),
                                     len(frame)))
        self._out.write(frame)
        self.count += 1

    def close(self) -> None:
        self._out.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_pcap(path: str | Path, frames: Iterable[bytes], *, start: float = 0.0,
               interval: float = 1e-6, linktype: int = LINKTYPE_ETHERNET) -> int:
    """Write ``frames`` (Ethernet without FCS) ``interval`` seconds apart; returns the
    number of records written."""
    with PcapWriter(path, linktype) as out:
        for k, frame in enumerate(frames):
            out.write(frame, start + k * interval)
        return out.count
