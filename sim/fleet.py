"""Several virtual FPGAs on one synthetic venue (``t2t run --fpgas N``).

Each FPGA is a ``sim.loop.Loop`` of its own — its device, its host engine, its answers
and event channel — and all share the first one's venue, participants and feed
(``Loop(..., market=first)``). An iteration: the participants act once, the venue's
packets are published once, then every FPGA takes its step with the same packets
(``Loop.step_device``), in the order the devices are listed; its orders reach the
venue from its own order port (``host.fleet.partition``), so each device has a session
of its own there and gets only its own answers. Deterministic per seed, as one loop.
"""

from __future__ import annotations

import time

from tick2trade.host.config import Config
from tick2trade.sim.loop import Loop, LoopConfig


class Fleet:
    """``members``: (name, fpga, dev, config) per device, as ``Loop`` takes them."""

    def __init__(self, members: list[tuple[str, object, object, Config]], lc: LoopConfig):
        first, *rest = members
        self.names = [m[0] for m in members]
        lead = Loop(*first[1:], lc)
        self.loops = [lead] + [Loop(fpga, dev, cfg, lc, market=lead)
                               for _name, fpga, dev, cfg in rest]
        self.lc = lc
        self.wall = 0.0

    def __getitem__(self, name: str) -> Loop:
        return self.loops[self.names.index(name)]

    @property
    def lead(self) -> Loop:
        """The first FPGA's loop: the venue's time is its."""
        return self.loops[0]

    @property
    def now(self) -> int:
        return self.lead.now

    @property
    def start(self) -> int:
        return self.lead.start

    def step(self) -> None:
        start = time.perf_counter()
        lead = self.lead
        if lead.realtime:
            acted = lead.advance_market()
            packets = lead.publish()
            fed = [loop.step_device(packets) for loop in self.loops]
        else:
            lead.advance_market(lead.now + self.lc.quantum)
            packets = lead.publish()
            fed = [loop.step_device(packets, loop.now + self.lc.quantum)
                   for loop in self.loops]
        self.wall += time.perf_counter() - start
        for loop in self.loops:  # what each one's figures per wall second divide by
            loop.wall = self.wall
        if lead.realtime and not any(fed) and not acted:
            time.sleep(self.lc.idle_sleep)

    def run(self, cycles: int) -> None:
        """Iterate until ``cycles`` of loop time have passed (simulated pace)."""
        if self.lead.realtime:
            raise ValueError("run(cycles) is for the simulated pace")
        end = self.now + cycles
        while self.now < end:
            self.step()
