"""The host floor: what runs beside a real board (device drivers, configuration, engine,
trading services, API, CLI). Imports the gateware and protocol floors, never sim.
"""

if __name__ != "tick2trade.host":
    # This folder is a subpackage of the installed tick2trade (pyproject.toml maps it);
    # imported as a top-level "host" it would be a second copy of every module in it.
    raise ImportError(f"import tick2trade.host, not {__name__} (see docs/design.md)")
