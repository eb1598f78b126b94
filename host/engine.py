"""The host engine: what the host does for the orders the FPGA sends.

The FPGA decides and sends; the host learns about each order twice — a copy of the OUCH
message as it left (``on_sent``: the order is *pending*) and the venue's answers, which
the gateware parses and forwards on the event channel (``on_answer``; ``on_response``
takes a decoded OUCH message) — and keeps, per UserRefNum,

    pending → accepted → partially_filled → filled
                       ↘ canceled   (also from pending and partially_filled)
    pending → rejected

with positions and realized/unrealized P&L per symbol (``host.platform.portfolio``'s
average-cost arithmetic, marked at the BBO mid). Every fill, cancel and reject is also
news the FPGA's risk gate needs: its position and open exposure per symbol, its open
order count and its gross notional. The gateware (``ouch_rx``) applies the answers of
the orders it knows itself, a few cycles after they arrive, and its record says so
(``gate``); the engine writes the report only for the others, through ``risk.report``
+ ``risk.report_stb`` (:meth:`HostEngine.flush_reports`, five reports to a control
request). Where the gateware applied one, the engine checks that it agrees on whether
the order is closed (``gate_disagrees`` otherwise). See docs/engine.md for the bounds.

Bad input never raises: an answer for a UserRefNum the engine never saw, an execution
beyond the order's quantity, a transition an order has already made — each is counted
in ``counters`` under its reason and otherwise ignored.

Whose order it is, the tag in its ClOrdID says: ``HOST_TAG`` the host's own
(flattening), ``CLIENT_TAGS`` the platform's users' (``host.engine_broker``: orders from the
API, each with a tag of its own), anything else the strategy's trigger table. Positions,
fills and P&L here are the FPGA account's (strategy and host); a client order's life goes
to ``listener`` instead, the platform keeps its user's position. The risk gate itself
has one position per symbol and counts them all.

The gate refuses an order without sending a byte, so the host learns of it only from
the gate's decision records (``risk.decisions``, one per intent, in the order the gate
took them, with no tag): with ``track_decisions`` the engine remembers what it injected
and matches each record of a host injection, in order, by its fields
(:meth:`HostEngine.on_decisions`).

Prices are integers in 1/10000, quantities integers, cycles the FPGA's clock.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Protocol

from tick2trade.gateware.models.trade import strategy as trade

from tick2trade.gateware.models.trade.risk import KILL_CAUSES, REASONS
from tick2trade.host.services.portfolio import PositionState, apply_fill
from tick2trade.host.services.status import TERMINAL, OrderStatus

REPORT_FIELDS = ("sym", "side", "filled", "canceled", "closed", "released")
REPORTS_PER_REQUEST = 5  # risk.report is 5 words + the strobe: 6 of a request's 32 ops
STATUS = ("risk.status.killed", "risk.status.tripped", "risk.status.breaches",
          "risk.status.open_orders", "risk.status.gross", "sys.alarms")
HOST_TAG = 0x4854  # the client tag of the host's own orders ("HT" in the ClOrdID)
CLIENT_TAGS = range(0x8000, 0x10000)  # tags of the platform's orders (one per order)
HOST_SOURCE = trade.SOURCES.index("host")  # a decision record's source of an injection
FLATTEN_WAIT = 20_000  # cycles a flatten order may take to show up before another is tried


@dataclass
class EngineOrder:
    user_ref: int
    symbol: str
    sym: int
    side: str  # "B" or "S"
    qty: int
    price: int
    tif: str
    sent_cycle: int
    state: OrderStatus = OrderStatus.PENDING
    filled: int = 0
    canceled: int = 0
    fill_cost: int = 0  # Σ fill qty × fill price
    venue_ref: int = 0
    cancel_sent: bool = False
    done_cycle: int | None = None
    tag: int = 0  # the ClOrdID's client tag: whose order it is

    @property
    def host(self) -> bool:
        """Sent by the host for itself (flattening)."""
        return self.tag == HOST_TAG

    @property
    def client(self) -> bool:
        """Sent by the host for a user of the platform."""
        return self.tag in CLIENT_TAGS

    @property
    def remaining(self) -> int:
        return self.qty - self.filled - self.canceled

    @property
    def avg_price(self) -> float:
        return self.fill_cost / self.filled if self.filled else 0.0


@dataclass
class Injection:
    """An intent the host wrote to ``strategy.inject``; ``reason`` is the gate's verdict
    (``models.REASONS``) once its decision record is matched."""

    sym: int
    side: int  # 0 buy, 1 sell
    price: int
    quantity: int
    tag: int
    cancel: bool = False
    cycle: int = 0  # loop time it was written at
    reason: str | None = None

    def matches(self, rec: dict[str, int]) -> bool:
        return (rec["sym"], rec["side"], rec["price"], rec["quantity"], rec["cancel"]) == \
            (self.sym, self.side, self.price, self.quantity, int(self.cancel))


class OrderListener(Protocol):
    """Told of what happens to client orders (``EngineOrder.client``), on the thread that
    drives the engine."""

    def order_sent(self, order: EngineOrder) -> None:
        """The Enter left the FPGA (the order has its UserRefNum now)."""

    def order_answered(self, order: EngineOrder, msg: dict) -> None:
        """The engine applied the venue's answer ``msg`` (A, E, C or J) to ``order``."""

    def injection_refused(self, injection: Injection) -> None:
        """The risk gate refused an injected enter (``injection.reason``)."""


@dataclass(frozen=True)
class Fill:
    user_ref: int
    symbol: str
    side: str
    qty: int
    price: int
    match: int
    cycle: int
    realized: int = 0  # P&L this fill realized (average cost)


@dataclass
class Report:
    """News for the risk gate (the fields of ``risk.report``)."""

    sym: int
    side: int
    filled: int = 0
    canceled: int = 0
    closed: int = 0
    released: int = 0
    made: int = 0  # the cycle of the answer it comes from
    applied: int | None = None  # the cycle by which the gate had it (after the write)
    requests: int = 0  # control requests of its flush up to and including its own


@dataclass
class SymbolBook:
    bid: int | None = None
    ask: int | None = None
    last: int | None = None

    def mark(self) -> int | None:
        if self.bid is not None and self.ask is not None:
            return (self.bid + self.ask) // 2
        return self.bid if self.bid is not None else self.ask if self.ask is not None \
            else self.last


@dataclass
class HostEngine:
    """Orders, positions and P&L of the FPGA's trading, and the risk gate kept informed.

    Parameters
    ----------
    watch:
        The symbols of the build, in the gateware's order (symbol ``i`` is ``watch[i]``).
    dev:
        The device (``host.device.Device`` or ``sim.modelfpga.ModelFpga``): registers by
        name.
    """

    watch: list[str]
    dev: object
    orders: dict[int, EngineOrder] = field(default_factory=dict)
    positions: dict[str, PositionState] = field(default_factory=dict)
    books: dict[str, SymbolBook] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)  # every report, in order
    counters: Counter = field(default_factory=Counter)
    status: dict[str, int] = field(default_factory=dict)
    latencies_ns: list[int] = field(default_factory=list)  # per answer processed
    listener: OrderListener | None = None
    track_decisions: bool = False  # remember injections for on_decisions
    awaiting: deque[Injection] = field(default_factory=deque)  # injections not yet decided
    _queue: list[Report] = field(default_factory=list)  # not yet written
    _floor: int = 1
    _flattening: dict[str, int] = field(default_factory=dict)  # symbol -> cycle asked

    def __post_init__(self):
        self.sym_of = {s: i for i, s in enumerate(self.watch)}

    # -- what the FPGA sent -------------------------------------------------------------

    def on_sent(self, msg: dict, cycle: int) -> None:
        """An OUCH Enter (``O``) or Cancel (``X``) message the FPGA sent."""
        kind = msg.get("type")
        self.counters[f"sent_{kind}"] += 1
        if kind == "X":
            order = self.orders.get(msg["user_ref"])
            if order is not None:
                order.cancel_sent = True
            return
        if kind != "O":
            self.counters["sent_unknown"] += 1
            return
        self._new_order(msg, cycle)

    def _new_order(self, msg: dict, cycle: int) -> None:
        if msg["user_ref"] in self.orders:
            self.counters["duplicate_user_ref"] += 1
            return
        symbol = msg["symbol"]
        if symbol not in self.sym_of:
            self.counters["unknown_symbol"] += 1
            return
        try:
            tag = int(msg.get("clordid", "")[1:5], 16)
        except ValueError:
            tag = 0
        order = self.orders[msg["user_ref"]] = EngineOrder(
            msg["user_ref"], symbol, self.sym_of[symbol], msg["side"], msg["quantity"],
            msg["price"], msg["tif"], cycle, tag=tag)
        if order.host:
            self._flattening.pop(symbol, None)
        elif order.client and self.listener is not None:
            self.listener.order_sent(order)

    # -- what the venue answered ----------------------------------------------------------

    def on_answer(self, ev, cycle: int) -> None:
        """One answer record of the event channel (``models.control.AnswerEvent``)."""
        self.on_response(ev.message(), cycle, gate=(ev.closed,) if ev.gate else None)

    def on_response(self, msg: dict, cycle: int, gate: tuple[int] | None = None) -> None:
        """One OUCH answer from the venue (decoded, ``protocol.ouch.decode_outbound``).
        ``gate`` is (closed,) when the gateware has applied it to the risk gate itself
        (closed: its report closed the order); the engine then writes no report."""
        start = time.perf_counter_ns()
        kind = msg["type"]
        self.counters[f"answer_{kind}"] += 1
        order = self.orders.get(msg.get("user_ref", -1))
        if kind == "A" and order is None and msg["symbol"] in self.sym_of:
            # no copy of it as it left (a lost mirror frame): the Accepted says it all
            self.counters["unseen_orders"] += 1
            self._new_order(msg, cycle)
            order = self.orders[msg["user_ref"]]
        if kind == "J":
            self.counters[f"venue_reject_{msg['reason']}"] += 1
        if kind == "S":
            pass
        elif order is None:
            self.counters["unknown_user_ref"] += 1
        elif kind == "A":
            if order.state == OrderStatus.PENDING:
                order.state = OrderStatus.ACCEPTED
                order.venue_ref = msg.get("order_ref", 0)  # records do not carry it
                self._tell(order, msg)
            else:
                self.counters["late_accepted"] += 1
        elif kind == "E":
            if self._executed(order, msg["quantity"], msg["price"], msg["match"], cycle, gate):
                self._tell(order, msg)
        elif kind == "C":
            if self._canceled(order, msg["quantity"], cycle, gate):
                self._tell(order, msg)
        elif kind == "J":
            if order.state == OrderStatus.PENDING:
                self._close(order, OrderStatus.REJECTED, cycle)
                self._report(order, canceled=order.qty, closed=True, cycle=cycle, gate=gate)
                self._tell(order, msg)
            else:  # a Cancel we sent for an order that had gone already
                self.counters["cancel_rejected"] += 1
        else:
            self.counters["answer_ignored"] += 1
        self.latencies_ns.append(time.perf_counter_ns() - start)

    def _tell(self, order: EngineOrder, msg: dict) -> None:
        if order.client and self.listener is not None:
            self.listener.order_answered(order, msg)

    def _executed(self, order: EngineOrder, qty: int, price: int, match: int,
                  cycle: int, gate: tuple[int] | None = None) -> bool:
        if order.state in TERMINAL or qty <= 0 or qty > order.remaining:
            self.counters["bad_execution"] += 1
            return False
        order.filled += qty
        order.fill_cost += qty * price
        self.book(order.symbol).last = price
        if order.client:  # the user's position, which the platform keeps
            self.counters["client_fills"] += 1
        else:
            signed = qty if order.side == "B" else -qty
            pos = self.positions.get(order.symbol, PositionState())
            self.positions[order.symbol], realized = apply_fill(pos, signed, price)
            self.fills.append(Fill(order.user_ref, order.symbol, order.side, qty, price,
                                   match, cycle, realized))
        done = order.remaining == 0
        if done:
            self._close(order, OrderStatus.FILLED, cycle)
        else:
            order.state = OrderStatus.PARTIALLY_FILLED
        self._report(order, filled=qty, closed=done, cycle=cycle, gate=gate)
        return True

    def _canceled(self, order: EngineOrder, qty: int, cycle: int,
                  gate: tuple[int] | None = None) -> bool:
        if order.state in TERMINAL or qty <= 0 or qty > order.remaining:
            self.counters["bad_cancel"] += 1
            return False
        order.canceled += qty
        done = order.remaining == 0
        if done:
            self._close(order, OrderStatus.CANCELED, cycle)
        self._report(order, canceled=qty, closed=done, cycle=cycle, gate=gate)
        return True

    def _close(self, order: EngineOrder, state: OrderStatus, cycle: int) -> None:
        order.state = state
        order.done_cycle = cycle

    def _report(self, order: EngineOrder, filled: int = 0, canceled: int = 0,
                closed: bool = False, cycle: int = 0,
                gate: tuple[int] | None = None) -> None:
        """Queue the gate's news of this answer, unless the gateware applied it itself
        (``gate`` = (closed,) from its record): then only check that both agree."""
        if gate is not None:
            self.counters["gate_reports"] += 1
            if gate[0] != int(closed):
                self.counters["gate_disagrees"] += 1
            return
        r = Report(order.sym, 0 if order.side == "B" else 1, filled, canceled, int(closed),
                   (filled + canceled) * order.price, made=cycle)
        self.reports.append(r)
        self._queue.append(r)

    # -- what the host writes ---------------------------------------------------------------

    def flush_reports(self, cycles=lambda: None) -> int:
        """Write the waiting reports (five per control request); returns how many.
        ``cycles()`` gives the device's cycle after each request: the record of when
        each report had reached the gate."""
        due, self._queue = self._queue, []
        self._update_floor()
        if not due:
            return 0
        entry = self.dev.map["risk.report"]
        for k in range(0, len(due), REPORTS_PER_REQUEST):
            chunk = due[k:k + REPORTS_PER_REQUEST]
            pairs = []
            for r in chunk:
                pairs += [("risk.report", entry.compose(**{f: getattr(r, f)
                                                           for f in REPORT_FIELDS})),
                          ("risk.report_stb", 1)]
            self.dev.write_sequence(pairs)
            done = cycles()
            for r in chunk:
                r.applied, r.requests = done, k // REPORTS_PER_REQUEST + 1
        self.counters["reports"] += len(due)
        return len(due)

    def _update_floor(self) -> None:
        """The watchdog's cancel-all sweep starts at the oldest order still open."""
        floor = min((o.user_ref for o in self.orders.values() if o.state not in TERMINAL),
                    default=max(self.orders, default=0) + 1)
        if floor != self._floor:
            self._floor = floor
            self.dev.write("ouch_tx.cancel_floor", floor)

    def heartbeat(self) -> None:
        self.dev.write("risk.heartbeat", 1)
        self.counters["heartbeats"] += 1

    def cancel(self, user_ref: int, now: int = 0) -> bool:
        """Ask the FPGA to cancel an open order (a host order through the risk gate)."""
        order = self.orders.get(user_ref)
        if order is None or order.state in TERMINAL or order.cancel_sent:
            return False
        self._inject(Injection(order.sym, 0 if order.side == "B" else 1, 0, 0, 0,
                               cancel=True, cycle=now), ord(order.tif), user_ref)
        order.cancel_sent = True
        self.counters["cancels_asked"] += 1
        return True

    def inject(self, symbol: str, side: str, qty: int, price: int, tif: str = "3",
               tag: int = HOST_TAG, now: int = 0) -> Injection:
        """A host order through the FPGA's risk gate, tagged ``tag`` in its ClOrdID."""
        injection = Injection(self.sym_of[symbol], 0 if side == "B" else 1, price, qty, tag,
                              cycle=now)
        self._inject(injection, ord(tif))
        self.counters["injected"] += 1
        return injection

    def _inject(self, i: Injection, tif: int, user_ref: int = 0) -> None:
        entry = self.dev.map["strategy.inject"]
        self.dev.write_sequence([("strategy.inject", entry.compose(
            sym=i.sym, side=i.side, price=i.price, quantity=i.quantity, tif=tif, tag=i.tag,
            cancel=int(i.cancel), user_ref=user_ref)), ("strategy.inject_stb", 1)])
        if self.track_decisions:
            self.awaiting.append(i)

    def on_decisions(self, records: list[dict[str, int]]) -> None:
        """Records of ``risk.decisions`` (drained in order): each of a host injection is
        matched with the oldest injection still waiting whose fields it carries.
        Injections before it had no record — refused by the strategy's full queue
        (``strategy.counters.queue_full``) or their record lost
        (``risk.counters.decisions_lost``) — and are dropped unmatched
        (``decision_missing``); whoever waits on them must time out."""
        for rec in records:
            self.counters["decisions"] += 1
            if rec["source"] != HOST_SOURCE:
                continue
            at = next((k for k, i in enumerate(self.awaiting) if i.matches(rec)), None)
            if at is None:
                self.counters["decision_unmatched"] += 1
                continue
            for _ in range(at):
                self.awaiting.popleft()
                self.counters["decision_missing"] += 1
            injection = self.awaiting.popleft()
            injection.reason = REASONS[rec["reason"]]
            if injection.reason == "pass":
                continue
            self.counters[f"host_refused_{injection.reason}"] += 1
            if injection.tag in CLIENT_TAGS and not injection.cancel and \
                    self.listener is not None:
                self.listener.injection_refused(injection)

    def flatten(self, at: int, now: int) -> int:
        """Reduce every position of ``at`` shares or more by ``at`` with an IOC at the
        other side's touch, one order per symbol at a time; returns how many were sent."""
        sent = 0
        busy = {o.symbol for o in self.orders.values() if o.host and o.state not in TERMINAL}
        for symbol, pos in self.positions.items():
            asked = self._flattening.get(symbol)
            if abs(pos.qty) < at or symbol in busy or \
                    (asked is not None and now - asked < FLATTEN_WAIT):
                continue
            book = self.book(symbol)
            price = book.bid if pos.qty > 0 else book.ask
            if price is None:
                continue
            self.inject(symbol, "S" if pos.qty > 0 else "B", at, price, now=now)
            self._flattening[symbol] = now
            sent += 1
        return sent

    def cancel_stale(self, now: int, age: int) -> int:
        """Cancel the resting orders sent more than ``age`` cycles before ``now`` (the
        FPGA account's: a client order rests as long as its user wants)."""
        stale = [o.user_ref for o in self.orders.values()
                 if o.state in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
                 and not o.cancel_sent and not o.client and now - o.sent_cycle > age]
        return sum(self.cancel(u, now) for u in stale)

    def poll(self) -> dict[str, int]:
        """The gate's state: kill switch, trip causes, open orders, gross; alarms."""
        self.status = self.dev.read_many(STATUS)
        return self.status

    def kill_causes(self) -> list[str]:
        tripped = self.status.get("risk.status.tripped", 0)
        return [c for i, c in enumerate(KILL_CAUSES) if tripped >> i & 1]

    # -- the market and P&L -------------------------------------------------------------------

    def book(self, symbol: str) -> SymbolBook:
        return self.books.setdefault(symbol, SymbolBook())

    def mark(self, symbol: str, bid: int | None, ask: int | None) -> None:
        b = self.book(symbol)
        b.bid, b.ask = bid, ask

    def pnl(self) -> dict[str, dict[str, int]]:
        """Per symbol traded: position, cost, realized, unrealized at the mark, mark."""
        out = {}
        for symbol, pos in sorted(self.positions.items()):
            mark = self.book(symbol).mark()
            out[symbol] = {"position": pos.qty, "cost": pos.cost, "realized": pos.realized,
                           "unrealized": pos.unrealized(mark) if mark is not None else 0,
                           "mark": mark or 0}
        return out

    def totals(self) -> dict[str, int]:
        rows = self.pnl().values()
        return {"realized": sum(r["realized"] for r in rows),
                "unrealized": sum(r["unrealized"] for r in rows)}

    def states(self) -> Counter:
        return Counter(o.state for o in self.orders.values())
