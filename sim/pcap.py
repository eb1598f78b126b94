"""A minimal pcap (libpcap classic format) writer for captures made by our own encoders.

Reading goes through scapy's ``RawPcapReader`` (see ``host.replay``), which also takes
pcapng; writing a million frames is faster without building scapy packets.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

LINKTYPE_ETHERNET = 1
MAGIC_USEC = 0xA1B2C3D4
SNAPLEN = 65535


def write_pcap(path: str | Path, frames: Iterable[bytes], *, start: float = 0.0,
               interval: float = 1e-6, linktype: int = LINKTYPE_ETHERNET) -> int:
    """Write ``frames`` (Ethernet without FCS) ``interval`` seconds apart; returns the
    number of records written."""
    count = 0
    record = struct.Struct("<IIII")
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", MAGIC_USEC, 2, 4, 0, 0, SNAPLEN, linktype))
        for count, frame in enumerate(frames, 1):
            usec = round((start + (count - 1) * interval) * 1e6)
            out.write(record.pack(usec // 1_000_000, usec % 1_000_000, len(frame),
                                  len(frame)))
            out.write(frame)
    return count
