"""The audit chain: every kind of tampering is found and located; export and the CLI."""

from __future__ import annotations

import csv
import io
import itertools
import json
import random
from datetime import datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, select, text, update

from tick2trade.cli import main
from tick2trade.host.services import audit
from tick2trade.host.services.db import AuditHead, AuditRecord

EXPECTED_TABLES = {"users", "refresh_tokens", "orders", "executions", "positions",
                   "notifications", "outbox", "preferences", "price_alerts", "risk_limits",
                   "settings", "audit_log", "audit_head", "alembic_version", "watchlists",
                   "rfqs", "rfq_quotes"}


def _fill(platform, n: int, rng: random.Random) -> None:
    for i in range(n):
        with platform.sessions.begin() as s:
            audit.append(s, rng.choice(["alice", "bob", "op"]), rng.choice(
                ["order.place", "risk.limits", "user.update"]), f"thing:{i}",
                {"i": i, "note": rng.choice(["", "ünïcode ✓", "a,b\n\"c\""])})


def _verdict(platform):
    with platform.sessions() as s:
        return audit.verify(s)


def test_migration_creates_every_table(platform):
    assert set(inspect(platform.engine).get_table_names()) == EXPECTED_TABLES


def test_intact_chain_verifies(platform):
    _fill(platform, 30, random.Random(1))
    v = _verdict(platform)
    assert v.ok, v.problems
    assert v.records == v.head_seq == 30
    with platform.sessions() as s:
        recs = list(s.execute(select(AuditRecord).order_by(AuditRecord.seq)).scalars())
    assert [r.prev_hash for r in recs[1:]] == [r.hash for r in recs[:-1]]
    assert recs[0].prev_hash == audit.GENESIS


@pytest.mark.parametrize("column,value", [("actor", "mallory"), ("detail", '{"i":999}'),
                                          ("action", "user.delete"), ("subject", "x")])
def test_edit_is_found_at_its_record(platform, column, value):
    _fill(platform, 20, random.Random(2))
    target = random.Random(3).randint(1, 20)
    with platform.sessions.begin() as s:
        s.execute(update(AuditRecord).where(AuditRecord.seq == target).values({column: value}))
    v = _verdict(platform)
    assert not v.ok
    assert [p.seq for p in v.problems] == [target]
    assert "edited" in v.problems[0].what


def test_edit_with_recomputed_hash_breaks_the_next_link(platform):
    _fill(platform, 10, random.Random(4))
    with platform.sessions.begin() as s:
        rec = s.get(AuditRecord, 5)
        rec.actor = "mallory"
        rec.hash = audit.record_hash(rec.prev_hash, rec.seq, rec.ts, rec.actor, rec.action,
                                     rec.subject, rec.detail)
    v = _verdict(platform)
    assert [p.seq for p in v.problems] == [6]
    assert "does not follow" in v.problems[0].what


def test_deletion_in_the_middle_is_found(platform):
    _fill(platform, 10, random.Random(5))
    with platform.sessions.begin() as s:
        s.delete(s.get(AuditRecord, 4))
    v = _verdict(platform)
    assert {p.seq for p in v.problems} == {5}
    assert any("4..4 missing" in p.what for p in v.problems)


def test_deletion_of_the_tail_is_found(platform):
    _fill(platform, 10, random.Random(6))
    with platform.sessions.begin() as s:
        for seq in (9, 10):
            s.delete(s.get(AuditRecord, seq))
    v = _verdict(platform)
    assert len(v.problems) == 1
    assert "records after 8 were deleted" in v.problems[0].what


def test_reordering_is_found(platform):
    _fill(platform, 10, random.Random(7))
    # swap the contents of records 3 and 7, each keeping its place in the sequence
    with platform.sessions.begin() as s:
        a, b = s.get(AuditRecord, 3), s.get(AuditRecord, 7)
        fields = ("ts", "actor", "action", "subject", "detail", "prev_hash", "hash")
        va, vb = [getattr(a, f) for f in fields], [getattr(b, f) for f in fields]
        a.hash = "moving"
        s.flush()
        for f, x, y in zip(fields, vb, va):
            setattr(b, f, y)
        s.flush()
        for f, x in zip(fields, vb):
            setattr(a, f, x)
    v = _verdict(platform)
    assert {3, 4, 7, 8} <= {p.seq for p in v.problems}


def test_renumbering_is_found(platform):
    _fill(platform, 6, random.Random(8))
    with platform.sessions.begin() as s:
        s.execute(update(AuditRecord).where(AuditRecord.seq == 6).values(seq=60))
    v = _verdict(platform)
    assert not v.ok
    assert v.problems[0].seq == 60


def test_random_tampering_is_always_found(platform):
    rng = random.Random(9)
    _fill(platform, 40, rng)
    for _ in range(5):
        seq = rng.randint(1, 40)
        with platform.sessions.begin() as s:
            rec = s.get(AuditRecord, seq)
            before = rec.detail
            rec.detail = before[:-1] + ("X" if before[-1] != "X" else "Y")
        v = _verdict(platform)
        assert seq in {p.seq for p in v.problems}
        with platform.sessions.begin() as s:
            s.get(AuditRecord, seq).detail = before
        assert _verdict(platform).ok


def test_concurrent_appends_form_one_chain(platform):
    from concurrent.futures import ThreadPoolExecutor

    def work(k):
        for i in range(10):
            with platform.sessions.begin() as s:
                audit.append(s, f"w{k}", "test", f"{k}:{i}")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    v = _verdict(platform)
    assert v.ok, v.problems
    assert v.records == 40


def test_export_range_and_cli(platform, db_url, tmp_path):
    _fill(platform, 5, random.Random(10))
    with platform.sessions() as s:
        ts = [r.ts for r in s.execute(select(AuditRecord).order_by(AuditRecord.seq)).scalars()]
    start = audit.as_utc(ts[1])
    end = audit.as_utc(ts[4])
    runner = CliRunner()
    out = tmp_path / "audit.csv"
    fmt = "%Y-%m-%dT%H:%M:%S.%f"
    r = runner.invoke(main, ["audit", "export", "--db", db_url, "--from", start.strftime(fmt),
                             "--to", end.strftime(fmt), "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [int(row["seq"]) for row in rows] == [2, 3, 4]
    assert [int(row["seq"]) for row in rows] == sorted(int(row["seq"]) for row in rows)
    # each exported record re-hashes to itself, and they link
    for prev, row in itertools.pairwise(rows):
        assert row["prev_hash"] == prev["hash"]
    for row in rows:
        ts_row = datetime.fromisoformat(row["ts"])
        assert audit.record_hash(row["prev_hash"], int(row["seq"]), ts_row, row["actor"],
                                 row["action"], row["subject"], row["detail"]) == row["hash"]

    r = runner.invoke(main, ["audit", "verify", "--db", db_url, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["ok"] is True
    with platform.sessions.begin() as s:
        s.get(AuditRecord, 3).actor = "mallory"
    r = runner.invoke(main, ["audit", "verify", "--db", db_url])
    assert r.exit_code == 1
    assert "seq 3" in r.output and "edited" in r.output


def test_head_is_seeded_by_the_migration(platform):
    with platform.sessions() as s:
        head = s.get(AuditHead, 1)
        assert (head.seq, head.hash) == (0, audit.GENESIS)
        assert s.execute(text("SELECT count(*) FROM audit_log")).scalar_one() == 0
    assert _verdict(platform).ok
