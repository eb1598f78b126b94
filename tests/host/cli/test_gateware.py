"""`t2t regmap`: the map generated from the gateware, in three formats; the committed
docs/registers.md is the generated one."""

import json
from pathlib import Path

from click.testing import CliRunner

from tick2trade.protocol.regmap import RegisterMap
from tick2trade.gateware.top import Top
from tick2trade.cli import main

DOCS = Path(__file__).resolve().parents[3] / "docs" / "registers.md"


def test_committed_register_docs_are_generated():
    result = CliRunner().invoke(main, ["regmap", "--format", "md"])
    assert result.exit_code == 0, result.output
    assert DOCS.read_text() == result.output, \
        "docs/registers.md is stale: run `t2t regmap --format md --out docs/registers.md`"


def test_json_map_round_trips_and_matches_the_gateware():
    result = CliRunner().invoke(main, ["regmap", "--symbols", "8", "--locates", "64"])
    assert result.exit_code == 0, result.output
    regmap = RegisterMap.from_json(json.loads(result.output))
    top = Top(64, symbols=8, locates=64)
    assert regmap.hash == top.map.hash
    assert [e.to_json() for e in regmap.entries] == [e.to_json() for e in top.map.entries]
    assert "rx.watch[7].stock" in regmap and "rx.watch[8].stock" not in regmap
    entry = regmap["rx.loc_wr"]
    assert entry.decompose(entry.compose(stb=1, locate=300, sym=5)) == \
        {"stb": 1, "locate": 300, "sym": 5, "traded": 0}


def test_c_header_defines_every_register_once():
    result = CliRunner().invoke(main, ["regmap", "--format", "c"])
    assert result.exit_code == 0
    addrs = [line for line in result.output.splitlines() if "_ADDR " in line]
    names = [line.split()[1] for line in addrs]
    assert len(names) == len(set(names)) == len(Top().map.entries)
    assert "#define T2T_SYS_ID_ADDR 0x0000u" in result.output
