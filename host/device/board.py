"""``BoardDevice``: a board's control endpoint over UDP."""

from __future__ import annotations

import ipaddress
import select
import socket

from tick2trade.protocol.regmap import RegisterMap

from tick2trade.host.device.base import Device


class BoardDevice(Device):
    """Control payloads as UDP datagrams to the board's ``ctl_ip``:``ctl_port``.

    Only datagrams from that address are taken as replies or events. ``subscribe``
    points the board's event channel (``ctl.event_*``) at this socket; the board does
    not do ARP, so the host's Ethernet address (``host_mac``) is given by the caller.
    """

    def __init__(self, address: tuple[str, int], regmap: RegisterMap, *,
                 bind: tuple[str, int] = ("0.0.0.0", 0), host_mac: bytes | None = None,
                 timeout: float = 0.2, retries: int = 3):
        self.address = (socket.gethostbyname(address[0]), address[1])
        self.name = f"board at {address[0]}:{address[1]}"
        self.host_mac = host_mac
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(bind)
        super().__init__(regmap, timeout, retries)

    def close(self) -> None:
        self._sock.close()

    def _send(self, payload: bytes) -> None:
        self._sock.sendto(payload, self.address)

    def _recv(self, timeout: float) -> tuple[str, bytes] | None:
        from tick2trade.protocol import control as proto

        while True:
            ready, _w, _x = select.select([self._sock], [], [], max(0.0, timeout))
            if not ready:
                return None
            data, source = self._sock.recvfrom(65536)
            timeout = 0.0
            if source != self.address:
                continue  # not from the board: never taken for a reply
            kind = proto.frame_kind(data)
            return ("event" if kind == proto.KIND_EVENT else "ctl"), data

    def subscribe(self) -> None:
        if self.host_mac is None:
            raise ValueError("subscribe needs host_mac: the board sends events to a fixed "
                             "Ethernet address (it does not do ARP)")
        ip, port = self._sock.getsockname()
        if ip == "0.0.0.0":
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.connect(self.address)
            ip = probe.getsockname()[0]
            probe.close()
        self.write_many({"ctl.event_mac": int.from_bytes(self.host_mac, "big"),
                         "ctl.event_ip": int(ipaddress.IPv4Address(ip)),
                         "ctl.event_port": port, "ctl.event_enable": 1})
