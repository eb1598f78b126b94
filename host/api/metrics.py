"""What ``GET /metrics`` tells Prometheus, and the request id of every request.

``Observe`` (ASGI middleware, outermost) gives each HTTP request and WebSocket its id
(``logs.accept_request_id``: the client's ``X-Request-ID`` when sane, else a new one),
sets it for the request's log records (``logs.request_id``) and answers it in the
``X-Request-ID`` header; it times each HTTP request into a histogram by route
*template* (``/orders/{order_id}``, never the raw path, so a client cannot grow the
series without bound; a path no route matches counts as ``unmatched``).

``PlatformCollector`` reads the platform at each scrape (nothing is pushed on the hot
path but the histogram and the OMS's own counts):

- ``t2t_http_request_duration_seconds{method,route}`` (histogram) and
  ``t2t_http_requests_total{method,route,status}``;
- ``t2t_orders_open{state}``: open orders in the store; ``t2t_order_transitions_total
  {state,venue}``: placements and status changes committed since the start (a placement
  counts as ``pending``, or ``rejected`` when the host's risk checks refuse it);
  ``t2t_orders_placed_total{venue}``; ``t2t_fills_total{venue}``,
  ``t2t_filled_shares_total{venue}``;
- ``t2t_kill_switch_engaged`` (the platform's); ``t2t_websocket_clients``,
  ``t2t_websocket_dropped_slow_total``;
- with a software feed (``t2t api``): ``t2t_feed_<counter>_total`` for each of
  ``feed.COUNTERS`` (``t2t_feed_gaps_total``, ``t2t_feed_held_dropped_total``, ...),
  ``t2t_feed_gap_open``, ``t2t_feed_gap_seconds``, ``t2t_feed_held_packets``; with an
  order session:
  ``t2t_order_session_up``, ``t2t_order_session_events_total{event}``;
- with a device (``t2t run --api``): ``t2t_fpga_up``, ``t2t_fpga_killed``,
  ``t2t_fpga_status{field}`` (its numeric status: open orders, gross, alarms, ...) and
  ``t2t_fpga_counter_total{block,counter}``, every counter register by block; and the
  gateware's tick-to-trade histogram (``telemetry.histogram``: Enters by cycles from the
  frame's first beat in to the order's first beat out) as two Prometheus histograms,
  ``t2t_fpga_tick_to_trade_cycles`` and, when the core clock is known,
  ``t2t_fpga_tick_to_trade_seconds`` (``{device}`` with several FPGAs). Bucket ``le`` is
  a bin's upper edge (the bin holds what is below it), ``+Inf`` every Enter counted;
  ``_sum`` is an *estimate* from the bins' midpoints (``TickToTrade.sum_cycles``); the
  gateware's counts are 32-bit and wrap. The gateware stamps an Enter decided on a book
  update, or injected by the host, with ``t_in`` = ``t_event``: those count their
  event-to-wire cycles (``t2t run``'s summary keeps them apart, ``docs/engine.md``);
- ``t2t_scrape_errors_total{source}``: a source that failed at a scrape (the database,
  the device), whose families are then missing from that scrape.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                   HistogramMetricFamily)
from prometheus_client.utils import floatToGoString
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tick2trade.host import logs
from tick2trade.host.services import risk
from tick2trade.host.services.device import TickToTrade
from tick2trade.host.services.platform import Platform
from tick2trade.host.services.status import OrderStatus

log = logging.getLogger(__name__)

REQUEST_ID = "x-request-id"
# seconds: the API answers in hundreds of microseconds to a few milliseconds; the
# upper buckets catch a stalled database or broker
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
           5.0, 10.0)
UNMATCHED = "unmatched"


def route_template(scope: Scope, root_path: str) -> str:
    """The template of the route that handled ``scope``, from what the routers left in
    it: the route, or for a mounted app (``/static``) the ``root_path`` the mount
    extended beyond the request's own ``root_path``."""
    route = scope.get("route")
    if route is not None and not isinstance(route, Mount):
        return getattr(route, "path", UNMATCHED)
    mounted = scope.get("root_path", "")
    if mounted != root_path and mounted.startswith(root_path):
        return f"{mounted[len(root_path):]}/{{path}}"
    return UNMATCHED


class Metrics:
    """One app's registry (its own, so that two apps in one process, as in the tests,
    never share series) with the request metrics and the platform's collector."""

    def __init__(self, platform: Platform) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram("t2t_http_request_duration_seconds",
                                 "Time to answer an HTTP request, by route template",
                                 ("method", "route"), buckets=BUCKETS,
                                 registry=self.registry)
        self.requests = Counter("t2t_http_requests", "HTTP requests answered",
                                ("method", "route", "status"), registry=self.registry)
        self.registry.register(PlatformCollector(platform))
        # the labelled children by (method, route[, status]): looking them up in the
        # metric costs several times what an observation does, on every request
        self._children: dict[tuple, object] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route)
        histogram = self._children.get(key)
        if histogram is None:
            histogram = self._children[key] = self.latency.labels(method, route)
        histogram.observe(seconds)
        key = (method, route, status)
        counter = self._children.get(key)
        if counter is None:
            counter = self._children[key] = self.requests.labels(method, route, str(status))
        counter.inc()


class Observe:
    """ASGI middleware: request id and timing (see the module docstring)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        rid = logs.accept_request_id(given)
        # each request runs in a task of its own, whose context this changes: the id
        # stays for the error handler outside this middleware, and goes with the task
        logs.request_id.set(rid)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        status = 500
        header = (REQUEST_ID.encode(), rid.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        root_path = scope.get("root_path", "")
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.observe(scope["method"], route_template(scope, root_path), status,
                                 time.perf_counter() - start)


def _counter(name: str, doc: str, value: float, labels: dict[str, str] | None = None):
    family = CounterMetricFamily(name, doc, labels=list(labels or ()))
    family.add_metric(list((labels or {}).values()), value)
    return family


def _gauge(name: str, doc: str, value: float):
    return GaugeMetricFamily(name, doc, value=value)


class PlatformCollector:
    """The platform's figures, read at each scrape (see the module docstring)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.errors: dict[str, int] = {"database": 0, "device": 0, "bus": 0}

    def describe(self):
        return []   # collected at each scrape only, never at registration

    def collect(self):
        p = self.platform
        yield from self._orders(p)
        stats = p.hub.stats()
        yield _gauge("t2t_websocket_clients", "WebSocket connections open",
                     stats["connections"])
        yield _counter("t2t_websocket_dropped_slow", "WebSocket clients disconnected for "
                       "falling more than their queue behind", stats["dropped_slow"])
        live = p.live
        if live is not None and getattr(live, "feed", None) is not None:
            yield from self._feed(live.feed)
        if live is not None and getattr(live, "broker", None) is not None:
            yield from self._order_session(live.broker)
        if p.device is not None:
            yield from self._device(p.device)
        if p.bus is not None:
            yield from self._bus(p.bus)
        errors = CounterMetricFamily("t2t_scrape_errors", "Sources that failed at a scrape",
                                     labels=["source"])
        for source, n in self.errors.items():
            errors.add_metric([source], n)
        yield errors

    def _bus(self, bus):
        stats = bus.stats()
        for name in ("published", "dropped", "failed"):
            yield _counter(f"t2t_bus_{name}", f"Event bus: events {name} by this process",
                           stats[name])
        yield _gauge("t2t_bus_queued", "Event bus: events waiting to be published",
                     stats["queued"])
        try:
            lag = bus.consumer_lag_messages()
        except Exception:
            log.exception("metrics: the event bus's consumers could not be read")
            self.errors["bus"] += 1
            return
        gauge = GaugeMetricFamily("t2t_consumer_lag_messages", "Messages a durable consumer "
                                  "of the event bus has still to finish (not delivered, or "
                                  "delivered and not acknowledged)", labels=["consumer"])
        for durable, n in sorted(lag.items()):
            gauge.add_metric([durable], n)
        yield gauge

    def _orders(self, p: Platform):
        orders = p.orders
        venue = getattr(orders.broker, "venue", "PAPER")
        try:
            open_counts = orders.open_counts()
            with p.sessions() as s:
                killed = risk.kill_switch(s)
        except Exception:
            log.exception("metrics: the database could not be read")
            self.errors["database"] += 1
        else:
            gauge = GaugeMetricFamily("t2t_orders_open", "Open orders in the store, by "
                                      "status", labels=["state"])
            for state, n in open_counts.items():
                gauge.add_metric([state], n)
            yield gauge
            yield _gauge("t2t_kill_switch_engaged", "1 while the platform's kill switch is "
                         "engaged (new orders rejected)", int(killed))
        moves = CounterMetricFamily("t2t_order_transitions", "Order placements and status "
                                    "changes committed since the start, by the status "
                                    "reached", labels=["state", "venue"])
        tally = dict(orders.tally)
        for state in OrderStatus:
            moves.add_metric([state.value, venue], tally.get(state, 0))
        yield moves
        yield _counter("t2t_orders_placed", "Orders placed since the start (risk rejects "
                       "included)", orders.placed, {"venue": venue})
        yield _counter("t2t_fills", "Executions stored since the start", orders.fills,
                       {"venue": venue})
        yield _counter("t2t_filled_shares", "Shares executed since the start",
                       orders.filled_shares, {"venue": venue})

    @staticmethod
    def _feed(feed):
        for name, n in feed.counters().items():   # every one of feed.COUNTERS
            yield _counter(f"t2t_feed_{name}", f"Software feed handler: {name}", n)
        status = feed.status()
        yield _gauge("t2t_feed_gap_open", "1 while the feed waits for missing messages "
                     "(the book is stale)", int(status["gap_open"]))
        yield _gauge("t2t_feed_gap_seconds", "How long the open gap has lasted",
                     status["gap_seconds"])
        yield _gauge("t2t_feed_held_packets", "Packets held beyond a gap", status["held"])

    @staticmethod
    def _order_session(broker):
        yield _gauge("t2t_order_session_up", "1 while the venue's order session is logged "
                     "in", int(bool(getattr(broker, "connected", False))))
        events = CounterMetricFamily("t2t_order_session_events", "Order session events "
                                     "(entered, logins, disconnects, ...)", labels=["event"])
        for event, n in sorted(dict(getattr(broker, "counters", {})).items()):
            events.add_metric([event], n)
        yield events

    def _device(self, device):
        try:
            status = device.status()
            counters = device.counters()
            histograms = getattr(device, "tick_to_trade", list)()
        except Exception:
            log.exception("metrics: the device could not be read")
            self.errors["device"] += 1
            yield _gauge("t2t_fpga_up", "1 when the attached FPGA answered this scrape", 0)
            return
        yield _gauge("t2t_fpga_up", "1 when the attached FPGA answered this scrape", 1)
        if "killed" in status:
            yield _gauge("t2t_fpga_killed", "1 while the FPGA's risk gate is killed",
                         int(bool(status["killed"])))
        fields = GaugeMetricFamily("t2t_fpga_status", "The FPGA's numeric status fields",
                                   labels=["field"])
        for field, value in sorted(status.items()):
            if isinstance(value, bool | int | float) and field != "killed":
                fields.add_metric([field], float(value))
        yield fields
        family = CounterMetricFamily("t2t_fpga_counter", "The FPGA's counter registers, "
                                     "by block", labels=["block", "counter"])
        for block, values in sorted(counters.items()):
            for name, value in sorted(values.items()):
                family.add_metric([block, name], value)
        yield family
        yield from _tick_to_trade(histograms)


def _tick_to_trade(histograms: list[TickToTrade]):
    """The FPGAs' histograms in cycles, and in seconds for those whose clock is known."""
    if not histograms:
        return
    labels = ["device"] if any(h.device is not None for h in histograms) else []
    where = "the frame's first beat in (the event's arrival at the strategy for an " \
            "Enter on a book update or from the host) to the order's first beat out, " \
            "counted by the FPGA in bins; le is a bin's upper edge, _sum an estimate " \
            "from the bins' midpoints"
    cycles = HistogramMetricFamily("t2t_fpga_tick_to_trade_cycles", "Tick-to-trade of the "
                                   f"FPGA's Enters in core clock cycles: {where}",
                                   labels=labels)
    seconds = HistogramMetricFamily("t2t_fpga_tick_to_trade_seconds", "Tick-to-trade of "
                                    f"the FPGA's Enters in seconds: {where}; cycles over "
                                    "the core clock (a virtual FPGA's is the run's "
                                    "device.clock_hz, nominally 156.25 MHz)", labels=labels)
    timed = False
    for h in histograms:
        value = [h.device or ""] if labels else []
        running, buckets = 0, []
        for edge, n in zip(h.edges(), h.bins):
            running += n
            buckets.append((edge, running))
        total = running + h.bins[-1]
        cycles.add_metric(value, [(floatToGoString(e), n) for e, n in buckets]
                          + [("+Inf", total)], h.sum_cycles())
        if h.clock_hz:
            timed = True
            seconds.add_metric(value, [(floatToGoString(e / h.clock_hz), n)
                                       for e, n in buckets] + [("+Inf", total)],
                               h.sum_cycles() / h.clock_hz)
    yield cycles
    if timed:
        yield seconds
