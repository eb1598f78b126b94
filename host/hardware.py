"""Real boards from the host: build a bitstream, load it with openFPGALoader.

openFPGALoader is Debian's package (``apt-get install openfpgaloader``), not a pip one;
``OPENFPGALOADER`` names another binary (the variable amaranth-boards reads too).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tick2trade.gateware.platforms import board
from tick2trade.gateware.platforms.build import build_dir

# openFPGALoader's board names (``openFPGALoader --list-boards``)
LOADER_BOARDS = {"ecpix5": "ecpix5", "colorlight": "colorlight", "butterstick": "butterstick"}

# what openFPGALoader prints when it finds no cable or no FPGA behind it
NO_CABLE_SIGNS = ("unable to open ftdi device", "cable not found", "no cable",
                  "jtag init failed", "no device found", "fail to read idcode",
                  "usb_open", "libusb", "cannot find")


class HardwareError(Exception):
    """Something the user can fix; ``kind`` is ``tool``, ``bitstream`` or ``board``."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def default_bitstream(name: str, root: Path = Path("build")) -> Path:
    return build_dir(name, root) / f"t2t_{name}.bit"


def loader() -> str:
    """The openFPGALoader binary, or ``HardwareError("tool")`` saying how to get it."""
    command = os.environ.get("OPENFPGALOADER", "openFPGALoader")
    found = shutil.which(command)
    if found is None:
        raise HardwareError(
            f"{command} not found: install Debian's package (apt-get install openfpgaloader) "
            f"or set OPENFPGALOADER to its path", "tool")
    return found


@dataclass(frozen=True)
class Flashed:
    board: str
    bitstream: Path
    persistent: bool
    output: str


def flash_command(name: str, bitstream: Path, persistent: bool, binary: str,
                  cable: str | None = None) -> list[str]:
    return [binary, "-b", LOADER_BOARDS[name], *(["-c", cable] if cable else []),
            *(["-f"] if persistent else []), str(bitstream)]


def flash(name: str, bitstream: Path | None = None, persistent: bool = False,
          cable: str | None = None, timeout: float = 300) -> Flashed:
    """Load ``bitstream`` (default: the one ``t2t bitstream NAME`` wrote) into the board's
    FPGA, or into its SPI flash with ``persistent``, through ``cable`` (openFPGALoader's
    name for the JTAG adapter; boards without one built in, like the Colorlight, need
    it)."""
    board(name)
    path = bitstream or default_bitstream(name)
    if not path.is_file():
        hint = (f"build it with `t2t bitstream {name}` (or `make bitstream BOARD={name}`)"
                if bitstream is None else "give the path of a .bit file")
        raise HardwareError(f"no bitstream at {path}: {hint}", "bitstream")
    command = flash_command(name, path, persistent, loader(), cable)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        raise HardwareError(f"openFPGALoader did not finish in {timeout:.0f} s "
                            f"({' '.join(command)})", "board") from None
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        last = output.splitlines()[-3:] if output else ["(no output)"]
        lowered = output.lower()
        if "not default cable" in lowered:
            raise HardwareError(f"{name} has no built-in JTAG adapter: name yours with "
                                f"--cable (`openFPGALoader --list-cables`)", "board")
        cause = ("no cable or board found: check the USB cable, that the board is powered, "
                 "and that this user may open the USB device (`openFPGALoader --detect` "
                 "lists what it sees)"
                 if any(sign in lowered for sign in NO_CABLE_SIGNS)
                 else f"openFPGALoader failed (exit {done.returncode})")
        raise HardwareError(f"{cause}\n  " + "\n  ".join(last), "board")
    return Flashed(name, path, persistent, output)
