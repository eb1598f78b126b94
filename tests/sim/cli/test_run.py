"""``t2t run`` (what ``make run`` starts): venue → virtual FPGA → venue → host engine.

The summary ``--json`` prints for a run bounded in simulated cycles must be the numbers
of the same loop run here directly (the loop is deterministic per seed; the command's
live status reads registers between iterations, which must not change the run).
"""

import json

import pytest
from click.testing import CliRunner
from rich.console import Console

from tick2trade.gateware.models.trade.strategy import FAST_LATENCY
from tick2trade.gateware.models.trade.risk import RISK_LATENCY
from tick2trade.gateware.trade.telemetry import EARLY_TAP_LATENCY
from tick2trade.cli import main
from tick2trade.sim.cli.run import DEMO, open_loop, render, summary

pytestmark = pytest.mark.verilator

CYCLES = 200_000
SAME = ("feed", "orders", "fills", "gate", "positions", "pnl", "tick_to_trade_cycles",
        "event_to_wire_cycles", "report_cycles", "gate_cycles", "answers", "venue_rejects",
        "anomalies")


def test_run_summary_equals_the_loop(tmp_path):
    url = f"sqlite:///{tmp_path / 't2t.db'}"
    result = CliRunner().invoke(main, ["run", "--cycles", str(CYCLES), "--seed", "5",
                                       "--json", "--db", url])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    loop = open_loop(DEMO, seed=5, rate=200_000.0, flatten_at=500)
    loop.run(CYCLES)
    want = summary(loop)
    for key in SAME:
        if key in ("fills",):  # per-wall-second rates differ; counts must not
            assert {k: got[key][k] for k in ("count", "shares")} == \
                {k: want[key][k] for k in ("count", "shares")}
        else:
            assert got[key] == want[key], key
    assert got["fills"]["count"] > 10 and got["orders"]["enters"] > 10
    assert got["event_to_wire_cycles"]["n"] == got["orders"]["enters"]
    # the floor: an Add's price ends in beat 12 at W = 64, then 2 cycles to the strategy's
    # fast path, which hands it to the risk gate at once; 2 there
    assert got["tick_to_trade_cycles"]["n"] > 0
    assert got["tick_to_trade_cycles"]["min"] >= 12 + EARLY_TAP_LATENCY + FAST_LATENCY + \
        RISK_LATENCY
    assert got["anomalies"] == {} and got["stopped_by"] == "cycles"
    # every answer came back through the gateware, which applied the fills to the gate
    answers = got["answers"]
    assert answers["venue"] == answers["events"] + answers["waiting"]
    assert answers["events"] > 0 and answers["host_reports"] == 0
    assert got["gate_cycles"]["n"] == answers["on_chip"] > 0
    # what people read says the same
    console = Console(record=True, width=200)
    console.print(render(want, "summary"))
    text = console.export_text()
    t = want["tick_to_trade_cycles"]
    for row in ("feed", "orders", "fills", "risk gate", "tick-to-trade", "event → wire",
                "answers", "gate", "reports", "host", "P&L", "positions"):
        assert row in text, row
    assert f"p50 {t['p50']}, p90 {t['p90']}" in text
    assert f"{want['orders']['enters']:,} enters" in text
    assert got["database"]["orders"] == got["orders"]["enters"]
    assert got["database"]["executions"] == got["fills"]["count"]
    # the run's end leaves no order open (issue 25, item 14): its venue is gone, each one
    # still open there is canceled with the reason; the rows agree with the audit chain
    # and the positions with the executions
    from sqlalchemy import select

    from tick2trade.host.engine_db import ENDED
    from tick2trade.host.services import db, ledger
    from tick2trade.host.services.status import OPEN

    left = sum(n for state, n in got["orders"]["states"].items() if state in OPEN)
    assert got["database"]["closed_at_end"] == left > 0
    engine = db.make_engine(url)
    with db.session_factory(engine)() as s:
        assert s.scalars(select(db.Order.reason).where(db.Order.status.in_(OPEN))).all() == []
        assert len(s.scalars(select(db.Order.id).where(db.Order.reason == ENDED)).all()) == left
        assert ledger.problems(s) == []
    engine.dispose()


def test_run_refuses_a_bad_config(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(DEMO.read_text().replace('side = "buy"', 'side = "up"', 1))
    result = CliRunner().invoke(main, ["run", "--cycles", "1000", "--config", str(bad),
                                       "--no-db"])
    assert result.exit_code == 1
    assert "trigger[0].side: 'up'; one of buy, sell" in result.output
    no_venue = tmp_path / "no_venue.toml"
    text = DEMO.read_text()
    no_venue.write_text(text[:text.index("\n[venue]\n")] + text[text.index("\n# gap reports"):])
    result = CliRunner().invoke(main, ["run", "--cycles", "1000", "--config",
                                       str(no_venue), "--no-db"])
    assert result.exit_code == 1 and "needs [venue] ip, port and mac" in result.output


def start_run(args: list[str], cwd=None):
    """``t2t run ARGS`` in a process of its own, returned once it trades (its "Ctrl-C
    stops" line); killed if it ends or takes too long before that."""
    import os
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "tick2trade.cli", "run", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd, env={**os.environ, "COLUMNS": "200"})
    try:
        deadline = time.monotonic() + 300  # a first Verilator build takes about a minute
        line = ""
        while "Ctrl-C stops" not in line:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "t2t run ended before trading"
            assert time.monotonic() < deadline
    except BaseException:
        proc.kill()
        raise
    return proc


def interrupt(proc, timeout: float) -> dict:
    """Ctrl-C to a ``t2t run --json``: it must exit 0; returns its summary."""
    import signal

    proc.send_signal(signal.SIGINT)
    out, _err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0
    return json.loads(out)


def test_ctrl_c_stops_cleanly_with_a_summary():
    """SIGINT while trading: the loop ends at its iteration, the summary is printed, the
    exit status is 0 and nothing is left running (the model lives in this process)."""
    import time

    proc = start_run(["--duration", "120", "--no-db", "--json"])
    try:
        time.sleep(2)
        summary = interrupt(proc, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert summary["stopped_by"] == "ctrl-c"
    assert summary["cycles"] > 0 and summary["feed"]["messages"] > 0


def test_run_serves_the_api_and_its_orders_go_through_the_fpga(tmp_path):
    """``t2t run --api`` on a real loopback port: a user registers, reads the venue's
    touch from the API, buys through the FPGA and is filled; an order above the gate's
    500-share maximum comes back rejected with that check; made an operator, the user
    engages the kill switch and the gate is killed; Ctrl-C ends it all."""
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"sqlite:///{tmp_path / 't2t.db'}"
    proc = start_run(["--duration", "300", "--db", url, "--api", "--api-port", str(port),
                      "--json"], cwd=tmp_path)
    try:
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        creds = {"username": "ann", "password": "correct horse battery"}
        assert api.post("/auth/register", json={**creds, "email": "a@example.com"}
                        ).status_code == 201
        token = api.post("/auth/login", json=creds).json()["access_token"]
        h = {"Authorization": f"Bearer {token}"}

        def wait(order_id, statuses):
            for _ in range(200):
                o = api.get(f"/orders/{order_id}", headers=h).json()
                if o["status"] in statuses:
                    return o
                time.sleep(0.05)
            raise AssertionError(f"order {order_id} still {o['status']}")

        filled, refusals = None, 0
        for _ in range(20):  # the book may move past a limit before it arrives
            while (q := api.get("/market/BTC-USD/quote", headers=h).json()).get("ask") is None:
                time.sleep(0.1)  # 404 until the first status refresh publishes quotes
            limit = round(float(q["ask"]) * 10_000) + 2_000_000
            o = api.post("/orders", headers=h, json={
                "symbol": "BTC-USD", "side": "buy", "type": "limit", "tif": "ioc",
                "qty": 2, "price": f"{limit / 10_000:.4f}"}).json()
            o = wait(o["id"], ("filled", "canceled", "rejected"))
            # the gate may refuse an attempt too (no_reference while its book lacks a side)
            refusals += o["status"] == "rejected" and o["reason"].startswith("FPGA risk gate")
            if o["status"] == "filled":
                filled = o
                break
        assert filled is not None and filled["filled_qty"] == 2
        assert float(filled["avg_fill_price"]) <= limit / 10_000
        pos = api.get("/portfolio/positions", headers=h).json()["positions"]
        assert [(p["symbol"], p["qty"], p["avg_price"]) for p in pos] == \
            [("BTC-USD", 2, filled["avg_fill_price"])]
        # the platform's book is the FPGA's top N, from the book stream
        book = api.get("/market/BTC-USD/book", headers=h).json()
        assert book["source"] == "fpga" and book["depth_tracked"] == 8 and book["seq"] > 0
        assert 0 < len(book["asks"]) <= 8 and 0 < len(book["bids"]) <= 8
        for _ in range(100):  # the FPGA's prints (ours among them) give the last price
            if api.get("/market/BTC-USD/quote", headers=h).json()["last"] is not None:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("no trade print reached the platform")
        bars = api.get("/market/BTC-USD/history", headers=h)  # 404 before any print
        assert bars.status_code == 200, bars.text
        # a stop waits in the OMS on the FPGA's book and goes through the gate as a
        # market order once the offer reaches it (at once: its level is the bid)
        bid = api.get("/market/BTC-USD/quote", headers=h).json()["bid"]
        stop = api.post("/orders", headers=h, json={
            "symbol": "BTC-USD", "side": "buy", "type": "stop", "qty": 1,
            "stop_price": bid}).json()
        stop = wait(stop["id"], ("filled", "canceled"))
        assert stop["triggered"], stop
        refusals += "FPGA risk gate" in (stop["reason"] or "")
        big = api.post("/orders", headers=h, json={
            "symbol": "BTC-USD", "side": "buy", "type": "limit", "qty": 600,
            "price": f"{limit / 10_000:.4f}"}).json()
        big = wait(big["id"], ("rejected", "accepted", "filled", "canceled"))
        assert big["status"] == "rejected"
        assert big["reason"] == ("FPGA risk gate: max_shares: quantity above the gate's "
                                 "maximum of 500 shares")
        # /metrics has the gateware's tick-to-trade histogram of the Enters so far
        ttt = scraped_histograms(api.get("/metrics").text)
        cycles, seconds = ttt["t2t_fpga_tick_to_trade_cycles"], \
            ttt["t2t_fpga_tick_to_trade_seconds"]
        counts = [n for _le, n in cycles["buckets"]]
        assert len(counts) == 32 and counts == sorted(counts) and counts[-1] > 0
        assert cycles["count"] == counts[-1]
        # the run converts cycles with the demo's device.clock_hz (default 156.25 MHz)
        assert [n for _le, n in seconds["buckets"]] == counts
        assert [le for le, _n in seconds["buckets"][:-1]] == pytest.approx(
            [le / 156.25e6 for le, _n in cycles["buckets"][:-1]])
        assert seconds["count"] == cycles["count"]
        # an operator's kill switch reaches the gate, from the API's thread
        subprocess.run([sys.executable, "-m", "tick2trade.cli", "users", "set-role", "ann",
                        "operator", "--db", url], check=True, capture_output=True)
        h = {"Authorization": "Bearer " + api.post("/auth/login", json=creds
                                                    ).json()["access_token"]}
        assert api.get("/operator/device", headers=h).json()["killed"] is False
        assert api.put("/operator/kill-switch", headers=h, json={"engaged": True}
                       ).json()["device"] == "set"
        device = api.get("/operator/device", headers=h).json()
        assert (device["killed"], device["kill_causes"]) == (True, ["host"])
        summary = interrupt(proc, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert summary["gate"]["killed"] == 1 and summary["gate"]["kill_causes"] == ["host"]
    a = summary["api"]
    assert a["refused_by_gate"] == refusals + 1 and a["injected"] == a["submitted"] >= 2
    assert a["fills"] >= 1 and a["in_flight"] == 0
    # the prints came on the event channel as trade records, each given to the market
    prints = summary["fpga_market"]["prints"]
    assert prints["traded"] > 0 and prints["unwatched"] == 0, prints
    assert prints["records"] == prints["traded"] + prints["stale"], prints
    # the histogram counted the Enters the FPGA had sent by then, the summary's records
    # have them all: an Enter decided on a book update or injected by the host is
    # stamped t_in = t_event, so it counts its event-to-wire cycles
    assert cycles["count"] <= summary["orders"]["enters"]
    ttt, e2w = summary["tick_to_trade_cycles"], summary["event_to_wire_cycles"]
    edges = [le for le, _n in cycles["buckets"]]
    first = next(i for i, n in enumerate(counts) if n)
    last = next(i for i, n in enumerate(counts) if n == counts[-1])
    assert edges[first] > min(ttt["min"], e2w["min"])
    assert (edges[last - 1] if last else 0) <= max(ttt["max"], e2w["max"])


def scraped_histograms(text: str) -> dict[str, dict]:
    """The histograms of a /metrics page by name: ``buckets`` as (le, cumulative count)
    in ``le`` order, +Inf last, and its ``count`` and ``sum``."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        if family.type != "histogram":
            continue
        h = out[family.name] = {"buckets": []}
        for s in family.samples:
            if s.name.endswith("_bucket"):
                h["buckets"].append((float(s.labels["le"]), s.value))
            else:
                h[s.name.rpartition("_")[2]] = s.value
        h["buckets"].sort()
    return out


def test_realtime_pace_moves_the_market_with_the_wall_clock():
    result = CliRunner().invoke(main, ["run", "--pace", "realtime", "--duration", "4",
                                       "--rate", "400", "--json", "--no-db"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["pace"] == "realtime" and got["rate"] == 400 and got["stopped_by"] == "duration"
    # four seconds of wall time are about four seconds of market (the first step starts
    # after the loop opened), not the 0.05 % the simulated pace manages
    assert 3.0 <= got["market_s"] <= 4.5, got["market_s"]
    assert got["feed"]["messages"] >= 400 * 2, got["feed"]
    assert got["anomalies"] == {}
    # idle cycles were skipped: far fewer cycles ran than four seconds of the clock
    assert got["cycles"] < 4 * 156_250_000 // 100


def test_realtime_pace_refuses_a_cycle_bound():
    result = CliRunner().invoke(main, ["run", "--pace", "realtime", "--cycles", "1000",
                                       "--no-db"])
    assert result.exit_code == 2 and "--pace realtime" in result.output


def test_two_fpgas_in_the_rtl_each_trade_their_own_symbols(tmp_path):
    """``--fpgas 2``: two Verilator top levels on one venue, the demo's watch list dealt
    round-robin; each one's Enters are for its own symbols and its answers come back to
    it (the gateware applied them to its own gate)."""
    url = f"sqlite:///{tmp_path / 't2t.db'}"
    result = CliRunner().invoke(main, ["run", "--fpgas", "2", "--cycles", "100000",
                                       "--seed", "5", "--json", "--db", url])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["fpgas"] == 2
    assert [(d["name"], d["symbols"]) for d in got["devices"]] == [
        ("fpga0", ["AAPL", "BTC-USD", "NVDA", "SPY"]),
        ("fpga1", ["MSFT", "ETH-USD", "QQQ", "TSLA"])]
    for d in got["devices"]:
        assert d["orders"]["enters"] > 0 and d["anomalies"] == {}, d["name"]
        assert set(d["positions"]) <= set(d["symbols"])
        assert d["answers"]["events"] > 0 and d["answers"]["host_reports"] == 0
    assert got["orders"]["enters"] == sum(d["orders"]["enters"] for d in got["devices"])
    assert got["database"]["orders"] == got["orders"]["enters"]
