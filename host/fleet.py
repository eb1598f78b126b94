"""Several FPGAs under one host: each trades a part of the symbols, one OMS for them all.

One FPGA's watch list caps the symbols it can trade (the build's ``symbols``). With
several, each device has its own partition of the symbols — its own watch list,
trigger table and risk gate — and the host keeps what spans them:

- **The partition** (:func:`partition`). The ``[[fpga]]`` tables of the configuration
  name each device's symbols (from ``symbols.watch``, none on two devices); without
  them the watch list is dealt round-robin in the order given: symbol ``k`` goes to
  device ``k mod N``. Each device gets the file's trigger for each of its symbols, the
  ``[risk]`` limits for its own gate, and an order port of its own (``src_port`` from
  its table, else ``venue.src_port`` + its index), so the venue tells their sessions
  apart.
- **One OMS** (:class:`FleetBroker`): an order goes to the ``EngineBroker`` of the
  device whose partition has its symbol (a symbol on none is rejected, saying which
  device trades what); a cancel follows its order.
- **Limits across devices**: ``risk.total_gross_notional`` bounds the gates' gross
  (``risk.status.gross``, what each gate holds against its own ``gross_notional``)
  summed over every device: an order that would take the sum above it is refused by
  the host before it reaches any gate. The strategies' own orders are bounded by each
  gate's limits only: the host sees them after they left. One kill switch
  (:class:`FleetDevice`) sets every gate's and cancels every device's open orders.
- **One view**: :meth:`FleetDevice.status` has the totals and an entry per device.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable
from typing import Any, TypeVar

from tick2trade.gateware.trade.ouch_tx import SRC_PORT
from tick2trade.host.config import Config, ConfigError
from tick2trade.host.engine_broker import EngineBroker
from tick2trade.host.engine_device import EngineDevice
from tick2trade.host.services.broker import BrokerEvents, OrderTicket
from tick2trade.host.services.device import DeviceRefused, TickToTrade
from tick2trade.host.services.money import px

T = TypeVar("T")


@dataclasses.dataclass
class Member:
    """One device of the fleet: its name and its part of the configuration."""

    name: str
    cfg: Config


def partition(cfg: Config, n: int | None = None, symbols: int | None = None,
              path: str = "<config>") -> list[Member]:
    """The devices of a run of ``n`` FPGAs (None: as many as ``[[fpga]]`` tables, else
    one), each with its configuration (see the module docstring); ``symbols`` is the
    build's watch-list size. One device without tables is ``cfg`` itself."""
    tables = cfg.fpgas
    if tables and n is not None and n != len(tables):
        raise ConfigError(path, [f"fpga: {len(tables)} [[fpga]] tables, but {n} FPGAs "
                                 f"asked for (--fpgas): give as many, or leave one out"])
    n = len(tables) if tables else n or 1
    if n < 1:
        raise ConfigError(path, [f"{n} FPGAs: at least one"])
    if not tables and n == 1:
        if symbols is not None and len(cfg.watch) > symbols:
            raise ConfigError(path, [f"symbols.watch: {len(cfg.watch)} stocks; this "
                                     f"bitstream has {symbols} symbols"])
        return [Member("fpga0", cfg)]
    if tables:
        parts = [(t.name, list(t.symbols), t.src_port) for t in tables]
    else:
        if len(cfg.watch) < n:
            raise ConfigError(path, [f"symbols.watch: {len(cfg.watch)} stocks for {n} "
                                     f"FPGAs: each needs one at least"])
        parts = [(f"fpga{k}", cfg.watch[k::n], None) for k in range(n)]
    problems = [f"{name}: {len(watch)} symbols; this bitstream has {symbols}"
                for name, watch, _ in parts if symbols is not None and len(watch) > symbols]
    if problems:
        raise ConfigError(path, problems)
    base = cfg.venue.get("src_port", SRC_PORT)
    taken = {port for _, _, port in parts if port is not None}
    free = (p for p in range(base, 65536) if p not in taken)
    return [Member(name, _part(cfg, watch, port if port is not None else next(free)))
            for name, watch, port in parts]


def _part(cfg: Config, watch: list[str], src_port: int) -> Config:
    """``cfg`` for a device trading ``watch``: triggers and restrictions renumbered."""
    index = {sym: k for k, sym in enumerate(watch)}
    triggers = {index[cfg.watch[sym]]: t for sym, t in cfg.triggers.items()
                if cfg.watch[sym] in index}
    risk = dict(cfg.risk)
    if "restricted" in risk:
        mask = risk["restricted"]
        risk["restricted"] = sum(1 << index[s] for k, s in enumerate(cfg.watch)
                                 if mask >> k & 1 and s in index)
    return dataclasses.replace(cfg, watch=list(watch), triggers=triggers, risk=risk,
                               venue={**cfg.venue, "src_port": src_port}, fpgas=[])


class FleetBroker:
    """The platform's broker over one ``EngineBroker`` per device (``brokers``, by
    name): see the module docstring. ``total_gross`` is the host's limit on the gates'
    gross summed over the devices (1/10000; 0: off)."""

    in_process = False
    venue = EngineBroker.venue

    def __init__(self, brokers: dict[str, EngineBroker], total_gross: int = 0) -> None:
        self.brokers = brokers
        self.total_gross = total_gross
        self.owner = {sym: b for b in brokers.values() for sym in b.engine.watch}
        self._orders: dict[int, EngineBroker] = {}  # order id → its device's broker
        for b in brokers.values():
            b.admit = self._admit

    def attach(self, events: BrokerEvents) -> None:
        self._events = events
        for b in self.brokers.values():
            b.attach(events)

    def submit(self, ticket: OrderTicket) -> None:
        broker = self.owner.get(ticket.symbol)
        if broker is None:
            where = "; ".join(f"{name} trades {', '.join(b.engine.watch)}"
                              for name, b in self.brokers.items())
            self._events.on_rejected(ticket.order_id, f"{ticket.symbol} is on no FPGA of "
                                                      f"this run ({where})")
            return
        self._orders[ticket.order_id] = broker
        broker.submit(ticket)

    def cancel(self, order_id: int) -> None:
        broker = self._orders.get(order_id) or next(
            (b for b in self.brokers.values() if b.fpga_orders(order_id) is not None),
            next(iter(self.brokers.values())))
        broker.cancel(order_id)

    def on_loop(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run ``fn`` on the loop's thread (every device's: one pump drives them all)."""
        return next(iter(self.brokers.values())).on_loop(fn, timeout)

    def gross(self) -> int:
        """The gates' gross, summed (on the loop's thread)."""
        return sum(b.engine.dev.read("risk.status.gross") for b in self.brokers.values())

    def _admit(self, ticket: OrderTicket, price: int) -> str | None:
        if not self.total_gross:
            return None
        held, notional = self.gross(), ticket.qty * price
        if held + notional <= self.total_gross:
            return None
        return (f"host limit across the FPGAs: their gates hold {px(held)} gross, this "
                f"order's {px(notional)} would take it above "
                f"risk.total_gross_notional ({px(self.total_gross)})")

    def pump(self, now: int) -> None:
        for b in self.brokers.values():
            b.pump(now)

    def close(self) -> None:
        for b in self.brokers.values():
            b.close()

    def settle(self) -> None:
        for b in self.brokers.values():
            b.settle()

    def in_flight(self) -> int:
        return sum(b.in_flight() for b in self.brokers.values())

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for b in self.brokers.values():
            for k, v in b.counts.items():
                out[k] = out.get(k, 0) + v
        return out


class FleetDevice:
    """Every device of the fleet as the platform's one ``Device``: the status has the
    totals and one entry per device (``devices``, by name, in the fleet's order: the
    web client's operator page shows each key), the counters are by device and block
    (``fpga0.risk``), the tick-to-trade histograms one per device, the kill switch is
    every gate's."""

    def __init__(self, devices: dict[str, EngineDevice]) -> None:
        self.devices = devices

    def status(self) -> dict[str, Any]:
        each = [{"name": name, "symbols": list(d.loop.engine.watch), **d.status()}
                for name, d in self.devices.items()]
        return {"kind": f"{len(each)} virtual FPGAs (t2t run --fpgas)",
                "link": "up" if all(d["link"] == "up" for d in each) else "down",
                "killed": any(d["killed"] for d in each),
                "kill_causes": sorted({c for d in each for c in d["kill_causes"]}),
                "open_orders": sum(d["open_orders"] for d in each),
                "gross": sum(d["gross"] for d in each),
                "alarms": functools.reduce(operator.or_, (d["alarms"] for d in each), 0),
                "cycles": max(d["cycles"] for d in each),
                "devices": {d.pop("name"): d for d in each}}

    def counters(self) -> dict[str, dict[str, int]]:
        return {f"{name}.{block}": values for name, d in self.devices.items()
                for block, values in d.counters().items()}

    def tick_to_trade(self) -> list[TickToTrade]:
        """Each device's histogram, named."""
        return [dataclasses.replace(h, device=name) for name, d in self.devices.items()
                for h in d.tick_to_trade()]

    def set_kill_switch(self, engaged: bool) -> None:
        for d in self.devices.values():
            d.set_kill_switch(engaged)

    def push_config(self, config: dict[str, Any]) -> dict[str, Any]:
        raise DeviceRefused("t2t run pushes its --config file once, at start: stop the run "
                            "and start it with the new file")
