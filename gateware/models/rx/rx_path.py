"""Golden model of the receive path, ``eth_rx`` → ``moldudp`` → ``itch`` chained.

Each stage's class is the reference its gateware stage is compared with, message by
message and counter by counter. They work on whole frames/packets/messages; the gateware
works on beats, so timing is not modelled, only what comes out and what is counted.
"""

from __future__ import annotations

from tick2trade.protocol import itch

from .eth_rx import CtlDatagram, EthRxModel, RxConfig
from .itch import ItchModel
from .moldudp import Gap, MoldUdpModel, Release

# The depth of the receive path's event FIFO (``RxPath.event_depth``'s default). With
# ``udp_verify`` a packet's events wait there for its last byte: a full 1,500-byte packet
# carries up to 105 of the shortest (12-byte) messages, so it holds two such packets.
# Its 526-bit entries take 15 block RAMs on ECP5 at any depth up to 512: 256 entries
# cost no more block RAM than the 64 it had before.
EVENT_DEPTH = 256


class RxPathModel:
    """The three stages chained: frames in; events, gap reports and control datagrams out.

    With ``config.udp_verify`` (the default) a feed datagram whose UDP checksum failed
    leaves no trace but counters: its events and its gap report are dropped and the
    MoldUDP64 state is put back as it was before it (so the other line's good copy is
    taken). Its messages are still parsed and counted by ``moldudp`` and ``itch``
    (``messages``, ``itch_by_type``, ...), and a stock directory message in it still
    writes the locate table: that write happens before the verdict in the gateware.

    With ``config.hold_packets`` a packet that arrives ahead of the expected sequence is
    held (see ``MoldUdpModel``): its events wait in ``held`` and join ``events`` when the
    run is released, after the packet that filled the hole or before the packet that
    forced the run out; a held event older than the release's ``skip`` was delivered
    meanwhile by another copy and is dropped (``held_skipped``).
    """

    def __init__(self, config: RxConfig, locates: int = 16384):
        self.eth = EthRxModel(config)
        self.mold = MoldUdpModel(config.seq_window, config.hold_packets)
        self.verify = config.udp_verify
        self.held: list[itch.Event] = []
        self.held_skipped = 0
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
        _, line, payload, ok = got
        drop = self.verify and not ok
        before = self.mold.state() if drop else None
        msgs, gaps = self.mold.process(line, payload)
        route_hold, release = self.mold.route_hold, self.mold.release
        if drop:
            self.mold.restore(before)
        else:
            self.gaps += gaps
        events = [ev for m in msgs if (ev := self.itch.process(m)) is not None]
        if drop:
            return
        if release is not None and release.forced:
            self._let_go(release)
        if route_hold:
            self.held += events
            return
        self.events += events
        if release is not None and not release.forced:
            self._let_go(release)

    def _let_go(self, release: Release | None) -> None:
        if release is None:
            return
        for ev in self.held:
            if ev.seq >= release.skip:
                self.events.append(ev)
            else:
                self.held_skipped += 1
        self.held = []

    def expire(self) -> None:
        """The gateware's ``hold_cycles`` passed with a run held."""
        release, gaps = self.mold.expire()
        self.gaps += gaps
        self._let_go(release)

    def reset_session(self) -> None:
        self._let_go(self.mold.reset_session())

    def counters(self) -> dict[str, dict[str, int]]:
        return {"eth_rx": dict(self.eth.counters), "moldudp": dict(self.mold.counters),
                "itch": dict(self.itch.counters),
                "itch_by_type": dict(self.itch.by_type)}
