"""NASDAQ TotalView-ITCH 5.0 BinaryFILEs, as NASDAQ publishes its days: each message
preceded by its length (2 bytes, big-endian), nothing else, usually gzip-compressed
(``.gz``). Read as a stream (never loaded whole) and packed into MoldUDP64 packets the
way a venue publishes them.

Packing rule (:class:`Packer`): messages go into a packet in file order; a packet is
cut before a message whose timestamp is more than ``window_ns`` after the packet's first
message (``window_ns=0``: one timestamp a packet, as a matching engine's burst of one
event shares its timestamp), before a message that would take the packet's UDP payload
(MoldUDP64's 20-byte header, 2 bytes of length per message) past ``max_payload`` (at
most a UDP datagram's 65,507 bytes, so MoldUDP64's count limit cannot be reached).
Sequence numbers start at 1 and count every message.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tick2trade.protocol import itch, moldudp64

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_PAYLOAD = 1400  # as the venue simulator: a 1500-byte MTU with VLAN headers
TIMESTAMP = slice(5, 11)  # type 1, locate 2, tracking 2, then 6 bytes of nanoseconds
CHUNK = 1 << 20


class FileError(ValueError):
    """Not a BinaryFILE, or one cut short; says where."""


def timestamp(raw: bytes) -> int:
    """A message's nanoseconds after midnight."""
    return int.from_bytes(raw[TIMESTAMP], "big")


def _check(raw: bytes, offset: int) -> None:
    kind = chr(raw[0])
    msg = itch.MESSAGES.get(kind)
    if msg is None:
        raise FileError(f"byte {offset:,}: message type {raw[:1]!r} is not ITCH 5.0")
    if len(raw) != msg.length:
        raise FileError(f"byte {offset:,}: a {kind!r} message is {msg.length} bytes, this "
                        f"one says {len(raw)}")


def looks_like(head: bytes) -> bool:
    """Whether ``head`` (the first bytes, decompressed) starts as a BinaryFILE does: a
    length that is its ITCH type's length."""
    if len(head) < 3:
        return False
    length = int.from_bytes(head[:2], "big")
    msg = itch.MESSAGES.get(chr(head[2]))
    return msg is not None and msg.length == length


@dataclass
class Reader:
    """The messages of a BinaryFILE (plain or gzip), streamed.

    ``consumed`` is how far into the file on disk reading has come (compressed bytes
    for a ``.gz``), for a progress bar; ``messages`` how many were read."""

    path: Path
    chunk: int = CHUNK  # decompressed bytes read at a time: the memory it needs
    consumed: int = 0
    messages: int = 0

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.size = self.path.stat().st_size

    def _open(self) -> tuple[BinaryIO, BinaryIO]:
        raw = open(self.path, "rb")
        if raw.read(2) == GZIP_MAGIC:
            raw.seek(0)
            return raw, gzip.GzipFile(fileobj=raw, mode="rb")
        raw.seek(0)
        return raw, raw

    def head(self, n: int = 64) -> bytes:
        """The first ``n`` bytes, decompressed."""
        raw, f = self._open()
        with raw:
            try:
                return f.read(n)
            except (OSError, EOFError) as exc:
                raise FileError(f"{self.path}: {exc}") from None

    def __iter__(self) -> Iterator[bytes]:
        raw, f = self._open()
        with raw:
            buf, pos, offset = b"", 0, 0  # offset: of buf[0] in the decompressed stream
            while True:
                try:
                    chunk = f.read(self.chunk)
                except (OSError, EOFError) as exc:  # a corrupt or cut .gz
                    raise FileError(f"{self.path}: after {self.messages:,} messages: "
                                    f"{exc}") from None
                self.consumed = raw.tell()
                if not chunk:
                    if pos < len(buf):
                        raise FileError(
                            f"{self.path}: cut short at byte {offset + pos:,} (after "
                            f"{self.messages:,} messages, {len(buf) - pos} bytes of a "
                            f"partial one)")
                    return
                buf, offset, pos = buf[pos:] + chunk, offset + pos, 0
                end = len(buf)
                while pos + 2 <= end:
                    length = (buf[pos] << 8) | buf[pos + 1]
                    if pos + 2 + length > end:
                        break
                    if length == 0:
                        raise FileError(f"{self.path}: byte {offset + pos:,}: a message of "
                                        f"length 0")
                    msg = buf[pos + 2:pos + 2 + length]
                    _check(msg, offset + pos)
                    self.messages += 1
                    yield msg
                    pos += 2 + length


class Packer:
    """Messages in, MoldUDP64 packets out, by the rule of this module's docstring."""

    def __init__(self, session: str | bytes, *, max_payload: int = DEFAULT_MAX_PAYLOAD,
                 window_ns: int = 0, first_seq: int = 1):
        smallest = moldudp64.HEADER + 2 + itch.MAX_LENGTH
        if max_payload < smallest:
            raise ValueError(f"max_payload {max_payload}: a packet must hold at least one "
                             f"message of the longest type ({smallest} bytes)")
        if max_payload > 65_507:
            raise ValueError(f"max_payload {max_payload}: more than a UDP datagram holds")
        if window_ns < 0:
            raise ValueError(f"window_ns {window_ns}: must be 0 or more")
        self.session = moldudp64.session_bytes(session)
        self.max_payload, self.window_ns = max_payload, window_ns
        self.seq = first_seq  # of the pending packet's first message
        self._pending: list[bytes] = []
        self._size = moldudp64.HEADER
        self._opened = 0  # the pending packet's first timestamp
        self.packets = 0

    def add(self, raw: bytes) -> bytes | None:
        """Take one message; the packet it closed, if it closed one."""
        ts = timestamp(raw)
        out = None
        if self._pending and (ts - self._opened > self.window_ns
                              or self._size + 2 + len(raw) > self.max_payload):
            out = self.flush()
        if not self._pending:
            self._opened = ts
        self._pending.append(raw)
        self._size += 2 + len(raw)
        return out

    def flush(self) -> bytes | None:
        """The pending messages as a packet (None when there are none)."""
        if not self._pending:
            return None
        packet = moldudp64.encode_packet(self.session, self.seq, self._pending)
        self.seq += len(self._pending)
        self._pending, self._size = [], moldudp64.HEADER
        self.packets += 1
        return packet


def packets(messages: Iterator[bytes], session: str | bytes, **kw) -> Iterator[bytes]:
    """Every message of ``messages`` in MoldUDP64 packets (:class:`Packer`)."""
    packer = Packer(session, **kw)
    for raw in messages:
        if (packet := packer.add(raw)) is not None:
            yield packet
    if (packet := packer.flush()) is not None:
        yield packet


def write(path: str | Path, messages: list[bytes], *, compress: bool | None = None) -> None:
    """A BinaryFILE of ``messages`` (gzip when ``compress``, default: a ``.gz`` name)."""
    path = Path(path)
    if compress is None:
        compress = path.suffix == ".gz"
    data = b"".join(struct.pack("!H", len(m)) + m for m in messages)
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
