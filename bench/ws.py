"""Book update → visible to a WebSocket client (``make bench`` runs it; alone:
``python -m tick2trade.bench.ws``). Figures, never pass/fail; see bench/README.md.

The API runs under uvicorn in a process of its own on loopback, as ``t2t api`` serves
it, with a thread in that process calling ``MarketData.apply`` at a steady rate (a few
level changes near the touch each time, as a busy symbol's feed gives). Clients in
this process subscribe to the symbol's ``book`` channel and, for every delta, take
``now - ts``: ``ts`` is the time ``apply`` stamped on the update, so the figure covers
the listener, the top-N diff (when a depth is asked), JSON encoding, the hub's queue,
the event loop, the socket and the client's decoding. Both processes read the same
wall clock. The clients share one event loop, so with many of them the figure includes
their own queueing too.

``source="feed"`` puts the software feed handler in front: the driver sends each update
as a MoldUDP64 packet (one ITCH Add, or a Delete of a resting order) to the
``FeedHandler``'s line A on loopback, stamping the message with the wall clock's
nanoseconds after midnight; the handler applies it with that ITCH time as ``ts``, so
the figure runs from the packet leaving the sender to the delta decoded by the client.

``source="fpga"`` puts the FPGA's book records in front (``_FpgaDriver``): event frames
of the golden models' tap, sent over UDP on loopback to the server's ``FpgaBook``,
from the record's event frame leaving the "board" to the delta decoded by the client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as host
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from tick2trade.host.api import create_app
from tick2trade.host.api.ws import BEARER
from tick2trade.host.services.platform import Limits, Platform

SECRET = "bench-" + "s" * 32
PASSWORD = "correct horse battery"
UNLIMITED = Limits(requests="1000000/second", anonymous="1000000/second")
SYMBOL = "AAPL"
MID = 100 * 10_000
IDLE = 3.0            # seconds without a message that end a client's run
WARMUP = 200          # updates before the measured ones (connections, caches, JIT-less)


def _changes(rng: random.Random):
    """One feed event's worth of level changes near the touch."""
    side = [(MID - rng.randrange(1, 30) * 100, rng.choice([0, rng.randrange(1, 2000)]),
             rng.randrange(1, 9))]
    if rng.random() < 0.5:
        return side, []
    return [], [(MID + rng.randrange(0, 30) * 100, side[0][1], side[0][2])]


def _drive(p: Platform, clients: int, updates: int, rate: float, step=None) -> None:
    """Wait for ``clients`` book subscribers, then make the warm-up and the measured
    updates at ``rate`` per second on a fixed schedule (late ones are not made up):
    ``step(rng)`` each, by default one ``MarketData.apply``."""
    rng = random.Random(1)
    step = step or (lambda r: p.market.apply(SYMBOL, *_changes(r)))
    while p.hub.stats()["subscriptions"]["book"] < clients:
        time.sleep(0.01)
    time.sleep(0.2)
    start = time.monotonic()
    for i in range(WARMUP + updates):
        due = start + i / rate
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        step(rng)


def _itch_now() -> int:
    now = time.time()
    return int((now % 86_400) * 1e9)


class _FeedDriver:
    """Updates as ITCH over MoldUDP64 into a FeedHandler's line A (``source="feed"``)."""

    SESSION = "BENCHWS001"

    def __init__(self, p: Platform) -> None:
        from tick2trade.host.services.feed import FeedHandler

        self.handler = FeedHandler(p.market, lines=[("127.0.0.1", 0)], retransmit=None,
                                   session=self.SESSION).start()
        self.to = self.handler.addresses["A"]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.seq, self.ref, self.live = 1, 0, []
        book = [self._add("B" if k < 40 else "S", MID + (k - 40) * 100 if k >= 40
                          else MID - (k + 1) * 100, 100) for k in range(80)]
        self._send([self._directory(), *book[:40]])
        self._send(book[40:])

    @staticmethod
    def _directory() -> bytes:
        from tick2trade.protocol import itch

        return itch.encode("R", locate=1, timestamp=_itch_now(), stock=SYMBOL,
                           market_category="Q", financial_status="N", round_lot_size=100,
                           round_lots_only="N", issue_classification="C", issue_subtype="Z",
                           authenticity="P", short_sale_threshold="N", ipo_flag="N",
                           luld_tier="1", etp_flag="N", etp_leverage=0, inverse="N")

    def _add(self, side: str, price: int, shares: int) -> bytes:
        from tick2trade.protocol import itch

        self.ref += 1
        self.live.append(self.ref)
        return itch.encode("A", locate=1, timestamp=_itch_now(), order_ref=self.ref,
                           side=side, shares=shares, stock=SYMBOL, price=price)

    def _send(self, messages: list[bytes]) -> None:
        from tick2trade.protocol import moldudp64

        self.sock.sendto(moldudp64.encode_packet(self.SESSION, self.seq, messages), self.to)
        self.seq += len(messages)

    def update(self, rng: random.Random) -> None:
        from tick2trade.protocol import itch

        if len(self.live) > 40 and rng.random() < 0.5:
            ref = self.live.pop(rng.randrange(len(self.live)))
            self._send([itch.encode("D", locate=1, timestamp=_itch_now(), order_ref=ref)])
            return
        side = rng.choice("BS")
        offset = rng.randrange(1, 30) * 100
        self._send([self._add(side, MID - offset if side == "B" else MID + offset,
                              rng.randrange(1, 20) * 100)])


class _FpgaDriver:
    """Book records of the FPGA's tap into an ``FpgaBook`` over UDP on loopback
    (``source="fpga"``). The golden models stand in for the board (``ModelFpga``: the
    same event frames as the RTL, byte for byte, as tests/sim's top-level test checks):
    the book is built and the ``FpgaBook`` started on it first, then every update's
    event frame is made ahead (the models' time stays off the measured path) and the
    schedule sends one event frame an update from a socket standing for the board. A
    thread in the server receives them as a host does a board's (``recvfrom``), decodes
    them and calls ``on_record`` with the send time as ``ts``: the figure runs from the
    event frame leaving the board to the delta decoded by the client."""

    def __init__(self, p: Platform, updates: int) -> None:
        from tick2trade.gateware.models.rx.eth_rx import RxConfig
        from tick2trade.host.config import load
        from tick2trade.host.services.fpgabook import FpgaBook
        from tick2trade.sim.modelfpga import ModelFpga
        from tick2trade.sim.topsim import top_map

        demo = Path(__file__).resolve().parents[1] / "docs" / "demo.toml"
        cfg = load(demo, symbols=8)
        self.dev = ModelFpga(cfg, top_map(64, 8, 64), 8)
        self.dev.write_many({"ctl.event_enable": 1, "ctl.event_ip": 0x0A00_0001,
                             "ctl.event_port": 40002, "book_stream.enable": 1})
        self.rx = RxConfig.default(watch=cfg.watch)
        self.locate, self.seq, self.ref, self.live = 1, 1, 0, []
        from tick2trade.protocol import itch

        self._mold([itch.encode("R", locate=1 + i, stock=s, market_category="Q")
                    for i, s in enumerate(cfg.watch)])
        self.locate = 1 + cfg.watch.index(SYMBOL)
        for k in range(16):  # eight levels a side, two orders each
            self._mold([self._add("B", MID - (k // 2 + 1) * 100)])
            self._mold([self._add("S", MID + (k // 2) * 100)])
        self.book = FpgaBook(p.market, self.dev, dict(enumerate(cfg.watch)))
        self.book.start()
        rng = random.Random(2)
        self.payloads: list[bytes] = []
        while len(self.payloads) < WARMUP + updates:
            self.payloads += self._mold([self._change(rng)])
        self.next = 0
        self.sent: dict[int, float] = {}
        self.rx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rx_sock.bind(("127.0.0.1", 0))
        self.tx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        threading.Thread(target=self._receive, daemon=True).start()

    def _add(self, side: str, price: int) -> bytes:
        from tick2trade.protocol import itch

        self.ref += 7_919  # sparse, as a venue's day-wide sequence gives a symbol
        self.live.append(self.ref)
        return itch.encode("A", locate=self.locate, order_ref=self.ref, side=side,
                           shares=100 * random.Random(self.ref).randrange(1, 20),
                           stock=SYMBOL, price=price)

    def _change(self, rng: random.Random) -> bytes:
        """An Add or a Delete inside the FPGA's top levels (each makes a record)."""
        from tick2trade.protocol import itch

        if len(self.live) > 24 and rng.random() < 0.5:
            ref = self.live.pop(rng.randrange(len(self.live)))
            return itch.encode("D", locate=self.locate, order_ref=ref)
        side = rng.choice("BS")
        offset = rng.randrange(0, 4) * 100
        return self._add(side, MID - 100 - offset if side == "B" else MID + offset)

    def _mold(self, messages: list[bytes]) -> list[bytes]:
        """Messages through the models as one MoldUDP64 packet: the event frames' UDP
        payloads that hold book records."""
        from tick2trade.gateware.models.rx.eth_rx import feed_frame
        from tick2trade.protocol import control, moldudp64
        from tick2trade.sim.control_frames import event_payloads

        out = self.dev.run([feed_frame(self.rx, 0, moldudp64.encode_packet(
            "BENCHWSFPG", self.seq, messages))])
        self.seq += len(messages)
        return [p for p in event_payloads(out)
                if any(isinstance(e, control.BookEvent)
                       for e in control.check(p, control.KIND_EVENT).events)]

    def _receive(self) -> None:
        from tick2trade.protocol import control

        while True:
            payload, _src = self.rx_sock.recvfrom(65536)
            for ev in control.check(payload, control.KIND_EVENT).events:
                if isinstance(ev, control.BookEvent):
                    sent = self.sent.pop(ev.seq, None)
                    self.book.on_record(ev, None if sent is None else
                                        datetime.fromtimestamp(sent, timezone.utc))

    def update(self, _rng: random.Random) -> None:
        from tick2trade.protocol import control

        payload = self.payloads[self.next]
        self.next += 1
        for ev in control.check(payload, control.KIND_EVENT).events:
            if isinstance(ev, control.BookEvent):
                self.sent[ev.seq] = time.time()
        self.tx_sock.sendto(payload, self.rx_sock.getsockname())


def serve(url: str, port: int, clients: int, updates: int, rate: float,
          source: str = "apply") -> None:
    import uvicorn

    p = Platform(url, SECRET, limits=UNLIMITED, migrate=False)
    if source == "fpga":
        driver = _FpgaDriver(p, updates)
        args = (p, clients, updates, rate, driver.update)
    elif source == "feed":
        driver = _FeedDriver(p)
        while p.market.book_view(SYMBOL) is None or len(p.market.book_view(SYMBOL).asks) < 40:
            time.sleep(0.01)
        args = (p, clients, updates, rate, driver.update)
    else:
        p.market.apply(SYMBOL, bids=[(MID - k * 100, 100 * k, k) for k in range(1, 40)],
                       asks=[(MID + k * 100, 100 * k, k) for k in range(40)])
        args = (p, clients, updates, rate)
    threading.Thread(target=_drive, args=args, daemon=True).start()
    try:
        uvicorn.run(create_app(p), host="127.0.0.1", port=port, log_level="warning",
                    access_log=False)
    finally:
        p.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _client(port: int, token: str, depth: int | None, last_seq: int,
                  latencies: list[float], stats: dict) -> None:
    import websockets

    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", subprotocols=[BEARER, token],
                                  max_size=None) as ws:
        await ws.send(json.dumps({"op": "subscribe", "channels": ["book"],
                                  "symbols": [SYMBOL], "depth": depth}))
        seq = None
        try:
            while seq is None or seq < last_seq:
                try:
                    # the feed handler may fold a backlog of packets into one update, so
                    # its run can end below last_seq: quiet for IDLE seconds ends it too
                    raw = await asyncio.wait_for(ws.recv(), IDLE if seq is not None else None)
                except TimeoutError:
                    break
                m = json.loads(raw)
                now = time.time()
                if m.get("type") != "book":
                    continue
                if seq is None:
                    first = m["seq"]          # the snapshot: updates count from here
                    last_seq += first - 1
                if m["kind"] == "delta":
                    if m["seq"] != seq + 1:
                        stats["gaps"] += 1
                    if m["seq"] > first + WARMUP:
                        latencies.append(now - datetime.fromisoformat(m["ts"]).timestamp())
                seq = m["seq"]
        except websockets.ConnectionClosed as exc:
            stats["dropped"] += 1
            stats["reason"] = str(exc)


def measure(url: str, clients: int, updates: int, rate: float,
            depth: int | None, source: str = "apply") -> dict:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tick2trade.bench.ws", "--serve", url,
                             "--port", str(port), "--clients", str(clients), "--updates",
                             str(updates), "--rate", str(rate), "--source", source],
                            cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the API server did not start") from None
                time.sleep(0.1)
        token = httpx.post(f"http://127.0.0.1:{port}/auth/login",
                           json={"username": "bench", "password": PASSWORD}
                           ).json()["access_token"]
        latencies: list[float] = []
        stats = {"gaps": 0, "dropped": 0}
        last_seq = 1 + WARMUP + updates

        async def run() -> None:
            await asyncio.gather(*(_client(port, token, depth, last_seq, latencies, stats)
                                   for _ in range(clients)))

        asyncio.run(asyncio.wait_for(run(), timeout=60 + 3 * updates / rate))
    finally:
        proc.terminate()
        proc.wait(30)
    ms = np.array(latencies) * 1e3
    return {"source": source, "clients": clients, "rate": rate, "depth": depth,
            "deltas": len(ms),
            "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)),
            "max": float(ms.max()), **stats}


SCENARIOS = (  # source, clients, updates/s, depth (None: every level)
    ("apply", 1, 1000, None),
    ("apply", 1, 1000, 10),
    ("apply", 16, 1000, None),
    ("apply", 1, 10000, None),
    ("feed", 1, 1000, None),
    ("feed", 1, 1000, 10),
    ("fpga", 1, 1000, None),
    ("fpga", 1, 1000, 10),
)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tick2trade.bench.ws",
                                     description=__doc__)
    parser.add_argument("--updates", type=int, default=5000,
                        help="measured book updates per scenario")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--serve", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--source", default="apply", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.clients, args.updates, args.rate, args.source)
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="t2t-bench-ws-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        p = Platform(url, SECRET, limits=UNLIMITED)
        p.users.register("bench", "bench@example.com", PASSWORD)
        p.close()
        for source, clients, rate, depth in SCENARIOS:
            results.append(measure(url, clients, args.updates, rate, depth, source))
    if args.json:
        print(json.dumps(results, indent=1))
        return
    console = Console(width=max(120, Console().width))
    table = Table(title="book update → delta decoded by a WebSocket client (source apply: "
                        "from MarketData.apply in the server; feed: from the ITCH packet "
                        f"leaving the sender) ({host.machine()}, {os.cpu_count()} cores)")
    for col in ("source", "clients", "updates/s", "depth", "deltas", "p50 ms", "p99 ms", "max ms",
                "gaps", "dropped"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(r["source"], str(r["clients"]), f"{r['rate']:,.0f}",
                      "all" if r["depth"] is None else str(r["depth"]), f"{r['deltas']:,}",
                      f"{r['p50']:.3f}", f"{r['p99']:.3f}", f"{r['max']:.1f}",
                      str(r["gaps"]), str(r["dropped"]))
    console.print(table)


if __name__ == "__main__":
    main()
