"""``EngineDevice``: the FPGA of ``t2t run`` as the platform's ``Device``
(``host.platform.device``), so the API's operator endpoints reach it under
``t2t run --api``: ``GET /operator/device`` (the gate's state), ``GET /operator/counters``
(every counter register, by block) and ``PUT /operator/kill-switch``, which sets the
gate's host kill switch (``risk.limits.kill``: no Enter passes, the strategy's nor the
users'; cancels still do) besides the platform's own, and cancels the FPGA account's
open orders. The run's configuration is its
``--config`` file, pushed once at start: ``PUT /operator/config`` is refused.
``tick_to_trade`` reads the gateware's histogram (``telemetry.histogram``,
``telemetry.hist_shift``, ``telemetry.ttt_max``) for ``GET /metrics``; its cycles are of
the run's ``device.clock_hz`` (default 156.25 MHz: a virtual FPGA has no clock of its
own, so the nominal 64-bit 10GbE core clock the run converts times with).

Everything that touches the device runs on the loop's thread, through the broker's
pump (``EngineBroker.on_loop``); an API request waits for it (a few milliseconds).
"""

from __future__ import annotations

from typing import Any

from tick2trade.host.engine_broker import EngineBroker
from tick2trade.host.services.device import DeviceRefused, TickToTrade
from tick2trade.host.services.status import TERMINAL

KIND = "virtual FPGA (t2t run)"
HISTOGRAM = "telemetry.histogram["


class EngineDevice:
    def __init__(self, broker: EngineBroker, loop) -> None:
        self.broker = broker
        self.loop = loop

    def status(self) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            eng = self.loop.engine
            st = eng.poll()
            return {"kind": KIND, "link": "up", "cycles": self.loop.now - self.loop.start,
                    "killed": bool(st["risk.status.killed"]),
                    "kill_causes": eng.kill_causes(),
                    "open_orders": st["risk.status.open_orders"],
                    "gross": st["risk.status.gross"], "alarms": st["sys.alarms"]}
        return self.broker.on_loop(read)

    def counters(self) -> dict[str, dict[str, int]]:
        def read() -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {}
            for name, value in self.loop.dev.counters().items():
                block, _, counter = name.partition(".counters.")
                out.setdefault(block, {})[counter] = value
            return out
        return self.broker.on_loop(read)

    def tick_to_trade(self) -> list[TickToTrade]:
        dev = self.loop.dev
        bins = [e.name for e in dev.map.entries if e.name.startswith(HISTOGRAM)]
        if not bins:
            return []

        def read() -> dict[str, int] | None:
            try:
                return dev.read_many([*bins, "telemetry.hist_shift", "telemetry.ttt_max"])
            except KeyError:   # a model without time keeps no histogram (sim.modelfpga)
                return None
        got = self.broker.on_loop(read)
        if got is None:
            return []
        return [TickToTrade(tuple(got[b] for b in bins), 1 << got["telemetry.hist_shift"],
                            got["telemetry.ttt_max"], float(self.loop.clock_hz))]

    def set_kill_switch(self, engaged: bool) -> None:
        """Set the gate's host kill switch; engaging it also cancels every open order of
        the FPGA account's through the gate (the platform cancels its users' and the
        rows it has of the account's, but the engine knows the ones sent since)."""
        def write() -> None:
            eng = self.loop.engine
            self.loop.dev.write("risk.limits.kill", int(engaged))
            self.loop.cfg.risk["limits.kill"] = int(engaged)  # what a resync restores
            if engaged:
                for o in list(eng.orders.values()):
                    if not o.client and o.state not in TERMINAL:
                        eng.cancel(o.user_ref, self.loop.now)
        self.broker.on_loop(write)

    def push_config(self, config: dict[str, Any]) -> dict[str, Any]:
        raise DeviceRefused("t2t run pushes its --config file once, at start: stop the run "
                            "and start it with the new file")
