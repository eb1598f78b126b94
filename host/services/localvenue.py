"""A venue simulator in a child process, for ``t2t api`` on a machine with no exchange.

The host floor does not import the simulator (a host beside a real board needs neither
Verilator nor the venue), so the venue runs as ``t2t venue`` in its own process, with a
configuration written here: unicast lines on loopback (no multicast route needed), the
retransmission server, OUCH over SoupBinTCP on TCP, requests for quote on their own port
(``protocol.rfq``), and a session name of its own per
start, so a session resumed from a state file never mistakes a new venue for the old.
Its output goes to ``venue.log`` beside the configuration.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

Address = tuple[str, int]


def die_with_parent() -> None:
    """In the child before exec: on Linux, SIGTERM when its parent dies (even by
    SIGKILL), so no child is left holding the ports; elsewhere a no-op."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nobody listens on right now (tests; a race is possible, and harmless there)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(address: Address) -> bool:
    try:
        with socket.create_connection(address, timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class VenuePorts:
    orders: Address = ("127.0.0.1", 15000)
    line_a: Address = ("127.0.0.1", 26477)
    line_b: Address = ("127.0.0.1", 26479)
    retransmit: Address = ("127.0.0.1", 26478)
    rfq: Address = ("127.0.0.1", 15002)

    @classmethod
    def ephemeral(cls) -> VenuePorts:
        udp = socket.SOCK_DGRAM
        return cls(("127.0.0.1", free_port()), ("127.0.0.1", free_port(udp)),
                   ("127.0.0.1", free_port(udp)), ("127.0.0.1", free_port(udp)),
                   ("127.0.0.1", free_port()))


@dataclass
class LocalVenue:
    """``t2t venue`` as a child process; :meth:`start` returns once its order port
    answers, :meth:`stop` ends its day (SIGINT: DAY orders cancelled and published)."""

    workdir: Path
    ports: VenuePorts = field(default_factory=VenuePorts)
    rate: float = 200.0
    seed: int | None = None
    session: str = ""
    quote_ttl_ms: int | None = None     # None: the venue's default

    def __post_init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.session = self.session or f"L{int(time.time()) % 10**9:09d}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "venue.toml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "venue.log"

    def config_text(self) -> str:
        p = self.ports

        def addr(a: Address) -> str:
            return f'"{a[0]}:{a[1]}"'

        return "\n".join([
            "# written by t2t api: the local venue simulator's configuration",
            "[venue]", f'session = "{self.session}"',
            "[feed]", f"line_a = {addr(p.line_a)}", f"line_b = {addr(p.line_b)}",
            f"retransmit = {addr(p.retransmit)}",
            "[order_entry]", f"tcp = {addr(p.orders)}", 'udp = "off"',
            "[rfq]", f"tcp = {addr(p.rfq)}",
            *([f"quote_ttl_ms = {self.quote_ttl_ms}"] if self.quote_ttl_ms else []),
            "[flow]", f"rate = {self.rate}",
            *([f"seed = {self.seed}"] if self.seed is not None else []), ""])

    def start(self, timeout: float = 30.0) -> None:
        if listening(self.ports.orders):
            raise RuntimeError(
                f"something already listens on {self.ports.orders[0]}:{self.ports.orders[1]}"
                " (another venue?): use it with --venue HOST:PORT, or stop it")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())
        log = self.log_path.open("wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tick2trade.cli", "venue", "--config",
             str(self.config_path)], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=env,
            # its own process group: a Ctrl-C at the terminal reaches t2t api, which
            # logs out of the order session first and then ends the venue's day
            start_new_session=True, preexec_fn=die_with_parent)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the venue simulator exited (rc {self.process.returncode})"
                                   f": {self._log_tail()}")
            if listening(self.ports.orders) and listening(self.ports.rfq):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the venue simulator did not open its order port in {timeout:g}"
                           f" s: {self._log_tail()}")

    def stop(self, timeout: float = 10.0) -> int | None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def _log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"
