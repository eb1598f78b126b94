"""``t2t replay``: a capture written by scapy (its own Ether/IP/UDP layers, our MoldUDP64
and ITCH encoders for the payload) through the Verilator model, compared with the model."""

import gzip
import json
import random

import pytest
from click.testing import CliRunner
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import CookedLinux, Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap, wrpcapng

from tick2trade.protocol import itch, moldudp64
from tick2trade.gateware.models.trade import strategy as trade
from tick2trade.gateware.models.trade.risk import RISK_LATENCY
from tick2trade.protocol.moldudp64 import DEFAULT_LINE_A, DEFAULT_LINE_B
from tick2trade.gateware.models.rx.rx_path import RxPathModel
from tick2trade.gateware.trade.telemetry import EARLY_TAP_LATENCY
from tick2trade.cli import main
from tick2trade.sim.replay import replay_config
from tick2trade.sim.venue.config import SYMBOLS
from tick2trade.testing.traffic import random_message

pytestmark = pytest.mark.verilator

SEED = 20240611


def feed_packets(rng: random.Random, lines, messages: int, locates: int) -> list:
    """scapy packets: MoldUDP64 on both lines (B duplicates A, a few lost on each), a
    Stock Directory per symbol up front, some traffic to other ports."""
    directory = [itch.encode("R", locate=1 + i, stock=s) for i, s in enumerate(SYMBOLS)]
    msgs = directory + [random_message(rng, locates=locates) for _ in range(messages)]
    packets, seq, pos = [], 1, 0
    while pos < len(msgs):
        n = rng.randint(1, 12)
        payload = moldudp64.encode_packet("REPLAY0001", seq, msgs[pos:pos + n])
        for line, (group, port) in enumerate(lines):
            if pos > len(directory) and rng.random() < 0.05:
                continue  # lost on this line
            ether = Ether(src="02:00:00:00:aa:01", dst="01:00:5e:00:00:01")
            if rng.random() < 0.2:
                ether = ether / Dot1Q(vlan=rng.randrange(1, 4095))
            packets.append(ether / IP(src="10.1.1.1", dst=group) /
                           UDP(sport=30000 + line, dport=port) / Raw(payload))
        if rng.random() < 0.1:
            packets.append(Ether() / IP(dst=lines[0][0]) / UDP(dport=9) / Raw(b"elsewhere"))
        seq += n
        pos += n
    return packets


def model_events(frames: list[bytes], config, locates: int) -> tuple[list[dict], RxPathModel]:
    model = RxPathModel(config, locates=locates)
    for frame in frames:
        model.process(frame)
    model.expire()  # the replay lets a run held at the end of the capture time out
    return [e.to_json() for e in model.events], model


def run_cli(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.mark.parametrize("watch", [(), ("MSFT", "BTC-USD")])
def test_replay_writes_the_models_events(rx_build, tmp_path, watch):
    rng = random.Random(SEED)
    lines = [DEFAULT_LINE_A, DEFAULT_LINE_B]
    packets = feed_packets(rng, lines, 3000, rx_build["locates"] + 16)
    capture = tmp_path / "feed.pcap"
    wrpcap(str(capture), packets)
    out, summary = tmp_path / "events.jsonl", tmp_path / "summary.json"
    size = ["--symbols", str(rx_build["symbols"]), "--locates", str(rx_build["locates"])]
    watch_args = [a for s in watch for a in ("--watch", s)]
    result = run_cli(["replay", str(capture), "--events", str(out), "--summary",
                      str(summary), *size, *watch_args])
    assert result.exit_code == 0, result.output

    config = replay_config(watch=watch, symbols=rx_build["symbols"],
                           locates=rx_build["locates"])
    want, model = model_events([bytes(p) for p in packets], config, rx_build["locates"])
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert got == want
    assert len(got) > (100 if watch else 1000)
    counters = json.loads(summary.read_text())["counters"]
    for stage, values in model.counters().items():
        assert counters[stage] == values, stage
    assert counters["moldudp"]["dup_b"] > 0 and counters["eth_rx"]["filtered"] > 0
    assert "receive path counters" in result.output


def test_replay_reads_pcapng_and_lines_from_the_command_line(rx_build, tmp_path):
    rng = random.Random(SEED + 1)
    lines = [("239.1.2.3", 5000), ("239.1.2.4", 5001)]
    packets = feed_packets(rng, lines, 400, rx_build["locates"])
    capture = tmp_path / "feed.pcapng"
    wrpcapng(str(capture), packets)
    out = tmp_path / "events.jsonl"
    result = run_cli(["replay", str(capture), "--events", str(out), "--line-a",
                      "239.1.2.3:5000", "--line-b", "239.1.2.4:5001", "--symbols",
                      str(rx_build["symbols"]), "--locates", str(rx_build["locates"])])
    assert result.exit_code == 0, result.output
    config = replay_config(lines[0], lines[1], symbols=rx_build["symbols"],
                           locates=rx_build["locates"])
    want, _ = model_events([bytes(p) for p in packets], config, rx_build["locates"])
    assert [json.loads(x) for x in out.read_text().splitlines()] == want and want


@pytest.mark.parametrize("args,message", [
    (["--line-a", "233.1.1.1"], "GROUP:PORT"),
    (["--line-b", "300.1.1.1:80"], "GROUP:PORT"),
    (["--line-a", "233.1.1.1:0"], "GROUP:PORT"),
    (["--watch", "TOOLONGNAME"], "1-8 printable ASCII"),
    (["--width", "32"], "'32' is not one of"),
])
def test_bad_options_are_usage_errors(tmp_path, args, message):
    capture = tmp_path / "empty.pcap"
    wrpcap(str(capture), [])
    result = CliRunner().invoke(main, ["replay", str(capture), "--events",
                                       str(tmp_path / "e.jsonl"), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_missing_capture_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["replay", str(tmp_path / "nope.pcap"), "--events",
                                       str(tmp_path / "e.jsonl")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_non_ethernet_and_non_capture_files_are_refused(tmp_path):
    cooked = tmp_path / "cooked.pcap"
    wrpcap(str(cooked), [CookedLinux() / IP() / UDP()])
    text = tmp_path / "notes.pcap"
    text.write_text("not a capture at all\n")
    for path, message in ((cooked, "link type 113"), (text, "not a pcap")):
        result = CliRunner().invoke(main, ["replay", str(path), "--events",
                                           str(tmp_path / "e.jsonl")])
        assert result.exit_code == 2, result.output
        assert message in result.output


def test_replay_book_writes_the_models_top_levels(rx_build, tmp_path):
    """Order flow for three watched stocks (lost packets on each line, B covering A)
    through the receive path and the book: the JSON is the model's top 8 per side."""
    from tick2trade.gateware.models.book import BUY, SELL, BookModel
    from tick2trade.protocol.itch import encode_event
    from tick2trade.testing.bookflow import random_flow

    rng = random.Random(SEED + 2)
    watch = SYMBOLS[:3]
    directory = [itch.encode("R", locate=10 + i, stock=s) for i, s in enumerate(watch)]
    flow = list(random_flow(rng, 4000, symbols=3, other=0.05))
    for e in flow:
        e.locate = 10 + e.sym  # the flow's symbol i is stock watch[i]
        if e.type == "P" or e.type == "H":
            e.stock = itch.stock_int(watch[e.sym])
    messages = directory + [encode_event(e) for e in flow]
    packets, seq = [], 1
    for pos in range(0, len(messages), 8):
        payload = moldudp64.encode_packet("BOOK000001", seq, messages[pos:pos + 8])
        lost = rng.choice([0, 1] + [None] * 30) if pos > 8 else None
        for line, (group, port) in enumerate((DEFAULT_LINE_A, DEFAULT_LINE_B)):
            if line == lost:
                continue
            packets.append(Ether() / IP(dst=group) / UDP(sport=1, dport=port) / Raw(payload))
        seq += len(messages[pos:pos + 8])
    capture, book = tmp_path / "flow.pcap", tmp_path / "book.json"
    wrpcap(str(capture), packets)
    args = ["replay", str(capture), "--book", str(book), "--symbols",
            str(rx_build["symbols"]), "--locates", str(rx_build["locates"])]
    result = run_cli(args + [a for s in watch for a in ("--watch", s)])
    assert result.exit_code == 0, result.output

    config = replay_config(watch=watch, symbols=rx_build["symbols"],
                           locates=rx_build["locates"])
    _, rx = model_events([bytes(p) for p in packets], config, rx_build["locates"])
    assert rx.counters()["moldudp"]["gaps"] == 0  # every lost packet was on one line only
    model = BookModel(8, depth=16, capacity=16384)
    for e in rx.events:
        model.apply(e)
    want = {s: {"bids": [list(lv) for lv in model.top(i, BUY)],
                "asks": [list(lv) for lv in model.top(i, SELL)]} for i, s in enumerate(watch)}
    assert json.loads(book.read_text()) == want
    assert sum(len(v["bids"]) + len(v["asks"]) for v in want.values()) > 20
    assert "book" in result.output


def test_replay_needs_something_to_write(tmp_path):
    capture = tmp_path / "empty.pcap"
    wrpcap(str(capture), [])
    result = CliRunner().invoke(main, ["replay", str(capture)])
    assert result.exit_code == 2 and "--events, --book, or --orders with --config" in \
        result.output
    alone = CliRunner().invoke(main, ["replay", str(capture), "--orders", str(tmp_path / "o")])
    assert alone.exit_code == 2 and "--orders and --config go together" in alone.output
    config = tmp_path / "t2t.toml"
    config.write_text("")
    mixed = CliRunner().invoke(main, ["replay", str(capture), "--orders", str(tmp_path / "o"),
                                      "--config", str(config), "--events", "-"])
    assert mixed.exit_code == 2 and "separate run" in mixed.output


TRADE_CONFIG = """
[symbols]
watch = ["AAA", "BBB"]

[venue]
ip = "10.0.0.2"
port = 40000
mac = "02:00:00:00:00:0a"

[[trigger]]
symbol = "AAA"
kind = "take"
side = "buy"
limit = "101.00"
quantity = 100

[[trigger]]
symbol = "BBB"
kind = "take"
side = "sell"
limit = "99.00"
quantity = 700      # over max_order_shares: every firing is refused

[risk]
max_order_shares = 500
collar_bps = 500
"""


def test_replay_orders_writes_the_frames_and_latencies_the_models_predict(tmp_path):
    """`t2t replay --orders --config --summary`: a capture where some adds cross AAA's
    take trigger and some BBB's (refused by max_order_shares); the order frames must be
    the model's byte for byte, the rejects counted by reason, and every order's
    tick-to-trade the fixed cycles of an add that opens its packet at W=64 (the fast path)."""
    from tick2trade.gateware.models.trade import ouch_tx as order_tx
    from tick2trade.gateware.models.rx.eth_rx import RxConfig

    rng = random.Random(SEED)
    group, port = DEFAULT_LINE_A
    msgs = [itch.encode("R", locate=11, stock="AAA"), itch.encode("R", locate=12, stock="BBB")]
    # a market first, bid 98.50 and ask 101.05 (no trigger fires): the collar's reference
    for locate, stock in ((11, "AAA"), (12, "BBB")):
        msgs += [itch.encode("A", locate=locate, order_ref=locate * 10, side="B",
                             shares=100, stock=stock, price=985_000),
                 itch.encode("A", locate=locate, order_ref=locate * 10 + 1, side="S",
                             shares=100, stock=stock, price=1_010_500)]
    want_aaa, want_bbb = 0, 0
    for k in range(60):
        stock, locate = rng.choice((("AAA", 11), ("BBB", 12)))
        price = 1_000_000 + rng.randint(-3, 3) * 5_000
        side = "S" if stock == "AAA" else "B"  # against the trigger's side
        crosses = price <= 1_010_000 if stock == "AAA" else price >= 990_000
        want_aaa += crosses and stock == "AAA"
        want_bbb += crosses and stock == "BBB"
        msgs.append(itch.encode("A", locate=locate, order_ref=1000 + k, side=side,
                                shares=50, stock=stock, price=price))
    packets = [Ether(src="02:00:00:00:aa:01", dst="01:00:5e:00:00:01") /
               IP(src="10.1.1.1", dst=group) / UDP(sport=30000, dport=port) /
               Raw(moldudp64.encode_packet("TRADE00001", 1 + i, [m]))
               for i, m in enumerate(msgs)]
    capture, config = tmp_path / "feed.pcap", tmp_path / "t2t.toml"
    wrpcap(str(capture), packets)
    config.write_text(TRADE_CONFIG)
    orders, summary = tmp_path / "orders.pcap", tmp_path / "summary.json"
    result = run_cli(["replay", str(capture), "--orders", str(orders), "--config",
                      str(config), "--summary", str(summary)])
    assert result.exit_code == 0, result.output
    assert want_aaa > 5 and want_bbb > 5, (want_aaa, want_bbb)

    rx = RxConfig.default()
    tx = order_tx.OuchTxModel(order_tx.TxConfig(
        bytes.fromhex("02000000000a"), 0x0A000002, 40000, bytes.fromhex("020000000002"),
        rx.ctl_ip, 40001))
    want = [tx.send(order_tx.Order(side="B", quantity=100, stock="AAA", price=1_010_000,
                                   tif="3", tag=0, sym=0))[1] for _ in range(want_aaa)]  # ioc
    got = [bytes(p) for p in rdpcap(str(orders))]
    assert got == want
    s = json.loads(summary.read_text())
    assert s["order_frames"] == want_aaa and s["decisions"] == want_aaa + want_bbb
    assert s["rejects"]["max_shares"] == want_bbb
    assert sum(s["rejects"].values()) == want_bbb
    assert [o["user_ref"] for o in s["orders"]] == list(range(1, want_aaa + 1))
    assert {(o["symbol"], o["side"], o["price"], o["quantity"]) for o in s["orders"]} == \
        {("AAA", "B", 1_010_000, 100)}
    # each add opens its packet, so its price ends in beat 12; its early event is at the
    # strategy 2 cycles later, whose fast path hands it to the risk gate at once
    assert {o["tick_to_trade_cycles"] for o in s["orders"]} == \
        {99 // 8 + EARLY_TAP_LATENCY + trade.FAST_LATENCY + RISK_LATENCY}
    assert {o["decision_cycles"] for o in s["orders"]} == \
        {trade.FAST_LATENCY + RISK_LATENCY - 1}


@pytest.mark.parametrize("name", ["day.itch", "day.itch.gz"])
def test_a_binaryfile_replays_as_the_same_packets_in_a_capture(rx_build, tmp_path, name):
    """A NASDAQ BinaryFILE (plain and gzip) gives the events the model gives for the
    frames it is packed into, and a pcap of those same frames replays to the same."""
    from tick2trade.protocol import itchfile
    from tick2trade.sim.replay import read_frames

    rng = random.Random(SEED + 7)
    msgs, ts = [itch.encode("R", locate=1 + i, stock=s) for i, s in enumerate(SYMBOLS)], 1
    for _ in range(2_500):
        ts += rng.choice((0, 0, 1, 250))
        raw = bytearray(random_message(rng, locates=rx_build["locates"]))
        raw[itchfile.TIMESTAMP] = ts.to_bytes(6, "big")
        msgs.append(bytes(raw))
    path = tmp_path / name
    itchfile.write(path, msgs)
    size = ["--symbols", str(rx_build["symbols"]), "--locates", str(rx_build["locates"])]
    out, summary = tmp_path / "events.jsonl", tmp_path / "summary.json"
    result = run_cli(["replay", str(path), "--events", str(out), "--summary", str(summary),
                      "--max-payload", "300", "--pack-window-ns", "100", *size])
    assert result.exit_code == 0, result.output

    config = replay_config(symbols=rx_build["symbols"], locates=rx_build["locates"])
    packed = [f for f, _ in read_frames(path, config, max_payload=300, window_ns=100)]
    assert len(packed) % 2 == 0 and len(packed) > 2 * len(msgs) / 20  # A and B copies
    want, _ = model_events(packed, config, rx_build["locates"])
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert got == want and len(got) > 1000
    counters = json.loads(summary.read_text())["counters"]
    assert counters["moldudp"]["messages"] == len(msgs)
    assert counters["moldudp"]["dup_b"] == len(packed) // 2 and counters["moldudp"]["gaps"] == 0

    capture = tmp_path / "same.pcap"
    wrpcap(str(capture), [Ether(f) for f in packed])
    again = tmp_path / "again.jsonl"
    result = run_cli(["replay", str(capture), "--events", str(again), *size])
    assert result.exit_code == 0, result.output
    assert again.read_text() == out.read_text()


def test_a_cut_binaryfile_is_refused_with_where(rx_build, tmp_path):
    from tick2trade.protocol import itchfile

    path = tmp_path / "cut.itch.gz"
    msgs = [itch.encode("A", order_ref=k, side="B", shares=1, stock="X", price=1)
            for k in range(1, 50)]
    itchfile.write(path, msgs)
    raw = gzip.decompress(path.read_bytes())[:-3]
    path.write_bytes(gzip.compress(raw))
    result = CliRunner().invoke(main, ["replay", str(path), "--events",
                                       str(tmp_path / "e.jsonl"), "--symbols",
                                       str(rx_build["symbols"]), "--locates",
                                       str(rx_build["locates"])])
    assert result.exit_code == 2 and "cut short at byte" in result.output
