"""Venue simulator benchmarks: matching throughput, ITCH publishing rate, order → ack
latency over loopback TCP. Figures only; see bench/README.md for how they are measured."""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import time

import numpy as np

from tick2trade.protocol import ouch, soupbintcp
from tick2trade.sim.venue.config import DEFAULT_MIDS, default_instruments
from tick2trade.sim.venue.engine import Engine
from tick2trade.sim.venue.feed import Publisher
from tick2trade.sim.venue.flow import Flow
from tick2trade.sim.venue.venue import Venue


def recorded_flow(actions: int, seed: int = 1) -> tuple[list[tuple], list[tuple]]:
    """The engine calls (name, args) the synthetic flow makes in ``actions`` steps, and
    every engine event they cause. The engine is deterministic, so replaying the calls
    on a fresh engine does exactly the same work without the flow's own cost."""
    venue = Venue(default_instruments(), clock=lambda: 0)
    engine = venue.engine
    calls: list[tuple] = []
    for name in ("submit", "cancel", "replace"):
        method = getattr(engine, name)

        def record(*args, _method=method, _name=name):
            calls.append((_name, args))
            return _method(*args)

        setattr(engine, name, record)
    events: list[tuple] = []
    venue.listeners.append(events.extend)
    flow = Flow(venue, seed=seed, rate=1e6, start_mid=DEFAULT_MIDS)
    for _ in range(actions):
        flow.step()
    return calls, events


def matching(calls: list[tuple], repeats: int = 3) -> dict:
    """Orders (submit, cancel, replace calls) per second on one core, best of
    ``repeats`` runs on a fresh engine; the event list is emptied every 1024 calls as a
    consumer would."""
    best = float("inf")
    for _ in range(repeats):
        engine = Engine(default_instruments())
        methods = {"submit": engine.submit, "cancel": engine.cancel,
                   "replace": engine.replace}
        start = time.perf_counter()
        for k, (name, args) in enumerate(calls):
            methods[name](*args)
            if not k & 1023:
                engine.events = []
        best = min(best, time.perf_counter() - start)
    mix = {n: sum(1 for c in calls if c[0] == n) for n in methods}
    return {"orders": len(calls), "seconds": best, "orders_per_second": len(calls) / best,
            "mix": mix}


def publishing(events: list[tuple], repeats: int = 3) -> dict:
    """ITCH messages per second: engine events → encoded messages → MoldUDP64 packets of
    up to 1400 bytes, best of ``repeats``."""
    best, messages, packets = float("inf"), 0, 0
    for _ in range(repeats):
        pub = Publisher(default_instruments(), attribution=True)
        start = time.perf_counter()
        for k in range(0, len(events), 256):
            pub.publish(events[k:k + 256], k)
            packets += len(pub.packets())
        packets += len(pub.flush())
        best = min(best, time.perf_counter() - start)
        messages = len(pub.log)
    return {"events": len(events), "messages": messages, "seconds": best,
            "messages_per_second": messages / best, "packets": packets // repeats}


def _serve(port_out, stop) -> None:
    async def main() -> None:
        from tick2trade.sim.venue.gateway import Gateway

        gateway = Gateway(Venue(default_instruments()), users=None)
        server = await gateway.serve_tcp("127.0.0.1", 0)
        port_out.send(server.sockets[0].getsockname()[1])
        while not stop.is_set():
            await asyncio.sleep(0.05)
        server.close()

    asyncio.run(main())


def _read_packet(sock: socket.socket, buffer: bytearray) -> bytes:
    while True:
        if len(buffer) >= 2:
            length = int.from_bytes(buffer[:2], "big")
            if len(buffer) >= 2 + length:
                body = bytes(buffer[2:2 + length])
                del buffer[:2 + length]
                return body
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the gateway closed the connection")
        buffer += data


def latency(orders: int = 20000, warmup: int = 1000) -> dict:
    """Order → Accepted round trips over loopback TCP to a gateway in its own process:
    one order in flight at a time, timed from just before ``send`` to the Accepted
    packet being read whole; the first ``warmup`` are not counted."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(child, stop), daemon=True)
    proc.start()
    try:
        port = parent.recv()
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray()
        sock.sendall(soupbintcp.encode("L", username="bench"))
        if _read_packet(sock, buffer)[:1] != b"A":
            raise RuntimeError("login refused")
        samples = np.empty(orders, dtype=np.int64)
        for k in range(warmup + orders):
            side, price = ("B", 990_000) if k % 2 else ("S", 1_010_000)
            packet = soupbintcp.encode("U", message=ouch.encode_inbound(
                "O", user_ref=k + 1, side=side, quantity=100, symbol="AAPL", price=price,
                tif=ouch.TIF_DAY, display="Y"))
            start = time.perf_counter_ns()
            sock.sendall(packet)
            while True:
                body = _read_packet(sock, buffer)
                if body[:1] == b"S":
                    break
            end = time.perf_counter_ns()
            if ouch.decode_outbound(body[1:])["type"] != "A":
                raise RuntimeError(f"order {k + 1} not accepted: {body!r}")
            if k >= warmup:
                samples[k - warmup] = end - start
        sock.sendall(soupbintcp.encode("O"))
        sock.close()
    finally:
        stop.set()
        proc.join(5)
    us = samples / 1000
    return {"orders": orders, "p50": float(np.percentile(us, 50)),
            "p99": float(np.percentile(us, 99)), "p999": float(np.percentile(us, 99.9)),
            "min": float(us.min()), "max": float(us.max())}
