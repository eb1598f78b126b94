"""Golden model of ``itch``: ITCH 5.0 messages to normalized events, locate table and
watch list."""

from __future__ import annotations

from collections import Counter

from tick2trade.protocol import itch

from .eth_rx import RxConfig
from .moldudp import MoldMessage


ITCH_COUNTERS = ("events", "aborted", "unknown_type", "bad_length", "untraded",
                 "directory_hits")


class ItchModel:
    """Decode, check the length, look up the locate, drop what is not traded.

    The locate table maps a stock locate to a symbol index. It is written by the host
    (``RxConfig.locate_map``) and by Stock Directory ('R') messages whose stock is in the
    watch list (entry ``i`` → symbol ``i``). Messages with locate 0 (system-wide, e.g.
    'S') always pass; others pass only when their locate is in the table.
    """

    def __init__(self, config: RxConfig, locates: int = 16384):
        self.watch = {itch.stock_int(s): i for i, s in reversed(list(enumerate(config.watch)))}
        self.table: dict[int, int] = {k: v for k, v in config.locate_map.items()
                                      if 0 <= k < locates}
        self.locates = locates
        self.counters = Counter({k: 0 for k in ITCH_COUNTERS})
        self.by_type = Counter({m.name: 0 for m in itch.MESSAGES.values()})

    def host_write(self, locate: int, sym: int, traded: bool = True) -> None:
        """A host write into the locate table (``traded`` False removes the locate). It
        applies to every message whose last byte arrives after the write's strobe cycle;
        locates beyond the table are ignored."""
        if not 0 <= locate < self.locates:
            return
        if traded:
            self.table[locate] = sym
        else:
            self.table.pop(locate, None)

    def process(self, m: MoldMessage) -> itch.Event | None:
        c = self.counters
        if m.aborted:
            c["aborted"] += 1
            return None
        ev = itch.to_event(m.raw, m.seq)
        if ev is None:
            known = m.raw and chr(m.raw[0]) in itch.MESSAGES
            c["bad_length" if known else "unknown_type"] += 1
            return None
        self.by_type[itch.MESSAGES[ev.type].name] += 1
        if ev.type == "R" and ev.stock in self.watch and ev.locate < self.locates:
            self.table[ev.locate] = self.watch[ev.stock]
            c["directory_hits"] += 1
        if ev.locate != 0:
            if ev.locate not in self.table:
                c["untraded"] += 1
                return None
            ev.sym = self.table[ev.locate]
        c["events"] += 1
        return ev
