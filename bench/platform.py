"""Host platform benchmark (``make bench`` runs it after the receive path; alone:
``python -m tick2trade.bench.platform``): order placement with a durable write, on SQLite and on
PostgreSQL. Figures, never pass/fail. See bench/README.md for what is measured.

PostgreSQL is used when ``T2T_BENCH_POSTGRES_URL`` (or ``T2T_TEST_POSTGRES_URL``) is set
(``eval "$(bash .ci/postgres.sh)"`` starts a throwaway server); otherwise its rows say
"not run".
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

from tick2trade.bench.loadgen import order as _order
from tick2trade.host.api import create_app
from tick2trade.host.services.db import Setting
from tick2trade.host.services.orders import NewOrder
from tick2trade.host.services.platform import Limits, Platform

SECRET = "bench-" + "s" * 32
PASSWORD = "correct horse battery"
UNLIMITED = Limits(requests="1000000/second", anonymous="1000000/second")


def _postgres_schema(base: str) -> str:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"


def _platform(url: str) -> tuple[Platform, int]:
    p = Platform(url, SECRET, limits=UNLIMITED)
    user = p.users.register("bench", "bench@example.com", PASSWORD)
    _quote(p)
    with p.sessions.begin() as s:
        s.add(Setting(key="bench", value="0"))
    return p, user.id


def percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))] * 1e3
    return {"p50": pick(0.50), "p99": pick(0.99), "max": s[-1] * 1e3}


def commit_floor(p: Platform, n: int = 300) -> dict:
    """The cost of durability alone: one-row update transactions on the same database
    (an audit-head-sized write), nothing else. No durable write can be faster."""
    lat = []
    with p.engine.connect() as conn:
        for i in range(n):
            t = time.perf_counter()
            with conn.begin():
                conn.execute(text("UPDATE settings SET value = :v WHERE key = 'bench'"),
                             {"v": str(i)})
            lat.append(time.perf_counter() - t)
    return {"orders": n, "rate": n / sum(lat), **percentiles(lat)}


def service_run(p: Platform, user_id: int, n: int, threads: int = 1) -> dict:
    """Orders.place from ``threads`` threads, each placing its next order when the last
    returned: validation, risk, the pending write with its audit record, then the
    broker's accept — each write durable before ``place`` returns."""
    lat: list[float] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        mine = []
        for i in range(k, n, threads):
            o = _order(i)
            t = time.perf_counter()
            p.orders.place(user_id, "bench", NewOrder(o["symbol"], o["side"], o["type"],
                                                      o["qty"], o["tif"],
                                                      round(float(o["price"]) * 10_000)))
            mine.append(time.perf_counter() - t)
        with lock:
            lat.extend(mine)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    return {"orders": n, "rate": n / (time.perf_counter() - start), **percentiles(lat)}


def _quote(p: Platform) -> None:
    # quotes far from the orders' limit prices: every order is stored, accepted and rests
    p.market.update("AAPL", bid=1_000_000, bid_size=100, ask=1_001_000, ask_size=100)


def serve(url: str, port: int) -> None:
    """The API over ``url`` under uvicorn (one worker), as ``t2t api`` serves it; the
    benchmark runs this in a process of its own (``--serve``)."""
    from tick2trade.host.api import serving

    p = Platform(url, SECRET, limits=UNLIMITED, migrate=False)
    _quote(p)
    try:
        serving.serve(create_app(p), "127.0.0.1", port, log_level="warning",
                      access_log=False)
    finally:
        p.close()


class Server:
    """``serve`` in a child process on a free loopback port, so the clients' Python does
    not share the server's interpreter (and its lock) as it would in a thread."""

    def __init__(self, url: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen([sys.executable, "-m", "tick2trade.bench.platform", "--serve", url,
                                      "--port", str(self.port)],
                                     cwd=Path(__file__).resolve().parents[1])
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the API server did not start") from None
                time.sleep(0.1)

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process so far (Linux), else None."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _cpu_per_order(before: float | None, after: float | None, n: int) -> float | None:
    return None if before is None or after is None else (after - before) / n * 1e3


def loadgen(server: Server, token: str, n: int, clients: int, rate: float | None = None,
            ws: bool = False) -> dict:
    """``bench.loadgen`` in a process of its own against ``server``: rate, latency
    percentiles, and the CPU both processes spent per order (ms)."""
    args = [sys.executable, "-m", "tick2trade.bench.loadgen", f"http://127.0.0.1:{server.port}", token,
            "--orders", str(n), "--clients", str(clients)]
    if rate is not None:
        args += ["--rate", str(rate)]
    if ws:
        args.append("--ws")
    before = server.cpu_seconds()
    done = subprocess.run(args, check=False, cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True)
    after = server.cpu_seconds()
    if done.returncode != 0:
        return {"orders": n, "failed": (done.stderr.strip().splitlines() or ["?"])[-1]}
    r = json.loads(done.stdout)
    return {"orders": n, "rate": n / r["seconds"], **percentiles(r["latencies"]),
            "server_cpu": _cpu_per_order(before, after, n),
            "client_cpu": r["cpu_seconds"] / n * 1e3}


def httpx_closed_loop(server: Server, token: str, n: int, clients: int) -> dict:
    """The generator of earlier runs, for comparison: ``clients`` threads of this process,
    each with an httpx connection, POSTing their next order as soon as the last answered."""
    base = f"http://127.0.0.1:{server.port}"
    lat: list[float] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                          timeout=120) as c:
            mine = []
            for i in range(k, n, clients):
                t = time.perf_counter()
                r = c.post("/orders", json=_order(i))
                mine.append(time.perf_counter() - t)
                r.raise_for_status()
            with lock:
                lat.extend(mine)

    before, cpu, start = server.cpu_seconds(), time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    return {"orders": n, "rate": n / (time.perf_counter() - start), **percentiles(lat),
            "server_cpu": _cpu_per_order(before, server.cpu_seconds(), n),
            "client_cpu": (time.process_time() - cpu) / n * 1e3}


def run(name: str, url: str, n: int, paced_seconds: float,
        console: Console) -> list[tuple[str, dict]]:
    rows = []
    p, user_id = _platform(url)
    try:
        rows.append((f"{name}: bare commit (floor)", commit_floor(p)))
        service_run(p, user_id, min(200, n))   # warm-up
        rows.append((f"{name}: service call", service_run(p, user_id, n)))
        rows.append((f"{name}: service call, 64 threads",
                     service_run(p, user_id, 2 * n, threads=64)))
        server = Server(url)
        try:
            token = httpx.post(f"http://127.0.0.1:{server.port}/auth/login",
                               json={"username": "bench", "password": PASSWORD}
                               ).json()["access_token"]
            loadgen(server, token, min(200, n), 1)      # warm-up
            rows.append((f"{name}: HTTP, 4 clients, httpx threads (old generator)",
                         httpx_closed_loop(server, token, n, 4)))
            paced = int(2000 * paced_seconds)
            for proto, ws in (("HTTP", False), ("WebSocket", True)):
                for clients in (1, 4, 16):
                    rows.append((f"{name}: {proto}, {clients} client{'s' * (clients > 1)}",
                                 loadgen(server, token, n, clients, ws=ws)))
                for clients in (8, 64):
                    rows.append((f"{name}: {proto} paced at 2,000/s, {clients} clients",
                                 loadgen(server, token, paced, clients, rate=2000, ws=ws)))
        finally:
            server.close()
    finally:
        p.close()
    console.print(f"[dim]{name} done[/dim]")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tick2trade.bench.platform", description=__doc__)
    parser.add_argument("--orders", type=int, default=1000,
                        help="orders per closed-loop measurement")
    parser.add_argument("--paced-seconds", type=float, default=1.0,
                        help="length of the paced (2,000 orders/s offered) run")
    parser.add_argument("--serve", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    console = Console(width=max(150, Console().width))
    results = []
    with tempfile.TemporaryDirectory(prefix="t2t-bench-") as tmp:
        results += run("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}", args.orders,
                       args.paced_seconds, console)
    pg = os.environ.get("T2T_BENCH_POSTGRES_URL") or os.environ.get("T2T_TEST_POSTGRES_URL")
    if pg:
        results += run("PostgreSQL", _postgres_schema(pg), args.orders, args.paced_seconds,
                       console)
    machine = f"{host.machine()}, {os.cpu_count()} cores"
    table = Table(title=f"order placement with durable write ({machine})")
    for col in ("path", "requests", "per second", "p50 ms", "p99 ms", "max ms",
                "server CPU ms/order", "client CPU ms/order"):
        table.add_column(col, justify="left" if col == "path" else "right")
    cpu = lambda v: "" if v is None else f"{v:.2f}"
    for name, r in results:
        if "failed" in r:
            table.add_row(name, f"{r['orders']:,}", f"failed: {r['failed'][:60]}",
                          "", "", "", "", "")
            continue
        table.add_row(name, f"{r['orders']:,}", f"{r['rate']:,.0f}", f"{r['p50']:.2f}",
                      f"{r['p99']:.2f}", f"{r['max']:.1f}", cpu(r.get("server_cpu")),
                      cpu(r.get("client_cpu")))
    if not pg:
        table.add_row("PostgreSQL", "not run (set T2T_BENCH_POSTGRES_URL)", "", "", "", "",
                      "", "")
    console.print(table)


if __name__ == "__main__":
    main()
