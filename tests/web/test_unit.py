"""The client's own unit tests (web/test/*.test.ts: decimal prices, the book stream and
ladder, order-entry checks) under vitest, so `make test` and CI run them too."""

import os
import shutil
import subprocess

import pytest

from tests.web.conftest import ROOT


def test_vitest():
    web = ROOT / "web"
    if not (web / "node_modules" / ".bin" / "vitest").exists() or not shutil.which("npm"):
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the client's unit tests: web/node_modules is missing "
                        "(make setup runs npm ci)")
        pytest.skip("web/node_modules is missing: run make setup")
    r = subprocess.run(["npm", "test", "--silent"], cwd=web, capture_output=True, text=True,
                       check=False,
                       timeout=300, env={**os.environ, "CI": "true", "NO_COLOR": "1"})
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and " failed" not in r.stdout
