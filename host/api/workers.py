"""``t2t api --workers N``: N API processes on one port.

The command's own process is a small supervisor: it starts N children, each the same
``t2t api`` command (without ``--workers``), each binding the port with
``SO_REUSEPORT`` so the kernel spreads connections over them, and restarts a child that
dies (one killed with ``kill -9`` loses the requests it was answering; an order it had
acknowledged is already committed). SIGTERM or SIGINT to the supervisor stops every
child (SIGTERM, then SIGKILL after ``STOP_TIMEOUT`` s); a supervisor killed outright
takes its children with it (``die_with_parent``).

The processes share only what is in PostgreSQL and Redis (``services/shared.py``), so
``t2t api`` refuses ``--workers`` without both (``requirements``). Only the first child
of the first start resumes the orders left open (``Orders.resume``): a child restarted
later must not cancel the orders the others are placing. The workers keep no market-data
history (its DuckDB file has one writer).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from tick2trade.host.api import serving
from tick2trade.host.services.localvenue import die_with_parent

STOP_TIMEOUT = 20.0
QUICK_EXIT = 5.0        # a child that ends sooner than this after its start failed to start
MAX_QUICK_EXITS = 3     # ... this many times in a row: the supervisor gives up


def requirements(postgres: bool, redis: bool, venue) -> list[str]:
    """Why ``--workers`` cannot run with these settings (empty: it can)."""
    problems = []
    if not postgres:
        problems.append("a PostgreSQL database (server.database_url or $T2T_DATABASE_URL; "
                        "SQLite is one process's)")
    if not redis:
        problems.append("Redis (server.redis_url or $T2T_REDIS_URL: rate limits, login "
                        "throttles, token revocations and pushes are shared there)")
    if venue != "off":
        problems.append("--venue off (the venue's order entry is one SoupBinTCP session "
                        "and its feed one set of UDP ports: one process can hold them)")
    return problems


def child_args(args: Sequence[str]) -> list[str]:
    """The command line of a child: ``args`` (the supervisor's, after ``api``) without
    ``--workers``."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == "--workers":
            skip = True
        elif not a.startswith("--workers="):
            out.append(a)
    return out


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket on (host, port) that other processes may bind too."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                         socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def serve_shared(app, host: str, port: int) -> None:
    """Serve ``app`` as ``serving.serve`` does, on a port shared with the other workers."""
    import uvicorn

    uvicorn.Server(serving.config(app, host, port)).run(sockets=[listen(host, port)])


def supervise(n: int, args: Sequence[str], say=print) -> int:
    """Run ``n`` children of ``t2t api args`` until SIGTERM/SIGINT; returns the exit code."""
    # the history store is one DuckDB file with one writer: the workers keep none
    base = [sys.executable, "-m", "tick2trade.cli", "api", *child_args(args), "--reuse-port",
            "--no-history"]
    stopping = False

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def spawn(first: bool) -> tuple[subprocess.Popen, float]:
        cmd = base if first else [*base, "--no-resume"]
        return subprocess.Popen(cmd, preexec_fn=die_with_parent), time.monotonic()

    children = [spawn(i == 0) for i in range(n)]
    say(f"t2t api: {n} workers, pids {', '.join(str(p.pid) for p, _ in children)}")
    quick = 0
    code = 0
    while not stopping:
        for i, (proc, started) in enumerate(children):
            status = proc.poll()
            if status is None:
                continue
            quick = quick + 1 if time.monotonic() - started < QUICK_EXIT else 0
            if quick >= MAX_QUICK_EXITS:
                say(f"t2t api: workers keep ending at start (worker {i} exit code {status});"
                    f" stopping")
                stopping, code = True, 1
                break
            children[i] = spawn(False)
            say(f"t2t api: worker {i} (pid {proc.pid}) ended with code {status}; "
                f"started pid {children[i][0].pid}")
        time.sleep(0.2)
    for proc, _ in children:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for proc, _ in children:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return code
