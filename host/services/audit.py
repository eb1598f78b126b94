"""The audit trail: an append-only, hash-chained log of everything that changes state.

Each record carries ``prev_hash`` (the hash of the record before it; 64 zeros for the
first) and its own ``hash`` = SHA-256 over ``prev_hash`` and a canonical JSON of its
fields, its sequence number included. So editing a record breaks its own hash, deleting
or reordering records breaks the link of the next one, and a record moved to another
place no longer matches its sequence number. The ``audit_head`` row holds the last
sequence number and hash; ``append`` locks it (``SELECT … FOR UPDATE`` on PostgreSQL, the
write lock SQLite takes at ``BEGIN IMMEDIATE``), so concurrent writers form one chain,
and ``verify`` compares the tail with it, so cutting records off the end shows too.
The order writer's batches append through ``Chain``, which takes the same lock once per
batch and hashes the batch's records in memory.

Records are appended inside the caller's transaction: an order and the record saying it
was placed commit together or not at all.

What the chain does not do: someone who can write the database and recompute every hash
after an edit (head included) produces a consistent chain. Exported or published head
hashes (``t2t audit verify`` prints it) are what pins history against that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.orm import Session

from tick2trade.host.services import csvcells
from tick2trade.host.services.db import AuditHead, AuditRecord, utcnow

GENESIS = "0" * 64
EXPORT_COLUMNS = ("seq", "ts", "actor", "action", "subject", "detail", "prev_hash", "hash")


def as_utc(ts: datetime) -> datetime:
    """SQLite hands timestamps back without a zone; every timestamp we store is UTC."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _ts_text(ts: datetime) -> str:
    return as_utc(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_hash(prev_hash: str, seq: int, ts: datetime, actor: str, action: str,
                subject: str, detail: str) -> str:
    body = json.dumps([seq, _ts_text(ts), actor, action, subject, detail],
                      separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def lock(session: Session) -> AuditHead:
    """Take the chain head for the rest of the transaction. A transaction that will
    append takes it first when it also reads rows it then writes (a position that may
    not exist yet): every such writer then runs one after the other, on PostgreSQL as
    on SQLite, and two first fills cannot both insert the same position."""
    return session.execute(select(AuditHead).where(AuditHead.id == 1)
                           .with_for_update()).scalar_one()


def _record(prev_hash: str, seq: int, actor: str, action: str, subject: str,
            detail: dict[str, Any] | None) -> dict[str, Any]:
    """The columns of the record that follows ``prev_hash`` at ``seq``, hash included."""
    ts = utcnow()
    # SQLite keeps microseconds, PostgreSQL too; both give back exactly what we hashed.
    text = json.dumps(detail or {}, sort_keys=True, separators=(",", ":"), default=str)
    return {"seq": seq, "ts": ts, "actor": actor, "action": action, "subject": subject,
            "detail": text, "prev_hash": prev_hash,
            "hash": record_hash(prev_hash, seq, ts, actor, action, subject, text)}


def append(session: Session, actor: str, action: str, subject: str = "",
           detail: dict[str, Any] | None = None) -> AuditRecord:
    """Add one record to the chain in ``session``'s transaction (the caller commits)."""
    head = lock(session)
    rec = AuditRecord(**_record(head.hash, head.seq + 1, actor, action, subject, detail))
    session.add(rec)
    head.seq, head.hash = rec.seq, rec.hash
    return rec


_TAKE_HEAD = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
_INSERT_RECORD = insert(AuditRecord)
_MOVE_HEAD = update(AuditHead).where(AuditHead.id == 1)


class Chain:
    """The appends of one transaction made without the ORM (the order writer's batches).

    Taking the head is the first thing the transaction does, so the batch is ordered
    against every other writer exactly as ``append`` orders them; the records are
    hashed in memory in the order they are appended and written at the end with one
    multi-row insert and one update of the head.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.seq, self.hash = conn.execute(_TAKE_HEAD).one()
        self.records: list[dict[str, Any]] = []

    def append(self, actor: str, action: str, subject: str = "",
               detail: dict[str, Any] | None = None) -> None:
        rec = _record(self.hash, self.seq + 1, actor, action, subject, detail)
        self.records.append(rec)
        self.seq, self.hash = rec["seq"], rec["hash"]

    def write(self) -> None:
        if not self.records:
            return
        self.conn.execute(_INSERT_RECORD, self.records)
        self.conn.execute(_MOVE_HEAD, {"seq": self.seq, "hash": self.hash})
        self.records = []


@dataclass(frozen=True)
class Problem:
    """One place where the stored chain differs from what was written."""
    seq: int
    what: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.what}"


@dataclass(frozen=True)
class Verdict:
    records: int
    head_seq: int
    head_hash: str
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(session: Session, max_problems: int = 100) -> Verdict:
    """Walk the whole chain in sequence order and say where it was changed.

    Reported per record: a sequence number that skips (records deleted, or moved), a
    ``prev_hash`` that is not the previous record's hash (a record deleted, inserted or
    reordered before it), a hash that does not match the record's own fields (edited);
    at the end, a tail that is not the head (records cut off the end, or appended
    without the head).
    """
    problems: list[Problem] = []
    head = session.get(AuditHead, 1)
    prev_hash, expected_seq, count = GENESIS, 1, 0
    last_seq, last_hash = 0, GENESIS
    rows = session.execute(select(AuditRecord).order_by(AuditRecord.seq)
                           .execution_options(yield_per=1000)).scalars()
    for rec in rows:
        count += 1
        if rec.seq != expected_seq:
            missing = (f"records {expected_seq}..{rec.seq - 1} missing"
                       if rec.seq > expected_seq else "sequence number out of order")
            problems.append(Problem(rec.seq, f"{missing} (deleted or moved)"))
        if rec.prev_hash != prev_hash:
            problems.append(Problem(rec.seq, "does not follow the record before it "
                                             "(one was deleted, inserted or reordered)"))
        digest = record_hash(rec.prev_hash, rec.seq, rec.ts, rec.actor, rec.action,
                             rec.subject, rec.detail)
        if digest != rec.hash:
            problems.append(Problem(rec.seq, f"{rec.action} by {rec.actor}: fields do not "
                                             f"match the record's hash (edited)"))
        prev_hash, expected_seq = rec.hash, rec.seq + 1
        last_seq, last_hash = rec.seq, rec.hash
        if len(problems) >= max_problems:
            break
    else:
        if head is None:
            problems.append(Problem(last_seq, "the chain head is missing"))
        elif (head.seq, head.hash) != (last_seq, last_hash):
            what = (f"the head says the chain ends at seq {head.seq}; records after "
                    f"{last_seq} were deleted" if head.seq > last_seq
                    else f"the chain ends at seq {last_seq} but the head says {head.seq} "
                         f"(records added behind the log's back, or the head was edited)")
            problems.append(Problem(last_seq, what))
    return Verdict(count, head.seq if head else 0, head.hash if head else "",
                   tuple(problems))


def records_between(session: Session, start: datetime | None,
                    end: datetime | None) -> Iterator[AuditRecord]:
    query = select(AuditRecord).order_by(AuditRecord.seq)
    if start is not None:
        query = query.where(AuditRecord.ts >= start)
    if end is not None:
        query = query.where(AuditRecord.ts < end)
    yield from session.execute(query.execution_options(yield_per=1000)).scalars()


def export_csv(session: Session, out: IO[str], start: datetime | None = None,
               end: datetime | None = None) -> int:
    """Write the records with ``start <= ts < end`` as CSV, hashes included so a reader
    can check the chain over the exported range; returns the number written."""
    writer = csvcells.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    n = 0
    for rec in records_between(session, start, end):
        writer.writerow([rec.seq, _ts_text(rec.ts), rec.actor, rec.action, rec.subject,
                         rec.detail, rec.prev_hash, rec.hash])
        n += 1
    return n
