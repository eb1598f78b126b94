"""``EngineBroker``: the platform's orders (the API's) through the FPGA's risk gate.

A ``host.platform.broker.Broker`` over a ``HostEngine``. The OMS hands it an order once
the order is stored as ``pending``; the broker writes it to ``strategy.inject`` with a
client tag of its own (``engine.CLIENT_TAGS``, one per order in flight), so the
gateware puts that tag in the Enter's ClOrdID (``T`` + tag + UserRefNum). From there:

- the Enter leaves: the engine sees the tag (``order_sent``) and the broker knows the
  order's UserRefNum; the venue's answers to that UserRefNum reach the OMS as
  ``on_accepted`` / ``on_executed`` / ``on_canceled`` / ``on_rejected``;
- the gate refuses it: nothing leaves, and its decision record (``risk.decisions``,
  matched by the engine, ``HostEngine.on_decisions``) gives the check that failed,
  which becomes ``on_rejected`` with the limit (``REFUSALS``);
- neither within ``timeout`` cycles (the record was lost): ``on_rejected`` saying so.
  Safe, because an order the gate passed leaves within a few hundred cycles.

What the gate cannot express is refused at ``submit``, before it reaches the FPGA: a
symbol off the build's watch list, any type but market and limit (the gate takes priced
orders: the platform's ``synthetic.SyntheticBroker`` works stops, trailing stops and
icebergs in front of this broker and releases them through the gate as market or
limit orders when they trigger), a price or quantity wider than the gate's 32 bits. A market order is sent as an IOC (or FOK) limit at the opposite touch
as the engine last saw it, so it takes at most that level; without an opposite quote
it is rejected. Time in force maps to OUCH's codes as ``host.config.TIFS`` (day ``0``
and IOC ``3`` as OUCH 5.0; GTC ``1`` and FOK ``4``, this venue's additions). A cancel
goes through the gate as the engine's own cancels do; a cancel of an order still on its
way waits for its Enter; a cancel of a row of the FPGA account's (``fpga_orders``: the
kill switch cancels every open order) goes through the gate too, with no callback (the
store records its end); a cancel of an order this engine never had (placed before this
run) is answered ``on_canceled``: the FPGA and venue of a previous run are gone.

Threads: ``submit``, ``cancel`` and ``on_loop`` come from the API's threads and only
queue; the thread that drives the loop calls :meth:`pump` between iterations
(injections, cancels, device work, decision records, time-outs) and the engine's
listener calls during them. The OMS's
callbacks each wait for a durable write, so they run on a thread of their own, in the
order they were made: the loop never waits for a disk.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TypeVar

from tick2trade.protocol import ouch
from tick2trade.host.config import TIFS
from tick2trade.host.engine import CLIENT_TAGS, EngineOrder, HostEngine, Injection
from tick2trade.host.services.broker import BrokerEvents, OrderTicket
from tick2trade.host.services.device import DeviceTimeout
from tick2trade.host.services.money import px
from tick2trade.host.services.status import TERMINAL, OrderStatus

log = logging.getLogger(__name__)
T = TypeVar("T")

TIMEOUT = 200_000  # cycles an injection may go without an Enter or a decision
MAX_FIELD = (1 << 32) - 1  # the gate's price and quantity fields
REFUSALS = {  # the gate's reasons (models.trade.REASONS), in words a trader can act on
    "kill": "the kill switch is engaged",
    "restricted": "the symbol is restricted",
    "bad_order": "zero price or quantity",
    "max_shares": "quantity above the gate's maximum of {max_shares} shares",
    "max_notional": "notional above the gate's maximum of {max_notional}",
    "no_reference": "no reference price for the collar (the FPGA's book has no bid or no "
                    "offer, and no trade printed); retry",
    "collar": "price too far from the reference (collar: {collar_bps} bps, {collar_price} "
              "at most; 0 is off)",
    "position": "the position limit of {position_limit} shares (position + open orders "
                "on that side)",
    "gross": "gross open notional above the limit of {max_gross}",
    "open_orders": "{max_open_orders} orders open already",
    "rate_global": "order rate limit",
    "rate_symbol": "order rate limit of the symbol",
    "duplicate": "same side, price and quantity as the symbol's last order, within the "
                 "duplicate window",
    "tx_busy": "the order sender's queue is full; retry",
}


@dataclass
class InFlight:
    """An order injected whose Enter has not been seen."""

    order_id: int
    injection: Injection
    cancel_wanted: bool = False


class EngineBroker:
    """See the module docstring. ``limits`` (``models.trade.Limits``) words the gate's
    refusals; ``timeout`` is in cycles of loop time (``pump``'s ``now``);
    ``fpga_orders(order_id)`` is the UserRefNum of a row of the FPGA account's
    (``EngineStore``), or None: a cancel of one (the kill switch cancels every open
    order) goes through the gate too, and the store records its end. ``admit(ticket,
    price)``, asked on the loop's thread just before an order is injected (at the price
    it goes at), is why the host refuses it, or None (``host.fleet``: a limit across
    several FPGAs)."""

    in_process = False
    venue = "T2TV"   # the venue behind the gate, as execution reports name it

    def __init__(self, engine: HostEngine, limits, timeout: int = TIMEOUT,
                 fpga_orders: Callable[[int], int | None] = lambda order_id: None) -> None:
        self.engine = engine
        self.limits = limits
        self.timeout = timeout
        self.fpga_orders = fpga_orders
        self.admit: Callable[[OrderTicket, int], str | None] = lambda ticket, price: None
        engine.listener = self
        engine.track_decisions = True
        self._events: BrokerEvents | None = None
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._flight: dict[int, InFlight] = {}  # tag → order on its way
        self._live: dict[int, int] = {}  # UserRefNum → order id, until it ends
        self._refs: dict[int, int] = {}  # order id → UserRefNum, until it ends
        self._cancels: list[int] = []  # UserRefNums to cancel at the next pump
        self._next_tag = CLIENT_TAGS.start
        self.counts = {"submitted": 0, "rejected_here": 0, "injected": 0,
                       "refused_by_gate": 0, "timed_out": 0, "fills": 0}
        self._counting = threading.Lock()  # submit runs on the API's threads
        self._calls: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._deliver, name="t2t-engine-broker",
                                        daemon=True)
        self._worker.start()

    # --- the Broker protocol (any thread) -------------------------------------------

    def attach(self, events: BrokerEvents) -> None:
        self._events = events

    def submit(self, ticket: OrderTicket) -> None:
        why = self._unsendable(ticket)
        with self._counting:
            self.counts["submitted"] += 1
            self.counts["rejected_here"] += why is not None
        if why is not None:
            self._events.on_rejected(ticket.order_id, why)
            return
        self._requests.put(("submit", ticket))

    def cancel(self, order_id: int) -> None:
        self._requests.put(("cancel", order_id))

    def on_loop(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run ``fn`` on the loop's thread at its next pump (what touches the device
        must) and return what it returns; ``DeviceTimeout`` if no pump comes."""
        done: Future = Future()
        self._requests.put(("call", (fn, done)))
        try:
            return done.result(timeout)
        except FutureTimeout:
            raise DeviceTimeout(f"the trading loop did not answer within {timeout} s "
                                f"(stopped?)") from None

    def _unsendable(self, t: OrderTicket) -> str | None:
        watch = self.engine.watch
        if t.symbol not in self.engine.sym_of:
            return (f"{t.symbol} is not traded by this FPGA build (its watch list: "
                    f"{', '.join(watch)})")
        if t.type not in ("market", "limit"):
            return (f"{t.type} orders do not go through the FPGA's gate (it takes priced "
                    f"orders); the platform's OMS releases them as market or limit orders")
        if t.qty > MAX_FIELD:
            return f"qty above {MAX_FIELD}, the gate's largest quantity"
        if t.price is not None and t.price > MAX_FIELD:
            return f"price above {px(MAX_FIELD)}, the gate's largest price"
        return None

    # --- the loop's thread --------------------------------------------------------------

    def pump(self, now: int) -> None:
        """Between loop iterations: send what was asked, read the gate's decisions,
        give up on injections nothing was heard of for ``timeout`` cycles."""
        for kind, arg in self._waiting():
            if kind == "submit":
                self._inject(arg, now)
            elif kind == "cancel":
                self._cancel(arg)
            else:
                fn, done = arg
                try:
                    done.set_result(fn())
                except Exception as exc:  # noqa: BLE001 — the caller gets it, whatever it is
                    done.set_exception(exc)
        cancels, self._cancels = self._cancels, []
        for user_ref in cancels:
            self.engine.cancel(user_ref, now)
        self.engine.on_decisions(self.engine.dev.drain_fifo("risk.decisions"))
        for tag, f in list(self._flight.items()):
            if now - f.injection.cycle > self.timeout:
                del self._flight[tag]
                self.counts["timed_out"] += 1
                self._call("on_rejected", f.order_id, (
                    f"no word from the FPGA within {self.timeout:,} cycles: no Enter left "
                    f"and no gate decision was read (risk.counters.decisions_lost, "
                    f"strategy.counters.queue_full say why)"))

    def _waiting(self):
        """The requests queued so far, taken one by one."""
        while True:
            try:
                yield self._requests.get_nowait()
            except queue.Empty:
                return

    def _inject(self, t: OrderTicket, now: int) -> None:
        side = "B" if t.side == "buy" else "S"
        price, tif = t.price, t.tif
        if t.type == "market":
            book = self.engine.book(t.symbol)
            price = book.ask if side == "B" else book.bid
            if price is None:
                with self._counting:
                    self.counts["rejected_here"] += 1
                self._call("on_rejected", t.order_id, "market order: no opposite quote "
                                                      "to price it at")
                return
            tif = "fok" if tif == "fok" else "ioc"
        why = self.admit(t, price)
        if why is not None:
            with self._counting:
                self.counts["rejected_here"] += 1
            self._call("on_rejected", t.order_id, why)
            return
        if len(self._flight) == len(CLIENT_TAGS):  # every tag waits for its Enter
            with self._counting:
                self.counts["rejected_here"] += 1
            self._call("on_rejected", t.order_id, f"{len(CLIENT_TAGS)} orders are on their "
                                                  f"way to the FPGA already; retry")
            return
        tag = self._tag()
        injection = self.engine.inject(t.symbol, side, t.qty, price, TIFS[tif], tag=tag,
                                       now=now)
        self._flight[tag] = InFlight(t.order_id, injection)
        self.counts["injected"] += 1

    def _tag(self) -> int:
        """The next client tag not in flight (there is one: ``_inject`` checks)."""
        while True:
            tag = self._next_tag
            self._next_tag = tag + 1 if tag + 1 < CLIENT_TAGS.stop else CLIENT_TAGS.start
            if tag not in self._flight:
                return tag

    def _cancel(self, order_id: int) -> None:
        user_ref = self._refs.get(order_id) or self.fpga_orders(order_id)
        if user_ref is not None:
            self._cancels.append(user_ref)
            return
        for f in self._flight.values():
            if f.order_id == order_id:
                f.cancel_wanted = True
                return
        self._call("on_canceled", order_id, "not live in this run of the engine")

    # --- the engine's listener (the loop's thread) -------------------------------------

    def order_sent(self, order: EngineOrder) -> None:
        f = self._flight.pop(order.tag, None)
        if f is None:
            log.warning("an Enter with client tag %#06x that no order here waits for",
                        order.tag)
            return
        self._live[order.user_ref] = f.order_id
        self._refs[f.order_id] = order.user_ref
        if f.cancel_wanted:
            self._cancels.append(order.user_ref)

    def order_answered(self, order: EngineOrder, msg: dict) -> None:
        order_id = self._live.get(order.user_ref)
        if order_id is None:
            return
        kind = msg["type"]
        if kind == "A":
            self._call("on_accepted", order_id)
        elif kind == "E":
            self.counts["fills"] += 1
            self._call("on_executed", order_id, msg["quantity"], msg["price"],
                       msg.get("liquidity") or None)
        elif kind == "C" and order.state == OrderStatus.CANCELED:
            reason = ouch.CANCEL_REASONS.get(msg.get("reason"), "no reason given")
            self._call("on_canceled", order_id, f"canceled by the venue: {reason}")
        elif kind == "J":
            reason = ouch.REJECT_REASONS.get(msg.get("reason"), f"code {msg.get('reason')}")
            self._call("on_rejected", order_id, f"rejected by the venue: {reason}")
        if order.state in TERMINAL:
            del self._live[order.user_ref]
            del self._refs[order_id]

    def injection_refused(self, injection: Injection) -> None:
        f = self._flight.pop(injection.tag, None)
        if f is None or f.injection is not injection:
            return
        self.counts["refused_by_gate"] += 1
        lim = self.limits
        words = REFUSALS.get(injection.reason, injection.reason).format(
            max_shares=lim.max_shares, max_notional=px(lim.max_notional),
            collar_bps=lim.collar_bps, collar_price=px(lim.collar_price),
            position_limit=lim.position_limit, max_gross=px(lim.max_gross),
            max_open_orders=lim.max_open_orders)
        self._call("on_rejected", f.order_id,
                   f"FPGA risk gate: {injection.reason}: {words}")

    # --- the OMS's callbacks, on their own thread ---------------------------------------

    def _call(self, name: str, *args) -> None:
        self._calls.put((name, args))

    def _deliver(self) -> None:
        while True:
            name, args = self._calls.get()
            try:
                getattr(self._events, name)(*args)
            except Exception:
                log.exception("OMS callback %s%s failed", name, args)
            finally:
                self._calls.task_done()

    def close(self) -> None:
        """The run ends, and its venue and FPGA with it: every order still open here is
        canceled (rejected, if it was never sent), so none stays open in the database;
        returns once the OMS has it all. Call it once nothing submits any more."""
        ended = "t2t run ended: the venue and the FPGA of this run are gone"
        for kind, arg in self._waiting():
            if kind == "submit":
                self._call("on_rejected", arg.order_id, "t2t run ended before it was sent")
            elif kind == "call":
                arg[1].set_exception(DeviceTimeout("t2t run ended"))
        for order_id in [f.order_id for f in self._flight.values()] + list(self._refs):
            self._call("on_canceled", order_id, ended)
        self._flight.clear()
        self._live.clear()
        self._refs.clear()
        self.settle()

    def settle(self) -> None:
        """Wait until every callback made so far has reached the OMS."""
        self._calls.join()

    def in_flight(self) -> int:
        return len(self._flight)
