"""The platform's t2t commands: db upgrade, users set-role, audit on a real file, and
`t2t api` serving on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from tick2trade.cli import main
from tick2trade.host.services.auth import Users
from tick2trade.host.services.db import make_engine, session_factory


def test_db_upgrade_and_set_role(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade", "--db", url]).exit_code == 0
    engine = make_engine(url)
    users = Users(session_factory(engine), "s" * 32)
    users.register("root", "root@example.com", "correct horse battery")
    r = runner.invoke(main, ["users", "set-role", "root", "admin", "--db", url])
    assert r.exit_code == 0, r.output
    assert users.get(1).role == "admin"
    r = runner.invoke(main, ["users", "set-role", "ghost", "admin", "--db", url])
    assert r.exit_code == 2 and "no user 'ghost'" in r.output
    r = runner.invoke(main, ["audit", "verify", "--db", url])
    assert r.exit_code == 0 and "intact" in r.output and "2 records" in r.output
    engine.dispose()


def test_t2t_api_serves_openapi_and_register(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the checkout under test, not whatever copy the venv has installed
    env = {**os.environ, "T2T_DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}",
           "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    proc = subprocess.Popen([sys.executable, "-c", "from tick2trade.cli import main; main()",
                             "api", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                r = httpx.get(f"{base}/openapi.json")
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode()
                time.sleep(0.1)
        assert r.status_code == 200
        paths = r.json()["paths"]
        for path in ("/auth/register", "/auth/login", "/users/me", "/market/{symbol}/quote",
                     "/orders", "/orders/{order_id}", "/portfolio/positions",
                     "/portfolio/transactions", "/risk/limits", "/notifications",
                     "/notifications/preferences", "/operator/kill-switch"):
            assert path in paths, path
        assert httpx.get(f"{base}/docs").status_code == 200
        r = httpx.post(f"{base}/auth/register", json={"username": "zed", "password": "x" * 12,
                                                      "email": "z@example.com"})
        assert r.status_code == 201
        # the JWT secret is created once, private to its owner
        assert (tmp_path / "var" / "jwt-secret").stat().st_mode & 0o077 == 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
