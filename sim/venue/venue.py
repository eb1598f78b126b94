"""The venue's core: one engine, one publisher, and whoever else wants its events.

Order flow reaches the engine from several places (the OUCH gateway, the synthetic
participants of :mod:`sim.venue.flow`); after each engine call the caller runs
:meth:`Venue.drain`, which hands the new events to the ITCH publisher and to every
listener (the gateway turns them into OUCH responses), in the order they happened.
Keeping one drain point means the feed and the order responses never disagree.
"""

from __future__ import annotations

from collections.abc import Callable

from tick2trade.sim.venue.engine import Engine, Instrument
from tick2trade.sim.venue.feed import Publisher, ns_since_midnight


class Venue:
    def __init__(self, instruments: list[Instrument], *, smp: str | None = None,
                 publisher: Publisher | None = None,
                 clock: Callable[[], int] = ns_since_midnight):
        self.instruments = list(instruments)
        self.engine = Engine(self.instruments, smp=smp)
        self.publisher = publisher or Publisher(self.instruments)
        self.clock = clock
        self.listeners: list[Callable[[list[tuple]], None]] = []

    def drain(self) -> list[tuple]:
        """Publish the engine's new events and pass them to the listeners."""
        events = self.engine.events
        if not events:
            return events
        self.engine.events = []
        self.publisher.publish(events, self.clock())
        for listener in self.listeners:
            listener(events)
        return events
