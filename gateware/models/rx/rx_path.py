"""Golden model of the receive path, ``eth_rx`` → ``moldudp`` → ``itch`` chained.

Each stage's class is the reference its gateware stage is compared with, message by
message and counter by counter. They work on whole frames/packets/messages; the gateware
works on beats, so timing is not modelled, only what comes out and what is counted.
"""

from __future__ import annotations

from tick2trade.protocol import itch

from .eth_rx import CtlDatagram, EthRxModel, RxConfig
from .itch import ItchModel
from .moldudp import Gap, MoldUdpModel


class RxPathModel:
    """The three stages chained: frames in; events, gap reports and control datagrams out."""

    def __init__(self, config: RxConfig, locates: int = 16384):
        self.eth = EthRxModel(config)
        self.mold = MoldUdpModel(config.seq_window)
        self.itch = ItchModel(config, locates)
        self.events: list[itch.Event] = []
        self.gaps: list[Gap] = []
        self.ctl: list[CtlDatagram] = []
        self.ouch: list[CtlDatagram] = []  # the venue's answers, for ``OuchRxModel``

    def process(self, frame: bytes) -> None:
        got = self.eth.process(frame)
        if got is None:
            return
        if got[0] in ("ctl", "ouch"):
            getattr(self, got[0]).append(got[1])
            return
        msgs, gaps = self.mold.process(got[1], got[2])
        self.gaps += gaps
        for m in msgs:
            ev = self.itch.process(m)
            if ev is not None:
                self.events.append(ev)

    def counters(self) -> dict[str, dict[str, int]]:
        return {"eth_rx": dict(self.eth.counters), "moldudp": dict(self.mold.counters),
                "itch": dict(self.itch.counters),
                "itch_by_type": dict(self.itch.by_type)}
