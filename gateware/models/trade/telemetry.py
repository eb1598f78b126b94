"""Golden model of ``telemetry`` (``gateware/trade/telemetry.py``), cycle by cycle.

Every value is 32 bits and wraps: timestamps, tick-to-trade, bins and counters.

Rules
-----
* **Frame starts.** A register holds the cycle (``now``) of the last frame start; in a
  cycle with ``frame_start`` the new value counts already. That value goes down a delay
  line: ``t_in`` shows it as it was ``RX_TAP_LATENCY`` cycles ago, ``t_in_early`` as it
  was ``EARLY_TAP_LATENCY`` cycles ago (0 until something has been seen).
* **Records.** In a cycle with ``sent.stb`` a record (``user_ref``, ``sym``, ``cancel``
  from ``sent``; ``t_in``, ``t_event``, ``t_decide`` from ``stamps``; ``t_out = now``)
  is offered to the record queue, Amaranth's ``SyncFIFOBuffered`` of ``depth``: a store
  of ``depth - 1`` entries in front of one output register. The store takes the record
  when it is not full (it ignores the output register), otherwise the record is lost
  and ``records_lost`` counts it. The output register loads the store's oldest entry in
  a cycle when it is empty or being read, so a record written to an empty queue shows
  two cycles later. ``records`` is the output register; ``records.ready`` reads it.
  With ``depth`` 1 the output register is the whole queue (a record shows next cycle,
  and none is taken while it is full); with ``depth`` 0 every record is lost.
* **Tick-to-trade.** For a sent order that is not a cancel, ``ttt = now - stamps.t_in``
  (mod 2**32). It counts in bin ``min(ttt >> hist_shift, BINS - 1)``, the ``hist_shift``
  of that cycle. ``ttt_min``/``ttt_max`` are the least and most ``ttt`` seen, 0 before
  the first. Cancels make records but never touch the histogram or min/max.
* **Counters.** ``frames_in`` counts cycles with ``frame_start``, ``orders_out`` cycles
  with ``sent.stb`` (cancels included), ``records_lost`` as above.

Every output is a register: what the ports show in a cycle depends only on the state
left by earlier cycles (:meth:`TelemetryModel.outputs`), and :meth:`TelemetryModel.clock`
applies one cycle's inputs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

RX_TAP_LATENCY = 3
EARLY_TAP_LATENCY = RX_TAP_LATENCY - 1
BINS = 32
COUNTERS = ("frames_in", "orders_out", "records_lost")
MASK = (1 << 32) - 1


@dataclass(frozen=True)
class Record:
    user_ref: int
    sym: int
    cancel: int
    t_in: int
    t_event: int
    t_decide: int
    t_out: int


@dataclass(frozen=True)
class Inputs:
    """One cycle's inputs; ``stb`` and the fields after it are ``sent`` and ``stamps``."""

    now: int = 0
    frame_start: int = 0
    stb: int = 0
    user_ref: int = 0
    sym: int = 0
    cancel: int = 0
    t_in: int = 0
    t_event: int = 0
    t_decide: int = 0
    hist_shift: int = 0
    ready: int = 0  # records.ready


@dataclass(frozen=True)
class Outputs:
    t_in: int
    t_in_early: int
    record: Record | None  # records.payload while records.valid, else None
    histogram: tuple[int, ...]
    ttt_min: int
    ttt_max: int
    counters: dict[str, int]


class RecordQueue:
    """``SyncFIFOBuffered(depth)`` as the component uses it: a store of ``depth - 1``
    entries and an output register (for ``depth`` 1, the register alone)."""

    def __init__(self, depth: int):
        self.depth = depth
        self.store: deque[Record] = deque()
        self.head: Record | None = None

    def can_write(self) -> bool:
        if self.depth <= 1:
            return self.depth == 1 and self.head is None
        return len(self.store) != self.depth - 1

    def clock(self, write: Record | None, read: bool) -> bool:
        """One cycle; returns whether ``write`` was taken."""
        taken = write is not None and self.can_write()
        if self.depth == 1:
            if read and self.head is not None:
                self.head = None
            if taken:
                self.head = write
            return taken
        if self.store and (self.head is None or read):
            self.head = self.store.popleft()
        elif read:
            self.head = None
        if taken:
            self.store.append(write)
        return taken


@dataclass
class TelemetryModel:
    depth: int = 64
    start: int = 0
    line: list[int] = field(default_factory=lambda: [0] * RX_TAP_LATENCY)  # start_1..
    histogram: list[int] = field(default_factory=lambda: [0] * BINS)
    seen: bool = False
    ttt_min: int = 0
    ttt_max: int = 0
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    def __post_init__(self) -> None:
        self.queue = RecordQueue(self.depth)

    @staticmethod
    def bin_of(ttt: int, hist_shift: int) -> int:
        return min(ttt >> hist_shift, BINS - 1)

    def outputs(self) -> Outputs:
        return Outputs(t_in=self.line[RX_TAP_LATENCY - 1],
                       t_in_early=self.line[EARLY_TAP_LATENCY - 1],
                       record=self.queue.head, histogram=tuple(self.histogram),
                       ttt_min=self.ttt_min, ttt_max=self.ttt_max,
                       counters=dict(self.counters))

    def _count(self, name: str) -> None:
        self.counters[name] = (self.counters[name] + 1) & MASK

    def clock(self, x: Inputs) -> None:
        start_now = x.now if x.frame_start else self.start
        self.start = start_now
        self.line = [start_now] + self.line[:-1]
        if x.frame_start:
            self._count("frames_in")

        record = None
        if x.stb:
            record = Record(x.user_ref, x.sym, x.cancel, x.t_in, x.t_event, x.t_decide,
                            x.now)
            self._count("orders_out")
        if not self.queue.clock(record, bool(x.ready)) and record is not None:
            self._count("records_lost")

        if x.stb and not x.cancel:
            ttt = (x.now - x.t_in) & MASK
            b = self.bin_of(ttt, x.hist_shift)
            self.histogram[b] = (self.histogram[b] + 1) & MASK
            if not self.seen or ttt < self.ttt_min:
                self.ttt_min = ttt
            if not self.seen or ttt > self.ttt_max:
                self.ttt_max = ttt
            self.seen = True
