"""The whole system in one process, deterministic: venue → virtual FPGA → venue → host.

One iteration covers ``quantum`` cycles of *loop time*:

1. the synthetic participants (``sim.venue.flow``, seeded) act for that much time
   (flow seconds × the clock);
2. the venue's answers to our orders since the last iteration (Accepted, Executed,
   Canceled, Rejected: to the orders of the last iteration, and fills of resting orders
   by the participants' flow) go into the FPGA as UDP datagrams from the venue's order
   port to the port the orders came from — the gateware (``ouch_rx``) parses them,
   updates the risk gate and forwards each on the event channel; then the engine's
   events, as ITCH 5.0 in MoldUDP64 packets (``sim.venue.feed``), go in on line A and
   on line B, each packet's two copies back to back (``TopSim`` with a ``LocalDevice``
   onto it, or a ``ModelFpga`` as both: ``run``, ``step`` and ``pending`` on one side,
   registers by name on the other); the FPGA is stepped to the end of the quantum;
3. the frames it sent are split: order frames (to the venue's address) are stripped of
   Ethernet/IPv4/UDP and handed to the venue's OUCH-over-UDP order entry
   (``Gateway.udp_datagram``), event frames (gap reports, answers) are kept, the rest
   counted (book records go to ``fpga_book`` and trade records to ``fpga_prints`` when
   there are);
4. the host engine gets a copy of each order message as it left (pending) and the
   answer records of the event channel once they are ``report_delay`` FPGA cycles
   old; for answers the gateware did not apply to the gate (their record says so) it
   writes the report itself (``risk.report``); it cancels stale resting orders and
   flattens large positions through the gate, sends heartbeats, resyncs the book after
   a gap when asked to, and drains the telemetry records (one per order frame).

The answers go in by themselves, before the feed, and the FPGA runs until its output
is quiet: every answer of the batch is in the gate before the next market data
arrives, in the RTL as in the models (which apply them at once).

Loop time, not the FPGA's cycle counter, schedules the venue: control requests take a
varying number of cycles in the RTL and none in the model, and the venue must see the
same orders at the same points of its flow in both. The FPGA is never behind loop time
at the end of an iteration (it is stepped up to it), and may be ahead by what the host's
requests took.

Pace. ``pace="simulated"`` (the default) is the above: the flow follows loop time, so a
run is reproducible from its seed, and as fast as the simulation can go (about 0.05 % of
real time at the default 200,000 actions per simulated second). ``pace="realtime"`` is
for a person watching (``t2t run --pace realtime``, with the API): the flow and the
venue's timestamps follow the wall clock (``rate`` is then actions per wall second), and
the FPGA runs only the cycles the traffic and the host's requests need — the idle cycles
between packets are skipped, since no Verilator model can run 156 million cycles a
second. So loop time is the FPGA's cycle count and advances slower than the wall: the
host's cycle-counted timers (heartbeats, stale-order cancels, ``report_delay``) and the
telemetry's cycle stamps see that compressed time. When nothing is due the loop sleeps a
millisecond rather than spin. Not reproducible, by nature.

``one_message_per_packet`` cuts each ITCH message into its own packet with ``idle``
cycles after each frame (the mode in which the models predict the RTL byte for byte);
otherwise the publisher packs messages as the live venue does (up to ``max_payload``).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from tick2trade.protocol import control
from tick2trade.protocol import frames, moldudp64, ouch, soupbintcp
from tick2trade.gateware.models.rx.eth_rx import RxConfig
from tick2trade.host.config import Config
from tick2trade.host.engine import HostEngine
from tick2trade.gateware.models.rx.eth_rx import feed_frame
from tick2trade.sim.venue.config import DEFAULT_MIDS, default_instruments
from tick2trade.sim.venue.flow import Flow
from tick2trade.sim.venue.gateway import Gateway
from tick2trade.sim.venue.lines import RetransmitServer
from tick2trade.sim.venue.venue import Venue

TELEMETRY = "telemetry.records"
CLEAR_CYCLES = 4096 + 64  # book.clear sweeps a bucket per cycle, then one update
RETRANSMIT_FROM = ("10.0.0.1", 40003)  # the host's request socket (any address would do)
MASK32 = 0xFFFFFFFF
# Where the event channel goes when the configuration says nothing ([events]): the host.
HOST_EVENTS = {"enable": True, "mac": 0x02_00_00_00_00_10, "ip": frames.ip_to_int("10.0.0.1"),
               "port": 40002}


@dataclass
class LoopConfig:
    seed: int = 1
    rate: float = 200_000.0  # participants' actions per simulated second
    participants: int = 8
    quantum: int = 2048  # cycles of loop time per iteration
    one_message_per_packet: bool = False
    idle: int = 0  # cycles after each feed frame
    quiet: int = 64  # cycles without an output beat that end a batch
    report_delay: int = 0  # FPGA cycles between an answer's record and the host seeing it
    to_gate: bool = True  # the gateware applies answers to the gate (else the host reports)
    heartbeat_every: int = 0  # cycles between heartbeats (0: none)
    stale_after: int = 0  # cycles after which the host cancels a resting order (0: never)
    flatten_at: int = 0  # |position| at which the host closes it with an IOC (0: never)
    telemetry: bool = True
    drop_a: set[int] = field(default_factory=set)  # MoldUDP64 sequence numbers lost on A
    drop_b: set[int] = field(default_factory=set)  # ... and on B
    resync_on_gap: bool = False  # a gap event makes the host replay the session (resync)
    pace: str = "simulated"  # or "realtime": see the module docstring
    idle_sleep: float = 0.001  # realtime: seconds to sleep when nothing is due


@dataclass
class Sent:
    """An order frame as it left the FPGA."""

    cycle: int  # loop time of the batch it left in
    fpga_cycle: int
    msg: dict


class Loop:
    """Venue, FPGA and host engine, stepped together; see the module docstring."""

    def __init__(self, fpga, dev, cfg: Config, lc: LoopConfig, market: Loop | None = None):
        self.fpga, self.dev, self.cfg, self.lc = fpga, dev, cfg, lc
        self.clock_hz = cfg.clock_hz
        self.now = self.start = fpga.cycles  # loop time, cycles
        if market is None:
            self.instruments = default_instruments()
            self.venue = Venue(self.instruments, clock=self._ns)
            self.gateway = Gateway(self.venue)
            self.flow = Flow(self.venue, seed=lc.seed, rate=lc.rate,
                             participants=lc.participants, start_mid=dict(DEFAULT_MIDS))
        else:  # another FPGA of the same run (``sim.fleet``): the first one's venue
            self.instruments, self.venue, self.gateway, self.flow = \
                market.instruments, market.venue, market.gateway, market.flow
        self.publisher = self.venue.publisher
        self._replies: list[bytes] = []  # the retransmission server's answers
        self.retransmit = RetransmitServer(self.publisher)
        self.retransmit.connection_made(_Datagrams(self._replies))
        self.rx = RxConfig.default()
        self.engine = HostEngine(cfg.watch, dev)
        v = cfg.venue
        if not {"venue_ip", "venue_port", "venue_mac"} <= set(v):
            raise ValueError("the configuration needs [venue] ip, port and mac: where the "
                             "FPGA sends its orders and the loop's venue listens")
        self.venue_ip, self.venue_port = v["venue_ip"], v["venue_port"]
        self.venue_mac = v["venue_mac"].to_bytes(6, "big")
        regs = {"ouch_rx.to_gate": int(lc.to_gate)}
        if not (cfg.events and cfg.events["enable"]):  # the answers need the channel
            regs.update({f"ctl.event_{k}": int(x) for k, x in HOST_EVENTS.items()})
        dev.write_many(regs)
        self.fpga_ip = self.rx.ctl_ip  # the answers' destination: where orders come from
        self.fpga_mac = dev.read("ctl.mac").to_bytes(6, "big")
        self.order_port = dev.read("ouch_tx.src_port")
        self._answers: list[bytes] = []  # answer frames for the FPGA's next run
        self.venue_answers = 0  # OUCH messages the venue sent us
        self.answer_lags: list[int] = []  # record lag of every answer applied on-chip
        self.sent: list[Sent] = []
        # both directions of the order session in the order they happened:
        # ("sent" | "answer", FPGA cycle, decoded OUCH message)
        self.wire: list[tuple[str, int, dict]] = []
        self._inbox: list[tuple[int, control.AnswerEvent]] = []  # not seen by the host yet
        self.telemetry: list[dict] = []
        self._records_owed = 0
        self.counters: Counter = Counter()
        self.gaps: list[tuple[int, control.GapEvent]] = []  # (FPGA cycle, event)
        # the platform's copy of the FPGA's book (host.services.fpgabook.FpgaBook): its
        # records as they arrive, a poll after each iteration
        self.fpga_book = None
        # and of its prints (host.services.fpgabook.FpgaPrints), record by record
        self.fpga_prints = None
        self.resyncs: list[tuple[int, int]] = []  # (FPGA cycle at start, at end)
        self.lost: list[tuple[int, int]] = []  # (first seq, count) of packets lost on both
        self._next_heartbeat = 0
        self._logged = 0  # publisher log entries already sent (one-message mode)
        self.feed_messages = 0
        self.wall = 0.0
        if lc.pace not in ("simulated", "realtime"):
            raise ValueError(f"pace {lc.pace!r}: expected 'simulated' or 'realtime'")
        self.realtime = lc.pace == "realtime"
        self._wall0 = time.monotonic()
        if market is None:
            self.publisher.start_of_day(self._ns())

    def _ns(self) -> int:
        if self.realtime:
            return int((time.monotonic() - self._wall0) * 1e9)
        return (self.now - self.start) * 1_000_000_000 // self.clock_hz

    # -- one iteration ----------------------------------------------------------------------

    def step(self) -> None:
        if self.realtime:
            self._step_realtime()
            return
        start = time.perf_counter()
        end = self.now + self.lc.quantum
        self.advance_market(end)
        self.step_device(self.publish(), end)
        self.wall += time.perf_counter() - start

    def _step_realtime(self) -> None:
        start = time.perf_counter()
        acted = self.advance_market()
        fed = self.step_device(self.publish())
        self.wall += time.perf_counter() - start
        if not fed and not acted:
            time.sleep(self.lc.idle_sleep)

    def advance_market(self, end: int | None = None) -> int:
        """The participants act up to loop time ``end`` (realtime: up to the wall clock);
        returns how many actions they took."""
        acted = 0
        if self.realtime:
            target = time.monotonic() - self._wall0
            while self.flow.now < target:
                self.flow.step()
                acted += 1
            return acted
        while self.flow.now * self.clock_hz < end - self.start:
            self.flow.step()
            acted += 1
        return acted

    def step_device(self, packets: list[bytes], end: int | None = None) -> bool:
        """The FPGA's part of an iteration, ending at loop time ``end`` (realtime: None,
        where the FPGA ran): the venue's answers, then ``packets`` (``publish``) on the
        lines; its frames routed, then the host's work. True when any feed frame went
        in. Every FPGA of a run gets the same packets (``sim.fleet``)."""
        lc = self.lc
        out = self._send_answers()
        frames_in = self._feed_frames(packets)
        out += self.fpga.run(frames_in, idle=lc.idle, quiet=lc.quiet) if frames_in else []
        if end is None:
            self.now = max(self.now, self.fpga.cycles)
        else:
            behind = end - self.fpga.cycles
            if behind > 0:
                out += self.fpga.step(behind)
            self.now = end
        self._route(self._take_pending() + out)  # frames sent during requests went first
        self._host()
        return bool(frames_in)

    def settle(self, rounds: int = 10) -> bool:
        """Without participants acting, send what the venue has published and not sent
        (its answers to our last orders) until nothing is left; True when settled, so
        the FPGA's book can be compared with the venue's."""
        for _ in range(rounds):
            answered = bool(self._answers)
            out = self._send_answers()
            frames_in = self._feed_frames(self.publish())
            if not answered and not frames_in:
                return True
            if frames_in:
                out += self.fpga.run(frames_in, idle=self.lc.idle, quiet=self.lc.quiet)
            self._route(self._take_pending() + out)
            self._host()
        return False

    def answers_waiting(self) -> int:
        """Answers the venue sent that wait for the FPGA's next run (one a datagram)."""
        return len(self._answers)

    def _send_answers(self) -> list[bytes]:
        """The venue's answers into the FPGA, by themselves (see the module docstring);
        the frames the FPGA sent meanwhile."""
        if not self._answers:
            return []
        batch, self._answers = self._answers, []
        self.counters["answer_frames"] += len(batch)
        return self.fpga.run(batch, idle=self.lc.idle, quiet=self.lc.quiet)

    def run(self, cycles: int) -> None:
        """Iterate until ``cycles`` of loop time have passed."""
        if self.realtime:
            raise ValueError("run(cycles) is for the simulated pace: in real time the "
                             "FPGA's cycles advance only with traffic")
        end = self.now + cycles
        while self.now < end:
            self.step()

    def publish(self) -> list[bytes]:
        """The MoldUDP64 packets the venue published since the last call."""
        if not self.lc.one_message_per_packet:
            return self.publisher.flush()
        self.publisher.flush()  # keeps the publisher's sequence; packets cut below
        log = self.publisher.log
        packets = [moldudp64.encode_packet(self.publisher.session, seq + 1, [log[seq]])
                   for seq in range(self._logged, len(log))]
        self._logged = len(log)
        return packets

    def _feed_frames(self, packets: list[bytes]) -> list[bytes]:
        out = []
        for p in packets:
            head = moldudp64.decode_packet(p)
            seq, count = head.seq, head.count
            self.feed_messages += count
            if seq in self.lc.drop_a and seq in self.lc.drop_b:
                self.lost.append((seq, count))
            if seq not in self.lc.drop_a:
                out.append(feed_frame(self.rx, 0, p))
            if seq not in self.lc.drop_b:
                out.append(feed_frame(self.rx, 1, p))
        self.counters["feed_packets"] += len(packets)
        return out

    def _take_pending(self) -> list[bytes]:
        got, self.fpga.pending[:] = list(self.fpga.pending), []
        return got

    def _route(self, out: list[bytes]) -> None:
        for frame in out:
            dg = frames.parse_udp_frame(frame)
            if isinstance(dg, str) or dg.dst_ip != self.venue_ip or \
                    dg.dst_port != self.venue_port:
                self._event_frame(dg)
                continue
            self.counters["order_frames"] += 1
            try:
                packets, rest = soupbintcp.split(dg.payload)
                if rest:
                    raise soupbintcp.PacketError(f"{len(rest)} bytes of a cut packet")
                msgs = [ouch.decode_inbound(soupbintcp.decode(p)["message"]) for p in packets]
            except soupbintcp.PacketError:
                self.counters["bad_order_frames"] += 1
                continue
            for msg in msgs:
                if msg is None:
                    self.counters["bad_order_messages"] += 1
                else:
                    self.sent.append(Sent(self.now, self.fpga.cycles, msg))
                    self.wire.append(("sent", self.fpga.cycles, msg))
                    self.engine.on_sent(msg, self.now)
                    self._records_owed += 1
            addr = (frames.int_to_ip(dg.src_ip), dg.src_port)
            self.gateway.udp_datagram(dg.payload, addr, self._answer)

    def _event_frame(self, dg) -> None:
        """A frame that is not an order: the event channel's gap reports and answers,
        else counted."""
        try:
            events = control.check(dg.payload, control.KIND_EVENT).events
        except (control.ControlError, AttributeError):
            self.counters["other_frames"] += 1
            return
        for ev in events:
            if isinstance(ev, control.GapEvent):
                self.gaps.append((self.fpga.cycles, ev))
                self.counters["gap_events"] += 1
            elif isinstance(ev, control.AnswerEvent):
                self.counters["answer_events"] += 1
                if ev.gate:
                    self.answer_lags.append(ev.lag)
                self._inbox.append((self.fpga.cycles, ev))
            elif isinstance(ev, control.BookEvent):
                self.counters["book_events"] += 1
                if self.fpga_book is not None:
                    self.fpga_book.on_record(ev)
            elif isinstance(ev, control.TradeEvent):
                self.counters["trade_events"] += 1
                if self.fpga_prints is not None:
                    self.fpga_prints.on_record(ev)
            else:
                self.counters["unknown_events"] += 1

    def resync(self) -> None:
        """Rebuild the FPGA's book after a gap the lines could not fill: with the gate
        killed (no order on replayed news), clear every symbol's book, forget the
        MoldUDP64 session and replay the whole session from message 1 through the
        venue's retransmission server (MoldUDP64 requests, ``RetransmitServer``), then
        restore the kill switch and the trigger table (the replay may have fired and
        disarmed entries)."""
        dev, start = self.dev, self.fpga.cycles
        kill = self.cfg.risk.get("limits.kill", 0)
        dev.write("risk.limits.kill", 1)
        dev.write("book.clear", dev.map["book.clear"].compose(stb=1, all=1))
        dev.write("rx.reset_session", 1)
        self.fpga.step(CLEAR_CYCLES)
        seq = 1
        while True:
            self.retransmit.datagram_received(moldudp64.encode_request(
                self.publisher.session, seq, moldudp64.MAX_COUNT), RETRANSMIT_FROM)
            if not self._replies:  # nothing from seq on was ever sent: done
                break
            packet = self._replies.pop()
            out = self.fpga.run([feed_frame(self.rx, 0, packet)], quiet=self.lc.quiet)
            self._route(self._take_pending() + out)
            seq += moldudp64.decode_packet(packet).count
        dev.write("risk.limits.kill", kill)
        for name, value in self.cfg.table_writes(dev.map):
            dev.write(name, value)
        self.resyncs.append((start, self.fpga.cycles))

    def _answer(self, payload: bytes, addr) -> None:
        """A datagram the venue sends back to ``addr`` (the FPGA's order port): onto
        the wire to the FPGA; its messages are noted as the venue sent them."""
        try:
            packets, _rest = soupbintcp.split(payload)
            for p in packets:
                body = soupbintcp.decode(p)
                if body["type"] != "U":
                    self.counters[f"venue_debug_{body['type']}"] += 1
                    continue
                msg = ouch.decode_outbound(body["message"])
                if msg is None:
                    self.counters["bad_answers"] += 1
                    continue
                self.venue_answers += 1
                self.wire.append(("answer", self.fpga.cycles, msg))
        except soupbintcp.PacketError:
            self.counters["bad_answers"] += 1
        self.send_to_fpga(payload, dst=addr)

    def send_to_fpga(self, payload: bytes, src: tuple[int, int] | None = None,
                     dst: tuple[str, int] | None = None) -> None:
        """A datagram from the venue's order port (or ``src``, an (IPv4, port) pair) to
        the FPGA's order port (or ``dst``), in the FPGA's next run."""
        ip, port = src or (frames.ip_to_int(self.venue_ip), self.venue_port)
        to_ip, to_port = dst or (self.fpga_ip, self.order_port)
        self._answers.append(frames.build_udp_frame(
            to_ip, to_port, payload, src_ip=ip, src_port=port, dst_mac=self.fpga_mac,
            src_mac=self.venue_mac))

    def _deliver(self) -> None:
        """The answer records the host has by now, and the reports the gateware left to
        it."""
        due = self.fpga.cycles - self.lc.report_delay
        ready = [a for a in self._inbox if a[0] <= due]
        if ready:
            self._inbox = [a for a in self._inbox if a[0] > due]
            for when, ev in ready:
                self.engine.on_answer(ev, when)
        self.engine.flush_reports(cycles=lambda: self.fpga.cycles)

    def _host(self) -> None:
        lc, eng = self.lc, self.engine
        if lc.resync_on_gap and self.gaps and (not self.resyncs or
                                               self.gaps[-1][0] > self.resyncs[-1][1]):
            self.resync()
        self._deliver()
        if self.fpga_book is not None:
            self.fpga_book.poll()
        for inst in self.instruments:
            book = self.venue.engine.books[inst.symbol]
            eng.mark(inst.symbol, book.best_bid(), book.best_ask())
        if lc.stale_after:
            eng.cancel_stale(self.now, lc.stale_after)
        if lc.flatten_at:
            eng.flatten(lc.flatten_at, self.now)
        if lc.heartbeat_every and self.fpga.cycles >= self._next_heartbeat:
            eng.heartbeat()
            self._next_heartbeat = self.fpga.cycles + lc.heartbeat_every
        if lc.telemetry and self._records_owed:
            got = self.dev.pop_fifo_many(TELEMETRY, self._records_owed)
            self.telemetry += got
            if len(got) < self._records_owed:
                self.counters["telemetry_missing"] += self._records_owed - len(got)
            self._records_owed = 0

    # -- results ------------------------------------------------------------------------------

    def tick_to_trade(self) -> list[int]:
        """Cycles from the first beat of the frame whose message fired an Enter to the
        first beat of the order frame (telemetry records). Only orders decided on the
        ITCH event itself carry that frame's time: the gateware stamps an order decided
        on a book update, or injected by the host, with ``t_in`` = ``t_event``."""
        return [(r["t_out"] - r["t_in"]) & MASK32 for r in self.telemetry
                if not r["cancel"] and r["t_in"] != r["t_event"]]

    def event_to_wire(self) -> list[int]:
        """Cycles from the event (or update, or injection) reaching the strategy to the
        order's first beat out, for every Enter."""
        return [(r["t_out"] - r["t_event"]) & MASK32 for r in self.telemetry
                if not r["cancel"]]

    def venue_levels(self, symbol: str, side: str) -> list[list[int]]:
        """The venue's displayed book of one side ("B" or "S"): [[price, shares,
        orders], ...] best first, hidden orders left out (the feed never showed them)."""
        engine = self.venue.engine
        out = []
        for price, orders in engine.books[symbol].snapshot()[side]:
            shown = [qty for ref, qty in orders if not engine.orders[ref].hidden]
            if shown:
                out.append([price, sum(shown), len(shown)])
        return out


class _Datagrams:
    """A datagram transport that keeps what is sent to it (the retransmission server's
    answers, for the loop to put on the line)."""

    def __init__(self, sink: list[bytes]):
        self.sink = sink

    def sendto(self, payload: bytes, _addr) -> None:
        self.sink.append(payload)


def configure(dev, cfg: Config) -> None:
    """Push a configuration as ``t2t config push`` does: registers, then the trigger
    table; a section the build lacks is an error here (the loop needs every block)."""
    missing = cfg.push(dev)
    if missing:
        raise ValueError(f"this build has no block for: {', '.join(missing)}")
