"""``moldudp``: MoldUDP64 session/sequence tracking, A/B arbitration, block splitting.

Golden model: :class:`gateware.models.rx.MoldUdpModel` (its docstring states the rules).
"""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tick2trade.gateware.bytefield import BeatCursor, counter_bank
from tick2trade.protocol import itch, moldudp64
from tick2trade.gateware.models.rx.moldudp import COUNTER_BITS, DEFAULT_WINDOW, MOLD_COUNTERS
from tick2trade.gateware.interfaces import GAP_LAYOUT, RELEASE_LAYOUT
from tick2trade.gateware.stream import beat_layout, lanes, msg_beat_layout

PKT_BITS = 17  # byte offsets inside a UDP payload (< 64 KiB), one spare bit
WINDOW_BITS = 32


def counters_layout() -> data.StructLayout:
    """``MOLD_COUNTERS``, 32-bit wrapping but for the wider ones of ``COUNTER_BITS``."""
    return data.StructLayout({n: COUNTER_BITS.get(n, 32) for n in MOLD_COUNTERS})


class MoldUdp(wiring.Component):
    """Arbitrate lines A and B into one in-order message stream.

    The header decision (adopt session, gap, duplicate, how many leading messages an
    overlapping packet repeats) is taken in the beat that completes the 20-byte header,
    so the first message block can start in that same beat. The plausibility checks
    (see the model) compare ``seq`` with bounds registered the cycle after ``expected``
    or the candidate last moved (``expected + window``, ``candidate + window``), so they
    sit beside the ``seq - expected`` subtraction, not after it: a packet's header never
    completes in the cycle after the previous packet's end or header. Message blocks are found
    from their length prefixes: a block of at least 12 bytes (the shortest ITCH message)
    puts at most one prefix in any beat up to 64 bits, which keeps the block walk one
    adder deep; a shorter block ends the packet (``runt_block``).

    Parameters
    ----------
    data_width : int
        Bits per beat.

    Members
    -------
    feed : In(stream.Signature(beat_layout + line, always_ready=True))
        UDP payloads of lines A (``line`` 0) and B (1), lane-preserving.
    msgs : Out(stream.Signature(msg_beat_layout, always_ready=True))
        Message bytes of new sequence numbers, lane-preserving, framed per lane.
    gaps : Out(stream.Signature(GAP_LAYOUT, always_ready=True))
        One beat per detected gap.
    reset_session : In(1)
        Forget the session and the candidate: the next plausible packet's session is
        adopted, sequence restarts at 1.
    seq_window : In(32)
        How far ahead a packet may start before it needs confirming (at most 2**32 - 1).
    verdict : In(stream.Signature(1, always_ready=True))
        ``EthRx.verdict``: one beat per packet, the cycle after its last beat; 1 when its
        UDP checksum failed.
    verify : In(1)
        Undo failed packets: the sequence state (expected number, session, candidate,
        held run) is put back as it was at the packet's first beat, and its gap
        reports, held until the verdict, are dropped. Without ``verify`` a gap is
        reported in the beat after the header that reveals it.
    hold_packets : In(4)
        The hold (see the model): at most this many packets held back, 0 for none.
    hold_cycles : In(32)
        A run held this long (counted from its first packet's header) is forced out at
        the next moment no packet is in progress.
    hold_room : In(1)
        The receive path can take another release; without it no run is started (a
        packet ahead is a gap at once).
    route_hold : Out(1)
        The packet in progress is held: from the cycle after its header to the cycle
        after its verdict (its messages leave ``msgs`` within that time).
    barrier : Out(1)
        One cycle, the one after the header of a packet that forces a run out: the
        run's events go before this packet's (the receive path stops the main event
        queue there until ``release`` or the verdict).
    release : Out(stream.Signature(RELEASE_LAYOUT, always_ready=True))
        A run let go, at the good verdict of the packet that filled its hole or forced
        it out (``forced``), or on its timeout or a session reset (``forced``, no
        packet in progress); events older than ``skip`` were delivered meanwhile.
    counters : Out(counters_layout())
        ``models.rx.MOLD_COUNTERS``, 32-bit wrapping; ``gap_messages`` 64-bit saturating.

    Latency: 1 cycle from a payload beat in to its message bytes out.
    """

    def __init__(self, data_width: int = 64):
        self.data_width = data_width
        super().__init__({
            "feed": In(stream.Signature(beat_layout(data_width, line=1), always_ready=True)),
            "msgs": Out(stream.Signature(msg_beat_layout(data_width), always_ready=True)),
            "gaps": Out(stream.Signature(GAP_LAYOUT, always_ready=True)),
            "reset_session": In(1),
            "seq_window": In(WINDOW_BITS, init=DEFAULT_WINDOW),
            "verdict": In(stream.Signature(1, always_ready=True)),
            "verify": In(1),
            "hold_packets": In(4),
            "hold_cycles": In(32),
            "hold_room": In(1, init=1),
            "route_hold": Out(1),
            "barrier": Out(1),
            "release": Out(stream.Signature(RELEASE_LAYOUT, always_ready=True)),
            "counters": Out(counters_layout()),
        })

    def elaborate(self, platform):
        m = Module()
        n = lanes(self.data_width)
        beat = self.feed.payload
        valid = self.feed.valid
        first = valid & beat.first

        # lane of the payload's first byte, fixed for the packet
        lane0_q = Signal(range(n))
        lane0_first = Signal(range(n))
        for i in reversed(range(n)):
            with m.If(beat.be[i]):
                m.d.comb += lane0_first.eq(i)
        lane0 = Signal(range(n))
        m.d.comb += lane0.eq(Mux(beat.first, lane0_first, lane0_q))
        with m.If(first):
            m.d.sync += lane0_q.eq(lane0_first)
        cur = BeatCursor(m, valid, beat.first, beat.be, n, width=PKT_BITS, lane0=lane0)

        count = counter_bank(m, [c for c in MOLD_COUNTERS if c != "gap_messages"],
                             self.counters)
        gap_messages = Signal(64)
        m.d.comb += self.counters.gap_messages.eq(gap_messages)
        m.d.comb += count["packets"].eq(first)

        session = cur.capture(beat.data, 0, moldudp64.SESSION_LEN, "session")
        seq = cur.capture(beat.data, 10, 8, "seq")
        msg_count = cur.capture(beat.data, 18, 2, "msg_count")

        # --- arbitration state, shared by both lines
        expected = Signal(65, init=1)  # reaches 2**64 after message 2**64 - 1, no wrap
        cur_session = Signal(80)
        have_session = Signal()
        ended = Signal()
        # the candidate: the last packet that jumped too far, waiting for confirmation
        cand_valid = Signal()
        provisional = Signal()
        cand_session = Signal(80)
        cand_seq = Signal(64)
        with m.If(self.reset_session):
            m.d.sync += [have_session.eq(0), ended.eq(0), cand_valid.eq(0),
                         provisional.eq(0)]
        # the held run: packets from hs to he (exclusive), h_pkts of them, first on h_line
        h_valid = Signal()
        hs = Signal(64)
        he = Signal(65)
        h_pkts = Signal(4)
        h_line = Signal()
        hole = Signal(65)  # hs - expected, registered from its sources
        m.d.sync += hole.eq(hs - expected)

        # bounds of the plausibility checks, registered from their sources
        window = Signal(WINDOW_BITS)
        exp_limit = Signal(66)  # expected + window
        start_limit = Signal(WINDOW_BITS + 1)  # 1 + window, for a session not yet adopted
        cand_limit = Signal(65)  # candidate + window
        m.d.sync += [window.eq(self.seq_window), exp_limit.eq(expected + window),
                     start_limit.eq(window + 1), cand_limit.eq(cand_seq + window)]

        # --- per-packet state
        header_seen_q = Signal()
        header_seen = Mux(beat.first, 0, header_seen_q)
        active_q = Signal()  # still walking this packet's blocks
        active = Signal()
        skip = Signal(16)  # leading blocks already delivered by an earlier packet
        skip_q = Signal(16)
        blocks_q = Signal(16)  # length prefixes consumed
        whole_q = Signal(16)  # blocks complete
        next_blk_q = Signal(PKT_BITS)
        next_blk = Mux(beat.first, moldudp64.HEADER, next_blk_q)
        m.d.comb += [active.eq(active_q & ~beat.first), skip.eq(skip_q)]
        blocks = Mux(beat.first, 0, blocks_q)
        whole = Mux(beat.first, 0, whole_q)

        header_now = valid & ~header_seen & cur.have(moldudp64.HEADER - 1)
        other = have_session & (session != cur_session)
        # the session was adopted on one packet's word: another may replace it, confirmed
        switch = other & provisional & ~ended
        adopt = ~have_session | (ended & other) | switch
        exp_now = Signal(65)
        heartbeat = msg_count == moldudp64.HEARTBEAT
        end_of_session = msg_count == moldudp64.END_OF_SESSION
        gap = Signal()

        # Every sequence decision is a sign or a small comparison of one difference
        # d = seq - exp_now. Both candidates (a new session expects 1) are subtracted
        # while the session is still being compared, so the 64-bit carry chain no longer
        # follows the 80-bit session compare, and no second 64-bit adder (seq + count,
        # exp - seq) follows the first: a block of the packet is at most 0xFFFF
        # messages, so only differences inside ±2**17 need exact small arithmetic.
        # the hold's decisions compare seq with the run's registered bounds, beside d
        control = heartbeat | end_of_session
        in_zone = h_valid & (seq >= hs)
        appendable = in_zone & ~adopt & ~control & (seq == he) & (h_pkts < self.hold_packets)
        held_dup = in_zone & ~adopt & ~control & ~appendable & (seq + msg_count <= he)
        force = h_valid & (adopt | in_zone) & ~appendable & ~held_dup
        d = Signal(signed(66))
        m.d.comb += d.eq(Mux(adopt, seq - 1, Mux(force, seq - he, seq - expected)))
        d_small = d[:18].as_signed()  # d itself when -2**17 <= d < 2**17
        small = (d[17:] == 0) | (d[17:] == (1 << (66 - 17)) - 1)
        ahead = (d > 0)  # seq > exp_now
        behind = d[-1]  # seq < exp_now
        # seq + msg_count <= exp_now: far behind, or d + msg_count <= 0 in 19 bits
        seen_all = behind & (~small | (d_small + msg_count <= 0))

        # the packet's messages would run past 2**64 - 1: seq + msg_count > 2**64
        past_end = ~control & (seq[16:] == (1 << 48) - 1) & (seq[:16] + msg_count > 0x10000)
        # both plausibility bounds compared, the adopted one selected last
        plausible = Mux(adopt, ~switch & (seq <= start_limit), seq <= exp_limit)
        m.d.comb += exp_now.eq(Mux(adopt, 1, Mux(force, he, expected)))
        start = (~h_valid | force) & (self.hold_packets != 0) & self.hold_room & \
            ~control & ~adopt & (d > 0)
        held = appendable | start
        # per packet: held, and a forced run's release waiting for the verdict
        route_q = Signal()
        rel_wait = Signal()
        rel_skip = Signal(65)
        m.d.comb += self.route_hold.eq(route_q)
        rel_gap = Signal()  # the forced run's hole, to report
        barrier_q = Signal()
        m.d.sync += barrier_q.eq(0)
        confirms = cand_valid & (session == cand_session) & (seq >= cand_seq) & \
            (seq <= cand_limit)
        with m.If(header_now):
            with m.If(past_end):
                m.d.comb += count["bad_header"].eq(1)
            with m.Elif(other & ~adopt):
                m.d.comb += count["wrong_session"].eq(1)
            with m.Elif(~plausible & ~confirms):
                m.d.comb += count["unconfirmed"].eq(1)
                m.d.sync += [cand_valid.eq(1), cand_session.eq(session), cand_seq.eq(seq)]
            with m.Elif(held_dup):
                m.d.sync += [cand_valid.eq(0), provisional.eq(0)]
                m.d.comb += [count["dup_b"].eq(beat.line), count["dup_a"].eq(~beat.line)]
            with m.Else():
                m.d.sync += [cand_valid.eq(0), provisional.eq(adopt & plausible)]
                with m.If(force):
                    m.d.sync += [expected.eq(he), h_valid.eq(0), rel_wait.eq(1),
                                 rel_skip.eq(expected), barrier_q.eq(1)]
                    m.d.comb += [rel_gap.eq(1), count["hold_forced"].eq(1)]
                with m.If(held):
                    m.d.sync += [route_q.eq(1), h_pkts.eq(h_pkts + 1)]
                    m.d.comb += count["held"].eq(1)
                with m.If(start):
                    m.d.sync += [h_valid.eq(1), hs.eq(seq), he.eq(seq), h_pkts.eq(1),
                                 h_line.eq(beat.line)]
                with m.If(adopt):
                    m.d.sync += [cur_session.eq(session), have_session.eq(1), ended.eq(0),
                                 expected.eq(1)]
                    m.d.comb += count["sessions"].eq(1)
                m.d.comb += gap.eq(ahead & ~held)
                with m.If(heartbeat | end_of_session):
                    m.d.comb += [count["heartbeats"].eq(heartbeat),
                                 count["end_of_session"].eq(end_of_session)]
                    with m.If(end_of_session):
                        m.d.sync += ended.eq(1)
                    with m.If(ahead):
                        m.d.sync += expected.eq(seq)
                with m.Elif(seen_all):
                    m.d.comb += [count["dup_b"].eq(beat.line), count["dup_a"].eq(~beat.line)]
                with m.Else():
                    # not seen_all: exp_now - seq < msg_count, so 16 bits hold it
                    m.d.comb += [active.eq(1), skip.eq(Mux(behind, -d_small, 0))]
        with m.If(valid & beat.last & ~header_seen & ~header_now):
            m.d.comb += count["bad_header"].eq(1)

        # counted as reported: with ``verify``, only once the packet passed its checksum
        m.d.comb += count["gaps"].eq(self.gaps.valid)
        # added up from the registered report, a cycle after the gap: not behind d's
        # carry chain; saturating, so a huge gap never reads as a small one
        gap_sum = Signal(65)
        m.d.comb += gap_sum.eq(gap_messages + self.gaps.payload.count)
        with m.If(self.gaps.valid):
            m.d.sync += gap_messages.eq(Mux(gap_sum[64], (1 << 64) - 1, gap_sum[:64]))
        judged = self.verdict.valid
        failed = judged & self.verify & self.verdict.payload
        good = judged & ~failed
        # Two reports may be due per packet: a forced run's hole, then the packet's own
        # gap. Each waits in its slot until it may go (at once without ``verify``, at a
        # good verdict with it; a failed verdict drops it), the hole first.
        own_pend = Signal()
        own_ok = Signal()
        own = Signal.like(self.gaps.payload)
        rel_pend = Signal()
        rel_ok = Signal()
        rel = Signal.like(self.gaps.payload)
        expire = Signal()  # the held run's time is up: forced out with no packet
        emit_rel = rel_pend & rel_ok
        emit_own = own_pend & own_ok & ~emit_rel
        m.d.comb += [self.gaps.valid.eq(emit_rel | emit_own),
                     self.gaps.payload.eq(Mux(emit_rel, rel, own))]
        with m.If(emit_rel):
            m.d.sync += rel_pend.eq(0)
        with m.If(emit_own):
            m.d.sync += own_pend.eq(0)
        with m.If(gap):
            m.d.sync += [own_pend.eq(1), own_ok.eq(~self.verify),
                         own.line.eq(beat.line), own.session.eq(session),
                         own.first.eq(exp_now), own.count.eq(d)]
        with m.If(rel_gap | expire):
            m.d.sync += [rel_pend.eq(1), rel_ok.eq(~self.verify | expire),
                         rel.line.eq(h_line), rel.session.eq(cur_session),
                         rel.first.eq(expected), rel.count.eq(hole)]
        with m.If(good):
            m.d.sync += [own_ok.eq(1), rel_ok.eq(1)]
        with m.If(failed):
            m.d.sync += [own_pend.eq(0), rel_pend.eq(0)]

        # --- block walk: at most one length prefix completes per beat
        blk_len = cur.capture(beat.data, next_blk, 2, "blk_len")
        prefix = valid & active & cur.have(next_blk + 1) & (blocks < msg_count)
        runt = prefix & (blk_len < itch.MIN_LENGTH)
        new_blk = prefix & ~runt
        new_start = Signal(PKT_BITS)
        new_end = Signal(PKT_BITS)
        new_deliver = new_blk & (blocks >= skip)
        m.d.comb += [new_start.eq(next_blk + 2), new_end.eq(next_blk + 2 + blk_len),
                     count["runt_block"].eq(runt),
                     count["skipped_messages"].eq(new_blk & (blocks < skip))]

        # the message in progress from an earlier beat
        cm_start = Signal(PKT_BITS)
        cm_end = Signal(PKT_BITS)
        cm_deliver_q = Signal()
        cm_open_q = Signal()  # prefix seen, last byte not yet
        cm_deliver = cm_deliver_q & ~beat.first
        cm_open = cm_open_q & ~beat.first
        cm_seq = Signal(64)

        msg = Signal(n)
        sop = Signal(n)
        eop = Signal(n)
        for i in range(n):
            off = cur.offset(i)
            in_cur = cm_open & (off >= cm_start) & (off < cm_end)
            in_new = new_blk & (off >= new_start) & (off < new_end)
            m.d.comb += [
                msg[i].eq(beat.be[i] & ((in_cur & cm_deliver) | (in_new & new_deliver))),
                sop[i].eq(msg[i] & (((off == cm_start) & in_cur) | ((off == new_start) & in_new))),
                eop[i].eq(msg[i] & (((off == cm_end - 1) & in_cur) |
                                    ((off == new_end - 1) & in_new))),
            ]
        cur_done = cm_open & cur.have(cm_end - 1)
        new_done = new_blk & cur.have(new_end - 1)
        whole_now = whole + cur_done + new_done
        m.d.comb += count["messages"].eq(valid & ((cur_done & cm_deliver) |
                                                   (new_done & new_deliver)))
        # the packet ends with a message open: whatever of it was passed on is void
        open_at_end = Mux(new_blk, ~new_done & new_deliver & (cur.end > new_start),
                          cm_open & ~cur_done & cm_deliver)
        abort = valid & beat.last & open_at_end

        with m.If(valid):
            m.d.sync += [header_seen_q.eq(header_seen | header_now),
                         active_q.eq(active & ~runt & ~beat.last),
                         blocks_q.eq(blocks + new_blk), whole_q.eq(whole_now)]
            with m.If(header_now):
                m.d.sync += skip_q.eq(skip)
            with m.If(new_blk):
                m.d.sync += [next_blk_q.eq(new_end), cm_start.eq(new_start),
                             cm_end.eq(new_end), cm_deliver_q.eq(new_deliver),
                             cm_open_q.eq(~new_done), cm_seq.eq(seq + blocks)]
            with m.Elif(cur_done | beat.first):
                m.d.sync += [cm_open_q.eq(0), next_blk_q.eq(next_blk)]
            # seq + whole_now > exp_now, i.e. d + whole_now > 0 (whole_now < 2**16)
            moves = Mux(small, d_small + whole_now > 0, ~behind)
            with m.If((beat.last | runt) & active & route_q):
                m.d.sync += he.eq(seq + whole_now)  # the held run grows
            with m.Elif((beat.last | runt) & active & moves):
                # the walk ends (packet end or runt block); messages cut by a short
                # packet are not counted as received: the next packet will reveal
                # them as a gap
                m.d.sync += expected.eq(seq + whole_now)

        # --- undoing a packet whose UDP checksum failed: the state as at its first beat
        # (nothing but the walk's end moves it between then and the verdict, which comes
        # a cycle after the last beat and well before the next packet's header)
        # the packet's end: a good verdict lets the run go if this packet filled its hole
        # (expected reached its start) or forced it out; every verdict ends the packet
        in_packet = Signal()
        with m.If(first):
            m.d.sync += in_packet.eq(1)
        with m.Elif(judged):
            m.d.sync += [in_packet.eq(0), route_q.eq(0), rel_wait.eq(0)]
        filled = h_valid & (expected >= hs)
        m.d.comb += self.barrier.eq(barrier_q)
        h_age = Signal(32)
        m.d.sync += h_age.eq(Mux(h_valid, Mux(h_age == (1 << 32) - 1, h_age,
                                                         h_age + 1), 0))
        m.d.comb += expire.eq(h_valid & ~in_packet & ~first & (h_age >= self.hold_cycles))
        rel_out = self.release
        m.d.sync += rel_out.valid.eq(0)
        with m.If(good & rel_wait):
            m.d.sync += [rel_out.valid.eq(1), rel_out.payload.skip.eq(rel_skip),
                         rel_out.payload.forced.eq(1)]
        with m.Elif(good & filled & ~route_q):
            m.d.sync += [rel_out.valid.eq(1), rel_out.payload.skip.eq(expected),
                         rel_out.payload.forced.eq(0), h_valid.eq(0),
                         expected.eq(Mux(he > expected, he, expected))]
            m.d.comb += count["hold_filled"].eq(1)
        with m.Elif(expire):
            m.d.sync += [rel_out.valid.eq(1), rel_out.payload.skip.eq(expected),
                         rel_out.payload.forced.eq(1), h_valid.eq(0), expected.eq(he)]
            m.d.comb += count["hold_forced"].eq(1)
        with m.Elif(self.reset_session & h_valid):
            m.d.sync += [rel_out.valid.eq(1), rel_out.payload.skip.eq(expected),
                         rel_out.payload.forced.eq(1), h_valid.eq(0)]

        state = [expected, cur_session, have_session, ended, cand_valid, provisional,
                 cand_session, cand_seq, h_valid, hs, he, h_pkts, h_line]
        saved = [Signal.like(v, name=f"saved_{v.name}") for v in state]
        with m.If(first):
            m.d.sync += [s.eq(v) for s, v in zip(saved, state)]
        with m.If(failed & ~self.reset_session):
            m.d.sync += [v.eq(s) for s, v in zip(saved, state)]
        with m.If(self.reset_session):
            # a reset during a packet that then fails must stay a reset
            m.d.sync += [saved[2].eq(0), saved[3].eq(0), saved[4].eq(0), saved[5].eq(0),
                         saved[8].eq(0)]

        out = self.msgs.payload
        new_sop_here = new_deliver & cur.have(new_start)
        m.d.sync += self.msgs.valid.eq(valid & ((msg != 0) | abort))
        m.d.sync += [out.data.eq(beat.data), out.msg.eq(msg), out.sop.eq(sop),
                     out.eop.eq(eop), out.abort.eq(abort),
                     out.seq.eq(Mux(new_sop_here, seq + blocks, cm_seq))]
        return m
