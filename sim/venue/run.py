"""Putting the venue together: a live venue on sockets, and a synthetic feed capture.

Design decisions
----------------
- Live (:func:`run_venue`): one asyncio loop runs everything — the synthetic flow (its
  flow time follows the wall clock), the OUCH gateway, the retransmission server — and a
  tick every millisecond cuts the pending ITCH messages into packets and sends them on
  both lines, or a heartbeat after ``feed_heartbeat`` seconds without a packet. At the end:
  end of day (DAY orders cancelled and published), end of session on the feed and on
  every order connection.
- Offline (:func:`generate_capture`): the same flow and publisher without sockets; frames
  stamped with flow time from 09:30 of 2026-01-02 (UTC), so a capture is reproducible to
  the byte from its seed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from tick2trade.protocol.pcap import PcapWriter

from tick2trade.sim.venue.config import VenueConfig
from tick2trade.sim.venue.feed import Publisher
from tick2trade.sim.venue.flow import Flow
from tick2trade.sim.venue.gateway import Gateway
from tick2trade.sim.venue.lines import LineSender, Recorder, RetransmitServer
from tick2trade.sim.venue.rfq import RfqDesk, RfqServer
from tick2trade.sim.venue.venue import Venue

OPEN = 9.5 * 3600  # 09:30, seconds after midnight
EPOCH_DAY = 1767312000  # 2026-01-02 00:00 UTC, the day generated captures are from
TICK = 0.001  # seconds between feed flushes of a live venue


@dataclass
class RunStats:
    seconds: float = 0.0
    actions: int = 0
    messages: int = 0
    counters: dict[str, dict] = field(default_factory=dict)


def make_venue(cfg: VenueConfig, clock=None) -> Venue:
    publisher = Publisher(cfg.instruments, session=cfg.session, max_payload=cfg.max_payload,
                          attribution=True)
    kw = {"clock": clock} if clock else {}
    return Venue(cfg.instruments, smp=cfg.smp, publisher=publisher, **kw)


async def run_venue(cfg: VenueConfig, *, duration: float | None = None,
                    record: Path | None = None, ready=None,
                    stop: asyncio.Event | None = None) -> RunStats:
    """Run until ``duration`` seconds have passed or ``stop`` is set. ``ready`` is called
    with ``{name: (host, port)}`` of what is listening once it all is."""
    loop = asyncio.get_running_loop()
    venue = make_venue(cfg)
    pub = venue.publisher
    flow = Flow(venue, seed=cfg.seed, rate=cfg.rate, participants=cfg.participants,
                start_mid=cfg.mids)
    pcap = PcapWriter(record) if record else None
    recorder = Recorder(pcap) if pcap else None
    sender = LineSender([cfg.line_a, cfg.line_b], ttl=cfg.ttl, interface=cfg.interface,
                        recorder=recorder)
    retrans = await RetransmitServer.start(pub, cfg.retransmit, recorder)
    gateway = Gateway(venue, users=cfg.users, session=cfg.session,
                      heartbeat=cfg.order_heartbeat, timeout=cfg.order_timeout,
                      recorder=recorder)
    listening = {"retransmit": retrans.address}
    servers = []
    if cfg.tcp:
        server = await gateway.serve_tcp(*cfg.tcp)
        servers.append(server)
        listening["ouch_tcp"] = server.sockets[0].getsockname()[:2]
    if cfg.udp:
        udp = await gateway.serve_udp(*cfg.udp)
        servers.append(udp)
        listening["ouch_udp"] = udp.get_extra_info("sockname")[:2]
    rfq = None
    if cfg.rfq_tcp:
        rfq = RfqServer(RfqDesk(venue, cfg.providers, ttl_ms=cfg.quote_ttl_ms,
                                mids=cfg.mids))
        server = await rfq.serve(*cfg.rfq_tcp)
        servers.append(server)
        listening["rfq_tcp"] = server.sockets[0].getsockname()[:2]
    if ready:
        ready(listening)

    start = loop.time()
    pub.start_of_day(venue.clock())
    last_sent = start
    try:
        while True:
            now = loop.time()
            elapsed = now - start
            if (duration is not None and elapsed >= duration) or (stop and stop.is_set()):
                break
            while flow.now < elapsed:
                flow.step()
            packets = pub.flush()
            if packets:
                sender.send(packets)
                last_sent = now
            elif now - last_sent >= cfg.feed_heartbeat:
                sender.send([pub.heartbeat()])
                last_sent = now
            await asyncio.sleep(TICK)
        venue.engine.end_of_day()
        venue.drain()
        pub.end_of_day(venue.clock())
        sender.send(pub.end_of_session())
        gateway.end_of_session()
        if rfq is not None:
            rfq.close()
    finally:
        for s in servers:
            s.close()
        retrans.close()
        sender.close()
        if pcap:
            pcap.close()
    return RunStats(seconds=loop.time() - start, actions=flow.actions,
                    messages=len(pub.log),
                    counters={"feed": dict(pub.counters), "by_type": dict(pub.by_type),
                              "lines": dict(sender.counters),
                              "retransmit": dict(retrans.counters),
                              "gateway": dict(gateway.counters),
                              "rfq": dict(rfq.counters) if rfq else {},
                              "recorded_frames": {"frames": pcap.count if pcap else 0}})


def generate_capture(cfg: VenueConfig, out: Path, messages: int,
                     seed: int | None = None) -> dict:
    """A pcap of the feed on lines A and B: start of day, synthetic trading until at
    least ``messages`` ITCH messages were published (the last action's messages are not
    split), end of day and end of session. Returns what was written."""
    def ns() -> int:
        return int((OPEN + flow.now) * 1e9)

    venue = make_venue(cfg, clock=ns)
    pub = venue.publisher
    flow = Flow(venue, seed=cfg.seed if seed is None else seed, rate=cfg.rate,
                participants=cfg.participants, start_mid=cfg.mids)
    lines = [cfg.line_a, cfg.line_b]
    with PcapWriter(out) as pcap:
        recorder = Recorder(pcap, clock=lambda: EPOCH_DAY + OPEN + flow.now)

        def send(packets: list[bytes]) -> None:
            for payload in packets:
                for addr in lines:
                    recorder.record(payload, addr)

        pub.start_of_day(ns())
        while len(pub.log) < messages:
            flow.step()
            send(pub.packets())
        venue.engine.end_of_day()
        venue.drain()
        pub.end_of_day(ns())
        send(pub.end_of_session())
        frames = pcap.count
    return {"messages": len(pub.log), "packets": pub.counters["packets"] + 1,
            "frames": frames, "actions": flow.actions, "by_type": dict(pub.by_type)}
