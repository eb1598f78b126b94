"""The virtual FPGA as a long-running process (``t2t sim``): the Verilator model of the
top level behind a ZeroMQ ROUTER socket.

Messages are ZeroMQ multipart; the first part names the kind. Client → device:

==================  =====================================================================
``ctl`` payload     a control request (``protocol.control``), the same bytes as a board's
                    UDP payload; wrapped in a frame to the device's control address and
                    run through the gateware. The reply frame's payload comes back as
                    ``ctl`` payload; a dropped request gets nothing, as on a board.
``feed`` f1 f2 ...  whole Ethernet frames (lines A and B alike: the frame's destination
                    decides) into the MAC RX port; answered by ``fed`` + JSON figures.
``step`` n          run the clock n cycles with no frame arriving; answered by ``stepped``.
``subscribe``       from now on, event payloads come to this client as ``event`` payload
                    and frames to anyone else (orders) as ``order`` frame.
``map``             the register map as JSON (``protocol.regmap``).
``hello``           build parameters, cycles so far, the map's hash, as JSON.
==================  =====================================================================

Design decisions
----------------
* ROUTER, so any number of clients come and go: a client that disconnects (or dies with
  a request in flight) leaves the device running; a new one connects and finds the
  registers as they were. ``ROUTER_MANDATORY`` makes sends to a vanished subscriber fail
  at once, and it is forgotten.
* The model's clock runs only while there is something to do (frames to take, a control
  request to answer, an explicit ``step``): an idle virtual FPGA costs no CPU on a shared
  machine. Nothing in the gateware depends on wall time.
* Events are sent without blocking; a subscriber that cannot keep up (its queue at the
  high-water mark) loses event frames, counted in ``hello``'s ``events_dropped`` — the
  event ``seq`` shows the host which.
"""

from __future__ import annotations

import json
import signal
import time

import zmq

from tick2trade.protocol import control as proto

from tick2trade.sim.control_frames import HOST, udp_payload
from tick2trade.sim.topsim import TopSim

EVENT_HWM = 100_000


class VirtualFpga:
    def __init__(self, sim: TopSim, endpoint: str):
        self.sim = sim
        self.endpoint = endpoint
        self.context = zmq.Context.instance()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.socket.setsockopt(zmq.SNDHWM, EVENT_HWM)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(endpoint)
        self.subscribers: list[bytes] = []
        self.stats = {"requests": 0, "replies": 0, "frames_in": 0, "events_sent": 0,
                      "events_dropped": 0, "orders": 0, "clients_lost": 0}
        self._stop = False

    def stop(self, *_args) -> None:
        self._stop = True

    def serve(self, poll_ms: int = 100) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        while not self._stop:
            if not poller.poll(poll_ms):
                continue
            while True:
                try:
                    msg = self.socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.handle(msg[0], msg[1:])
        self.socket.close(0)

    def _send(self, client: bytes, *parts: bytes) -> int:
        """0 when sent, else the errno: EHOSTUNREACH (the client is gone) or EAGAIN (its
        queue is full)."""
        try:
            self.socket.send_multipart([client, *parts], zmq.NOBLOCK)
            return 0
        except zmq.ZMQError as exc:
            return exc.errno

    def handle(self, client: bytes, parts: list[bytes]) -> None:
        kind = parts[0] if parts else b""
        if kind == b"ctl" and len(parts) == 2:
            self.stats["requests"] += 1
            for reply in self.sim.request(parts[1]):
                self.stats["replies"] += 1
                self._send(client, b"ctl", reply)
            self._dispatch(self.sim.pending)
            self.sim.pending.clear()
        elif kind == b"feed":
            frames = parts[1:]
            cycles = self.sim.cycles
            self._dispatch(self.sim.run(frames))
            self.stats["frames_in"] += len(frames)
            self._send(client, b"fed", json.dumps({
                "frames": len(frames), "cycles": self.sim.cycles - cycles}).encode())
        elif kind == b"step" and len(parts) == 2:
            cycles = int(parts[1])
            self._dispatch(self.sim.step(cycles))
            self._send(client, b"stepped", json.dumps({"cycles": cycles}).encode())
        elif kind == b"subscribe":
            if client not in self.subscribers:
                self.subscribers.append(client)
            self._send(client, b"subscribed")
        elif kind == b"map":
            self._send(client, b"map", json.dumps(self.sim.map.to_json()).encode())
        elif kind == b"hello":
            self._send(client, b"hello", json.dumps({
                "width": self.sim.data_width, "map_hash": self.sim.map.hash,
                "cycles": self.sim.cycles, "cycles_per_second": self.sim.cycles_per_second,
                "subscribers": len(self.subscribers), **self.stats}).encode())
        else:
            self._send(client, b"error", f"unknown message {kind[:20]!r} with "
                       f"{len(parts) - 1} parts".encode())

    def _dispatch(self, frames: list[bytes]) -> None:
        """Frames the device sent to anyone but the requesting host: event frames and
        (later) orders, to every subscriber."""
        for frame in frames:
            dg, payload = udp_payload(frame)
            if dg is not None and dg.dst_ip == HOST.ip and dg.dst_port == HOST.port:
                continue  # a reply whose requester is gone
            event = dg is not None and proto.frame_kind(payload) == proto.KIND_EVENT
            parts = (b"event", payload) if event else (b"order", frame)
            self.stats["orders"] += not event
            for client in list(self.subscribers):
                error = self._send(client, *parts)
                if not error:
                    self.stats["events_sent"] += event
                elif error == zmq.EHOSTUNREACH:
                    self.subscribers.remove(client)
                    self.stats["clients_lost"] += 1
                else:
                    self.stats["events_dropped"] += event


def run(endpoint: str, data_width: int, symbols: int, locates: int, echo=print) -> dict:
    """Build (or find) the model, serve until SIGINT/SIGTERM; returns the stats."""
    start = time.perf_counter()
    sim = TopSim(data_width, symbols, locates)
    device = VirtualFpga(sim, endpoint)
    signal.signal(signal.SIGTERM, device.stop)
    signal.signal(signal.SIGINT, device.stop)
    build = "cached" if sim.build.cached else f"built in {sim.build.seconds:.1f} s"
    echo(f"t2t sim: ready on {endpoint} (top W={data_width}, {symbols} symbols, "
         f"{locates} locates; model {build}; start-up {time.perf_counter() - start:.1f} s)")
    device.serve()
    sim.close()
    return {**device.stats, "cycles": sim.cycles}
