"""API orders through the FPGA (``python -m tick2trade.bench.engine_api [--orders N]``): starts
``t2t run --api`` on a free loopback port with a throwaway database, places ``N`` IOC
orders of one BTC-USD (the demo's symbol without a trigger) over the WebSocket, one
after another, alternately buying 200.00 through the offer and selling 200.00 through
the bid, and prints how long each took to be stored (the placement's answer) and to
be filled (the ``order_status`` notification), in wall milliseconds. Figures, never
pass/fail; see bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

from tick2trade.host.api.ws import BEARER
from tick2trade.host.services.status import TERMINAL, OrderStatus
from tick2trade.sim.cli.run import percentile

THROUGH = 200  # currency units through the touch: the book moves before the order lands
PASSWORD = "correct horse battery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(port: int, workdir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tick2trade.cli", "run", "--duration", "3600", "--api", "--api-port",
         str(port), "--db", f"sqlite:///{workdir / 't2t.db'}", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=workdir)
    line = ""
    while "Ctrl-C stops" not in line:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            raise SystemExit("t2t run --api ended before trading")
    return proc


def _trade(port: int, orders: int) -> dict:
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    creds = {"username": "bench", "password": PASSWORD}
    api.post("/auth/register", json={**creds, "email": "bench@example.com"})
    token = api.post("/auth/login", json=creds).json()["access_token"]
    h = {"Authorization": f"Bearer {token}"}
    while api.get("/market/BTC-USD/quote", headers=h).json().get("ask") is None:
        time.sleep(0.1)  # no quote until the run's first status refresh
    stored, filled, outcome = [], [], {}
    with connect(f"ws://127.0.0.1:{port}/ws", subprotocols=[BEARER, token]) as ws:
        ws.recv()  # hello
        for ref in range(orders):
            q = api.get("/market/BTC-USD/quote", headers=h).json()
            buy = ref % 2 == 0
            price = float(q["ask"]) + THROUGH if buy else float(q["bid"]) - THROUGH
            start = time.perf_counter()
            ws.send(json.dumps({"op": "place", "ref": ref, "order": {
                "symbol": "BTC-USD", "side": "buy" if buy else "sell", "type": "limit",
                "tif": "ioc", "qty": 1, "price": f"{price:.4f}"}}))
            order_id = None
            while True:
                m = json.loads(ws.recv())
                if m["type"] == "order" and m["ref"] == ref:
                    order_id = m["order"]["id"]
                    stored.append((time.perf_counter() - start) * 1e3)
                elif m["type"] == "error" and m.get("ref") == ref:
                    outcome["error"] = outcome.get("error", 0) + 1
                    break
                elif m["type"] == "notification" and m["kind"] == "order_status":
                    p = m["payload"]
                    if p["order_id"] == order_id and p["status"] in TERMINAL:
                        key = p["status"] if p["status"] == OrderStatus.FILLED else \
                            f"{p['status']} ({p['reason']})"
                        outcome[key] = outcome.get(key, 0) + 1
                        if p["status"] == OrderStatus.FILLED:
                            filled.append((time.perf_counter() - start) * 1e3)
                        break
    return {"outcome": outcome, "stored_ms": stored, "filled_ms": filled}


def _spread(ms: list[float]) -> str:
    if not ms:
        return "none"
    return " / ".join(f"{percentile(ms, q):.1f}" for q in (0, 50, 90, 99, 100))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        proc = _start(port, Path(tmp))
        try:
            got = _trade(port, args.orders)
        finally:
            proc.send_signal(signal.SIGINT)
            out, _err = proc.communicate(timeout=120)
    run = json.loads(out)
    print(f"orders: {args.orders}, outcome: {got['outcome']}")
    print(f"placement → stored (ms, min / p50 / p90 / p99 / max): {_spread(got['stored_ms'])}")
    print(f"placement → filled (ms, min / p50 / p90 / p99 / max): {_spread(got['filled_ms'])}")
    print(f"the run: {run['cycles_per_wall_s']:,} cycles/s, broker {run['api']}, "
          f"anomalies {run['anomalies'] or 'none'}")


if __name__ == "__main__":
    main()
