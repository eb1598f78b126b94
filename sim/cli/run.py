"""``t2t run`` (what ``make run`` starts): the synthetic venue, the virtual FPGA and the
host engine in one deterministic loop (``sim.loop``), with a live status and a summary.

Everything runs in this process (the Verilator model is a shared library), so Ctrl-C
stops it all at the next iteration and nothing is left running.

With ``--api`` the platform's HTTP/WebSocket API is served on loopback from a thread of
this process, over the same database; its orders go through the FPGA
(``host.engine_broker.EngineBroker``, pumped between the loop's iterations), its
operator endpoints reach the FPGA (``host.engine_device.EngineDevice``: status,
counters, the kill switch), and the platform's market data is the FPGA's own: its
book (the update stream on the event channel, ``host.services.fpgabook.FpgaBook``) and
its trade prints (the trade records, ``FpgaPrints``: last, bars, alerts, history).

With ``--fpgas N`` (or ``[[fpga]]`` tables in the config) N virtual FPGAs trade on the
one venue, each its part of the symbols (``sim.fleet``, ``host.fleet``): one OMS, one
kill switch, a status and a summary row per device.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
import threading
import time
from pathlib import Path

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

DEMO = Path(__file__).resolve().parents[2] / "docs" / "demo.toml"
SYMBOLS, LOCATES = 8, 64  # the build the tests share (sim.topsim.build_top)
STATUS_EVERY = 0.5  # seconds between live status refreshes
# the demo's host policy, in cycles of the FPGA clock
HEARTBEAT_EVERY = 50_000
STALE_AFTER = 150_000


RATES = {"simulated": 200_000.0, "realtime": 500.0}  # --rate's default per --pace


def loop_config(seed: int, rate: float, flatten_at: int, pace: str = "simulated"):
    from tick2trade.sim.loop import LoopConfig

    return LoopConfig(seed=seed, rate=rate, heartbeat_every=HEARTBEAT_EVERY,
                      stale_after=STALE_AFTER, flatten_at=flatten_at, resync_on_gap=True,
                      pace=pace)


def open_loop(config_path: Path, seed: int, rate: float, flatten_at: int,
              pace: str = "simulated"):
    """The virtual FPGA configured from ``config_path``, and the loop around it."""
    from tick2trade.host.config import load
    from tick2trade.sim.local_device import LocalDevice
    from tick2trade.sim.loop import Loop, configure
    from tick2trade.sim.topsim import TopSim

    cfg = load(config_path, symbols=SYMBOLS)
    sim = TopSim(64, symbols=SYMBOLS, locates=LOCATES)
    dev = LocalDevice(sim)
    configure(dev, cfg)
    return Loop(sim, dev, cfg, loop_config(seed, rate, flatten_at, pace))


def verilator_fpga(cfg):
    """A virtual FPGA of the run (the top level in Verilator) configured with ``cfg``:
    (what the loop runs, its registers)."""
    from tick2trade.sim.local_device import LocalDevice
    from tick2trade.sim.loop import configure
    from tick2trade.sim.topsim import TopSim

    sim = TopSim(64, symbols=SYMBOLS, locates=LOCATES)
    dev = LocalDevice(sim)
    configure(dev, cfg)
    return sim, dev


def open_fleet(config_path: Path, fpgas: int | None, seed: int, rate: float,
               flatten_at: int, pace: str = "simulated", device=verilator_fpga):
    """``fpgas`` virtual FPGAs (None: one per ``[[fpga]]`` table, else one), each made by
    ``device`` with its part of ``config_path`` (``host.fleet.partition``), on one venue
    (``sim.fleet.Fleet``); and the host's gross limit across them (0: none)."""
    from tick2trade.host.config import load
    from tick2trade.host.fleet import partition
    from tick2trade.sim.fleet import Fleet

    cfg = load(config_path)
    members = [(m.name, *device(m.cfg), m.cfg)
               for m in partition(cfg, fpgas, SYMBOLS, str(config_path))]
    return Fleet(members, loop_config(seed, rate, flatten_at, pace)), cfg.total_gross


def trade_through(fleet, total_gross: int, open_platform):
    """The platform of ``t2t run --api`` over ``fleet``'s FPGAs: ``open_platform(broker,
    device)`` opens it with the broker and device made here (one FPGA's own, else
    ``host.fleet``'s over them all). Returns the broker, the platform, a store per
    FPGA and how many orders a previous run left open (marked canceled)."""
    from tick2trade.host.engine_broker import EngineBroker
    from tick2trade.host.engine_db import EngineStore
    from tick2trade.host.engine_device import EngineDevice
    from tick2trade.host.fleet import FleetBroker, FleetDevice

    lanes = list(zip(fleet.names, fleet.loops))
    brokers = {name: EngineBroker(loop.engine, loop.cfg.limits()) for name, loop in lanes}
    devices = {name: EngineDevice(brokers[name], loop) for name, loop in lanes}
    lead = fleet.names[0]
    # one FPGA with a total gross limit: the sum over one
    broker = FleetBroker(brokers, total_gross) if len(lanes) > 1 or total_gross \
        else brokers[lead]
    device = FleetDevice(devices) if len(lanes) > 1 else devices[lead]
    platform = open_platform(broker, device)
    # each run's venue is its own: an order a killed run left open works nowhere
    left = platform.orders.expire_open("not working: t2t run ended without closing "
                                       "it (killed?), its venue and FPGA are gone")
    stores = [EngineStore(platform.engine) for _lane in lanes]
    for store, b in zip(stores, brokers.values()):
        b.fpga_orders = store.user_ref  # the kill switch cancels them too
    return broker, platform, stores, left


def serve_api(platform, port: int):
    """The platform's API on 127.0.0.1:``port`` from a thread; returns the server (set
    ``should_exit`` to stop it) and its thread once it listens."""
    import uvicorn

    from tick2trade.host.api import create_app, serving

    server = uvicorn.Server(serving.config(create_app(platform), "127.0.0.1", port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, name="t2t-api", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    if not server.started:
        raise click.ClickException(f"the API could not listen on 127.0.0.1:{port} (in use?)")
    return server, thread


def percentile(values: list[int], q: float) -> int | None:
    """Nearest-rank percentile (exact: every sample is kept)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * q // 100) - 1)]


def spread(values: list[int]) -> dict:
    return {"n": len(values), "min": min(values, default=None),
            "p50": percentile(values, 50), "p90": percentile(values, 90),
            "p99": percentile(values, 99), "max": max(values, default=None)}


def summary(loop) -> dict:
    """The run in numbers (what the live view shows and ``--json`` prints)."""
    from tick2trade.gateware.models.trade.risk import REASONS
    from tick2trade.gateware.trade.ouch_rx import GATE_AFTER_LAG

    eng, dev = loop.engine, loop.dev
    counters = dev.read_many([f"risk.counters.{r}" for r in REASONS])
    status = eng.poll()
    cycles = loop.now - loop.start  # loop time: the FPGA also ran the host's requests
    sim_s = cycles / loop.clock_hz
    ttt, e2w = loop.tick_to_trade(), loop.event_to_wire()
    host_us = [n / 1000 for n in eng.latencies_ns]
    enters = [s for s in loop.sent if s.msg["type"] == "O"]
    market_s = loop.flow.now if loop.realtime else sim_s
    out = {
        "seed": loop.lc.seed, "pace": loop.lc.pace, "rate": loop.lc.rate,
        "market_s": round(market_s, 3),
        "cycles": cycles, "simulated_ms": round(sim_s * 1e3, 3),
        "wall_s": round(loop.wall, 3),
        "cycles_per_wall_s": round(cycles / loop.wall) if loop.wall else 0,
        "feed": {"messages": loop.feed_messages, "packets": loop.counters["feed_packets"],
                 "gaps": len(loop.gaps), "resyncs": len(loop.resyncs),
                 "per_sim_s": round(loop.feed_messages / sim_s) if sim_s else 0},
        "orders": {"enters": len(enters), "by_strategy": sum(
            not (o.host or o.client) for s in enters
            if (o := eng.orders.get(s.msg["user_ref"])) is not None),
            "cancels": len(loop.sent) - len(enters), "states": dict(eng.states())},
        "fills": {"count": len(eng.fills), "shares": sum(f.qty for f in eng.fills),
                  "per_sim_s": round(len(eng.fills) / sim_s) if sim_s else 0,
                  "per_wall_s": round(len(eng.fills) / loop.wall, 1) if loop.wall else 0},
        "gate": {"passed": counters["risk.counters.pass"],
                 "rejects": {r: counters[f"risk.counters.{r}"] for r in REASONS[1:]
                             if counters[f"risk.counters.{r}"]},
                 "killed": status["risk.status.killed"], "kill_causes": eng.kill_causes(),
                 "open_orders": status["risk.status.open_orders"],
                 "gross": status["risk.status.gross"]},
        "positions": eng.pnl(), "pnl": eng.totals(),
        "tick_to_trade_cycles": spread(ttt), "event_to_wire_cycles": spread(e2w),
        "report_cycles": spread([r.applied - r.made for r in eng.reports
                                 if r.applied is not None]),
        "gate_cycles": spread([lag + GATE_AFTER_LAG for lag in loop.answer_lags]),
        "answers": {"venue": loop.venue_answers, "events": loop.counters["answer_events"],
                    "waiting": loop.answers_waiting(),
                    "on_chip": len(loop.answer_lags), "host_reports": len(eng.reports)},
        "host_answer_us": {"answers": len(host_us),
                           "p50": round(percentile(host_us, 50) or 0, 2),
                           "p99": round(percentile(host_us, 99) or 0, 2)},
        "venue_rejects": {k.removeprefix("venue_reject_"): v for k, v in eng.counters.items()
                          if k.startswith("venue_reject_")},
        "anomalies": {k: v for k, v in {**loop.counters, **eng.counters}.items()
                      if v and k.startswith(("bad_", "unknown_", "telemetry_missing"))},
    }
    if loop.fpga_book is not None:  # --api: the platform's market data from the FPGA
        out["fpga_market"] = {"book": dict(loop.fpga_book.counters),
                              "prints": dict(loop.fpga_prints.counters)}
    return out


def fleet_summary(fleet) -> dict:
    """Several FPGAs' run: each one's ``summary`` (``devices``, with its name and
    symbols) and the totals across them; one FPGA's is its own ``summary``."""
    each = [{"name": name, "symbols": list(loop.engine.watch), **summary(loop)}
            for name, loop in zip(fleet.names, fleet.loops)]
    if len(each) == 1:
        return {k: v for k, v in each[0].items() if k not in ("name", "symbols")}

    def total(section: str, key: str) -> int:
        return sum(d[section][key] for d in each)
    lead = each[0]
    return {
        **{k: lead[k] for k in ("seed", "pace", "rate", "market_s", "cycles",
                                "simulated_ms", "wall_s", "cycles_per_wall_s")},
        "fpgas": len(each),
        "orders": {k: total("orders", k) for k in ("enters", "by_strategy", "cancels")},
        "fills": {k: total("fills", k) for k in ("count", "shares")},
        "gate": {"passed": total("gate", "passed"), "open_orders": total("gate", "open_orders"),
                 "gross": total("gate", "gross"),
                 "killed": [d["name"] for d in each if d["gate"]["killed"]]},
        "positions": {sym: p for d in each for sym, p in d["positions"].items()},
        "pnl": {k: total("pnl", k) for k in ("realized", "unrealized")},
        "venue_rejects": dict(sum((Counter(d["venue_rejects"]) for d in each), Counter())),
        "anomalies": {f"{d['name']}.{k}": v for d in each
                                          for k, v in d["anomalies"].items()},
        "devices": each,
    }


def _spread(t: dict, what: str) -> str:
    if not t["n"]:
        return "none yet"
    return (f"{t['n']:,} {what}: min {t['min']}, p50 {t['p50']}, p90 {t['p90']}, "
            f"p99 {t['p99']}, max {t['max']} cycles")


def _money(v: int) -> str:
    return f"{v / 10_000:,.2f}"


def render(s: dict, title: str) -> Group:
    head = Table(title=title, show_header=False, show_edge=False)
    head.add_column(style="bold")
    head.add_column(justify="right")
    t = s["tick_to_trade_cycles"]
    rows = [
        ("pace", (f"real time: {s['market_s']:,.1f} s of market at {s['rate']:,.0f} "
                  "actions per wall second; the FPGA ran only the cycles the traffic "
                  "needed" if s["pace"] == "realtime" else
                  f"simulated: {s['market_s'] * 1e3:,.3f} ms of market at "
                  f"{s['rate']:,.0f} actions per simulated second, as fast as it runs")),
        ("simulated", (f"{s['cycles']:,} cycles ({s['simulated_ms']:.3f} ms), "
                      f"{s['wall_s']:.1f} s wall, {s['cycles_per_wall_s']:,} cycles/s")),
        ("feed", (f"{s['feed']['messages']:,} ITCH messages in {s['feed']['packets']:,} "
                 f"packets ({s['feed']['per_sim_s']:,}/s simulated); gaps "
                 f"{s['feed']['gaps']}, book resyncs {s['feed']['resyncs']}")),
        ("orders", f"{s['orders']['enters']:,} enters ({s['orders']['by_strategy']:,} by "
                   f"the strategy), {s['orders']['cancels']:,} cancels; "
                   + ", ".join(f"{k} {v}" for k, v in sorted(s["orders"]["states"].items()))),
        ("fills", (f"{s['fills']['count']:,} ({s['fills']['shares']:,} shares; "
                  f"{s['fills']['per_sim_s']:,}/s simulated, {s['fills']['per_wall_s']}/s wall)")),
        ("risk gate", f"{s['gate']['passed']:,} passed; rejects: " + (", ".join(
            f"{k} {v:,}" for k, v in s["gate"]["rejects"].items()) or "none")
            + ("; KILLED (" + ", ".join(s["gate"]["kill_causes"]) + ")"
               if s["gate"]["killed"] else "")),
        ("tick-to-trade", _spread(t, "orders fired by a frame's message (frame in → "
                                     "order out)")),
        ("event → wire", _spread(s["event_to_wire_cycles"], "enters (strategy input → "
                                                            "order out)")),
        ("answers", (f"{s['answers']['venue']:,} from the venue, {s['answers']['events']:,} "
                     f"on the event channel; {s['answers']['on_chip']:,} applied to the "
                     f"gate on-chip, {s['answers']['host_reports']:,} reported by the host")),
        ("gate", _spread(s["gate_cycles"], "on-chip (answer's last byte in ouch_rx → "
                                           "position in the gate)")),
        ("reports", _spread(s["report_cycles"], "host reports (answer seen → in the gate)")),
        ("host", (f"{s['host_answer_us']['answers']:,} answers: p50 "
                 f"{s['host_answer_us']['p50']} µs, p99 {s['host_answer_us']['p99']} µs")),
        ("P&L", (f"realized {_money(s['pnl']['realized'])}, unrealized "
                f"{_money(s['pnl']['unrealized'])}")),
    ]
    for k, v in rows + _tail_rows(s):
        head.add_row(k, v)
    return Group(head, _positions(s))


def _tail_rows(s: dict) -> list[tuple[str, str]]:
    """The rows one FPGA's summary and several FPGAs' have alike."""
    from tick2trade.protocol import ouch

    rows = []
    if s["venue_rejects"]:
        rows.append(("venue rejects", ", ".join(
            f"{ouch.REJECT_REASONS.get(int(k), k)} {v}" for k, v in s["venue_rejects"].items())))
    if "api" in s:
        a = s["api"]
        rows.append(("API", (f"{a['url']}: {a['submitted']:,} orders, "
                             f"{a['injected']:,} through the gate, {a['refused_by_gate']:,} "
                             f"refused by it, {a['rejected_here']:,} refused before it, "
                             f"{a['fills']:,} fills, {a['in_flight']} in flight")))
    if "database" in s:
        d = s["database"]
        rows.append(("database", (f"{d['orders']:,} orders, {d['executions']:,} executions "
                                 f"of user {d['account']} in {d['url']}; "
                                 f"{d['closed_at_end']} left open marked canceled "
                                 f"(the run's venue is gone)")))
    if s["anomalies"]:
        rows.append(("anomalies", ", ".join(f"{k} {v}" for k, v in s["anomalies"].items())))
    return rows


def _positions(s: dict) -> Table:
    pos = Table(title="positions", show_edge=False)
    for col in ("symbol", "position", "avg cost", "mark", "realized", "unrealized"):
        pos.add_column(col, justify="left" if col == "symbol" else "right")
    for sym, p in s["positions"].items():
        avg = _money(p["cost"] // p["position"]) if p["position"] else "-"
        pos.add_row(sym, f"{p['position']:,}", avg, _money(p["mark"]),
                    _money(p["realized"]), _money(p["unrealized"]))
    return pos


def render_fleet(s: dict, title: str) -> Group:
    """Several FPGAs' summary (``fleet_summary``): the run, a row per device, the
    positions of them all."""
    if "devices" not in s:
        return render(s, title)
    head = Table(title=title, show_header=False, show_edge=False)
    head.add_column(style="bold")
    head.add_column(justify="right")
    g = s["gate"]
    rows = [
        ("simulated", (f"{s['cycles']:,} cycles ({s['simulated_ms']:.3f} ms), "
                      f"{s['wall_s']:.1f} s wall, {s['fpgas']} FPGAs on one venue")),
        ("orders", f"{s['orders']['enters']:,} enters ({s['orders']['by_strategy']:,} by "
                   f"the strategies), {s['orders']['cancels']:,} cancels"),
        ("fills", f"{s['fills']['count']:,} ({s['fills']['shares']:,} shares)"),
        ("risk gates", (f"{g['passed']:,} passed, {g['open_orders']} open orders, gross "
                       f"{_money(g['gross'])}" + (f"; KILLED: {', '.join(g['killed'])}"
                                                 if g["killed"] else ""))),
        ("P&L", (f"realized {_money(s['pnl']['realized'])}, unrealized "
                f"{_money(s['pnl']['unrealized'])}")),
    ]
    for k, v in rows + _tail_rows(s):
        head.add_row(k, v)
    devices = Table(title="FPGAs", show_edge=False)
    for col in ("FPGA", "symbols", "enters", "fills", "passed", "rejects", "open",
                "gross", "kill", "tick-to-trade p50"):
        devices.add_column(col, justify="left" if col in ("FPGA", "symbols") else "right")
    for d in s["devices"]:
        gate = d["gate"]
        devices.add_row(d["name"], ", ".join(d["symbols"]), f"{d['orders']['enters']:,}",
                        f"{d['fills']['count']:,}", f"{gate['passed']:,}",
                        f"{sum(gate['rejects'].values()):,}", str(gate["open_orders"]),
                        _money(gate["gross"]),
                        "ON (" + ", ".join(gate["kill_causes"]) + ")" if gate["killed"]
                        else "off", str(d["tick_to_trade_cycles"]["p50"] or "-"))
    return Group(head, devices, _positions(s))


@click.command()
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=30.0,
              show_default=True, help="Seconds of wall time to trade for.")
@click.option("--cycles", type=click.IntRange(1), default=None,
              help="Stop after this many FPGA cycles of simulated time instead "
                   "(a reproducible run: same seed, same cycles, same numbers).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False,
                                                         path_type=Path),
              default=DEMO, show_default=True,
              help="Device configuration: watch list, venue, triggers, risk limits.")
@click.option("--seed", type=int, default=1, show_default=True,
              help="Seed of the venue's synthetic participants.")
@click.option("--pace", type=click.Choice(["simulated", "realtime"]), default="simulated",
              show_default=True,
              help="simulated: as fast as the simulation runs, reproducible from the "
                   "seed; realtime: the market moves with the wall clock (for a person "
                   "watching, e.g. with --api), FPGA idle cycles skipped.")
@click.option("--rate", type=click.FloatRange(min=1), default=None,
              help="Participants' actions per second of market time (default 200,000 "
                   "simulated, 500 with --pace realtime).")
@click.option("--flatten-at", type=click.IntRange(0), default=500, show_default=True,
              help="The host closes a position of this many shares with an IOC "
                   "through the risk gate (0: never).")
@click.option("--db", "db_url", default=None, metavar="URL",
              help="Where orders, executions and positions go (default: "
                   "T2T_DATABASE_URL, else SQLite in the state folder, "
                   "$T2T_VAR_DIR or ~/.local/state/tick2trade).")
@click.option("--no-db", is_flag=True, help="Keep nothing on disk.")
@click.option("--api", "with_api", is_flag=True,
              help="Also serve the HTTP/WebSocket API (as `t2t api`, on 127.0.0.1) "
                   "over the same database; its orders go through the FPGA's risk "
                   "gate to the venue.")
@click.option("--api-port", type=click.IntRange(1, 65535), default=8000,
              show_default=True, help="Port of --api.")
@click.option("--fpgas", type=click.IntRange(1), default=None,
              help="Trade with this many virtual FPGAs on the one venue, the watch "
                   "list dealt round-robin (symbol k to FPGA k mod N) unless the config "
                   "has [[fpga]] tables; one OMS routes by symbol (default: one FPGA, "
                   "or one per [[fpga]] table).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def run(duration: float, cycles: int | None, config_path: Path, seed: int, pace: str,
        rate: float | None, flatten_at: int, db_url: str | None, no_db: bool, with_api: bool, api_port: int,
        fpgas: int | None, as_json: bool) -> None:
    """Trade: the synthetic venue publishes ITCH 5.0 over MoldUDP64 on lines A and B
    into the virtual FPGA (the whole top level in Verilator); its triggers fire,
    the risk gate checks, OUCH orders go to the venue over UDP; the venue's answers
    reach the host engine, which keeps orders, positions and P&L (also in the
    platform's database, as the user "fpga") and reports fills back to the gate.
    With --fpgas N, N such FPGAs each trade their part of the symbols.
    Ctrl-C stops cleanly and prints the summary."""
    from tick2trade.host.config import ConfigError
    from tick2trade.host.engine_db import EngineStore

    if cycles is not None and pace == "realtime":
        raise click.UsageError("--cycles makes a reproducible simulated run: it does not "
                               "go with --pace realtime (use --duration)")
    rate = RATES[pace] if rate is None else rate
    if with_api and no_db:
        raise click.UsageError("--api needs the database (the API's users and orders "
                               "live there): drop --no-db")
    console = Console(stderr=as_json)
    try:
        with console.status("opening the virtual FPGA (a Verilator build the first "
                            "time: about a minute)…"):
            fleet, total_gross = open_fleet(config_path, fpgas, seed, rate, flatten_at, pace)
    except (ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    lanes = list(zip(fleet.names, fleet.loops))
    broker = platform = server = None
    if with_api:
        from tick2trade.host.services.platform import Platform

        broker, platform, stores, left = trade_through(
            fleet, total_gross,
            lambda broker, device: Platform.open(db_url, broker=broker, device=device))
        platform.start_background()
        try:
            server, server_thread = serve_api(platform, api_port)
        except click.ClickException:
            platform.close()
            raise
        console.print(f"API on http://127.0.0.1:{api_port} (docs at /docs); its "
                      f"orders go through the FPGA", highlight=False)
        from tick2trade.host.services.fpgabook import FpgaBook, FpgaPrints

        # the platform shows the book the gateware trades on (its update stream on the
        # event channel, resynced through book.peek after a loss) and the prints its
        # receive path saw (the trade records; a lost one is counted, not recovered):
        # each FPGA's for its own symbols
        for _name, loop in lanes:
            symbols = dict(enumerate(loop.cfg.watch))
            loop.fpga_book = FpgaBook(platform.market, loop.dev, symbols)
            loop.fpga_prints = FpgaPrints(platform.market, loop.dev, symbols)
            loop.fpga_book.start()
            loop.fpga_prints.start()
    else:
        left, stores = 0, []
        if not no_db:
            first = EngineStore.open(db_url)
            stores = [first] + [EngineStore(first.sql) for _lane in lanes[1:]]
    reconciled = sum(store.reconciled for store in stores)
    if left + reconciled:
        console.print(f"{left + reconciled} order(s) a previous run left open marked "
                      f"canceled (nothing works them)", highlight=False)
    stop = {"asked": False}

    def interrupted(_sig, _frame) -> None:
        stop["asked"] = True

    previous = signal.signal(signal.SIGINT, interrupted)
    console.print(f"trading (seed {seed}, pace {pace}, {rate:,.0f} actions per "
                  f"{'wall' if pace == 'realtime' else 'simulated'} second"
                  + (f", {len(lanes)} FPGAs" if len(lanes) > 1 else "")
                  + "); Ctrl-C stops and prints the summary",
                  highlight=False)
    start = time.monotonic()

    def done() -> bool:
        if stop["asked"]:
            return True
        if cycles is not None:  # loop time: status reads must not change the run
            return fleet.now - fleet.start >= cycles
        return time.monotonic() - start >= duration

    def status() -> dict:
        s = fleet_summary(fleet)
        if broker is not None:
            s["api"] = {"url": f"http://127.0.0.1:{api_port}", **broker.counts,
                        "in_flight": broker.in_flight()}
        return s

    try:
        with Live(console=console, refresh_per_second=4, transient=True) as live:
            while not done():
                until = time.monotonic() + STATUS_EVERY
                while time.monotonic() < until and not done():
                    fleet.step()
                    if broker is not None:
                        broker.pump(fleet.now)
                for store, (_name, loop) in zip(stores, lanes):
                    store.sync(loop.engine)
                live.update(render_fleet(status(), "t2t run (Ctrl-C stops)"))
    finally:
        signal.signal(signal.SIGINT, previous)
        if server is not None:
            server.should_exit = True
            server_thread.join(timeout=10)
            broker.close()
    result = status()
    result["stopped_by"] = "ctrl-c" if stop["asked"] else \
        "cycles" if cycles is not None else "duration"
    if stores:
        closed = sum(store.close(loop.engine) for store, (_n, loop) in zip(stores, lanes))
        result["database"] = {"url": stores[0].sql.url.render_as_string(hide_password=True),
                              "account": "fpga", "orders": sum(len(s.ids) for s in stores),
                              "executions": sum(s.fills_written for s in stores),
                              "closed_at_end": closed,
                              "closed_at_start": left + reconciled}
    if platform is not None:
        platform.close()
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        console.print(render_fleet(result, "t2t run: summary" + (" (stopped by Ctrl-C)"
                                                                  if stop["asked"] else "")))
