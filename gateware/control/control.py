"""``control``: the control endpoint — request frames in, CSR accesses, reply and event
frames out as whole Ethernet/IPv4/UDP frames.

Golden model: :class:`gateware.models.control.ControlModel` (its module docstring and
``docs/control.md`` give the protocol and the drop rules).
"""

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from tick2trade.gateware.bytefield import counter_bank
from tick2trade.gateware.interfaces import CSR_BUS, RECORD_BITS
from tick2trade.protocol import control as proto
from tick2trade.protocol import frames
from tick2trade.gateware.stream import beat_layout, lanes
from tick2trade.gateware.udp_header import HEADERS, be_bytes, const_bytes, ipv4_checksum, udp_header

EVENT_PAYLOAD = proto.HEADER.size + proto.EVENT_RECORD


class ControlEndpoint(wiring.Component):
    """Execute control requests against the CSR bank; send replies and events.

    How it works: a request datagram is stored whole (beats as they come, lanes kept)
    into a small buffer; only when its last beat is in is it checked and, if well formed,
    executed. So a malformed frame — cut short, too long, wrong magic, version, kind or
    count — is never acted on: it is dropped and counted. A datagram that arrives while
    the previous request is still being executed is dropped as ``busy`` (the host has
    one request outstanding; it retries on a timeout).

    The request is then walked one byte per cycle (header, then each 8-byte op: read it,
    make one bus access, write its 8 reply bytes), and the reply frame is written one
    byte per cycle into a beat FIFO that holds a whole frame: a frame leaves on ``tx``
    only once it is complete, so the MAC never sees a gap inside a frame, and ``tx`` may
    be stalled at any beat. Control traffic is rare and small; one byte per cycle keeps
    the logic to a few comparators and muxes instead of a lane-shifting datapath.

    Events: when ``event_enable`` is set and no request is waiting, the head of
    ``events`` (a 32-byte event record: a gap report, a venue's answer) is popped and
    sent as one event frame to ``event_mac`` / ``event_ip`` : ``event_port``. Requests come first: a flood of events cannot starve
    the host's access to the registers.

    With ``frame_verdict``, a stored request also waits for ``frame_end``, the end of the
    Ethernet frame that carried it (after any padding, when the MAC has checked the FCS),
    and is dropped as ``bad_frame`` if ``frame_abort`` came with it. The strobe must come
    no earlier than the cycle of the datagram's last beat on ``ctl``.

    Frames leave with the IPv4 header checksum filled in, TTL 64, DF set, UDP checksum 0
    (optional in IPv4), padded to the 60-byte Ethernet minimum. Replies go back to the
    MAC, IP and port the request came from, from ``mac``, ``ip`` : ``port``.

    Parameters
    ----------
    data_width : int
        Bits per beat.
    frame_verdict : bool
        Wait for ``frame_end``/``frame_abort`` before acting on a request.

    Members
    -------
    ctl : In(stream, always ready)
        Control datagrams' payloads from ``eth_rx`` (lane-preserving, with the source).
    bus : Out(CSR_BUS)
    events : In(stream.Signature(RECORD_BITS))
        Event records, byte 0 (the type) in the top bits (``record_value``).
    tx : Out(stream.Signature(beat_layout(data_width)))
        Whole frames, first byte in lane 0.
    mac, ip, port, event_mac, event_ip, event_port, event_enable : configuration.
    frame_end, frame_abort : In(1), only with ``frame_verdict``.
    counters : Out(StructLayout) — ``models.control.COUNTERS``, 32-bit wrapping.
    """

    def __init__(self, data_width: int = 64, frame_verdict: bool = False):
        self.data_width = data_width
        self.frame_verdict = frame_verdict
        n = lanes(data_width)
        self.req_beats = -(-(proto.MAX_REQUEST + n - 1) // n)
        self.tx_beats = -(-(HEADERS + proto.MAX_REQUEST) // n) + 1
        super().__init__({
            "ctl": In(stream.Signature(beat_layout(data_width, src_mac=48, src_ip=32,
                                                   src_port=16), always_ready=True)),
            "bus": Out(CSR_BUS),
            "events": In(stream.Signature(RECORD_BITS)),
            "tx": Out(stream.Signature(beat_layout(data_width))),
            "mac": In(48), "ip": In(32), "port": In(16),
            "event_mac": In(48), "event_ip": In(32), "event_port": In(16),
            "event_enable": In(1),
            "counters": Out(data.StructLayout({k: 32 for k in proto.COUNTERS})),
            **({"frame_end": In(1), "frame_abort": In(1)} if frame_verdict else {}),
        })

    def elaborate(self, platform):
        m = Module()
        n = lanes(self.data_width)
        shift = (n - 1).bit_length()
        count = counter_bank(m, proto.COUNTERS, self.counters)

        # --- store a request whole
        m.submodules.req = req = memory.Memory(shape=self.data_width, depth=self.req_beats,
                                               init=[])
        wp = req.write_port()
        rp = req.read_port(domain="comb")
        beat, valid = self.ctl.payload, self.ctl.valid
        storing = Signal()
        stored = Signal()  # a whole request is in the buffer; the walker owns it
        wr_beat = Signal(range(self.req_beats + 1))
        nbytes = Signal(16)
        lane0 = Signal(range(n))
        src_mac, src_ip, src_port = Signal(48), Signal(32), Signal(16)
        present = sum(beat.be[i] for i in range(n))
        low_lane = Signal(range(n))
        for i in reversed(range(n)):
            with m.If(beat.be[i]):
                m.d.comb += low_lane.eq(i)
        m.d.comb += wp.data.eq(beat.data)
        waiting = Signal()  # the request is in, the end of its frame is not
        aborted = Signal()  # the MAC marked the request's frame bad
        verdict = []
        if self.frame_verdict:
            end, abort = self.frame_end, self.frame_abort
            with m.If(waiting & end):
                m.d.sync += [waiting.eq(0), aborted.eq(abort)]
            verdict = [waiting.eq(~end), aborted.eq(end & abort)]
        with m.If(valid):
            with m.If(beat.first):
                with m.If(stored):
                    m.d.comb += count["busy"].eq(1)
                    m.d.sync += storing.eq(0)
                with m.Else():
                    m.d.comb += [wp.addr.eq(0), wp.en.eq(1)]
                    with m.If(beat.last):
                        m.d.sync += verdict
                    m.d.sync += [storing.eq(~beat.last), stored.eq(beat.last),
                                 wr_beat.eq(1), nbytes.eq(present), lane0.eq(low_lane),
                                 src_mac.eq(beat.src_mac), src_ip.eq(beat.src_ip),
                                 src_port.eq(beat.src_port)]
            with m.Elif(storing):
                # beats past the buffer are only counted: the length check drops the frame
                with m.If(wr_beat < self.req_beats):
                    m.d.comb += [wp.addr.eq(wr_beat), wp.en.eq(1)]
                    m.d.sync += wr_beat.eq(wr_beat + 1)
                m.d.sync += nbytes.eq(nbytes + present)
                with m.If(beat.last):
                    m.d.sync += [storing.eq(0), stored.eq(1), *verdict]

        # --- read the request back one byte at a time
        j = Signal(range(proto.MAX_REQUEST + 1))  # payload byte being read
        at = Signal(range(proto.MAX_REQUEST + n))
        m.d.comb += [at.eq(lane0 + j), rp.addr.eq(at >> shift)]
        rd_byte = rp.data.word_select(at[:shift], 8) if shift else rp.data

        # --- frames out: one byte per cycle into a beat FIFO holding whole frames
        out_layout = beat_layout(self.data_width)
        m.submodules.txq = txq = fifo.SyncFIFOBuffered(width=out_layout.size,
                                                       depth=self.tx_beats)
        emit = Signal()
        tx_byte = Signal(8)
        fpos = Signal(16)  # byte of the frame being written
        flen = Signal(16)
        tx_last = Signal()
        m.d.comb += tx_last.eq(fpos == flen - 1)
        acc = Signal(self.data_width)
        pos = Signal(range(n))
        fresh = Signal(init=1)
        merged = Signal(self.data_width)
        m.d.comb += merged.eq(acc)
        m.d.comb += merged.word_select(pos, 8).eq(tx_byte) if shift else merged.eq(tx_byte)
        be = Signal(n)
        for i in range(n):
            m.d.comb += be[i].eq(i <= pos)
        out_beat = Signal(out_layout)
        m.d.comb += [out_beat.data.eq(merged), out_beat.be.eq(be),
                     out_beat.first.eq(fresh), out_beat.last.eq(tx_last),
                     txq.w_data.eq(out_beat)]
        with m.If(emit):
            m.d.sync += fpos.eq(Mux(tx_last, 0, fpos + 1))
            with m.If(tx_last | (pos == n - 1)):
                m.d.comb += txq.w_en.eq(1)
                m.d.sync += [acc.eq(0), pos.eq(0), fresh.eq(tx_last)]
            with m.Else():
                m.d.sync += [acc.eq(merged), pos.eq(pos + 1)]
        complete = Signal(range(self.tx_beats + 1))  # whole frames in the FIFO
        out_last = self.tx.valid & self.tx.ready & self.tx.payload.last
        in_last = txq.w_en & tx_last
        m.d.sync += complete.eq(complete + in_last - out_last)
        m.d.comb += [self.tx.payload.eq(txq.r_data), self.tx.valid.eq(txq.r_rdy & (complete != 0)),
                     txq.r_en.eq(self.tx.ready & (complete != 0))]
        room = txq.w_rdy

        # --- Ethernet/IPv4/UDP header of the frame being sent
        dst_mac, dst_ip, dst_port = Signal(48), Signal(32), Signal(16)
        paylen = Signal(16)
        csum = ipv4_checksum(m, self.ip, dst_ip, paylen)
        header = udp_header(dst_mac=dst_mac, src_mac=self.mac, src_ip=self.ip, dst_ip=dst_ip,
                            src_port=self.port, dst_port=dst_port, payload_length=paylen,
                            checksum=csum)

        def start_frame(mac, ip, port, length):
            m.d.sync += [dst_mac.eq(mac), dst_ip.eq(ip), dst_port.eq(port), paylen.eq(length),
                         flen.eq(Mux(HEADERS + length < frames.MIN_FRAME, frames.MIN_FRAME,
                                     HEADERS + length)), fpos.eq(0)]

        # --- the request header and each op
        hdr = Signal(64)
        magic, version, kind = hdr[48:], hdr[40:48], hdr[32:40]
        seq, n_ops = hdr[16:32], hdr[:16]
        op_in = Signal(64)
        op_code, op_addr, op_value = op_in[56:], op_in[32:48], op_in[:32]
        status = Signal(2)
        value = Signal(32)
        op_index = Signal(range(proto.MAX_OPS + 1))
        k = Signal(range(max(HEADERS, EVENT_PAYLOAD) + 1))  # byte within a section

        reply_header = (const_bytes(proto.MAGIC, 2) + const_bytes(proto.VERSION, 1) +
                        const_bytes(proto.KIND_REPLY, 1) + be_bytes(seq, 2) + be_bytes(n_ops, 2))
        reply_op = [op_code, Cat(status, Const(0, 6)), *be_bytes(op_addr, 2),
                    *be_bytes(value, 4)]

        # --- events
        ev = Signal(RECORD_BITS)
        ev_seq = Signal(16)
        event_payload = (const_bytes(proto.MAGIC, 2) + const_bytes(proto.VERSION, 1) +
                         const_bytes(proto.KIND_EVENT, 1) + be_bytes(ev_seq, 2) +
                         const_bytes(1, 2) + be_bytes(ev, proto.EVENT_RECORD))
        assert len(event_payload) == EVENT_PAYLOAD
        sending_event = Signal()

        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += [j.eq(0), k.eq(0)]
                with m.If(stored & ~waiting):
                    with m.If(aborted):
                        m.d.comb += count["bad_frame"].eq(1)
                        m.d.sync += stored.eq(0)
                    with m.Elif((nbytes < proto.HEADER.size) | (nbytes > proto.MAX_REQUEST)):
                        m.d.comb += count["bad_length"].eq(1)
                        m.d.sync += stored.eq(0)
                    with m.Else():
                        m.next = "HEADER_IN"
                with m.Elif(self.event_enable & self.events.valid):
                    m.d.comb += [self.events.ready.eq(1), count["events"].eq(1)]
                    m.d.sync += [ev.eq(self.events.payload), sending_event.eq(1)]
                    start_frame(self.event_mac, self.event_ip, self.event_port, EVENT_PAYLOAD)
                    m.next = "HEADERS_OUT"
            with m.State("HEADER_IN"):
                m.d.sync += [hdr.eq(Cat(rd_byte, hdr[:56])), j.eq(j + 1)]
                with m.If(j == proto.HEADER.size - 1):
                    m.next = "CHECK"
            with m.State("CHECK"):
                drop = Signal()
                with m.If(magic != proto.MAGIC):
                    m.d.comb += [drop.eq(1), count["bad_magic"].eq(1)]
                with m.Elif(version != proto.VERSION):
                    m.d.comb += [drop.eq(1), count["bad_version"].eq(1)]
                with m.Elif(kind != proto.KIND_REQUEST):
                    m.d.comb += [drop.eq(1), count["bad_kind"].eq(1)]
                with m.Elif((n_ops == 0) | (n_ops > proto.MAX_OPS) |
                            (nbytes != proto.HEADER.size + (n_ops << 3))):
                    m.d.comb += [drop.eq(1), count["bad_length"].eq(1)]
                with m.If(drop):
                    m.d.sync += stored.eq(0)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += count["requests"].eq(1)
                    m.d.sync += [sending_event.eq(0), op_index.eq(0)]
                    start_frame(src_mac, src_ip, src_port, nbytes)
                    m.next = "HEADERS_OUT"
            with m.State("HEADERS_OUT"), m.If(room):
                m.d.comb += [emit.eq(1), tx_byte.eq(Array(header)[k])]
                m.d.sync += k.eq(k + 1)
                with m.If(k == HEADERS - 1):
                    m.d.sync += k.eq(0)
                    m.next = "BODY_OUT"
            with m.State("BODY_OUT"), m.If(room):
                m.d.comb += emit.eq(1)
                m.d.sync += k.eq(k + 1)
                with m.If(sending_event):
                    m.d.comb += tx_byte.eq(Array(event_payload)[k])
                    with m.If(tx_last):
                        m.d.sync += [k.eq(0), ev_seq.eq(ev_seq + 1)]
                        m.next = "IDLE"
                with m.Else():
                    m.d.comb += tx_byte.eq(Array(reply_header)[k[:3]])
                    with m.If(k == proto.HEADER.size - 1):
                        m.d.sync += k.eq(0)
                        m.next = "OP_IN"
            with m.State("OP_IN"):
                m.d.sync += [op_in.eq(Cat(rd_byte, op_in[:56])), j.eq(j + 1), k.eq(k + 1)]
                with m.If(k == proto.OP.size - 1):
                    m.d.sync += k.eq(0)
                    m.next = "ACCESS"
            with m.State("ACCESS"):
                m.d.comb += [self.bus.addr.eq(op_addr), self.bus.w_data.eq(op_value)]
                m.d.sync += value.eq(op_value)
                with m.If(op_code == proto.OP_READ):
                    m.d.comb += self.bus.r_stb.eq(1)
                    m.next = "ACK"
                with m.Elif(op_code == proto.OP_WRITE):
                    m.d.comb += self.bus.w_stb.eq(1)
                    m.next = "ACK"
                with m.Else():
                    m.d.sync += status.eq(proto.BAD_OP)
                    m.next = "OP_OUT"
            with m.State("ACK"):
                m.d.sync += status.eq(self.bus.status)
                with m.If(op_code == proto.OP_READ):
                    m.d.sync += value.eq(self.bus.r_data)
                m.next = "OP_OUT"
            with m.State("OP_OUT"), m.If(room):
                m.d.comb += [emit.eq(1), tx_byte.eq(Array(reply_op)[k[:3]])]
                m.d.sync += k.eq(k + 1)
                with m.If(k == proto.OP.size - 1):
                    m.d.comb += count["bad_ops"].eq(status != proto.OK)
                    m.d.sync += [k.eq(0), op_index.eq(op_index + 1)]
                    with m.If(op_index == n_ops - 1):
                        m.next = "PAD"
                    with m.Else():
                        m.next = "OP_IN"
            with m.State("PAD"):
                with m.If(fpos == 0):  # the last op's byte ended the frame
                    m.d.comb += count["replies"].eq(1)
                    m.d.sync += stored.eq(0)
                    m.next = "IDLE"
                with m.Elif(room):
                    m.d.comb += [emit.eq(1), tx_byte.eq(0)]
        return m

    def registers(self, mac: int, event_enable: int = 0):
        """The endpoint's registers: the reply/event header template and its counters.
        ``mac`` is the reset value of the endpoint's own Ethernet address (its IPv4
        address and port are the receive path's ``ctl_ip``/``ctl_port``)."""
        from tick2trade.gateware.registers import RegisterBlock

        regs = RegisterBlock("ctl", "Control endpoint: requests, replies, the event channel.")
        regs.rw("mac", self.mac, "source MAC address of replies and events", mac)
        regs.rw("event_mac", self.event_mac, "destination MAC address of event frames")
        regs.rw("event_ip", self.event_ip, "destination IPv4 address of event frames")
        regs.rw("event_port", self.event_port, "destination UDP port of event frames")
        regs.rw("event_enable", self.event_enable, "1: gap reports go out as event frames "
                "(else they wait in rx.gaps)", event_enable)
        regs.struct("counters", self.counters, "ro", "32-bit wrapping counter")
        return regs
