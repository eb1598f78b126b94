"""``t2t api`` in a child process on loopback, for tests and benchmarks that need the real
server (its local venue included) rather than the app in-process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tick2trade.host.services.localvenue import free_port


def start_api(tmp_path, *args, port: int | None = None, output=subprocess.PIPE,
              env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """`t2t api` in a child process on free loopback ports (its local venue's too; the
    API's may be given, to restart a server where its clients expect it); returns it and
    its base URL once /openapi.json answers. Its output is kept for ``stop_api`` (a long
    run that nobody reads passes ``output=subprocess.DEVNULL``). ``env`` adds to or
    overrides its environment."""
    port = port or free_port()
    local = ":".join(str(free_port(kind)) for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM,
                                                      socket.SOCK_DGRAM, socket.SOCK_DGRAM))
    # the checkout under test, not whatever copy the venv has installed
    # the state folder is named, never the default in the home directory; a test that
    # gives its own (two servers sharing one secret, a config file) overrides these
    env = {**os.environ, "T2T_DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}",
           "T2T_VAR_DIR": str(tmp_path / "var"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **(env or {})}
    proc = subprocess.Popen([sys.executable, "-c", "from tick2trade.cli import main; main()",
                             "api", "--port", str(port), "--local-ports", local, *args],
                            cwd=tmp_path, env=env, stdout=output,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/openapi.json").status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    said = proc.stdout.read().decode()[-3000:] if proc.stdout else "(output not kept)"
    raise AssertionError(f"t2t api did not start: {said}")


def stop_api(proc: subprocess.Popen) -> str:
    """Stop it (SIGTERM, then SIGKILL after 20 s); what it printed."""
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out.decode(errors="replace")
