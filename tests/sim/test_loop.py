"""The whole loop with the RTL: venue → virtual FPGA (Verilator) → venue → host engine.

One Verilator build of the top level (W = 64, 8 symbols) serves every test; each test
opens its own instance of it (a reset would leave the memories — book, risk state — as
they were) and gets a fresh venue.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from tick2trade.protocol import ouch, soupbintcp
from tick2trade.gateware.models.trade import risk as trade
from tick2trade.gateware.models.trade.ouch_rx import COUNTERS as ANSWER_COUNTERS
from tick2trade.gateware.trade.ouch_rx import GATE_AFTER_LAG
from tick2trade.host.config import load, parse
from tick2trade.host.services.status import TERMINAL
from tick2trade.sim.local_device import LocalDevice
from tick2trade.sim.loop import Loop, LoopConfig, configure
from tick2trade.sim.modelfpga import ModelFpga
from tick2trade.sim.topsim import TopSim
from tests.host.test_engine import venue_positions

pytestmark = pytest.mark.verilator

DEMO = Path(__file__).resolve().parents[2] / "docs" / "demo.toml"
SYMBOLS = 8
# A control request carrying five reports takes 739 cycles in the RTL (one: 259); the
# bound leaves room for the request that follows a report in the same flush.
REQUEST_BOUND = 768
# Answer frames 40 idle cycles apart: ouch_rx's walker is done with each before the next
# arrives, so an answer's last byte waits 6 or 7 cycles (its input FIFO's registered
# output is one of them), and the gate has it 5 later.
LAG_BOUND = 12
# After the kill write: intents are refused from the next decision on; orders already
# passed may still be in the gate's queue to ouch_tx (16 deep, a frame of ~13 beats each).
KILL_BOUND = 16 * 16


@pytest.fixture(scope="module")
def top():
    """The build, elaborated and loaded once; ``fresh`` opens instances of it."""
    return TopSim(64, symbols=SYMBOLS, locates=64)


def fresh(top, cfg):
    sim = TopSim(64, symbols=SYMBOLS, locates=64)  # the cached build: milliseconds
    dev = LocalDevice(sim)
    configure(dev, cfg)
    return sim, dev


def test_seeded_run_equals_the_models(top):
    """Orders (every OUCH byte), fills, final positions and P&L of the RTL loop equal
    those of the same loop with the golden models as the FPGA, for the same seed."""
    cfg = load(DEMO, symbols=SYMBOLS)
    sim, dev = fresh(top, cfg)
    lc = {"seed": 7, "one_message_per_packet": True, "idle": 40, "stale_after": 150_000,
          "flatten_at": 500}
    rtl = Loop(sim, dev, cfg, LoopConfig(**lc))
    rtl.run(1_500_000)
    fpga = ModelFpga(cfg, sim.map, SYMBOLS)
    model = Loop(fpga, fpga, cfg, LoopConfig(telemetry=False, **lc))
    model.run(1_500_000)

    assert [s.msg for s in rtl.sent] == [s.msg for s in model.sent]
    def fills(loop):  # the cycles differ: control requests take time only in the RTL
        return [(f.user_ref, f.symbol, f.side, f.qty, f.price, f.match)
                for f in loop.engine.fills]

    assert fills(rtl) == fills(model)
    assert rtl.engine.pnl() == model.engine.pnl()
    assert rtl.engine.positions == venue_positions(rtl)
    assert {o.user_ref: o.state for o in rtl.engine.orders.values()} == \
        {o.user_ref: o.state for o in model.engine.orders.values()}
    counters = dev.read_many([f"risk.counters.{r}" for r in trade.RISK_COUNTERS])
    assert {r: counters[f"risk.counters.{r}"] for r in trade.REASONS} == \
        {r: fpga.risk.counters[r] for r in trade.REASONS}
    assert counters["risk.counters.reports_lost"] == 0
    # it traded: takes and improves fired, fills came back, the position limit held
    assert len(rtl.engine.fills) > 20 and counters["risk.counters.position"] > 0
    assert rtl.engine.counters["sent_X"] > 0  # stale orders canceled through the gate
    assert rtl.engine.counters["injected"] > 0  # positions flattened through the gate
    assert any(row["realized"] for row in rtl.engine.pnl().values())
    # one telemetry record per frame, in UserRefNum order for the enters
    assert len(rtl.telemetry) == len(rtl.sent) and rtl.counters["telemetry_missing"] == 0
    enters = [r["user_ref"] for r in rtl.telemetry if not r["cancel"]]
    assert enters == list(range(1, len(enters) + 1))
    # the answers went through the gateware: every one the venue sent was parsed, the
    # same way as by the model, and the gate had each fill, cancel and reject on-chip
    answers = [f"ouch_rx.counters.{c}" for c in ANSWER_COUNTERS]
    got = dev.read_many(answers)
    assert {c: got[f"ouch_rx.counters.{c}"] for c in ANSWER_COUNTERS} == \
        dict(fpga.answers.counters)
    assert got["ouch_rx.counters.answers"] == rtl.venue_answers == \
        rtl.counters["answer_events"] > 100
    assert rtl.engine.counters["gate_reports"] == got["ouch_rx.counters.to_gate"] > 50
    assert rtl.engine.counters["gate_disagrees"] == 0
    assert len(rtl.answer_lags) == got["ouch_rx.counters.to_gate"]
    assert max(rtl.answer_lags) + GATE_AFTER_LAG <= LAG_BOUND
    # the host wrote a report only for what the gateware did not know (none here), each
    # within the bound of its flush
    for r in rtl.engine.reports:
        assert r.applied - r.made <= r.requests * REQUEST_BOUND, r


def exposure_violations(loop: Loop, limit: int) -> tuple[list, int]:
    """Replay the order session as the venue saw it: at every Enter, the position plus
    what is open on that side (this order included) must stay within ``limit``."""
    pos: dict[str, int] = defaultdict(int)
    open_qty: dict[int, int] = {}
    orders: dict[int, dict] = {}
    bad, checked = [], 0
    for kind, cycle, m in loop.wire:
        if kind == "sent" and m["type"] == "O":
            orders[m["user_ref"]] = m
            open_qty[m["user_ref"]] = m["quantity"]
            sym, side = m["symbol"], m["side"]
            same = sum(q for u, q in open_qty.items()
                       if orders[u]["symbol"] == sym and orders[u]["side"] == side)
            exposure = pos[sym] + same if side == "B" else same - pos[sym]
            checked += 1
            if exposure > limit:
                bad.append((cycle, m, exposure))
        elif kind == "answer" and m["type"] in "ECJ" and m["user_ref"] in open_qty:
            u = m["user_ref"]
            if m["type"] == "J":
                open_qty[u] = 0
                continue
            open_qty[u] -= m["quantity"]
            if m["type"] == "E":
                pos[orders[u]["symbol"]] += m["quantity"] if orders[u]["side"] == "B" \
                    else -m["quantity"]
    return bad, checked


LIMIT_CONFIG = """
[symbols]
watch = ["AAPL", "MSFT", "BTC-USD", "ETH-USD", "NVDA", "QQQ", "SPY", "TSLA"]
[venue]
ip = "10.0.0.3"
port = 15001
mac = "02:00:00:00:00:0a"
[risk]
position_limit = 300
collar_bps = 200
[[trigger]]
symbol = "AAPL"
kind = "take"
side = "buy"
limit = "190.03"
quantity = 100
tif = "day"
[[trigger]]
symbol = "NVDA"
kind = "improve"
side = "buy"
limit = "125.00"
ticks = 1
spread = 2
quantity = 100
tif = "day"
"""


@pytest.mark.parametrize("on_chip", [False, True], ids=["host_reports", "on_chip"])
def test_position_limit_holds_while_fills_arrive_late(top, on_chip):
    """The host sees every answer 40,000 cycles late. Without the on-chip path
    (``ouch_rx.to_gate`` 0) its reports reach the gate that late; with it the gate has
    them a few cycles after they arrive. Either way no Enter passes the limit."""
    cfg = parse(LIMIT_CONFIG, symbols=SYMBOLS)
    sim, dev = fresh(top, cfg)
    delay = 40_000
    loop = Loop(sim, dev, cfg, LoopConfig(seed=3, report_delay=delay, stale_after=60_000,
                                          flatten_at=300, to_gate=on_chip))
    loop.run(2_000_000)
    bad, checked = exposure_violations(loop, 300)
    assert not bad, bad[:3]
    assert checked > 30  # the host flattens at the limit, so the strategy trades on
    assert dev.read("risk.counters.position") > 0  # the limit did refuse orders
    running: dict[str, int] = defaultdict(int)
    peak = 0
    for f in loop.engine.fills:
        running[f.symbol] += f.qty if f.side == "B" else -f.qty
        peak = max(peak, abs(running[f.symbol]))
    assert peak == 300  # reached, never passed
    assert dev.read("risk.counters.reports_lost") == 0
    if on_chip:  # the host wrote nothing: the gateware knew every order
        assert loop.engine.reports == [] and loop.engine.counters["gate_reports"] > 30
    else:  # the host really was late: no report reached the gate sooner than the delay
        assert dev.read("ouch_rx.counters.to_gate") == 0
        assert min(r.applied - r.made for r in loop.engine.reports) >= delay


def enter_records(loop: Loop) -> list[dict]:
    return [r for r in loop.telemetry if not r["cancel"]]


def test_kill_switch_stops_orders_within_bound(top):
    cfg = load(DEMO, symbols=SYMBOLS)
    sim, dev = fresh(top, cfg)
    loop = Loop(sim, dev, cfg, LoopConfig(seed=9, stale_after=100_000))
    loop.run(400_000)
    before = len(enter_records(loop))
    assert before > 5
    dev.write("risk.limits.kill", 1)
    killed_at = dev.read("sys.cycles")
    refused = dev.read("risk.counters.kill")
    loop.run(800_000)
    late = [r for r in enter_records(loop) if r["t_decide"] > killed_at
            or r["t_out"] > killed_at + KILL_BOUND]
    assert not late, late[:3]
    assert dev.read("risk.counters.kill") > refused  # the strategy kept firing; refused
    assert loop.engine.poll()["risk.status.killed"] == 1
    assert loop.engine.status["sys.alarms"] >> 3 & 1
    assert loop.engine.kill_causes() == ["host"]
    dev.write_many({"risk.limits.kill": 0, "risk.kill_reset": 1})
    released = len(enter_records(loop))
    loop.run(400_000)
    assert len(enter_records(loop)) > released  # trading again once released


WATCHDOG_CONFIG = LIMIT_CONFIG.replace(
    "[risk]\n", "[risk]\nwatchdog_ms = 1\nwatchdog_cancel_all = true\n").replace(
    'symbol = "AAPL"\nkind = "take"\nside = "buy"\nlimit = "190.03"',
    'symbol = "TSLA"\nkind = "improve"\nside = "sell"\nlimit = "245.00"\nticks = 1\n'
    'spread = 2')


def test_watchdog_trips_and_cancels_all_when_heartbeats_stop(top):
    cfg = parse(WATCHDOG_CONFIG, symbols=SYMBOLS)
    watchdog = cfg.risk["limits.watchdog"]
    assert watchdog == 156_250
    sim, dev = fresh(top, cfg)
    lc = LoopConfig(seed=5, heartbeat_every=20_000)
    loop = Loop(sim, dev, cfg, lc)
    loop.run(600_000)
    eng = loop.engine
    assert eng.poll()["risk.status.tripped"] == 0  # heartbeats keep it quiet
    resting = {o.user_ref for o in eng.orders.values() if o.state not in TERMINAL}
    assert resting, eng.states()
    lc.heartbeat_every = 0  # the host dies; venue and FPGA go on
    stopped = sim.cycles
    loop.run(600_000)
    assert eng.poll()["risk.status.tripped"] == 0b100 and eng.kill_causes() == ["watchdog"]
    # the sweep's Cancels are not the risk gate's orders: no telemetry records, so they
    # are timed by the loop (the end of the batch they left in)
    sweep = [s for s in loop.sent if s.msg["type"] == "X"]
    assert sweep, "no cancel-all"
    # the last heartbeat went at most 20k cycles (one interval) before the host stopped
    assert stopped - 20_000 + watchdog <= sweep[0].fpga_cycle <= \
        stopped + watchdog + lc.quantum + 1024
    assert {s.msg["user_ref"] for s in sweep} >= resting
    assert all(eng.orders[u].state in TERMINAL for u in resting), eng.states()
    assert not [s for s in loop.sent if s.msg["type"] == "O" and s.fpga_cycle >
                sweep[0].fpga_cycle]
    assert eng.counters["answer_C"] >= len(resting)


def book_matches_venue(loop: Loop, dev, cfg) -> list:
    """Where the FPGA's book (read through book.peek) differs from the venue's displayed
    book, level by level, over the levels the FPGA tracks exactly."""
    from tick2trade.host.device.book import read_book_side

    assert loop.settle()
    diffs = []
    for sym, symbol in enumerate(cfg.watch):
        for side, code in ((0, "B"), (1, "S")):
            got = read_book_side(dev, sym, side)
            want = loop.venue_levels(symbol, code)
            if got["limited"]:  # levels at or beyond the limit are not tracked
                limit = got["limit"]
                want = [lv for lv in want if (lv[0] > limit if side == 0 else lv[0] < limit)]
            if got["levels"] != want[:len(got["levels"])] or \
                    len(got["levels"]) < min(len(want), 8):
                diffs.append((symbol, code, got["levels"][:3], want[:3]))
    return diffs


def test_gap_on_line_a_only_is_covered_by_b(top):
    cfg = load(DEMO, symbols=SYMBOLS)
    runs = {}
    for name, drops in (("clean", set()), ("a_lossy", set(range(3, 400, 5)))):
        sim, dev = fresh(top, cfg)
        loop = Loop(sim, dev, cfg, LoopConfig(seed=2, drop_a=drops, stale_after=100_000))
        loop.run(500_000)
        counters = dev.read_many(["rx.counters.moldudp.gaps", "rx.counters.eth_rx.feed_a",
                                  "rx.counters.eth_rx.feed_b"])
        runs[name] = (loop, counters, book_matches_venue(loop, dev, cfg))
    clean, lossy = runs["clean"], runs["a_lossy"]
    assert lossy[1]["rx.counters.eth_rx.feed_a"] < lossy[1]["rx.counters.eth_rx.feed_b"]
    assert lossy[1]["rx.counters.moldudp.gaps"] == 0 and lossy[0].gaps == []
    assert [(k, m) for k, _c, m in lossy[0].wire] == [(k, m) for k, _c, m in clean[0].wire]
    assert len(clean[0].sent) > 10
    assert lossy[2] == [] and clean[2] == []


def test_gap_on_both_lines_is_reported_and_the_book_resynced(top):
    cfg = load(DEMO, symbols=SYMBOLS)
    sim, dev = fresh(top, cfg)
    lost = set(range(40, 50))  # packets starting at these numbers go missing on both lines
    lc = LoopConfig(seed=2, drop_a=lost, drop_b=lost, stale_after=100_000)
    loop = Loop(sim, dev, cfg, lc)
    loop.run(300_000)
    assert loop.lost, "no packet started in the range: nothing was dropped"
    # one report per run of lost packets: where it starts, how many messages
    runs = []
    for seq, count in loop.lost:
        if runs and runs[-1][0] + runs[-1][1] == seq:
            runs[-1] = (runs[-1][0], runs[-1][1] + count)
        else:
            runs.append((seq, count))
    assert [(ev.first, ev.count) for _c, ev in loop.gaps] == runs
    assert loop.resyncs == []  # not asked to: the book is now wrong somewhere
    assert book_matches_venue(loop, dev, cfg)

    sim, dev = fresh(top, cfg)
    lc.resync_on_gap = True
    loop = Loop(sim, dev, cfg, lc)
    loop.run(300_000)
    assert loop.gaps and len(loop.resyncs) == 1
    served = loop.retransmit.counters
    assert served["answered"] >= 1 and served["messages"] >= loop.gaps[0][1].first
    assert served["requests"] == served["answered"] + 1  # the last asks past the end
    (start, end), = loop.resyncs
    assert not [s for s in loop.sent if s.msg["type"] == "O" and start <= s.fpga_cycle <= end]
    assert book_matches_venue(loop, dev, cfg) == []
    sent_before = len(loop.sent)
    loop.run(300_000)
    assert len(loop.sent) > sent_before  # trading on after the resync
    assert book_matches_venue(loop, dev, cfg) == []


def test_answers_travel_through_the_gateware_and_bad_ones_are_counted(top):
    """Every answer the venue sends is parsed by ouch_rx and reaches the host as an event
    record; a malformed answer of each kind, sent in among them, moves its own counter
    by one and costs nothing else."""
    cfg = load(DEMO, symbols=SYMBOLS)
    sim, dev = fresh(top, cfg)
    loop = Loop(sim, dev, cfg, LoopConfig(seed=4, stale_after=100_000))
    loop.run(300_000)
    assert loop.settle()  # the answers to the last orders go in too
    names = [f"ouch_rx.counters.{c}" for c in ANSWER_COUNTERS]
    before = dev.read_many(names)
    executed = ouch.encode_outbound("E", timestamp=1, user_ref=1, quantity=1, price=1,
                                    liquidity="A", match=1)
    bad = {
        "truncated": soupbintcp.encode("U", message=executed)[:-3],
        "bad_length": soupbintcp.encode("U", message=executed + b"\0"),
        "unknown_type": soupbintcp.encode("U", message=ouch.encode_outbound(
            "S", timestamp=1, event_code="S")),
        "other_packets": soupbintcp.encode("H"),
        "runt_packet": b"\0\0" + soupbintcp.encode("U", message=executed),
    }
    for payload in bad.values():
        loop.send_to_fpga(payload)
    loop.send_to_fpga(soupbintcp.encode("U", message=executed), src=(0x0A000063, 15001))
    sent_before = loop.venue_answers
    loop.run(300_000)
    assert loop.settle()
    after = dev.read_many(names)
    moved = {c: after[f"ouch_rx.counters.{c}"] - before[f"ouch_rx.counters.{c}"]
             for c in ANSWER_COUNTERS}
    for counter in (*bad, "wrong_source"):
        assert moved[counter] == 1, (counter, moved)
    assert moved["datagrams"] == loop.venue_answers - sent_before + len(bad) + 1
    # nothing else was lost: every answer of the venue was parsed and forwarded
    assert after["ouch_rx.counters.answers"] == loop.venue_answers == \
        loop.counters["answer_events"]
    assert moved["answers"] > 20
    for c in ("overflow", "records_lost", "bad_fill", "late_reject"):
        assert after[f"ouch_rx.counters.{c}"] == 0, c
    assert dev.read("rx.counters.eth_rx.ouch") == after["ouch_rx.counters.datagrams"]
    assert loop.engine.counters["gate_disagrees"] == 0
    assert loop.engine.positions == venue_positions(loop)


@pytest.mark.parametrize("rate", [200_000.0, 4_000_000.0])
def test_the_platform_shows_the_book_the_fpga_trades_on(top, rate):
    """End to end on the RTL: the venue's flow, packed as the live venue packs it, into
    the FPGA with its book's tap on; the book records over the event channel into the
    platform's market data (``FpgaBook``), resyncing through ``book.peek`` whenever the
    tap's FIFO lost some (at the higher rate of participants' actions). Afterwards every
    symbol's book in the platform is what ``t2t book`` reads from the device
    (``host.device.book.read_book``), top N."""
    from tick2trade.host.device.book import read_book
    from tick2trade.host.services.fpgabook import FpgaBook
    from tick2trade.host.services.marketdata import MarketData
    from tick2trade.sim.modelfpga import BOOK_TOP

    cfg = load(DEMO, symbols=SYMBOLS)
    sim, dev = fresh(top, cfg)
    loop = Loop(sim, dev, cfg, LoopConfig(seed=5, rate=rate, stale_after=100_000))
    market = MarketData()
    book = loop.fpga_book = FpgaBook(market, dev, dict(enumerate(cfg.watch)), depth=BOOK_TOP)
    book.start()
    loop.run(400_000)
    assert loop.settle()
    # the last records: an event frame is built a byte a cycle after the batch went quiet
    loop._route(sim.step(4096))
    book.poll()
    for sym, symbol in enumerate(cfg.watch):
        device = {k: v["levels"][:BOOK_TOP] for k, v in read_book(dev, sym).items()}
        view = market.book_view(symbol)
        assert {"bids": [[x.price, x.size, x.orders] for x in view.bids],
                "asks": [[x.price, x.size, x.orders] for x in view.asks]} == device, symbol
        assert (view.source, view.depth) == ("fpga", BOOK_TOP)
    assert any(market.book_view(s).bids for s in cfg.watch)
    assert book.counters["applied"] > 300 and book.counters["unsettled"] == 0
    lost = dev.read("book_stream.counters.overflow")
    if rate > 1e6:
        assert lost > 0 and book.counters["resyncs"] > 1  # the poll sees the counter first
    print(f"book records: {loop.counters['book_events']} received, {lost} lost to the "
          f"tap's FIFO; FpgaBook {dict(book.counters)}")
