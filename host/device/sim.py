"""``SimDevice``: the virtual FPGA (``t2t sim``) over ZeroMQ (see ``sim/device.py`` for
the message kinds)."""

from __future__ import annotations

import json
import time

import zmq

from tick2trade.protocol.regmap import RegisterMap

from tick2trade.host.device.base import Device, DeviceError, DeviceTimeout

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"


class SimDevice(Device):
    """A DEALER socket to the device's ROUTER. The socket reconnects by itself when the
    device restarts; requests unanswered meanwhile time out and are retried like on a
    board. Besides registers and events it can feed frames into the MAC RX port and run
    the clock (``feed``, ``step``) — what a board's network and oscillator do."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, regmap: RegisterMap | None = None,
                 timeout: float = 2.0, retries: int = 2):
        self.endpoint = endpoint
        self.name = f"virtual FPGA at {endpoint}"
        self._context = zmq.Context.instance()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVHWM, 0)
        self._socket.connect(endpoint)
        self._other: list[list[bytes]] = []
        super().__init__(regmap, timeout, retries)

    def close(self) -> None:
        self._socket.close(0)

    def _poll(self, timeout: float) -> list[bytes] | None:
        if self._socket.poll(max(0, int(timeout * 1000))):
            return self._socket.recv_multipart()
        return None

    def _send(self, payload: bytes) -> None:
        self._socket.send_multipart([b"ctl", payload])

    def _recv(self, timeout: float) -> tuple[str, bytes] | None:
        deadline = time.monotonic() + timeout
        while True:
            msg = self._poll(max(0.0, deadline - time.monotonic()))
            if msg is None:
                return None
            if msg[0] in (b"ctl", b"event") and len(msg) == 2:
                return msg[0].decode(), msg[1]
            self._other.append(msg)  # an answer to a call() still waiting, or an order
            return "other", b""

    def call(self, kind: bytes, *parts: bytes, answer: bytes) -> list[bytes]:
        """A non-control message; waits for the answer of kind ``answer`` (events that
        arrive meanwhile are kept)."""
        self._socket.send_multipart([kind, *parts])
        deadline = time.monotonic() + self.timeout * (1 + self.retries)
        while True:
            for i, msg in enumerate(self._other):
                if msg[0] == answer:
                    return self._other.pop(i)[1:]
                if msg[0] == b"error":
                    self._other.pop(i)
                    raise DeviceError(f"{self.name}: {msg[1].decode()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceTimeout(f"no answer from {self.name} to {kind.decode()} "
                                    f"within {self.timeout * (1 + self.retries):g} s — is "
                                    f"`t2t sim` running there?")
            got = self._recv(left)
            if got is not None and got[0] == "event":
                self._take_event(got[1])

    def _fetch_map(self) -> RegisterMap:
        return RegisterMap.from_json(json.loads(self.call(b"map", answer=b"map")[0]))

    def hello(self) -> dict:
        return json.loads(self.call(b"hello", answer=b"hello")[0])

    def subscribe(self) -> None:
        self.call(b"subscribe", answer=b"subscribed")

    def feed(self, frames: list[bytes]) -> dict:
        """Whole Ethernet frames into the MAC RX port (lines A and B: the frame's
        destination decides)."""
        return json.loads(self.call(b"feed", *frames, answer=b"fed")[0])

    def step(self, cycles: int) -> None:
        self.call(b"step", str(cycles).encode(), answer=b"stepped")

    def orders(self) -> list[bytes]:
        """Frames the device sent that are neither replies nor events (order frames)."""
        out = [m[1] for m in self._other if m[0] == b"order"]
        self._other = [m for m in self._other if m[0] != b"order"]
        return out
