"""The ``t2t`` command line: one table of every command and the module it lives in.

A command is written in the floor that owns what it needs (``tick2trade.host.cli`` for
what runs beside a board, ``tick2trade.sim.cli`` for what needs the simulator) and named
here once; its module is imported only when the command runs or ``t2t --help`` lists it,
so ``t2t status`` never loads the simulator.
"""

if __name__ != "tick2trade.cli":
    # This folder is a subpackage of the installed tick2trade (pyproject.toml maps it);
    # imported as a top-level "cli" it would be a second copy of every module in it.
    raise ImportError(f"import tick2trade.cli, not {__name__} (see docs/design.md)")

from tick2trade.host.cli.lazy import LazyGroup  # noqa: E402 (after the guard)

COMMANDS = {
    # beside a board
    "status": "tick2trade.host.cli.device:status",
    "counters": "tick2trade.host.cli.device:counters",
    "config": "tick2trade.host.cli.device:config",
    "book": "tick2trade.host.cli.device:book",
    "risk": "tick2trade.host.cli.trade:risk",
    "kill": "tick2trade.host.cli.trade:kill",
    "latency": "tick2trade.host.cli.trade:latency",
    "verilog": "tick2trade.host.cli.gateware:verilog",
    "regmap": "tick2trade.host.cli.gateware:regmap",
    "bitstream": "tick2trade.host.cli.hardware:bitstream",
    "flash": "tick2trade.host.cli.hardware:flash",
    "api": "tick2trade.host.cli.platform:api",
    "audit": "tick2trade.host.cli.platform:audit",
    "db": "tick2trade.host.cli.platform:db",
    "users": "tick2trade.host.cli.platform:users",
    "history": "tick2trade.host.cli.history:history",
    "worker": "tick2trade.host.cli.worker:worker",
    # with the simulator
    "run": "tick2trade.sim.cli.run:run",
    "replay": "tick2trade.sim.cli.replay:replay",
    "sim": "tick2trade.sim.cli.device:sim",
    "venue": "tick2trade.sim.cli.venue:venue",
}

main = LazyGroup(name="t2t", commands=COMMANDS,
                 help="tick2trade: FPGA tick-to-trade — gateware, simulation and host tools.")
