"""The operator commands (click's runner) against a running `t2t sim`, and config
validation."""

import json

import pytest
from click.testing import CliRunner

from host.cli import main
from host.cli_device import EXIT_CONFIG, EXIT_DEVICE, EXIT_DIFFERENT, EXIT_NOT_IN_BITSTREAM
from host.config import ConfigError, parse

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
address = "10.0.0.50:4000"

[risk]
max_order_qty = 1000

[[trigger]]
symbol = "AAPL"
kind = "cross"
side = "buy"
price = 1902500
qty = 100
"""


def t2t(endpoint, *args):
    return CliRunner().invoke(main, [*args, "--sim", endpoint])


def test_config_validation_names_every_bad_key():
    bad = GOOD.replace('"233.49.196.111:26477"', '"10.1.2.3:26477"') \
        .replace('"MSFT"', '"TOOLONGNAME"').replace("port = 40002", "port = 70000") \
        + "\n[risk]\nmax_order_qty = -1\nmax_qty = 5\n[[trigger]]\nsymbol = \"IBM\"\n" \
        "kind = \"cross\"\nside = \"up\"\nprice = 1\nqty = 1\n[colour]\n"
    with pytest.raises(ConfigError) as exc:
        parse(bad, "bad.toml", symbols=8)
    problems = "\n".join(exc.value.problems)
    for key in ("feed.line_b: 10.1.2.3 is not a multicast group", "symbols.watch[1]",
                "events.port: 70000", "risk.max_order_qty: -1", "risk.max_qty: unknown key",
                "trigger[0].symbol: 'IBM' is not in symbols.watch",
                "trigger[0].side: 'up'", "colour: unknown section"):
        assert key in problems, problems
    assert len(exc.value.problems) == 8
    with pytest.raises(ConfigError, match="not TOML"):
        parse("[feed\n")
    with pytest.raises(ConfigError, match="3 stocks; this bitstream has 2 symbols"):
        parse(GOOD, symbols=2)
    cfg = parse(GOOD + TRADE, symbols=8)
    assert cfg.triggers == [{"symbol": 0, "kind": 0, "side": 0, "price": 1902500, "qty": 100}]


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
    partial = t2t(sim_endpoint, "config", "push", str(path))
    assert partial.exit_code == EXIT_NOT_IN_BITSTREAM
    assert "venue, risk, trigger — not in this bitstream" in partial.output
    path.write_text(GOOD.replace("port = 7000", "port = 'seven'"))
    broken = t2t(sim_endpoint, "config", "push", str(path))
    assert broken.exit_code == EXIT_CONFIG and "device.port: 'seven'" in broken.output


def test_status_and_counters_report_what_the_device_counted(sim_endpoint):
    from host.device import SimDevice
    from sim.control_frames import to_device

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
    assert st["book"] == "0 orders" and "book" not in st["not_in_bitstream"]
    assert "risk" in st["not_in_bitstream"]
    assert "control_drop" in st["alarms"]
    table = t2t(sim_endpoint, "status")
    assert table.exit_code == 0 and "not in this bitstream" in table.output


@pytest.mark.parametrize("args,what", [
    (["latency"], "latency histogram"),
    (["risk", "show"], "risk limits"), (["risk", "set", "max_order_qty", "5"], "risk limits"),
    (["kill", "on"], "kill switch")])
def test_blocks_not_built_say_so(sim_endpoint, args, what):
    result = t2t(sim_endpoint, *args)
    assert result.exit_code == EXIT_NOT_IN_BITSTREAM
    assert f"{what}: not in this bitstream" in result.output


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

    from gateware.top import register_map
    from host.config import load, watch_size

    regmap = register_map()
    cfg = load(Path(__file__).resolve().parents[2] / "docs" / "config.example.toml",
               symbols=watch_size(regmap))
    values, missing = cfg.registers(regmap)
    assert missing == ["venue", "risk", "trigger"]
    assert values["rx.watch[3].stock"] == int.from_bytes(b"BTC-USD ", "big")
    assert values["ctl.event_enable"] == 1 and values["rx.feeds[1].line"] == 1
