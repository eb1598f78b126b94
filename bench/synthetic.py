"""Trigger latency of the OMS's synthetic stop (``python -m tick2trade.bench.synthetic``):
from the market-data service taking a quote that crosses a held stop to the child order
reaching the broker's ``submit``, software path. Figures, never pass/fail; see
bench/README.md ("Synthetic orders").

Two rows: the trigger alone (``SyntheticBroker`` over the market-data service, nothing
stored), and the platform's path, where the release is stored (``triggered``, a durable
write through the OMS's writer, SQLite in a temporary directory) before the child is
sent. Each sample arms one stop on a symbol among ``--symbols`` others that each hold
``--held`` stops which the quote does not concern.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tick2trade.host.services.broker import OrderTicket
from tick2trade.host.services.marketdata import MarketData
from tick2trade.host.services.orders import NewOrder
from tick2trade.host.services.platform import Platform
from tick2trade.host.services.synthetic import SyntheticBroker

T = 10_000


class Recorder:
    """A broker that notes when each order reaches it."""

    in_process = False

    def __init__(self) -> None:
        self.sent: dict[int, int] = {}

    def attach(self, events) -> None:
        self.events = events

    def submit(self, ticket: OrderTicket) -> None:
        self.sent[ticket.order_id] = time.perf_counter_ns()

    def cancel(self, order_id: int) -> None:
        self.events.on_canceled(order_id, "bench")


class Accepting:
    """What the synthetic broker reports to: nothing kept."""

    def __getattr__(self, name):
        return lambda *args: None


def percentiles(ns: list[int]) -> tuple[float, float, float]:
    q = statistics.quantiles(ns, n=100)
    return q[49] / 1e3, q[98] / 1e3, max(ns) / 1e3


def _background(arm, symbols: int, held: int) -> None:
    for k in range(symbols):
        for j in range(held):
            arm(f"S{k:04d}", "sell", 50 * T - j * 100)


def trigger_alone(samples: int, symbols: int, held: int) -> list[int]:
    market, inner = MarketData(), Recorder()
    broker = SyntheticBroker(inner, market)
    broker.attach(Accepting())
    next_id = iter(range(1, 10**9))

    def arm(sym, side, stop):
        order_id = next(next_id)
        broker.submit(OrderTicket(order_id, sym, side, "stop", "day", 1, None, stop))
        return order_id

    _background(arm, symbols, held)
    out = []
    for _ in range(samples):
        market.update("AAPL", bid=101 * T, bid_size=100, ask=101 * T + 100, ask_size=100)
        order_id = arm("AAPL", "sell", 100 * T)
        start = time.perf_counter_ns()
        market.update("AAPL", bid=100 * T, bid_size=100, ask=100 * T + 100, ask_size=100)
        out.append(inner.sent[order_id] - start)
    return out


def platform_path(samples: int, symbols: int, held: int) -> list[int]:
    inner = Recorder()
    with tempfile.TemporaryDirectory() as tmp:
        p = Platform(f"sqlite:///{Path(tmp) / 'bench.db'}", "bench-" + "s" * 32, broker=inner)
        try:
            user = p.users.register("bench", "bench@example.com", "correct horse battery")

            def arm(sym, side, stop):
                return p.orders.place(user.id, "bench", NewOrder(
                    sym, side, "stop", 1, "day", stop_price=stop)).id

            _background(arm, symbols, held)
            out = []
            for _ in range(samples):
                p.market.update("AAPL", bid=101 * T, bid_size=100, ask=101 * T + 100,
                                ask_size=100)
                order_id = arm("AAPL", "sell", 100 * T)
                start = time.perf_counter_ns()
                p.market.update("AAPL", bid=100 * T, bid_size=100, ask=100 * T + 100,
                                ask_size=100)
                out.append(inner.sent[order_id] - start)
            return out
        finally:
            p.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--symbols", type=int, default=1000)
    ap.add_argument("--held", type=int, default=5)
    a = ap.parse_args()
    print(f"synthetic stop: quote crossing it → child order at the broker "
          f"({a.samples} samples; {a.symbols} other symbols × {a.held} held stops)")
    # the platform's background orders are placed with a durable write each: fewer
    for name, run, n, symbols in (
            ("trigger alone", trigger_alone, a.samples, a.symbols),
            ("platform (release stored first, SQLite)", platform_path,
             max(2, a.samples // 4), max(1, a.symbols // 20))):
        p50, p99, worst = percentiles(run(n, symbols, a.held))
        print(f"  {name:42s} p50 {p50:8.1f} µs  p99 {p99:8.1f} µs  max {worst:8.1f} µs"
              f"  (n={n}, {symbols} other symbols)")


if __name__ == "__main__":
    main()
