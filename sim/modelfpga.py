"""The golden models of the trade path chained into a stand-in for ``TopSim``: frames in,
order frames out, and the few registers the host engine writes.

Receive path (``models.rx.rx_path.RxPathModel``) → book (``models.book.BookModel``, its
prints into ``models.control.events.TradeTapModel``) → strategy
and risk (``models.trade.strategy`` and ``models.trade.risk``) → order entry (``models.trade.ouch_tx.OuchTxModel``), in the
order the gateware applies them: an event first, then the book updates it caused. The
venue's answers (datagrams to the order port) go through ``models.ouch_rx.OuchRxModel``:
its reports into the risk model at once, its records out as event frames. That
order is the gateware's exactly when each frame holds one ITCH message and the pipeline
is idle before the next frame arrives (``sim.loop``'s ``one_message_per_packet`` mode with
its idle gap); with packets of many messages the strategy may see a book update a cycle
later than the model assumes, so only that mode is compared byte for byte.

Every decision of the gate is kept as ``risk.decisions`` records (up to the gateware's
FIFO depth; more are lost and counted, as there) for ``pop_fifo_many``/``drain_fifo``.

Time does not exist here: the risk gate decides at cycle 0, so a configuration compared
against this model must leave the time-based checks (rates, duplicate window, watchdog)
off. ``cycles`` only counts beats and idle cycles, for the loop's bookkeeping.
"""

from __future__ import annotations

from tick2trade.protocol import control

from tick2trade.gateware.models.trade import strategy as trade

from tick2trade.gateware.models.trade.risk import REASONS, Risk
from tick2trade.protocol import frames
from tick2trade.gateware.models.trade import ouch_tx as order_tx
from tick2trade.gateware.models.book import BUY, SELL, BookModel
from tick2trade.gateware.models.control.events import BookTapModel, TradeTapModel
from tick2trade.gateware.models.trade.ouch_rx import OuchRxModel
from tick2trade.protocol.regmap import RegisterMap
from tick2trade.gateware.models.rx.eth_rx import RxConfig
from tick2trade.gateware.models.rx.rx_path import RxPathModel
from tick2trade.host.config import Config

BOOK_TOP, BOOK_DEPTH, BOOK_CAPACITY, BOOK_WAYS = 8, 16, 16384, 4  # gateware.top's book
DECISION_DEPTH = 64  # gateware.risk.Risk's decision FIFO


class ModelFpga:
    """Frames in, order frames out; ``write_many``/``read_many`` for the registers the
    engine uses (anything else is an error, so a new register cannot be silently
    ignored here)."""

    WRITABLE = ("risk.report", "risk.report_stb", "risk.heartbeat", "strategy.inject",
                "strategy.inject_stb", "ouch_tx.cancel_floor", "risk.limits.kill",
                "risk.kill_reset", "ouch_rx.to_gate", "ctl.event_enable", "ctl.event_mac",
                "ctl.event_ip", "ctl.event_port", "book_stream.enable",
                "trade_stream.enable", "book.peek_select")

    def __init__(self, cfg: Config, regmap: RegisterMap, symbols: int, data_width: int = 64,
                 src_mac: bytes = bytes.fromhex("020000000002"), src_port: int = 40001):
        self.map = regmap
        self.lanes = data_width // 8
        v = cfg.venue
        rx = RxConfig.default(watch=cfg.watch)
        rx.ouch_port = v.get("src_port", src_port)
        self.rx = RxPathModel(rx)
        self.src_mac, self.ctl_ip, self.ctl_port = src_mac, rx.ctl_ip, rx.ctl_port
        self.ouch_port = rx.ouch_port
        self.answers = OuchRxModel(v["venue_ip"], v["venue_port"])
        ev = cfg.events or {"enable": False, "mac": 0, "ip": 0, "port": 0}
        self.events = {f"ctl.event_{k}": int(x) for k, x in ev.items()}
        self._event_seq = 0
        self.book = BookModel(BOOK_TOP, depth=BOOK_DEPTH, capacity=BOOK_CAPACITY,
                              ways=BOOK_WAYS, keep_prints=True)
        self.book_tap = BookTapModel()
        self.trade_tap = TradeTapModel()
        self.book_tap.channel = self.trade_tap.channel = bool(self.events["ctl.event_enable"])
        self.peek_select = 0
        self.strategy = trade.Strategy(symbols)
        for sym, entry in cfg.triggers.items():
            self.strategy.write(sym, entry)
        self.risk = Risk(symbols, cfg.limits())
        self.watch = cfg.watch
        self.tx = order_tx.OuchTxModel(order_tx.TxConfig(
            v["venue_mac"].to_bytes(6, "big"), v["venue_ip"], v["venue_port"], src_mac,
            rx.ctl_ip, v.get("src_port", src_port)))
        self.cycles = 0
        self.pending: list[bytes] = []  # frames sent outside run() (host injections)
        self.decisions: list[dict[str, int]] = []  # risk.decisions, not yet popped
        self._staged: dict[str, int] = {}

    # -- frames ---------------------------------------------------------------------------

    def run(self, frames: list[bytes], idle: int = 0, quiet: int = 64) -> list[bytes]:
        out: list[bytes] = []
        for frame in frames:
            self.cycles += -(-len(frame) // self.lanes) + idle
            before, answers = len(self.rx.events), len(self.rx.ouch)
            self.rx.process(frame)
            for dg in self.rx.ouch[answers:]:
                out += self._answers(dg)
            for ev in self.rx.events[before:]:
                intents = self.strategy.cycle(event=ev)
                updates = self.book.apply(ev)
                # a print leaves the book before the update of the same event
                records = [self.trade_tap.tap(p) for p in self.book.take_prints()]
                for up in updates:
                    intents += self.strategy.cycle(update=up)
                    records.append(self.book_tap.tap(up))
                out += [f for it in intents if (f := self._decide(it)) is not None]
                out += [self._event(r) for r in records if r is not None]
        self.cycles += quiet
        return out

    def step(self, cycles: int) -> list[bytes]:
        self.cycles += cycles
        return []

    def _answers(self, dg) -> list[bytes]:
        """A datagram to the order port: its reports into the gate, its records out
        (one event frame each, as the control endpoint sends them)."""
        before = len(self.answers.records)
        for r in self.answers.datagram(dg.src_ip, dg.src_port, dg.payload):
            self.risk.report(r.sym, r.side, r.filled, r.canceled, bool(r.closed), r.released)
        out = []
        for a, gate, closed in self.answers.records[before:]:
            if not self.events["ctl.event_enable"]:
                continue  # the gateware keeps them in the ouch_rx.answers FIFO register
            out.append(self._event(control.AnswerEvent(a.type, a.user_ref, a.quantity,
                                                       a.price, a.code, a.ref, a.tif, gate,
                                                       closed)))
        return out

    def _event(self, record) -> bytes:
        """One event frame, as the control endpoint sends it (a record a frame)."""
        frame = frames.build_udp_frame(
            self.events["ctl.event_ip"], self.events["ctl.event_port"],
            control.encode_events(self._event_seq, [record]), src_ip=self.ctl_ip,
            src_port=self.ctl_port, src_mac=self.src_mac,
            dst_mac=self.events["ctl.event_mac"].to_bytes(6, "big"))
        self._event_seq += 1
        return frame

    def _decide(self, it: trade.Intent) -> bytes | None:
        why = self.risk.check(it, 0)
        if len(self.decisions) < DECISION_DEPTH:
            self.decisions.append({
                "sym": it.sym, "side": it.side, "source": trade.SOURCES.index(it.source),
                "cancel": int(it.cancel), "reason": REASONS.index(why),
                "price": it.price, "quantity": it.quantity, "t_decide": 0})
        else:
            self.risk.counters["decisions_lost"] += 1
        if why != "pass":
            return None
        if it.cancel:
            order = order_tx.Order(cancel=True, user_ref=it.user_ref, quantity=it.quantity)
        else:
            order = order_tx.Order(side="BS"[it.side], quantity=it.quantity,
                                   stock=self.watch[it.sym], price=it.price,
                                   tif=chr(it.tif), tag=it.tag, sym=it.sym)
        user_ref, frame = self.tx.send(order)
        if not it.cancel:  # what ouch_rx's order table learns as the Enter leaves
            self.answers.table.sent(user_ref, it.sym, it.side, it.price, it.quantity)
        return frame

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
            elif name == "ouch_rx.to_gate":
                self.answers.to_gate = bool(value)
            elif name.startswith("ctl.event_"):
                self.events[name] = value
                self.book_tap.channel = self.trade_tap.channel = \
                    bool(self.events["ctl.event_enable"])
            elif name == "book_stream.enable":
                self.book_tap.enable = bool(value)
            elif name == "trade_stream.enable":
                self.trade_tap.enable = bool(value)
            elif name == "book.peek_select":
                self.peek_select = value
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
            elif name == "risk.status.tripped":  # the host's switch is bit 0, as there
                out[name] = self.risk.tripped | int(self.risk.limits.kill)
            elif name == "risk.status.open_orders":
                out[name] = self.risk.open_orders
            elif name == "risk.status.gross":
                out[name] = self.risk.gross
            elif name == "risk.status.breaches":
                out[name] = self.risk.breaches
            elif name == "sys.alarms":
                out[name] = 0
            elif name.startswith("ouch_rx.counters."):
                out[name] = self.answers.counters[name.removeprefix("ouch_rx.counters.")]
            elif name == "ctl.mac":
                out[name] = int.from_bytes(self.src_mac, "big")
            elif name == "ouch_tx.src_port":
                out[name] = self.ouch_port
            elif name == "book_stream.seq":
                out[name] = self.book_tap.seq
            elif name.startswith("book_stream.counters."):
                out[name] = self.book_tap.counters[name.removeprefix("book_stream.counters.")]
            elif name == "trade_stream.seq":
                out[name] = self.trade_tap.seq
            elif name.startswith("trade_stream.counters."):
                out[name] = self.trade_tap.counters[
                    name.removeprefix("trade_stream.counters.")]
            elif name.startswith("book.peek."):
                out[name] = self._peek()[name.removeprefix("book.peek.")]
            else:
                raise KeyError(f"{name}: not modelled by ModelFpga")
        return out

    def read(self, name: str) -> int:
        return self.read_many([name])[name]

    def counters(self) -> dict[str, int]:
        """The counters the models keep, named as the register map names them."""
        return {**{f"risk.counters.{k}": v for k, v in self.risk.counters.items()},
                **{f"strategy.counters.{k}": v for k, v in self.strategy.counters.items()},
                **{f"ouch_rx.counters.{k}": v for k, v in self.answers.counters.items()},
                **{f"book_stream.counters.{k}": v for k, v in self.book_tap.counters.items()},
                **{f"trade_stream.counters.{k}": v
                   for k, v in self.trade_tap.counters.items()}}

    def _peek(self) -> dict[str, int]:
        """``book.peek``: the level row of the selected (symbol, side), as the book's
        level store holds it (``peek_select`` is (side, sym), side in bit 0)."""
        sym, side = self.peek_select >> 1, SELL if self.peek_select & 1 else BUY
        st = self.book.sides.get((sym, side))
        levels = sorted(st.levels.items(), reverse=side == BUY) if st else []
        out = {"count": len(levels), "limited": int(bool(st and st.limit is not None)),
               "limit": (st.limit or 0) if st else 0, "untracked": st.untracked if st else 0}
        for i in range(BOOK_DEPTH):
            price, (shares, orders) = levels[i] if i < len(levels) else (0, (0, 0))
            out.update({f"levels[{i}].price": price, f"levels[{i}].shares": shares,
                        f"levels[{i}].orders": orders})
        return out

    def pop_fifo_many(self, name: str, count: int) -> list[dict[str, int]]:
        if name != "risk.decisions":
            return []  # no telemetry without cycles
        got, self.decisions[:count] = self.decisions[:count], []
        return got

    def drain_fifo(self, name: str) -> list[dict[str, int]]:
        return self.pop_fifo_many(name, DECISION_DEPTH)
