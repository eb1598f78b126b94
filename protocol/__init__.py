"""The protocol floor: pure-Python wire codecs (Ethernet/IPv4/UDP, MoldUDP64, ITCH 5.0,
SoupBinTCP, OUCH 5.0, the control protocol, the register map format, pcap). It imports
nothing else of the project, so the venue simulator and the host can use it alone.
"""

if __name__ != "tick2trade.protocol":
    # This folder is a subpackage of the installed tick2trade (pyproject.toml maps it);
    # imported as a top-level "protocol" it would be a second copy of every module in it.
    raise ImportError(f"import tick2trade.protocol, not {__name__} (see docs/design.md)")
