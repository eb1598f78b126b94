"""``t2t venue`` and ``t2t venue gen``: a generated capture decodes the same through the
receive path's RTL (``t2t replay``), the Python models, and the publisher's own log; a
short live run on loopback; configuration errors that say what is wrong."""

import json
import socket

import pytest
from click.testing import CliRunner

from tick2trade.protocol import frames, itch, moldudp64
from tick2trade.gateware.models.rx.rx_path import RxPathModel
from tick2trade.cli import main
from tick2trade.sim.replay import read_frames, replay_config
from tick2trade.sim.venue.config import SYMBOLS
from tests.sim.venue.test_feed import SEED


def t2t(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def capture_payloads(path):
    out = []
    for frame, _ in read_frames(path):
        d = frames.parse_udp_frame(frame)
        out.append(((frames.int_to_ip(d.dst_ip), d.dst_port), d.payload))
    return out


def test_gen_is_reproducible_and_carries_every_message_on_both_lines(tmp_path):
    a, b, c = (tmp_path / n for n in ("a.pcap", "b.pcap", "c.pcap"))
    outputs = []
    for path, seed in ((a, SEED), (b, SEED), (c, SEED + 1)):
        result = t2t(["venue", "gen", "--messages", "2000", "--out", str(path),
                      "--seed", str(seed)])
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    payloads = capture_payloads(a)
    line_a = [p for addr, p in payloads if addr == ("233.54.12.111", 26477)]
    assert [p for addr, p in payloads if addr == ("233.49.196.111", 26477)] == line_a
    assert len(line_a) * 2 == len(payloads)
    messages, expected = [], 1
    for p in line_a:
        pkt = moldudp64.decode_packet(p)
        assert pkt.seq == expected and pkt.complete and len(p) <= 1400
        if pkt.count != moldudp64.END_OF_SESSION:
            messages += pkt.messages
            expected += pkt.count
    assert moldudp64.decode_packet(line_a[-1]).count == moldudp64.END_OF_SESSION
    assert len(messages) >= 2000 and all(itch.decode(m) for m in messages)
    assert f"{len(messages):,} messages" in outputs[0]


@pytest.mark.verilator
def test_generated_capture_replays_through_the_rtl_as_the_models_decode_it(rx_build,
                                                                          tmp_path):
    capture = tmp_path / "feed.pcap"
    result = t2t(["venue", "gen", "--messages", "1500", "--out", str(capture), "--seed",
                  str(SEED)])
    assert result.exit_code == 0, result.output
    events = tmp_path / "events.jsonl"
    size = ["--symbols", str(rx_build["symbols"]), "--locates", str(rx_build["locates"])]
    watch = [a for s in SYMBOLS for a in ("--watch", s)]
    result = t2t(["replay", str(capture), "--events", str(events), *size, *watch])
    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in events.read_text().splitlines()]

    config = replay_config(watch=SYMBOLS, symbols=rx_build["symbols"],
                           locates=rx_build["locates"])
    model = RxPathModel(config, locates=rx_build["locates"])
    for frame, _ in read_frames(capture):
        model.process(frame)
    assert got == [e.to_json() for e in model.events]
    assert len(got) >= 1500 and not model.gaps
    assert model.counters()["moldudp"]["dup_b"] > 0
    assert {e["type"] for e in got} >= {"S", "R", "F", "E", "D", "U"}


def write(tmp_path, text):
    path = tmp_path / "venue.toml"
    path.write_text(text)
    return path


def test_live_venue_on_loopback_publishes_and_records(tmp_path):
    rx = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for s in rx:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
    (_, pa), (_, pb) = (s.getsockname() for s in rx)
    cfg = write(tmp_path, f"""
[venue]
session = "LIVE000001"
[feed]
line_a = "127.0.0.1:{pa}"
line_b = "127.0.0.1:{pb}"
retransmit = "127.0.0.1:0"
[order_entry]
tcp = "127.0.0.1:0"
udp = "off"
[[instrument]]
symbol = "ETH-USD"
locate = 3
kind = "crypto"
mid = 30000000
""")
    record = tmp_path / "live.pcap"
    result = t2t(["venue", "--config", str(cfg), "--rate", "3000", "--duration", "0.3",
                  "--record", str(record), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    got = []
    for s in rx:
        while True:
            try:
                got.append(s.recv(65536))
            except BlockingIOError:
                break
        s.close()
    sent = summary["counters"]["lines"]["datagrams"]
    assert sent > 0 and summary["counters"]["recorded_frames"]["frames"] == sent
    recorded = [p for _, p in capture_payloads(record)]
    assert len(recorded) == sent
    assert got and set(got) <= set(recorded)  # a small socket buffer may drop some
    first = moldudp64.decode_packet(got[0])
    assert first.session == b"LIVE000001" and first.seq == 1
    directory = [itch.decode(m) for p in got for m in moldudp64.decode_packet(p).messages
                 if m[:1] == b"R"]
    assert {(d["stock"], d["locate"]) for d in directory} == {("ETH-USD", 3)}
    assert summary["counters"]["gateway"] == {}


@pytest.mark.parametrize("text,message", [
    ("[feed\n", "not valid TOML"),
    ("[feed]\nline_a = \"233.1.1.1\"\n", "feed.line_a: '233.1.1.1' is not HOST:PORT"),
    ("[feed]\nlinea = \"233.1.1.1:5\"\n", "feed.linea: unknown key"),
    ("[feed]\nmax_payload = 10\n", "feed.max_payload: 10 is not an integer 72-65507"),
    ("[flow]\nrate = -1\n", "flow.rate: -1 is not a positive number"),
    ("[flow]\nrate = true\n", "flow.rate: True is not"),
    ("[venue]\nself_match_prevention = \"yes\"\n", "cancel_resting or cancel_incoming"),
    ("[order_entry.users]\nlongusername = \"x\"\n", "1-6 ASCII"),
    ("[[instrument]]\nsymbol = \"TOOLONGSYM\"\nlocate = 1\n", "instrument[0].symbol"),
    ("[[instrument]]\nsymbol = \"A\"\n", "instrument[0].locate: missing"),
    (("[[instrument]]\nsymbol = \"A\"\nlocate = 1\n[[instrument]]\nsymbol = \"B\"\n"
      "locate = 1\n"), "instrument[1].locate: 1 is also instrument [0]'s"),
    ("[[instrument]]\nsymbol = \"A\"\nlocate = 1\ntick = 0\n", "instrument[0].tick"),
    ("speed = 3\n", "speed: unknown key"),
])
def test_config_errors_name_the_key_and_what_is_accepted(tmp_path, text, message):
    cfg = write(tmp_path, text)
    result = CliRunner().invoke(main, ["venue", "--config", str(cfg), "--duration", "0.1"])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
