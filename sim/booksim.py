"""The order book (``gateware.book.Book``) as a Verilator model with a Python face.

``BookSim`` speaks the language of ``models.book.BookModel``: ITCH events in (the
receive path's normalized events), ``Update`` records, counters and occupancy out, so the
two are compared update by update. Events are pushed with backpressure, whole batches
per call; ``feed`` returns the cycles the book needed to take them, which is what the
throughput bench reports.
"""

from __future__ import annotations

import functools

import numpy as np

from tick2trade.protocol import itch
from tick2trade.gateware.models.book import ACTIONS, BOOK_COUNTERS, Update

from tick2trade.sim import verilator
from tick2trade.sim.rxsim import member_layout

TOP = "book"


@functools.cache
def _book(symbols: int, capacity: int, ways: int, n: int, depth: int):
    from tick2trade.gateware.book import Book

    return Book(symbols, capacity, ways, n, depth)


@functools.cache
def build_book(symbols: int = 64, capacity: int = 16384, ways: int = 4, n: int = 8,
               depth: int = 16) -> verilator.Build:
    book = _book(symbols, capacity, ways, n, depth)
    name = f"{TOP}-s{symbols}-c{capacity}-w{ways}-n{n}-d{depth}"
    return verilator.build(book, name, top=TOP)


def event_rows(layout, events: list[itch.Event]) -> np.ndarray:
    names = [name for name, _ in layout]
    rows = []
    for e in events:
        row = {f: getattr(e, f) for f in names if f != "type"}
        row["type"] = ord(e.type)
        rows.append(row)
    return verilator.encode_rows(layout, rows)


class BookSim(verilator.ModelOwner):
    """The book in Verilator. Parameters as for ``Book``; each combination is a cached
    build. Updates accumulate in ``updates``; ``counters()`` are the gateware's."""

    def __init__(self, symbols: int = 64, capacity: int = 16384, ways: int = 4, n: int = 8,
                 depth: int = 16):
        book = _book(symbols, capacity, ways, n, depth)
        self.symbols, self.n = symbols, n
        self._layouts = {k: member_layout(book, k)
                         for k in ("events", "updates", "clear", "counters")}
        self.build = build_book(symbols, capacity, ways, n, depth)
        self._model = verilator.Model(self.build)
        self._model.bind_output("updates")
        self._model.reset()
        self._model["clear"] = 0
        self.updates: list[Update] = []
        self.cycles = 0  # cycles the book took to accept the events fed so far

    def feed(self, events: list[itch.Event], drain: bool = True) -> int:
        """Push ``events`` back to back; returns the cycles until the last was taken."""
        rows = event_rows(self._layouts["events"], events)
        cycles = self._model.run_beats("events", rows)
        self.cycles += cycles
        if drain:
            self._model.drain()
            self._collect()
        return cycles

    def clear(self, sym: int | None = None) -> None:
        """The host's clear register: one symbol, or all; waits for the sweep."""
        lay = self._layouts["clear"]
        self._model["clear"] = lay.const({"stb": 1, "all": sym is None,
                                          "sym": sym or 0}).as_value().value
        self._model.step(1)
        self._model["clear"] = 0
        while self._model["busy"]:
            self._model.step(64)
        self._model.drain()
        self._collect()

    def _collect(self) -> None:
        beats = self._model.take("updates")
        if not len(beats):
            return
        cols = verilator.decode_columns(self._layouts["updates"], beats)
        for i in range(len(beats)):
            self.updates.append(Update(
                int(cols["sym"][i]), int(cols["side"][i]), ACTIONS[int(cols["action"][i])],
                int(cols["level"][i]), int(cols["price"][i]), int(cols["shares"][i]),
                int(cols["orders"][i]), bool(cols["bbo"][i]), bool(cols["all_syms"][i]),
                int(cols["best_price"][i]), int(cols["best_shares"][i])))

    def take_updates(self) -> list[Update]:
        self._collect()
        out, self.updates = self.updates, []
        return out

    def counters(self) -> dict[str, int]:
        raw = self._model["counters"]
        cols = verilator.field_offsets(self._layouts["counters"])
        return {c: (raw >> cols[c][0]) & 0xFFFFFFFF for c in BOOK_COUNTERS}

    @property
    def occupancy(self) -> int:
        return self._model["occupancy"]

    def latency(self, event: itch.Event) -> int | None:
        """Cycles from the cycle ``event`` is taken to the cycle its first update leaves
        the book (None when it makes none)."""
        self._model.run_beats("events", event_rows(self._layouts["events"], [event]))
        for cycles in range(1, 64):
            self._model.step(1)
            if len(self._model.take("updates")):
                return cycles
        return None
