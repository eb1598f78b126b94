"""The operator commands (click's runner) against a running `t2t sim`, and config
validation."""

import json

import pytest
from click.testing import CliRunner

from tick2trade.gateware.models.trade.strategy import TAKE, Trigger
from tick2trade.cli import main
from tick2trade.host.cli.connect import EXIT_CONFIG, EXIT_DEVICE, EXIT_DIFFERENT
from tick2trade.host.config import ConfigError, parse

pytestmark = pytest.mark.verilator

GOOD = """
[device]
mac = "02:00:00:00:00:02"
ip = "10.0.0.2"
port = 7000

[feed]
line_a = "233.54.12.111:26477"
line_b = "233.49.196.111:26477"

[symbols]
watch = ["AAPL", "MSFT", "BTC-USD"]

[events]
enable = false
mac = "02:00:00:00:00:10"
ip = "10.0.0.1"
port = 40002
"""

TRADE = """
[venue]
ip = "10.0.0.2"
port = 40000
mac = "02:00:00:00:00:02"

[risk]
max_order_shares = 1000
max_order_notional = "250000.00"
orders_per_second = 1000
restricted = ["MSFT"]

[[trigger]]
symbol = "AAPL"
kind = "take"
side = "buy"
limit = "190.25"
quantity = 100
"""


def t2t(endpoint, *args):
    return CliRunner().invoke(main, [*args, "--sim", endpoint])


def test_config_validation_names_every_bad_key():
    bad = GOOD.replace('"233.49.196.111:26477"', '"10.1.2.3:26477"') \
        .replace('"MSFT"', '"TOOLONGNAME"').replace("port = 40002", "port = 70000") \
        + "\n[risk]\nmax_order_shares = -1\nmax_qty = 5\n[[trigger]]\nsymbol = \"IBM\"\n" \
        "kind = \"take\"\nside = \"up\"\nlimit = \"1.23456\"\nquantity = 1\n[colour]\n"
    with pytest.raises(ConfigError) as exc:
        parse(bad, "bad.toml", symbols=8)
    problems = "\n".join(exc.value.problems)
    for key in ("feed.line_b: 10.1.2.3 is not a multicast group", "symbols.watch[1]",
                "events.port: 70000", "risk.max_order_shares: -1", "risk.max_qty: unknown key",
                "trigger[0].symbol: 'IBM' is not in symbols.watch",
                "trigger[0].side: 'up'",
                ("trigger[0].limit: '1.23456' must be 0 or more with at most 4 decimals"),
                "colour: unknown section"):
        assert key in problems, problems
    assert len(exc.value.problems) == 9
    with pytest.raises(ConfigError, match="not TOML"):
        parse("[feed\n")
    with pytest.raises(ConfigError, match="3 stocks; this bitstream has 2 symbols"):
        parse(GOOD, symbols=2)
    cfg = parse(GOOD + TRADE, symbols=8)
    assert cfg.triggers == {0: Trigger(enable=True, kind=TAKE, side=0, price=1902500,
                                       quantity=100, tif=ord("3"))}
    assert cfg.risk == {"limits.max_shares": 1000, "limits.max_notional": 2_500_000_000,
                        "limits.rate_interval": 156_250, "limits.rate_tolerance": 0,
                        "restricted": 0b10}


def test_config_push_diff_show(sim_endpoint, tmp_path):
    path = tmp_path / "t2t.toml"
    path.write_text(GOOD)
    pushed = t2t(sim_endpoint, "config", "push", str(path))
    assert pushed.exit_code == 0, pushed.output
    same = t2t(sim_endpoint, "config", "diff", str(path), "--json")
    assert same.exit_code == 0, same.output
    assert json.loads(same.output)["differences"] == []
    path.write_text(GOOD.replace('"MSFT"', '"IBM"'))
    diff = t2t(sim_endpoint, "config", "diff", str(path), "--json")
    assert diff.exit_code == EXIT_DIFFERENT
    assert json.loads(diff.output)["differences"] == [
        {"register": "rx.watch[1].stock", "device": int.from_bytes(b"MSFT    ", "big"),
         "config": int.from_bytes(b"IBM     ", "big")}]
    shown = t2t(sim_endpoint, "config", "show", "--json")
    assert json.loads(shown.output)["registers"]["rx.watch[2].stock"] == \
        int.from_bytes(b"BTC-USD ", "big")
    path.write_text(GOOD + TRADE)
    trade = t2t(sim_endpoint, "config", "push", str(path))
    assert trade.exit_code == 0, trade.output
    assert "trigger table entries" in trade.output  # one per symbol of the build
    same = t2t(sim_endpoint, "config", "diff", str(path), "--json")
    assert json.loads(same.output)["differences"] == [], same.output
    from tick2trade.host.device import SimDevice

    with SimDevice(sim_endpoint) as dev:  # AAPL (symbol 0) armed, no other entry
        assert dev.read("strategy.armed") == 1
        assert dev.read("risk.restricted") == 0b10
    path.write_text(GOOD.replace("port = 7000", "port = 'seven'"))
    broken = t2t(sim_endpoint, "config", "push", str(path))
    assert broken.exit_code == EXIT_CONFIG and "device.port: 'seven'" in broken.output


def test_status_and_counters_report_what_the_device_counted(sim_endpoint):
    from tick2trade.host.device import SimDevice
    from tick2trade.sim.control_frames import to_device

    with SimDevice(sim_endpoint) as dev:
        before = dev.counters()
        dev.feed([to_device(b"junk", 0x0A000002, 7000)])  # a malformed control frame
    result = t2t(sim_endpoint, "counters", "--json")
    assert result.exit_code == 0, result.output
    after = json.loads(result.output)["counters"]
    assert after["ctl.counters.bad_length"] == before["ctl.counters.bad_length"] + 1
    # every control request is a control datagram too: the junk, the reads, t2t's own
    assert after["rx.counters.eth_rx.ctl"] > before["rx.counters.eth_rx.ctl"] + 1
    watched = t2t(sim_endpoint, "counters", "--json", "--watch", "0.1", "--count", "2")
    records = [json.loads(line) for line in watched.output.splitlines()]
    assert len(records) == 2 and "per_second" in records[1]
    status = t2t(sim_endpoint, "status", "--json")
    assert status.exit_code == 0, status.output
    st = json.loads(status.output)
    assert [f["line"] for f in st["feeds"]] == ["A", "B"]
    assert st["book"] == "0 orders" and st["not_in_bitstream"] == []
    assert st["kill"] == "off"
    assert "control_drop" in st["alarms"]
    table = t2t(sim_endpoint, "status")
    assert table.exit_code == 0 and "kill" in table.output


def test_risk_kill_and_latency_commands(sim_endpoint):
    shown = t2t(sim_endpoint, "risk", "show", "--json")
    assert shown.exit_code == 0, shown.output
    st = json.loads(shown.output)
    assert not st["killed"] and "collar" in st["rejects"] and "max_shares" in st["limits"]
    try:
        assert t2t(sim_endpoint, "risk", "set", "max_shares", "777").exit_code == 0
        assert json.loads(t2t(sim_endpoint, "risk", "show", "--json").output)[
            "limits"]["max_shares"] == 777
        wrong = t2t(sim_endpoint, "risk", "set", "max_order_qty", "5")
        assert wrong.exit_code == 2 and "one of" in wrong.output and "max_shares" in wrong.output
        big = t2t(sim_endpoint, "risk", "set", "collar_bps", str(1 << 16))
        assert big.exit_code == 2 and "16 bits" in big.output
        on = t2t(sim_endpoint, "kill", "on")
        assert on.exit_code == 0 and "kill switch ON (host)" in on.output
        status = json.loads(t2t(sim_endpoint, "status", "--json").output)
        assert status["kill"] == "ON (host)" and "kill" in status["alarms"]
    finally:
        t2t(sim_endpoint, "risk", "set", "max_shares", "0")
        off = t2t(sim_endpoint, "kill", "off")
    assert off.exit_code == 0 and "kill switch off" in off.output
    lat = t2t(sim_endpoint, "latency", "--json")
    assert lat.exit_code == 0, lat.output
    assert len(json.loads(lat.output)["histogram"]) == 32


def test_book_reads_the_level_rows(sim_endpoint):
    result = t2t(sim_endpoint, "book", "#0", "--json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert got["sym"] == 0 and got["bids"]["levels"] == [] and not got["asks"]["limited"]
    missing = t2t(sim_endpoint, "book", "NOPE")
    assert missing.exit_code == 2 and "not on the device's watch list" in missing.output
    too_far = t2t(sim_endpoint, "book", "#999")
    assert too_far.exit_code == 2 and "symbols" in too_far.output


def test_unreachable_device_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["status", "--sim", f"ipc://{tmp_path}/nobody",
                                       "--timeout", "0.05"])
    assert result.exit_code == EXIT_DEVICE
    assert "is `t2t sim` running there?" in result.output


def test_the_example_configuration_is_valid():
    from pathlib import Path

    from tick2trade.gateware.top import register_map
    from tick2trade.host.config import load, watch_size

    regmap = register_map()
    cfg = load(Path(__file__).resolve().parents[3] / "docs" / "config.example.toml",
               symbols=watch_size(regmap))
    values, missing = cfg.registers(regmap)
    assert missing == []
    assert values["risk.limits.collar_bps"] == 500 and values["risk.restricted"] == 0b1000
    assert values["ouch_tx.venue_port"] == 40000
    writes = cfg.table_writes(regmap)
    assert len(writes) == 2 * 64 and {n for n, _ in writes} == {"strategy.entry",
                                                               "strategy.entry_wr"}
    assert values["rx.watch[3].stock"] == int.from_bytes(b"BTC-USD ", "big")
    assert values["ctl.event_enable"] == 1 and values["rx.feeds[1].line"] == 1


def test_latency_shows_ns_only_at_a_clock_the_user_gives(monkeypatch):
    from tick2trade.host.cli import trade

    state = {"orders": 3, "min": 19, "max": 40, "percentiles": {"p50": 20, "p99": 40},
             "records": [], "histogram": [0] * 32}
    monkeypatch.setattr(trade, "open_device", lambda *a: None)
    monkeypatch.setattr(trade, "latency_state", lambda dev: state)
    plain = CliRunner().invoke(main, ["latency"])
    assert plain.exit_code == 0, plain.output
    assert "min 19 / max 40 cycles" in plain.output and "ns" not in plain.output
    timed = CliRunner().invoke(main, ["latency", "--clock-mhz", "100"])
    assert timed.exit_code == 0, timed.output
    assert "(190.0 / 400.0 ns at 100.0 MHz)" in timed.output and "200.0" in timed.output


def test_feed_sources_and_the_sequence_window_reach_their_registers():
    from tick2trade.gateware.top import register_map

    regmap = register_map()
    extra = ('source_b = "10.1.0.6"\nseq_window = 4096\nudp_verify = false\n'
             'hold_packets = 2\nhold_cycles = 1000\n')
    cfg = parse(GOOD.replace("[symbols]", extra + "\n[symbols]"), "feed.toml", symbols=8)
    values, _ = cfg.registers(regmap)
    assert values["rx.feed_src[1]"] == 0x0A010006 and "rx.feed_src[0]" not in values
    assert values["rx.seq_window"] == 4096 and values["rx.udp_verify"] == 0
    assert values["rx.hold_packets"] == 2 and values["rx.hold_cycles"] == 1000
    assert "rx.udp_verify" in regmap
    with pytest.raises(ConfigError) as exc:
        parse(GOOD.replace("[symbols]", 'source_a = "nowhere"\nseq_window = -1\n'
                           'udp_verify = 1\nhold_packets = 16\n[symbols]'), "bad.toml",
              symbols=8)
    problems = "\n".join(exc.value.problems)
    assert "feed.udp_verify: 1 is not true or false" in problems
    assert "feed.hold_packets: 16 is not a count from 0 to 15" in problems
    assert "feed.source_a: 'nowhere' is not an IPv4 address" in problems
    assert "feed.seq_window: -1" in problems
