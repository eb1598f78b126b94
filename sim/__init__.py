"""The sim floor: what makes the FPGA and the exchange exist without hardware (Verilator
builds, the virtual FPGA, the venue simulator, the loop, replay) and their commands.
"""

if __name__ != "tick2trade.sim":
    # This folder is a subpackage of the installed tick2trade (pyproject.toml maps it);
    # imported as a top-level "sim" it would be a second copy of every module in it.
    raise ImportError(f"import tick2trade.sim, not {__name__} (see docs/design.md)")
