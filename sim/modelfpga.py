"""The golden models of the trade path chained into a stand-in for ``TopSim``: frames in,
order frames out, and the few registers the host engine writes.

Receive path (``models.rx.RxPathModel``) → book (``models.book.BookModel``) → strategy
and risk (``models.trade``) → order entry (``models.order_tx.OuchTxModel``), in the
order the gateware applies them: an event first, then the book updates it caused. That
order is the gateware's exactly when each frame holds one ITCH message and the pipeline
is idle before the next frame arrives (``sim.loop``'s ``one_message_per_packet`` mode with
its idle gap); with packets of many messages the strategy may see a book update a cycle
later than the model assumes, so only that mode is compared byte for byte.

Time does not exist here: the risk gate decides at cycle 0, so a configuration compared
against this model must leave the time-based checks (rates, duplicate window, watchdog)
off. ``cycles`` only counts beats and idle cycles, for the loop's bookkeeping.
"""

from __future__ import annotations

from gateware.models import order_tx, trade
from gateware.models.book import BookModel
from gateware.models.regmap import RegisterMap
from gateware.models.rx import RxConfig, RxPathModel
from host.config import Config

BOOK_TOP, BOOK_DEPTH, BOOK_CAPACITY, BOOK_WAYS = 8, 16, 16384, 4  # gateware.top's book


class ModelFpga:
    """Frames in, order frames out; ``write_many``/``read_many`` for the registers the
    engine uses (anything else is an error, so a new register cannot be silently
    ignored here)."""

    WRITABLE = ("risk.report", "risk.report_stb", "risk.heartbeat", "strategy.inject",
                "strategy.inject_stb", "ouch_tx.cancel_floor", "risk.limits.kill",
                "risk.kill_reset")

    def __init__(self, cfg: Config, regmap: RegisterMap, symbols: int, data_width: int = 64,
                 src_mac: bytes = bytes.fromhex("020000000002"), src_port: int = 40001):
        self.map = regmap
        self.lanes = data_width // 8
        rx = RxConfig.default(watch=cfg.watch)
        self.rx = RxPathModel(rx)
        self.book = BookModel(BOOK_TOP, depth=BOOK_DEPTH, capacity=BOOK_CAPACITY,
                              ways=BOOK_WAYS)
        self.strategy = trade.Strategy(symbols)
        for sym, entry in cfg.triggers.items():
            self.strategy.write(sym, entry)
        self.risk = trade.Risk(symbols, cfg.limits())
        self.watch = cfg.watch
        v = cfg.venue
        self.tx = order_tx.OuchTxModel(order_tx.TxConfig(
            v["venue_mac"].to_bytes(6, "big"), v["venue_ip"], v["venue_port"], src_mac,
            rx.ctl_ip, v.get("src_port", src_port)))
        self.cycles = 0
        self.pending: list[bytes] = []  # frames sent outside run() (host injections)
        self._staged: dict[str, int] = {}

    # -- frames ---------------------------------------------------------------------------

    def run(self, frames: list[bytes], idle: int = 0, quiet: int = 64) -> list[bytes]:
        out: list[bytes] = []
        for frame in frames:
            self.cycles += -(-len(frame) // self.lanes) + idle
            before = len(self.rx.events)
            self.rx.process(frame)
            for ev in self.rx.events[before:]:
                intents = self.strategy.cycle(event=ev)
                for up in self.book.apply(ev):
                    intents += self.strategy.cycle(update=up)
                out += [f for it in intents if (f := self._decide(it)) is not None]
        self.cycles += quiet
        return out

    def step(self, cycles: int) -> list[bytes]:
        self.cycles += cycles
        return []

    def _decide(self, it: trade.Intent) -> bytes | None:
        if self.risk.check(it, 0) != "pass":
            return None
        if it.cancel:
            order = order_tx.Order(cancel=True, user_ref=it.user_ref, quantity=it.quantity)
        else:
            order = order_tx.Order(side="BS"[it.side], quantity=it.quantity,
                                   stock=self.watch[it.sym], price=it.price,
                                   tif=chr(it.tif), tag=it.tag, sym=it.sym)
        return self.tx.send(order)[1]

    # -- registers ------------------------------------------------------------------------

    def write_many(self, values: dict[str, int]) -> None:
        for name, value in values.items():
            if name not in self.WRITABLE:
                raise KeyError(f"{name}: not modelled by ModelFpga")
            if name == "risk.report_stb" and value:
                r = self.map["risk.report"].decompose(self._staged.get("risk.report", 0))
                self.risk.report(r["sym"], r["side"], r["filled"], r["canceled"],
                                 bool(r["closed"]), r["released"])
            elif name == "strategy.inject_stb" and value:
                f = self.map["strategy.inject"].decompose(self._staged.get("strategy.inject", 0))
                it = trade.Intent(f["sym"], f["side"], f["price"], f["quantity"], f["tif"],
                                  f["tag"], 0, "host", bool(f["cancel"]), f["user_ref"])
                for intent in self.strategy.cycle(inject=it):
                    if (frame := self._decide(intent)) is not None:
                        self.pending.append(frame)
            elif name == "risk.limits.kill":
                self.risk.limits.kill = bool(value)
            elif name == "risk.kill_reset" and value:
                self.risk.reset_kill()
            else:
                self._staged[name] = value

    def write_sequence(self, pairs: list[tuple[str, int]]) -> None:
        for name, value in pairs:
            self.write_many({name: value})

    def write(self, name: str, value: int) -> None:
        self.write_many({name: value})

    def read_many(self, names) -> dict[str, int]:
        out = {}
        for name in names:
            if name.startswith("risk.counters."):
                out[name] = self.risk.counters[name.removeprefix("risk.counters.")]
            elif name == "risk.status.killed":
                out[name] = int(self.risk.killed())
            elif name == "risk.status.tripped":
                out[name] = self.risk.tripped
            elif name == "risk.status.open_orders":
                out[name] = self.risk.open_orders
            elif name == "risk.status.gross":
                out[name] = self.risk.gross
            elif name == "risk.status.breaches":
                out[name] = self.risk.breaches
            elif name == "sys.alarms":
                out[name] = 0
            else:
                raise KeyError(f"{name}: not modelled by ModelFpga")
        return out

    def read(self, name: str) -> int:
        return self.read_many([name])[name]

    def pop_fifo_many(self, name: str, count: int) -> list[dict[str, int]]:
        return []  # no telemetry without cycles
