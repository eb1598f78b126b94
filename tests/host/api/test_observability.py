"""GET /metrics, /health and /ready, and the request id on responses and log lines:
the API in-process on the platform fixture, and `t2t api --log-format json` for real."""

from __future__ import annotations

import io
import json
import logging
import re
import socket

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from tick2trade.host import logs
from tick2trade.host.api.ws import BEARER
from tick2trade.host.services.feed import FeedHandler
from tick2trade.host.services.live import Live
from tick2trade.host.services.localvenue import free_port

from tests.host.conftest import FakeDevice, register_login, wait_for

T = 10_000


def scrape(client) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics as (name, labels) → value, parsed by prometheus-client's
    own parser of the text format."""
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def sample(samples, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def quote(platform, sym="AAPL", bid=100.0, ask=100.1, size=100):
    platform.market.update(sym, bid=round(bid * T), bid_size=size, ask=round(ask * T),
                           ask_size=size)


@pytest.fixture
def trader(client):
    return register_login(client, "observed")


@pytest.fixture
def json_log():
    """The root logger's records from INFO up as JSON lines into a buffer, as
    `--log-format json` writes them; the logging set-up is put back afterwards."""
    root = logging.getLogger()
    kept = (list(root.handlers), root.level)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logs.JsonFormatter())
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    yield buffer
    root.handlers[:], root.level = kept


def records(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


# --- /metrics -------------------------------------------------------------------------------

def test_latency_is_by_route_template_not_by_path(client):
    for order_id in (12, 345, 6789):
        assert client.get(f"/orders/{order_id}").status_code == 401
    client.get("/no/such/path")
    samples = scrape(client)
    assert sample(samples, "t2t_http_request_duration_seconds_count", method="GET",
                  route="/orders/{order_id}") == 3
    assert sample(samples, "t2t_http_requests_total", method="GET",
                  route="/orders/{order_id}", status="401") == 3
    assert sample(samples, "t2t_http_request_duration_seconds_count", method="GET",
                  route="unmatched") == 1
    routes = {dict(labels).get("route") for _name, labels in samples}
    assert not any(r and re.search(r"/orders/\d", r) for r in routes)
    assert "/no/such/path" not in routes


def test_orders_and_fills_are_counted(client, platform, trader):
    before = scrape(client)
    assert sample(before, "t2t_fills_total", venue="PAPER") == 0
    quote(platform)
    r = client.post("/orders", headers=trader,
                    json={"symbol": "AAPL", "side": "buy", "type": "market", "qty": 30})
    assert r.status_code == 201 and r.json()["status"] == "filled"
    r = client.post("/orders", headers=trader, json={"symbol": "AAPL", "side": "buy",
                                                     "type": "limit", "price": "90",
                                                     "qty": 5, "tif": "gtc"})
    assert r.json()["status"] == "accepted"
    samples = scrape(client)
    assert sample(samples, "t2t_order_transitions_total", state="pending",
                  venue="PAPER") == 2
    assert sample(samples, "t2t_order_transitions_total", state="accepted",
                  venue="PAPER") == 2
    assert sample(samples, "t2t_order_transitions_total", state="filled",
                  venue="PAPER") == 1
    assert sample(samples, "t2t_orders_placed_total", venue="PAPER") == 2
    assert sample(samples, "t2t_fills_total", venue="PAPER") == 1
    assert sample(samples, "t2t_filled_shares_total", venue="PAPER") == 30
    assert sample(samples, "t2t_orders_open", state="accepted") == 1
    assert sample(samples, "t2t_orders_open", state="pending") == 0
    assert sample(samples, "t2t_http_request_duration_seconds_count", method="POST",
                  route="/orders") == 2
    assert sample(samples, "t2t_kill_switch_engaged") == 0


def test_kill_switch_and_risk_rejects_show(client, platform, trader):
    operator = register_login(client, "opsperson", "operator", platform)
    assert client.put("/operator/kill-switch", headers=operator,
                      json={"engaged": True, "reason": "test"}).status_code == 200
    quote(platform)
    r = client.post("/orders", headers=trader,
                    json={"symbol": "AAPL", "side": "buy", "type": "market", "qty": 1})
    assert r.json()["status"] == "rejected"
    samples = scrape(client)
    assert sample(samples, "t2t_kill_switch_engaged") == 1
    assert sample(samples, "t2t_order_transitions_total", state="rejected",
                  venue="PAPER") == 1


def test_websocket_clients_and_device_counters(client, platform):
    register_login(client, "wsuser")
    token = client.post("/auth/login", json={"username": "wsuser",
                                             "password": "correct horse battery"}
                        ).json()["access_token"]
    assert sample(scrape(client), "t2t_websocket_clients") == 0
    with client.websocket_connect("/ws", subprotocols=[BEARER, token]) as ws:
        assert ws.receive_json()["type"] == "hello"
        assert sample(scrape(client), "t2t_websocket_clients") == 1
    assert wait_for(lambda: sample(scrape(client), "t2t_websocket_clients") == 0, 5)
    assert sample(scrape(client), "t2t_fpga_up") is None   # no device attached
    platform.device = FakeDevice()
    samples = scrape(client)
    assert sample(samples, "t2t_fpga_up") == 1
    assert sample(samples, "t2t_fpga_counter_total", block="eth_rx", counter="frames") == 7


def test_monitoring_routes_are_not_in_the_api_document(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/metrics", "/health", "/ready"} & set(paths)


# --- /health, /ready ------------------------------------------------------------------------

def test_health_and_ready_when_all_is_well(client):
    assert client.get("/health").json() == {"status": "ok"}
    r = client.get("/ready")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "checks": {"database": "ok", "market": "ok"}}


def test_ready_is_503_when_the_database_is_unreachable(client, platform):
    # a real PostgreSQL URL on a port where nothing listens: the connection is refused
    dead = create_engine(f"postgresql+psycopg://t2t@127.0.0.1:{free_port()}/t2t",
                         connect_args={"connect_timeout": 1})
    serving, platform.engine = platform.engine, dead
    try:
        r = client.get("/ready")
    finally:
        platform.engine = serving
        dead.dispose()
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not ready" and body["reason"].startswith("database:")
    assert "OperationalError" in body["reason"] and body["checks"]["market"] == "ok"
    assert "127.0.0.1" not in body["reason"]     # no URL in the answer
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200


def test_ready_waits_for_the_feed(client, platform):
    udp = socket.SOCK_DGRAM
    feed = FeedHandler(platform.market, lines=[("127.0.0.1", free_port(udp)),
                                              ("127.0.0.1", free_port(udp))])
    platform.live = Live(platform.market, feed=feed)
    try:
        r = client.get("/ready")
        assert r.status_code == 503
        assert r.json()["reason"] == "market: the feed handler is not running"
        feed.start()
        assert client.get("/ready").status_code == 200
        samples = scrape(client)
        assert sample(samples, "t2t_feed_gaps_total") == 0
        assert sample(samples, "t2t_feed_gap_open") == 0
    finally:
        feed.close()
        platform.live = None


# --- request ids ----------------------------------------------------------------------------

def test_request_id_is_taken_when_sane_and_made_otherwise(client):
    assert client.get("/health", headers={"X-Request-ID": "trace-1.a:B_2"}
                      ).headers["x-request-id"] == "trace-1.a:B_2"
    for bad in ("has space", "x" * 65, "semi;colon", ""):
        got = client.get("/health", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert got != bad and re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", got)
    one, two = (client.get("/health").headers["x-request-id"] for _ in range(2))
    assert one != two


def test_order_log_lines_carry_the_request_id(client, platform, trader, json_log):
    quote(platform)
    r = client.post("/orders", headers={**trader, "X-Request-ID": "place-7f3a"},
                    json={"symbol": "AAPL", "side": "buy", "type": "market", "qty": 30})
    assert r.status_code == 201 and r.headers["x-request-id"] == "place-7f3a"
    order_id = r.json()["id"]
    client.post("/orders", headers={**trader, "X-Request-ID": "other-request"},
                json={"symbol": "AAPL", "side": "buy", "type": "limit", "price": "90",
                      "qty": 1})
    lines = records(json_log)          # every line parses as one JSON object
    for line in lines:
        assert {"ts", "level", "logger", "msg", "request_id"} <= set(line)
    mine = [line["msg"] for line in lines if line["request_id"] == "place-7f3a"]
    assert any(m.startswith(f"order {order_id} placed: buy 30 AAPL market") for m in mine)
    assert f"order {order_id} accepted" in mine
    assert f"order {order_id} executed 30 at 100.1000 on PAPER" in mine
    assert f"order {order_id} filled" in mine
    assert not any(m.startswith(f"order {order_id + 1} ") for m in mine)
    # the token never reaches a line
    token = trader["Authorization"].split()[1]
    assert token not in json_log.getvalue()


def test_json_formatter_puts_extras_and_errors_on_the_line(json_log):
    log = logging.getLogger("tick2trade.test")
    token = logs.request_id.set("ctx-id")
    try:
        log.info("with %s", "args", extra={"symbol": "AAPL"})
        log.info("elsewhere", extra=logs.tagged("given-id"))
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        logs.request_id.reset(token)
    first, second, third = records(json_log)
    assert (first["msg"], first["request_id"], first["symbol"], first["level"],
            first["logger"]) == ("with args", "ctx-id", "AAPL", "INFO", "tick2trade.test")
    assert first["ts"].endswith("+00:00")
    assert second["request_id"] == "given-id"
    assert third["level"] == "ERROR" and "ValueError: boom" in third["exc"]


def test_t2t_api_logs_json_and_the_venue_ack_carries_the_request_id(tmp_path):
    from tick2trade.testing.apiproc import start_api, stop_api

    proc, base = start_api(tmp_path, "--log-format", "json", "--no-history")
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.post("/auth/register", json={
                "username": "jsonlog", "password": "correct horse battery",
                "email": "jsonlog@example.com"}).status_code == 201
            token = http.post("/auth/login", json={
                "username": "jsonlog", "password": "correct horse battery"}
            ).json()["access_token"]
            h = {"Authorization": f"Bearer {token}"}
            r = http.post("/orders", headers={**h, "X-Request-ID": "venue-ack-1"},
                          json={"symbol": "AAPL", "side": "buy", "type": "limit",
                                "price": "1", "qty": 1, "tif": "gtc"})
            assert r.status_code == 201 and r.headers["x-request-id"] == "venue-ack-1"
            order_id = r.json()["id"]
            assert wait_for(lambda: http.get(f"/orders/{order_id}", headers=h
                                             ).json()["status"] == "accepted")
            samples = {(s.name, frozenset(s.labels.items())): s.value
                       for f in text_string_to_metric_families(http.get("/metrics").text)
                       for s in f.samples}
            assert sample(samples, "t2t_order_session_up") == 1
            assert sample(samples, "t2t_feed_packets_total") > 0
            assert sample(samples, "t2t_order_transitions_total", state="accepted",
                          venue="T2TV") == 1
            assert http.get("/ready").status_code == 200
    finally:
        out = stop_api(proc)
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert any(line["msg"].startswith("t2t api: state in") for line in lines)
    assert any(line["msg"].strip() == "market data and orders from" for line in lines)
    assert any(line["logger"] == "uvicorn.error" and "Uvicorn running" in line["msg"]
               for line in lines)
    assert not any("color_message" in line for line in lines)
    mine = [line for line in lines if line["request_id"] == "venue-ack-1"]
    msgs = [line["msg"] for line in mine]
    assert any(m.startswith(f"order {order_id} placed: buy 1 AAPL limit gtc") for m in msgs)
    # written on the order session's thread, when the venue's Accepted came in
    assert f"order {order_id} accepted" in msgs
    # uvicorn's access line is written while the request's id is set
    assert any(line["logger"] == "uvicorn.access" and "/orders" in line["msg"]
               for line in mine)
    assert token not in out


# --- the FPGA's tick-to-trade histogram ------------------------------------------------------

class RegisterFile:
    """The registers of a top level (its generated map) as plain values: what
    ``EngineDevice`` reads, without a simulator behind them."""

    def __init__(self, regmap, values: dict[str, int]):
        self.map, self.values = regmap, values

    def read_many(self, names) -> dict[str, int]:
        return {n: self.values.get(n, 0) for n in names if self.map[n]}

    def counters(self) -> dict[str, int]:
        return self.read_many(e.name for e in self.map.entries if ".counters." in e.name)


class OnThisThread:
    """The broker's pump, as ``EngineDevice`` uses it: run the read here and now."""

    def on_loop(self, fn, timeout=5.0):
        return fn()


@pytest.fixture(scope="module")
def regmap():
    from tick2trade.sim.topsim import top_map

    return top_map(64, 8, 64)


def engine_device(regmap, bins: dict[int, int], shift: int, ttt_max: int,
                  clock_hz: int = 156_250_000):
    from types import SimpleNamespace

    from tick2trade.host.engine_device import EngineDevice

    values = {f"telemetry.histogram[{i}]": n for i, n in bins.items()}
    values.update({"telemetry.hist_shift": shift, "telemetry.ttt_max": ttt_max})
    dev = RegisterFile(regmap, values)
    # the engine's view of the gate, for the device's status (the scrape reads it too)
    engine = SimpleNamespace(watch=["AAPL"], kill_causes=list, poll=lambda: dev.read_many(
        ["risk.status.killed", "risk.status.open_orders", "risk.status.gross",
         "sys.alarms"]))
    loop = SimpleNamespace(dev=dev, engine=engine, clock_hz=clock_hz, now=10, start=0)
    return EngineDevice(OnThisThread(), loop)


def histogram(samples, name: str, **labels) -> dict[str, float]:
    """A histogram's buckets by ``le``, with its ``count`` and ``sum``."""
    out = {le: v for (n, lab), v in samples.items() if n == f"{name}_bucket"
           for le in [dict(lab)["le"]]
           if frozenset(kv for kv in lab if kv[0] != "le") == frozenset(labels.items())}
    out["count"] = sample(samples, f"{name}_count", **labels)
    out["sum"] = sample(samples, f"{name}_sum", **labels)
    return out


class StatusOnly(FakeDevice):
    def counters(self):
        return {}


def test_the_fpga_histogram_is_cumulative_in_cycles_and_seconds(client, platform, regmap):
    """Bins 4 cycles wide (hist_shift 2) holding 3 Enters in [0, 4), 5 in [8, 12) and 2
    in the last, open bin (the most seen 200 cycles): the buckets count what lies below
    each upper edge, +Inf all ten; the seconds are the cycles at 156.25 MHz (6.4 ns)."""
    from tick2trade.host.services.device import TickToTrade

    device = engine_device(regmap, {0: 3, 2: 5, 31: 2}, shift=2, ttt_max=200)
    platform.device = device
    got = device.tick_to_trade()
    assert got == [TickToTrade((3, 0, 5, *[0] * 28, 2), 4, 200, 156.25e6)]
    samples = scrape(client)
    cycles = histogram(samples, "t2t_fpga_tick_to_trade_cycles")
    assert len(cycles) == 31 + 1 + 2   # 31 bin edges, +Inf, count and sum
    assert (cycles["4.0"], cycles["8.0"], cycles["12.0"], cycles["124.0"]) == (3, 3, 8, 8)
    assert cycles["+Inf"] == cycles["count"] == 10
    # midpoints 2 and 10 cycles; the last bin's between its edge (124) and the most (200)
    assert cycles["sum"] == pytest.approx(3 * 2 + 5 * 10 + 2 * 162)
    seconds = histogram(samples, "t2t_fpga_tick_to_trade_seconds")
    assert seconds["2.56e-08"] == 3 and seconds["7.68e-08"] == 8   # 4 and 12 cycles
    assert seconds["+Inf"] == seconds["count"] == 10
    assert seconds["sum"] == pytest.approx(cycles["sum"] / 156.25e6)


def test_each_fpga_of_a_fleet_has_its_histogram_by_name(client, platform, regmap):
    from tick2trade.host.fleet import FleetDevice

    platform.device = FleetDevice({
        "left": engine_device(regmap, {1: 7}, shift=0, ttt_max=1),
        "right": engine_device(regmap, {5: 2, 6: 1}, shift=3, ttt_max=50)})
    cycles = {name: histogram(scrape(client), "t2t_fpga_tick_to_trade_cycles", device=name)
              for name in ("left", "right")}
    assert (cycles["left"]["1.0"], cycles["left"]["2.0"], cycles["left"]["count"]) == (0, 7, 7)
    assert (cycles["right"]["48.0"], cycles["right"]["56.0"]) == (2, 3)
    assert cycles["right"]["count"] == 3
    assert sample(scrape(client), "t2t_fpga_tick_to_trade_cycles_count") is None


def test_a_device_without_a_histogram_exports_none(client, platform, regmap):
    """The golden models keep no time, so no histogram (``ModelFpga`` refuses the
    registers); a device without the method has none either."""
    from types import SimpleNamespace

    from tick2trade.host.config import load
    from tick2trade.host.engine_device import EngineDevice
    from tick2trade.sim.cli.run import DEMO
    from tick2trade.sim.modelfpga import ModelFpga

    model = ModelFpga(load(DEMO, symbols=8), regmap, 8)
    device = EngineDevice(OnThisThread(), SimpleNamespace(dev=model, clock_hz=1))
    assert device.tick_to_trade() == []
    for device in (StatusOnly(),):
        platform.device = device
        samples = scrape(client)
        assert sample(samples, "t2t_fpga_up") == 1
        assert not any(n.startswith("t2t_fpga_tick_to_trade") for n, _ in samples)
