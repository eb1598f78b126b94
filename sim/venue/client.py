"""A SoupBinTCP/OUCH 5.0 client for the venue's gateway (tests, benchmarks, demos).

Deliberately thin: it frames and unframes with ``protocol.soupbintcp`` and leaves
the OUCH content to ``protocol.ouch``, so what it checks is the gateway, not a
second implementation of the protocols.
"""

from __future__ import annotations

import asyncio

from tick2trade.protocol import ouch, soupbintcp


class SoupClient:
    """One TCP session: :meth:`login`, then :meth:`send` OUCH messages and :meth:`recv`
    SoupBinTCP packets (decoded; sequenced data carries ``"ouch"``, the decoded OUCH)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self._buffer = b""
        self._ready: list[dict] = []

    @classmethod
    async def connect(cls, host: str, port: int) -> SoupClient:
        return cls(*await asyncio.open_connection(host, port))

    async def login(self, username: str, password: str, session: str = "",
                    sequence: int = 0) -> dict:
        """Send a login request; returns the Login Accepted / Rejected packet."""
        self.write(soupbintcp.encode("L", username=username, password=password,
                                     session=session, sequence=sequence))
        return await self.recv(skip_heartbeats=True)

    def write(self, packet: bytes) -> None:
        self.writer.write(packet)

    def send(self, message: bytes) -> None:
        """One OUCH message as Unsequenced Data."""
        self.write(soupbintcp.encode("U", message=message))

    async def recv(self, skip_heartbeats: bool = True) -> dict | None:
        """The next packet from the server; None when it closed the connection."""
        while True:
            while not self._ready:
                data = await self.reader.read(65536)
                if not data:
                    return None
                packets, self._buffer = soupbintcp.split(self._buffer + data)
                self._ready += [soupbintcp.decode(p) for p in packets]
            p = self._ready.pop(0)
            if skip_heartbeats and p["type"] == "H":
                continue
            if p["type"] == "S":
                p["ouch"] = ouch.decode_outbound(p["message"])
            return p

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
