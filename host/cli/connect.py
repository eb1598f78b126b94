"""How a ``t2t`` command reaches a device and reports what went wrong: the exit codes,
``open_device``, ``device_errors``, JSON output, and the risk gate's state that both
``t2t status`` and ``t2t risk`` show."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from tick2trade.gateware.models.trade.risk import KILL_CAUSES

# Exit codes a script can rely on (click itself uses 2 for usage errors).
EXIT_DIFFERENT = 1      # config diff: the device differs from the file
EXIT_DEVICE = 3         # unreachable, timed out, refused, or not the expected bitstream
EXIT_NOT_IN_BITSTREAM = 4
EXIT_CONFIG = 5         # the configuration file is invalid

# risk.status.tripped, bit by bit (interfaces.KillCause)
CAUSES = KILL_CAUSES


def fail(message: str, code: int) -> None:
    click.echo(f"t2t: {message}", err=True)
    raise SystemExit(code)


def open_device(endpoint: str, board: str | None, map_path: Path | None, timeout: float):
    """A connected Device; failures exit with EXIT_DEVICE and say why."""
    from tick2trade.host.device import BoardDevice, DeviceError, SimDevice
    from tick2trade.protocol.regmap import RegisterMap

    try:
        if board:
            if map_path is None:
                fail("--board needs --map: the register map JSON of its bitstream", 2)
            host, _sep, port = board.rpartition(":")
            if not port.isdigit():
                fail(f"--board {board!r}: expected HOST:PORT", 2)
            regmap = RegisterMap.from_json(json.loads(map_path.read_text()))
            dev = BoardDevice((host, int(port)), regmap, timeout=timeout)
        else:
            dev = SimDevice(endpoint, timeout=timeout, retries=1)
        return dev.connect()
    except DeviceError as exc:
        fail(str(exc), EXIT_DEVICE)


def device_errors(fn):
    """Device and config errors become a message and an exit code, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from tick2trade.host.config import ConfigError
        from tick2trade.host.device import DeviceError, NotInBitstream

        try:
            return fn(*args, **kwargs)
        except NotInBitstream as exc:
            fail(str(exc), EXIT_NOT_IN_BITSTREAM)
        except ConfigError as exc:
            fail(str(exc), EXIT_CONFIG)
        except DeviceError as exc:
            fail(str(exc), EXIT_DEVICE)
    return wrapper


def print_json(value) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def risk_state(dev) -> dict:
    """Limits, status and reject counters of the risk gate, as data."""
    from tick2trade.gateware.models.trade.risk import REASONS

    dev.require("risk", "risk limits")
    names = [e.name for e in dev.map.entries
             if e.name.startswith(("risk.limits.", "risk.status.", "risk.counters."))]
    values = dev.read_many(names + ["risk.restricted"])
    limits = {n.removeprefix("risk.limits."): v for n, v in values.items()
              if n.startswith("risk.limits.")}
    status = {n.removeprefix("risk.status."): v for n, v in values.items()
              if n.startswith("risk.status.")}
    counters = {n.removeprefix("risk.counters."): v for n, v in values.items()
                if n.startswith("risk.counters.")}
    return {"limits": limits, "restricted": values["risk.restricted"],
            "killed": bool(status["killed"]),
            "kill_causes": [c for i, c in enumerate(CAUSES) if status["tripped"] >> i & 1],
            "breaches": status["breaches"], "open_orders": status["open_orders"],
            "gross": status["gross"],
            "rejects": {r: counters[r] for r in REASONS if r != "pass"},
            "passed": counters["pass"], "cancels": counters["cancels"]}
