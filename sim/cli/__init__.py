"""The ``t2t`` commands that need the simulator: ``run`` (the whole loop), ``replay`` (a
capture through the RTL), ``sim`` (the virtual FPGA as a server) and ``venue`` (the
exchange stand-in). Listed by name in ``tick2trade.cli.COMMANDS``."""
