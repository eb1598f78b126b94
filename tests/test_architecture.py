"""The floors hold: import-linter's contracts in pyproject.toml pass, a back-edge breaks
them, and the host's board commands load nothing of the simulator."""

import json
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
CONTRACTS = ("floors:", "the venue simulator", "no stage imports another stage")


def _lint() -> subprocess.CompletedProcess:
    # --no-cache: the probe below must be seen however recently the last run cached the graph
    return subprocess.run([str(LINT), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_contracts_are_kept_and_a_back_edge_breaks_them():
    """One test, not two, so that no other worker lints while the probe is on disk."""
    run = _lint()
    assert run.returncode == 0, run.stdout + run.stderr
    for name in CONTRACTS:
        assert any(line.startswith(name) and line.endswith("KEPT")
                   for line in run.stdout.splitlines()), (name, run.stdout)

    # The protocol floor importing the host: the floors contract must name that edge.
    probe = ROOT / "protocol" / f"_probe_{uuid.uuid4().hex}.py"
    probe.write_text("import tick2trade.host  # a deliberate back-edge (tests/test_architecture.py)\n")
    try:
        run = _lint()
    finally:
        probe.unlink()
    assert run.returncode != 0, run.stdout
    assert f"tick2trade.protocol.{probe.stem} -> tick2trade.host" in run.stdout, run.stdout
    assert any(line.startswith("floors:") and line.endswith("BROKEN")
               for line in run.stdout.splitlines()), run.stdout


def test_the_independence_contract_catches_a_stage_importing_a_stage(tmp_path):
    """The contract of pyproject.toml, with one module added that does import stages (the
    receive path, a composition of eth_rx, moldudp and itch): it must come out broken, so
    the contract is not one that passes whatever the code does."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c["type"] == "independence")
    modules = [*contract["modules"], "tick2trade.gateware.rx.rx_path"]
    (tmp_path / "probe.toml").write_text(
        "[tool.importlinter]\n"
        f"root_packages = {json.dumps(config['root_packages'])}\n"
        "[[tool.importlinter.contracts]]\n"
        'name = "stages and the receive path"\n'
        'type = "independence"\n'
        f"modules = {json.dumps(modules)}\n")
    run = subprocess.run([str(LINT), "--no-cache", "--config", str(tmp_path / "probe.toml")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0, run.stdout
    assert "tick2trade.gateware.rx.rx_path -> tick2trade.gateware.rx.itch" in run.stdout, \
        run.stdout


def test_board_commands_load_no_simulator():
    """`t2t status --help` (and every board command's module) without Verilator, cocotb
    or any tick2trade.sim module in the process."""
    code = ("import sys\n"
            "from tick2trade.cli import main\n"
            "try:\n"
            "    main(['status', '--help'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "import tick2trade.host.cli.device, tick2trade.host.cli.trade\n"
            "import tick2trade.host.cli.platform, tick2trade.host.cli.hardware\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('tick2trade.sim', 'cocotb',"
            " 'verilator', 'tick2trade.testing')))\n"
            "print('LOADED', bad)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "LOADED []" in run.stdout, run.stdout
