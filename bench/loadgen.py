"""A light load generator for the order API, run by ``bench.platform`` in a process of
its own: ``python -m tick2trade.bench.loadgen URL TOKEN --orders N --clients C [--rate R] [--ws]``.

Why not httpx: a synchronous httpx client spends about 0.8 ms of CPU per request, on
the same two cores as the server, so the generator was a good part of what it measured.
This one writes each request as bytes over a kept-alive TCP connection (or a WebSocket
with ``--ws``) and reads the answer by its ``Content-Length`` on an asyncio event loop
(uvloop when installed): tens of microseconds a request. ``websockets`` and ``uvloop``
come with ``uvicorn[standard]``.

Each of the ``clients`` connections sends its next order when the last was answered
(closed loop), or — with ``--rate`` — when it is due: order *i* at *i* / rate seconds,
its latency counted from then, so a server that falls behind shows it as latency (open
loop). Prints one JSON object: orders, wall seconds, latencies (seconds, sorted), CPU
seconds this process used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from urllib.parse import urlsplit


def order(i: int) -> dict:
    """Order *i* of every run: a GTC limit buy below the bench's offer, so it rests."""
    return {"symbol": "AAPL", "side": "buy", "type": "limit", "tif": "gtc", "qty": 1 + i % 100,
            "price": f"{90 + (i % 500) / 100:.2f}"}


async def _http(host: str, port: int, token: str, mine: range, due, lat: list) -> float:
    reader, writer = await asyncio.open_connection(host, port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = (f"POST /orders HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n")
    try:
        for i in mine:
            body = json.dumps(order(i)).encode()
            request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
            start = await due(i)
            writer.write(request)
            headers = await reader.readuntil(b"\r\n\r\n")
            status = headers[9:12]
            length = 0
            for line in headers.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            answer = await reader.readexactly(length)
            lat.append(time.perf_counter() - start)
            if status != b"201":
                raise RuntimeError(f"order {i}: HTTP {status.decode()} {answer[:200]!r}")
    finally:
        writer.close()
    return time.perf_counter()


async def _ws(host: str, port: int, token: str, mine: range, due, lat: list) -> float:
    import websockets

    # "bearer" is host.api.ws.BEARER, not imported: this client stays free of the app
    async with websockets.connect(f"ws://{host}:{port}/ws", subprotocols=["bearer", token],
                                  compression=None) as ws:
        json.loads(await ws.recv())                       # hello
        # an order-entry connection: the user's notifications are not wanted here
        await ws.send(json.dumps({"op": "notifications", "enabled": False}))
        while (kind := json.loads(await ws.recv()).get("type")) != "notifications":
            if kind == "error":                           # a server without order entry
                raise RuntimeError("the server offers no order entry on its WebSocket")
        for i in mine:
            start = await due(i)
            await ws.send(json.dumps({"op": "place", "ref": i, "order": order(i)}))
            while True:      # anything already queued before notifications went off
                answer = json.loads(await ws.recv())
                if answer.get("ref") == i:
                    break
            lat.append(time.perf_counter() - start)
            if answer["type"] != "order":
                raise RuntimeError(f"order {i}: {answer}")
        return time.perf_counter()


async def run(url: str, token: str, n: int, clients: int, rate: float | None,
              ws: bool) -> dict:
    parts = urlsplit(url)
    lat: list[float] = []
    t0 = time.perf_counter() + 0.05

    async def due(i: int) -> float:
        if rate is None:
            return time.perf_counter()
        at = t0 + i / rate
        if (wait := at - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        return at

    client = _ws if ws else _http
    cpu = time.process_time()
    start = time.perf_counter()
    done = await asyncio.gather(*(client(parts.hostname, parts.port, token,
                                         range(k, n, clients), due, lat)
                                  for k in range(clients)))
    # up to the last answer: closing the connections is not part of the run
    wall = max(done) - (t0 if rate is not None else start)
    return {"orders": n, "seconds": wall, "latencies": sorted(lat),
            "cpu_seconds": time.process_time() - cpu}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tick2trade.bench.loadgen", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--orders", type=int, required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--rate", type=float, help="open loop at this many orders/s")
    parser.add_argument("--ws", action="store_true", help="order entry over the WebSocket")
    args = parser.parse_args()
    work = run(args.url, args.token, args.orders, args.clients, args.rate, args.ws)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(work)
    else:
        result = uvloop.run(work)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
