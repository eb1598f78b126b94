"""The gateware floor: Amaranth stages in pipeline order, their golden models
(``models/``), the top level and the board platforms. Imports only the protocol floor.
"""

if __name__ != "tick2trade.gateware":
    # This folder is a subpackage of the installed tick2trade (pyproject.toml maps it);
    # imported as a top-level "gateware" it would be a second copy of every module in it.
    raise ImportError(f"import tick2trade.gateware, not {__name__} (see docs/design.md)")
