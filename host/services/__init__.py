"""The host platform: every service that is not latency-critical.

Storage (``db``), users and tokens (``auth``), the hash-chained audit trail (``audit``),
orders and their lifecycle behind a ``Broker`` (``orders``, ``paper``), positions and
P&L (``portfolio``), market data as the engine will feed it (``marketdata``),
notifications with a stored outbox (``notify``), the attached FPGA if any (``device``)
and the HTTP/WebSocket API on top of them (``api``). ``Platform`` (``platform``) wires
them together; tests build the same object with their own database and broker.
"""
