"""The ``t2t`` commands that run beside a real board: the device's operator view
(``device``), the trade path (``trade``), what the gateware generates (``gateware``), a
board's bitstream (``hardware``) and the host platform (``platform``).

None of them imports the simulator. The commands are listed, by name, in
``tick2trade.cli.COMMANDS``; the options they share are in ``options``, the way they
reach a device in ``connect``.
"""
