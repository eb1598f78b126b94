"""Golden model of the ``risk`` gate (``gateware/trade/risk.py``): given the intents it
was offered, cycle by cycle, which it passed and which check refused each.

Risk checks, in the order of their reason codes (the first failing one is reported)
-------------------------------------------------------------------------------------
``kill`` (host switch, breach count, or watchdog), ``restricted`` symbol, ``bad_order``
(zero quantity or price), ``max_shares``, ``max_notional`` (price × quantity),
``no_reference`` / ``collar`` (|price − ref| against ``collar_bps`` of the reference
and against ``collar_price``), ``position`` (position + open buys + quantity for a buy,
open sells + quantity − position for a sell, against ``position_limit``), ``gross``
(notional sent minus notional the host released, plus this order's), ``open_orders``,
``rate_global`` / ``rate_symbol`` (GCRA token buckets: an order passes when the bucket's
theoretical arrival time is at most ``tolerance`` = (burst − 1) × ``interval`` cycles ahead
of now, and moves it ``interval`` on), ``duplicate``
(same symbol, side, price and quantity as the symbol's last passed order within
``dup_window`` cycles), ``tx_busy`` (the queue to the order sender is full). A limit of
0 switches its check off. Cancels (host-injected) pass every check. A passed enter
updates open exposure, gross, open orders, both buckets and the duplicate memory; the
host reports fills, cancels and closed orders back (:meth:`Risk.report`).

With ``kill_after`` > 0, that many rejects for reasons after ``restricted`` trip the kill
switch. The watchdog trips it when the host sends no heartbeat for ``watchdog`` cycles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tick2trade.gateware.interfaces import KillCause, RejectReason, names

from ..book import BUY
from .strategy import Intent

REASONS = names(RejectReason)  # a decision's reason: its code is the index
assert REASONS == ("pass", "kill", "restricted", "bad_order", "max_shares", "max_notional",
                   "no_reference", "collar", "position", "gross", "open_orders",
                   "rate_global", "rate_symbol", "duplicate", "tx_busy"), REASONS
BREACHES = frozenset(REASONS[RejectReason.BAD_ORDER.value:RejectReason.TX_BUSY.value])
KILL_CAUSES = names(KillCause)  # risk.status.tripped, bit by bit
RISK_COUNTERS = REASONS + ("cancels", "reports", "reports_lost", "decisions_lost")
RISK_LATENCY = 2  # intent offered → decided (risk gate: stage A reads, stage B decides)


@dataclass
class Limits:
    """The risk registers (0 switches a check off; cycles for times)."""

    max_shares: int = 0
    max_notional: int = 0  # price × quantity, in 1/10000
    collar_bps: int = 0
    collar_price: int = 0
    position_limit: int = 0
    max_gross: int = 0
    max_open_orders: int = 0
    rate_interval: int = 0  # cycles per order, global
    rate_tolerance: int = 0  # (burst - 1) × interval
    sym_rate_interval: int = 0
    sym_rate_tolerance: int = 0
    dup_window: int = 0
    kill: bool = False
    kill_after: int = 0
    watchdog: int = 0
    watchdog_cancel: bool = False
    restricted: frozenset = frozenset()


@dataclass
class SymRisk:
    position: int = 0
    open_buy: int = 0
    open_sell: int = 0
    tat: int = 0
    last: tuple | None = None  # side, price, quantity of the last passed order
    last_time: int = 0


@dataclass
class Risk:
    """The pre-trade gate: ``check`` decides, ``report`` applies the host's news."""

    symbols: int
    limits: Limits = field(default_factory=Limits)
    queue_room: int = 16

    def __post_init__(self):
        self.state = [SymRisk() for _ in range(self.symbols)]
        self.tat = 0
        self.gross = 0
        self.open_orders = 0
        self.breaches = 0
        self.tripped = 0  # bits 1, 2 of KILL_CAUSES (bit 0, the host's switch, is a limit)
        self.heartbeat = 0
        self.cancel_all_sent = False
        self.counters = dict.fromkeys(RISK_COUNTERS, 0)

    def killed(self) -> bool:
        return self.limits.kill or bool(self.tripped)

    def heartbeat_at(self, now: int) -> None:
        self.heartbeat = now

    def tick(self, now: int) -> bool:
        """The watchdog at cycle ``now``; True when it trips (and asks for cancel-all
        if so configured)."""
        lim = self.limits
        if lim.watchdog and not self.tripped & 4 and now - self.heartbeat > lim.watchdog:
            self.tripped |= 4
            return lim.watchdog_cancel
        return False

    def reason(self, it: Intent, now: int, queue_free: bool = True) -> str:
        lim, st = self.limits, self.state[it.sym]
        if it.cancel:  # cancels only reduce risk
            return "pass" if queue_free else "tx_busy"
        if self.killed():
            return "kill"
        if it.sym in lim.restricted:
            return "restricted"
        if it.quantity == 0 or it.price == 0:
            return "bad_order"
        if lim.max_shares and it.quantity > lim.max_shares:
            return "max_shares"
        notional = it.price * it.quantity
        if lim.max_notional and notional > lim.max_notional:
            return "max_notional"
        if lim.collar_bps or lim.collar_price:
            if it.ref == 0:
                return "no_reference"
            dev = abs(it.price - it.ref)
            if (lim.collar_bps and dev * 10000 > lim.collar_bps * it.ref) or \
                    (lim.collar_price and dev > lim.collar_price):
                return "collar"
        if lim.position_limit:
            exposure = (st.position + st.open_buy + it.quantity if it.side == BUY
                        else st.open_sell + it.quantity - st.position)
            if exposure > lim.position_limit:
                return "position"
        if lim.max_gross and self.gross + notional > lim.max_gross:
            return "gross"
        if lim.max_open_orders and self.open_orders >= lim.max_open_orders:
            return "open_orders"
        if lim.rate_interval and self.tat - now > lim.rate_tolerance:
            return "rate_global"
        if lim.sym_rate_interval and st.tat - now > lim.sym_rate_tolerance:
            return "rate_symbol"
        if lim.dup_window and st.last == (it.side, it.price, it.quantity) and \
                now - st.last_time < lim.dup_window:
            return "duplicate"
        if not queue_free:
            return "tx_busy"
        return "pass"

    def check(self, it: Intent, now: int, queue_free: bool = True) -> str:
        """Decide ``it`` at cycle ``now``; a pass updates the state."""
        why = self.reason(it, now, queue_free)
        self.counters[why] += 1
        if it.cancel:
            self.counters["cancels"] += 1
            return why
        lim, st = self.limits, self.state[it.sym]
        if why == "pass":
            if it.side == BUY:
                st.open_buy += it.quantity
            else:
                st.open_sell += it.quantity
            self.gross += it.price * it.quantity
            self.open_orders += 1
            if lim.rate_interval:
                self.tat = max(self.tat, now) + lim.rate_interval
            if lim.sym_rate_interval:
                st.tat = max(st.tat, now) + lim.sym_rate_interval
            st.last, st.last_time = (it.side, it.price, it.quantity), now
        elif why in BREACHES:
            self.breaches += 1
            if lim.kill_after and self.breaches >= lim.kill_after:
                self.tripped |= 2
        return why

    def report(self, sym: int, side: int, filled: int = 0, canceled: int = 0,
               closed: bool = False, released: int = 0) -> None:
        """The host's news about an order: shares filled and canceled, whether it is
        closed now, and the notional it no longer holds against the gross limit."""
        st = self.state[sym]
        self.counters["reports"] += 1
        done = filled + canceled  # more than was open leaves 0
        if side == BUY:
            st.position += filled
            st.open_buy = max(0, st.open_buy - done)
        else:
            st.position -= filled
            st.open_sell = max(0, st.open_sell - done)
        self.open_orders = max(0, self.open_orders - closed)
        self.gross = max(0, self.gross - released)

    def reset_kill(self) -> None:
        """The host re-arms after a trip: causes and the breach count are cleared."""
        self.tripped = 0
        self.breaches = 0
        self.cancel_all_sent = False


@dataclass(frozen=True)
class Report:
    sym: int
    side: int
    filled: int = 0
    canceled: int = 0
    closed: bool = False
    released: int = 0


def run_risk(risk: Risk, offered: list[tuple[int, Intent]], reports: dict[int, Report]
             | None = None, heartbeats: set[int] = frozenset(), kill_resets: set[int] =
             frozenset(), until: int | None = None) -> list[tuple[int, Intent, str]]:
    """The gate's decisions (cycle decided, intent, reason) for intents offered at the
    given cycles, with host reports, heartbeats and kill resets written in the given
    cycles, and the watchdog ticking every cycle up to ``until``."""
    reports = dict(reports or {})
    by_cycle = dict(offered)
    last = max([*by_cycle, *reports, *heartbeats, *kill_resets, 0]) + 2
    until = max(until or 0, last)
    out: list[tuple[int, Intent, str]] = []
    pending: list[tuple[int, Report]] = []  # (cycle it may be taken, report)
    report_in_b: Report | None = None
    for t in range(until + 1):
        # stage B of the intent offered (or report taken) in cycle t - 1
        if t - 1 in by_cycle:
            it = by_cycle[t - 1]
            out.append((t, it, risk.check(it, t)))
        elif report_in_b is not None:
            risk.report(**vars(report_in_b))
        report_in_b = None
        if risk.tick(t):
            risk.cancel_all_sent = True
        if t in heartbeats:
            risk.heartbeat_at(t)
        if t in kill_resets:
            risk.reset_kill()
        # stage A: a waiting report is taken in a cycle without an intent
        if pending and pending[0][0] <= t and t not in by_cycle:
            report_in_b = pending.pop(0)[1]
        if t in reports:
            if pending:
                risk.counters["reports_lost"] += 1
                pending.clear()
            pending.append((t + 1, reports[t]))
    return out
