"""Group commit: one thread makes the order path's durable writes, many at a time.

A durable commit costs a disk flush (0.4–0.6 ms at the median here, several ms at the
tail), and the audit chain lets only one transaction append at a time, so committing
each order on its own caps the rate at one flush per order. ``Writer`` takes jobs —
functions of a ``Batch`` — from any number of threads; its thread runs every job that
is waiting in *one* transaction and commits once, then answers each caller. While a
batch is being flushed the next one gathers, so the busier the writer, the more each
flush is shared.

Guarantees:

- A job's caller gets its result only after the transaction holding its writes has
  committed (with SQLite's ``synchronous=FULL`` and PostgreSQL's ``fsync=on``, after it
  reached the disk). Nothing is acknowledged earlier.
- A batch commits whole or not at all. A job that raises, or a commit that fails, rolls
  back the batch and every caller of that batch gets ``WriteFailed`` naming the cause;
  earlier batches stay committed, later ones are not affected.
- The audit head is taken first in each batch (``audit.Chain``), so a batch is one step
  of the single chain that every other writer extends, and the records of its jobs
  follow each other in the order the jobs ran.

A job must not wait for the writer itself (it runs on the writer's thread): ``run``
called from a job raises instead of deadlocking.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import Engine

from .audit import Chain

log = logging.getLogger(__name__)

T = TypeVar("T")


class WriteFailed(Exception):
    """The batch holding this request's writes was rolled back: nothing of it is stored
    (503; the request may be retried)."""


@dataclass
class Batch:
    """What a job sees: the batch's connection (inside its transaction), the audit chain,
    per-batch caches of rows no job changes, and work to do after the commit."""
    conn: Connection
    chain: Chain
    cache: dict[str, Any] = field(default_factory=dict)
    after_commit: list[Callable[[], None]] = field(default_factory=list)


Job = Callable[[Batch], Any]
_STOP = object()


class Writer:
    def __init__(self, engine: Engine, max_batch: int = 512, name: str = "t2t-writer") -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._closed = False
        self.batches = 0          # committed, for tests and the benchmark
        self._thread.start()

    def submit(self, job: Job) -> Future:
        if self._closed:
            raise WriteFailed("the writer is closed")
        future: Future = Future()
        self._queue.put((job, future))
        return future

    def run(self, job: Callable[[Batch], T]) -> T:
        """Submit ``job`` and wait until its batch has committed; its return value."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("a writer job cannot wait for the writer")
        return self.submit(job).result()

    def close(self) -> None:
        """Finish what was submitted, then stop the thread."""
        if not self._closed:
            self._closed = True
            self._queue.put((_STOP, None))
            self._thread.join()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            pending = [self._queue.get()]
            while len(pending) < self.max_batch:
                try:
                    pending.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            jobs = [(job, fut) for job, fut in pending if job is not _STOP]
            stopping = len(jobs) < len(pending)
            if jobs:
                self._commit(jobs)

    def _commit(self, jobs: list[tuple[Job, Future]]) -> None:
        results = []
        try:
            with self.engine.begin() as conn:
                batch = Batch(conn, Chain(conn))
                for job, _ in jobs:
                    results.append(job(batch))
                batch.chain.write()
        except Exception as exc:
            log.exception("write batch of %d rolled back", len(jobs))
            failed = WriteFailed(f"not stored: the write batch of {len(jobs)} request(s) "
                                 f"this one was in was rolled back "
                                 f"({type(exc).__name__}: {exc})"[:500])
            failed.__cause__ = exc
            for _, fut in jobs:
                fut.set_exception(failed)
            return
        self.batches += 1
        for hook in batch.after_commit:
            try:
                hook()
            except Exception:
                log.exception("after-commit hook failed")
        for (_, fut), result in zip(jobs, results, strict=True):
            fut.set_result(result)
