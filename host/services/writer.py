"""Group commit: the order path's durable writes, many to one transaction and one flush.

A durable commit costs a disk flush (0.4–0.6 ms at the median on a quiet disk, several
ms at the tail), and the audit chain lets only one transaction append at a time, so
committing each order on its own caps the rate at one flush per order. ``Writer.run``
takes a job — a function of a ``Batch`` — from any thread. Callers take turns as the
*leader*: the leader runs every job that is waiting, its own among them, in one
transaction and commits once, then answers each of their callers; whoever queued
meanwhile waits for the leader's turn to end, finds its job done or leads the next
batch. So the busier the path, the more each flush is shared, and a lone request pays
no hand-over to another thread (on a busy machine a thread's wake-up can cost more
than the flush).

Guarantees:

- ``run`` returns only after the transaction holding the job's writes has committed
  (with SQLite's ``synchronous=FULL`` and PostgreSQL's ``fsync=on``, after it reached
  the disk). Nothing is acknowledged earlier.
- A batch commits whole or not at all, and one failing job fails alone. A job that
  raises rolls back the batch; its caller gets ``WriteFailed`` naming the cause (by
  kind only for a database error: its text quotes SQL) and the other jobs are run again
  without it. When the database refuses the batch after its jobs ran (a constraint of
  an audit record or a notification), the batch is retried in halves until the job
  behind it fails alone. A fault of the database itself (a lost connection, a full
  disk) fails every caller of the batch: retrying would only fail again. Earlier
  batches stay committed; a job runs again only after its earlier run was rolled back
  (and its ``after_rollback`` hooks ran).
- The audit head is taken first in each batch (``audit.Chain``), so a batch is one step
  of the single chain that every other writer extends, and the records of its jobs
  follow each other in the order the jobs ran.

A job must not wait for the writer itself (it runs inside the leader's turn): ``run``
called from a job raises instead of deadlocking. Code that may be reached from inside a
job as well as from outside (the broker's callbacks: an in-process broker answers while
the placement's job runs, a venue answers later from its own thread) calls ``join``,
which adds the work to the batch being run, or runs it as ``run`` does.

Two things carry over from one batch to the next:

- The connection. The writer keeps the one its last batch used, so a batch does not
  pay a pool check-out (PostgreSQL: a ping round trip) and the reset at check-in. One
  idle longer than ``idle_recheck`` seconds goes back to the pool and the next batch
  takes a checked one; one that failed is dropped.
- ``Batch.cache``: rows that no order job changes (the kill switch, risk limits, a
  user's notification preferences and addresses). Every transaction that changes them
  also appends an audit record, so if the audit head a batch takes is still the one
  the writer's last batch left, nobody has changed them since and the cache holds;
  otherwise it starts empty. Jobs must not cache anything a job writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError

from tick2trade.host.services.audit import Chain

log = logging.getLogger(__name__)

T = TypeVar("T")


class WriteFailed(Exception):
    """The batch holding this request's writes was rolled back: nothing of it is stored
    (503; the request may be retried)."""


@dataclass
class Batch:
    """What a job sees: the batch's connection (inside its transaction), the audit chain,
    a cache of rows no job changes (see the module's docstring), room for what jobs of
    this batch hand each other (``scratch``, gone with the batch), writes to make once
    every job has run (in the transaction), work to do after the commit, and work that
    undoes a job's effects outside the database if the batch rolls back."""
    conn: Connection
    chain: Chain
    cache: dict[Any, Any] = field(default_factory=dict)
    scratch: dict[Any, Any] = field(default_factory=dict)
    before_commit: list[Callable[[], None]] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    after_rollback: list[Callable[[], None]] = field(default_factory=list)


Job = Callable[[Batch], Any]


class Writer:
    def __init__(self, engine: Engine, max_batch: int = 512, idle_recheck: float = 5.0) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.idle_recheck = idle_recheck
        self._waiting: deque[tuple[Job, Future]] = deque()
        # guards _waiting and _leader; notified when a turn ends, so every caller of
        # that batch wakes to its answer and one of the rest takes the next turn
        self._turn = threading.Condition()
        self._leader: int | None = None
        self._closed = False
        self._batch: Batch | None = None          # the leader's, while its jobs run
        self._conn: Connection | None = None      # kept between batches
        self._conn_used = 0.0
        self._cache: dict[Any, Any] = {}
        self._cache_seq: int | None = None        # audit head our last batch left
        self.batches = 0          # committed, for tests and the benchmark

    @property
    def waiting(self) -> int:
        """Jobs queued for the next batch."""
        return len(self._waiting)

    def run(self, job: Callable[[Batch], T]) -> T:
        """Run ``job`` in a batch and return its value once the batch has committed."""
        me = threading.get_ident()
        if self._leader == me:
            raise RuntimeError("a writer job cannot wait for the writer")
        if self._closed:
            raise WriteFailed("not stored: the writer is closed")
        done: Future = Future()
        with self._turn:
            self._waiting.append((job, done))
        while True:
            with self._turn:
                while not done.done() and self._leader is not None:
                    self._turn.wait()
                if done.done():
                    return done.result()
                self._leader = me
                jobs = [self._waiting.popleft()
                        for _ in range(min(self.max_batch, len(self._waiting)))]
            try:
                self._commit(jobs)
            finally:
                with self._turn:
                    self._leader = None
                    self._turn.notify_all()

    def join(self, job: Callable[[Batch], T]) -> T:
        """Run ``job`` in the batch this thread is running, if it is inside a job (its
        writes then commit, or roll back, with that batch, which the outer caller is
        waiting for); otherwise as ``run``."""
        batch = self._batch
        if batch is not None and self._leader == threading.get_ident():
            return job(batch)
        return self.run(job)

    def close(self) -> None:
        """Refuse new jobs (those already waiting are still run by their callers)."""
        self._closed = True
        with self._turn:
            if self._leader is None:
                self._drop_connection()

    def _connection(self) -> Connection:
        if self._conn is not None and time.monotonic() - self._conn_used > self.idle_recheck:
            self._drop_connection()
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        self._cache.clear()
        self._cache_seq = None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                log.exception("closing the writer's connection failed")

    def _commit(self, jobs: list[tuple[Job, Future]]) -> None:
        """Commit ``jobs`` as one batch; when that fails, answer the job that failed and
        commit the others without it (see ``_attempt``)."""
        while jobs:
            failed_at, exc = self._attempt(jobs)
            if failed_at is None:
                return
            if len(jobs) == 1 or not _data_error(exc, failed_at):
                # a lone job, or a fault of the database itself (a lost connection, a
                # full disk): retrying would fail again, so every caller is answered
                for _, fut in jobs:
                    fut.set_exception(_failed(exc, len(jobs)))
                return
            if failed_at >= 0:
                jobs[failed_at][1].set_exception(_failed(exc, 1))
                jobs = jobs[:failed_at] + jobs[failed_at + 1:]
            else:
                # refused at the end of the batch (an audit record, a notification, the
                # commit): no job to blame yet, so each half is tried on its own
                half = len(jobs) // 2
                self._commit(jobs[:half])
                jobs = jobs[half:]

    def _attempt(self, jobs: list[tuple[Job, Future]]) -> tuple[int | None, BaseException | None]:
        """Run ``jobs`` in one transaction and commit it; answers their callers and returns
        ``(None, _)`` on success. Rolled back, returns which job raised (-1: none, the
        batch failed after its jobs ran) and what; the callers are left to ``_commit``."""
        results = []
        batch = None
        try:
            conn = self._connection()
            with conn.begin():
                chain = Chain(conn)
                if chain.seq != self._cache_seq:
                    self._cache.clear()
                batch = self._batch = Batch(conn, chain, self._cache)
                for job, _ in jobs:
                    results.append(job(batch))
                for hook in batch.before_commit:
                    hook()
                chain.write()
        except BaseException as exc:
            # BaseException too: every caller of the batch must be answered, or those
            # waiting behind this turn would find their jobs gone and never done
            self._batch = None
            self._drop_connection()
            log.exception("write batch of %d rolled back", len(jobs))
            for hook in batch.after_rollback if batch is not None else ():
                try:
                    hook()
                except Exception:
                    log.exception("after-rollback hook failed")
            if not isinstance(exc, Exception):
                for _, fut in jobs:
                    fut.set_exception(_failed(exc, len(jobs)))
                raise
            return (len(results) if len(results) < len(jobs) else -1), exc
        self._batch = None
        self._cache_seq = batch.chain.seq
        self._conn_used = time.monotonic()
        if self._closed:
            self._drop_connection()
        self.batches += 1
        for hook in batch.after_commit:
            try:
                hook()
            except Exception:
                log.exception("after-commit hook failed")
        for (_, fut), result in zip(jobs, results, strict=True):
            fut.set_result(result)
        return None, None


def _data_error(exc: BaseException, failed_at: int) -> bool:
    """Whether the batch without the culprit may well commit: a job raised something
    that is not the database failing, or the database refused the data (a constraint, a
    value out of range) rather than failed to store it."""
    if isinstance(exc, DBAPIError):
        return isinstance(exc, IntegrityError | DataError) and not exc.connection_invalidated
    return failed_at >= 0 and isinstance(exc, Exception)


def _failed(exc: BaseException, jobs: int) -> WriteFailed:
    """What a caller is told: the cause by its kind, never a database error's text
    (it quotes the statement and its parameters; the log has them)."""
    if isinstance(exc, SQLAlchemyError):
        cause = f"the database refused it ({type(exc).__name__})"
    else:
        cause = f"{type(exc).__name__}: {exc}"
    where = ("the write batch of this request" if jobs == 1 else
             f"the write batch of {jobs} request(s) this one was in")
    failed = WriteFailed(f"not stored: {where} was rolled back ({cause})"[:500])
    failed.__cause__ = exc
    return failed
