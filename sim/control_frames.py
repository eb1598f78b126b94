"""Control payloads in and out of Ethernet frames, as a host on the wire would send and
receive them: what the virtual FPGA process and the tests put on the MAC side.

The device's control address is the receive path's ``ctl_ip``:``ctl_port``; replies come
back to the address the request came from (``HOST``), events to ``ctl.event_*``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tick2trade.protocol import frames


@dataclass(frozen=True)
class Endpoint:
    mac: bytes
    ip: int
    port: int


HOST = Endpoint(bytes.fromhex("020000000010"), frames.ip_to_int("10.0.0.1"), 40001)


def to_device(payload: bytes, device_ip: int, device_port: int, host: Endpoint = HOST,
              device_mac: bytes = bytes.fromhex("020000000002")) -> bytes:
    """The frame carrying a control payload from ``host`` to the device."""
    return frames.build_udp_frame(device_ip, device_port, payload, src_ip=host.ip,
                                  src_port=host.port, src_mac=host.mac, dst_mac=device_mac)


def from_device(payload: bytes, device: Endpoint, to: Endpoint) -> bytes:
    """The frame the control endpoint sends: its header template, exactly."""
    return frames.build_udp_frame(to.ip, to.port, payload, src_ip=device.ip,
                                  src_port=device.port, src_mac=device.mac, dst_mac=to.mac,
                                  ttl=64, ident=0, flags_frag=0x4000)


def udp_payload(frame: bytes) -> tuple[frames.UdpDatagram | None, bytes]:
    """(datagram, payload) of a frame from the device; (None, b"") if it is not UDP."""
    dg = frames.parse_udp_frame(frame)
    if isinstance(dg, str):
        return None, b""
    return dg, dg.payload


def event_payloads(out: list[bytes]) -> list[bytes]:
    """The UDP payloads of the event-channel frames among the frames ``out`` of the
    device (replies, orders and anything else left out)."""
    from tick2trade.protocol import control

    payloads = []
    for frame in out:
        dg, payload = udp_payload(frame)
        if dg is not None and control.frame_kind(payload) == control.KIND_EVENT:
            payloads.append(payload)
    return payloads


def event_records(out: list[bytes], kind: type | None = None) -> list:
    """The event records those frames carry, in order; only those of class ``kind``
    (``control.BookEvent``, ``TradeEvent``...) when given."""
    from tick2trade.protocol import control

    return [e for p in event_payloads(out) for e in control.check(p, control.KIND_EVENT).events
            if kind is None or isinstance(e, kind)]
