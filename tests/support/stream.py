"""A stream bench for Amaranth's simulator: a source that offers payloads on an
``amaranth.lib.stream`` interface, a sink that takes them and checks the handshake, and
pause generators that put idle cycles on the source's ``valid`` and backpressure on the
sink's ``ready``.

A pause generator is an endless iterator of booleans, one drawn per cycle in which the
source could offer a beat or the sink could be ready: ``True`` means hold off this cycle.
``random_pauses`` draws them from a seeded RNG, ``pattern_pauses`` repeats a fixed
pattern, ``no_pauses`` never pauses.

The source never withdraws a beat it has offered: a pause only delays the next offer. The
sink holds every DUT to the same rule and fails the test (an ``AssertionError`` naming
the beat) when ``valid`` falls, or the payload changes, before the handshake. Both work on
always-ready ports too (``signature.always_ready``): the source then counts a beat as taken
in the cycle it is offered, and the sink, which cannot stall such a port, refuses a pause.

Payloads are whatever ``ctx.set`` accepts for the port's payload (an int, a dict of
fields) or a model dataclass such as ``models.stream.Beat``, taken field by field.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Iterable, Iterator

from amaranth.lib import data

from tick2trade.gateware.models.stream import beats_to_frames, frame_beats

Pauses = Iterator[bool]


def no_pauses() -> Pauses:
    return itertools.repeat(False)


def random_pauses(rng: random.Random, chance: float) -> Pauses:
    """Pause each cycle with probability ``chance`` (seeded by ``rng``)."""
    while True:
        yield chance > 0 and rng.random() < chance


def pattern_pauses(pattern: str) -> Pauses:
    """Repeat ``pattern`` forever, one character a cycle: ``x`` pauses, ``.`` does not
    (``"..x"``: two cycles on, one off)."""
    if not pattern or set(pattern) - {".", "x"}:
        raise ValueError(f"a pause pattern is made of '.' and 'x'; got {pattern!r}")
    return itertools.cycle(c == "x" for c in pattern)


def payload_value(item):
    """``item`` in a form ``ctx.set`` takes for a struct payload."""
    if dataclasses.is_dataclass(item):
        item = vars(item)
    if isinstance(item, dict):
        return {k: int(v) if isinstance(v, bool) else v for k, v in item.items()}
    return item


def bits(value) -> int:
    """A sampled payload (a ``data.Const`` or an int) as its raw bits."""
    return value.as_bits() if isinstance(value, data.Const) else int(value)


class StreamSource:
    """Offers payloads on ``port`` (the DUT's input stream) from a testbench.

    Parameters
    ----------
    port : stream interface
        The DUT's ``In(stream.Signature(...))`` member.
    pauses : iterator of bool, optional
        Idle cycles: drawn before each beat is offered, ``valid`` low while they last.
    gap : (int, int), optional
        Idle cycles drawn uniformly from this range before each beat whose ``first``
        field is set (the space between packets); needs ``rng``.
    rng : random.Random, optional
        For ``gap``.

    Members
    -------
    sent : list of int
        The cycle (counted from the first ``send``) in which each beat was taken.
    """

    def __init__(self, port, pauses: Pauses | None = None, *,
                 gap: tuple[int, int] = (0, 0), rng: random.Random | None = None):
        if gap != (0, 0) and rng is None:
            raise ValueError("a gap between packets needs an rng")
        self.port = port
        self.pauses = pauses if pauses is not None else no_pauses()
        self.gap = gap
        self.rng = rng
        self.cycle = 0
        self.sent: list[int] = []

    async def idle(self, ctx, cycles: int = 1) -> None:
        """Hold ``valid`` low for ``cycles`` cycles (counted in ``sent``'s clock)."""
        ctx.set(self.port.valid, 0)
        for _ in range(cycles):
            await ctx.tick()
            self.cycle += 1

    async def send(self, ctx, items: Iterable) -> None:
        """Offer every item in order, each held until taken; ``valid`` low at the end."""
        always_ready = self.port.signature.always_ready
        for item in items:
            value = payload_value(item)
            if self.gap != (0, 0) and isinstance(value, dict) and value.get("first"):
                await self.idle(ctx, self.rng.randint(*self.gap))
            while next(self.pauses):
                await self.idle(ctx)
            ctx.set(self.port.payload, value)
            ctx.set(self.port.valid, 1)
            if always_ready:
                await ctx.tick()
                self.cycle += 1
            else:
                while True:
                    # ``ready`` as the DUT drove it in the cycle that just ended
                    *_, ready = await ctx.tick().sample(self.port.ready)
                    self.cycle += 1
                    if ready:
                        break
            self.sent.append(self.cycle - 1)
        ctx.set(self.port.valid, 0)

    async def send_frames(self, ctx, frames: Iterable[bytes], lanes: int,
                          lane0: int = 0) -> None:
        """Offer each frame as lane-preserving packet beats (``models.stream.Beat``)."""
        await self.send(ctx, (b for f in frames for b in frame_beats(f, lanes, lane0)))


class StreamSink:
    """Takes payloads from ``port`` (the DUT's output stream) in a simulator process and
    checks the handshake.

    Parameters
    ----------
    port : stream interface
        The DUT's ``Out(stream.Signature(...))`` member.
    pauses : iterator of bool, optional
        Backpressure: ``ready`` low in each cycle that draws ``True``. Not allowed on an
        always-ready port.
    framed : bool
        The payload has ``first``/``last`` fields and packets must be whole: no beat
        outside a packet without ``first``, no ``first`` inside one.
    name : str
        Names the port in a failure.

    Members
    -------
    items : list
        Every payload taken, as sampled (a ``data.Const`` view for a struct payload).
    taken : list of int
        The cycle, counted from the start of the simulation, in which each was taken.
    """

    def __init__(self, port, pauses: Pauses | None = None, *, framed: bool = False,
                 name: str = "sink"):
        if pauses is not None and port.signature.always_ready:
            raise ValueError("an always-ready port cannot be stalled")
        self.port = port
        self.pauses = pauses if pauses is not None else no_pauses()
        self.framed = framed
        self._name = name
        self._open = False
        self.items: list = []
        self.taken: list[int] = []

    def frames(self, lanes: int) -> tuple[list[bytes], bytes]:
        """The packets taken so far, and the bytes of one still open (see
        ``models.stream.beats_to_frames``)."""
        return beats_to_frames(((p.data, p.be, p.first, p.last) for p in self.items), lanes)

    def _check(self, held, valid: int, payload, cycle: int) -> None:
        if held is None:
            return
        assert valid, f"{self._name}: valid withdrawn in cycle {cycle} before beat " \
                      f"{len(self.items)} was taken"
        assert bits(payload) == held, f"{self._name}: payload of beat {len(self.items)} " \
                                      f"changed in cycle {cycle} before it was taken"

    def _frame(self, payload, cycle: int) -> None:
        if not self.framed:
            return
        first, last = int(payload.first), int(payload.last)
        assert first != self._open, f"{self._name}: beat {len(self.items)} in cycle " \
                                    f"{cycle} has first={first} " \
                                    f"{'inside' if self._open else 'outside'} a packet"
        self._open = not last

    async def process(self, ctx) -> None:
        """Add with ``Simulator.add_process``."""
        port, always_ready = self.port, self.port.signature.always_ready
        self._open = False
        held = None  # the bits of a beat offered but not yet taken
        if not always_ready:
            ctx.set(port.ready, not next(self.pauses))
        cycle = 0
        async for _clk, _rst, valid, ready, payload in ctx.tick().sample(
                port.valid, port.ready, port.payload):
            self._check(held, valid, payload, cycle)
            held = None
            if valid and ready:
                self._frame(payload, cycle)
                self.items.append(payload)
                self.taken.append(cycle)
            elif valid:
                held = bits(payload)
            cycle += 1
            if not always_ready:
                ctx.set(port.ready, not next(self.pauses))

    async def wait(self, ctx, count: int, limit: int = 100_000) -> None:
        """From a testbench: tick until ``count`` payloads have been taken."""
        for _ in range(limit):
            if len(self.items) >= count:
                return
            await ctx.tick()
        raise AssertionError(f"{self._name}: {len(self.items)} of {count} beats after "
                             f"{limit} cycles")
