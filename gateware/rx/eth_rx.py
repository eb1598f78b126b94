"""``eth_rx``: Ethernet II (+ one 802.1Q tag) / IPv4 / UDP receive, filter and split.

Golden model: :class:`gateware.models.rx.EthRxModel` (with ``protocol.frames.parse_udp_frame``).
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from tick2trade.gateware.bytefield import BeatCursor, counter_bank
from tick2trade.protocol import frames
from tick2trade.gateware.models.rx.eth_rx import ETH_COUNTERS, MAX_FEEDS
from tick2trade.gateware.stream import beat_layout, lanes

FEED_FILTER = data.StructLayout({"enable": 1, "line": 1, "group": 32, "port": 16})


class EthRx(wiring.Component):
    """Parse frames from the MAC, pass on the UDP payload of feed and control datagrams.

    The payload leaves lane-preserving (see ``gateware.stream``), with ``be`` narrowed to
    the UDP payload: the Ethernet padding and the headers are never forwarded. Every
    decision about a frame is taken in the beat that completes the UDP header, so the
    first payload byte is never held back; the price of that is that a frame cut short
    *after* its headers (shorter than its UDP length) has already been partly forwarded:
    it is closed with ``last`` where it ends and counted in ``short_payload``, and the
    MoldUDP64 stage drops the message it cut.

    Checks, in the order the bytes arrive (the first that fails names the drop reason):
    EtherType IPv4 after at most one VLAN tag (``not_ipv4``); version 4 and IHL >= 5
    (``bad_ip_header``); at the end of the IP header (options skipped): header checksum
    (``bad_ip_checksum``), total length >= IHL*4 + 8 (``bad_ip_header``), not a fragment
    (``fragment``), protocol UDP (``not_udp``); at the end of the UDP header: UDP length
    within the IP payload (``bad_udp_length``), non-empty payload (``empty_payload``),
    destination match (``feed_a``/``feed_b``/``ctl``/``ouch``, else ``filtered``), and for
    the feed the source address of its line (``feed_src``, 0 = any; else
    ``wrong_source``). A frame that ends inside its headers is ``truncated``.

    The UDP checksum of feed datagrams is verified as the bytes stream in (pseudo-header
    addresses and the UDP bytes added into one accumulator per beat, the UDP length and
    protocol added at the end) and judged the cycle after the datagram's last byte, from
    registers: a failure (or a nonzero checksum on a datagram cut short) is counted in
    ``bad_udp_checksum``; a zero checksum field means none was sent (RFC 768). The
    datagram has been passed on by then (cut-through: the first messages of a packet
    leave before its last byte arrives), so the verdict goes downstream beside it
    (``verdict``), for ``MoldUdp`` and the receive path's event FIFO to undo the
    packet's effects.

    Parameters
    ----------
    data_width : int
        Bits per beat.

    Members
    -------
    mac : In(stream.Signature(beat_layout, always_ready=True))
        Frames without FCS; the first byte of a frame is in lane 0.
    feed : Out(stream.Signature(beat_layout + line, always_ready=True))
        UDP payloads of datagrams matching a feed filter; ``line`` 0 = A, 1 = B.
    ctl : Out(stream.Signature(beat_layout + src_mac/src_ip/src_port, always_ready=True))
        UDP payloads of datagrams to ``ctl_ip``:``ctl_port`` (0 disables).
    ouch : Out(stream.Signature(beat_layout + src_mac/src_ip/src_port, always_ready=True))
        UDP payloads of datagrams to ``ctl_ip``:``ouch_port`` (0 disables): the venue's
        answers to the orders ``ouch_tx`` sends from that port. The control port wins
        when the two are equal.
    feeds : In(ArrayLayout(FEED_FILTER, 8))
        (group, port) -> line; the lowest matching enabled entry wins.
    feed_src : In(ArrayLayout(32, 2))
        The IPv4 source each line's datagrams must come from (line A first; 0: any).
    verdict : Out(stream.Signature(1, always_ready=True))
        One beat per feed datagram passed on, 1 cycle after its last beat left ``feed``;
        the payload is 1 when its UDP checksum failed (as counted in
        ``bad_udp_checksum``).
    counters : Out(StructLayout)
        ``models.rx.ETH_COUNTERS``, 32-bit wrapping.

    Latency: 1 cycle from a payload beat in to the same beat out.
    """

    def __init__(self, data_width: int = 64):
        self.data_width = data_width
        super().__init__({
            "mac": In(stream.Signature(beat_layout(data_width), always_ready=True)),
            "feed": Out(stream.Signature(beat_layout(data_width, line=1), always_ready=True)),
            "ctl": Out(stream.Signature(beat_layout(data_width, src_mac=48, src_ip=32,
                                                    src_port=16), always_ready=True)),
            "feeds": In(data.ArrayLayout(FEED_FILTER, MAX_FEEDS)),
            "feed_src": In(data.ArrayLayout(32, 2)),
            "ctl_ip": In(32),
            "ctl_port": In(16),
            "ouch": Out(stream.Signature(beat_layout(data_width, src_mac=48, src_ip=32,
                                                     src_port=16), always_ready=True)),
            "ouch_port": In(16),
            "verdict": Out(stream.Signature(1, always_ready=True)),
            "counters": Out(data.StructLayout({n: 32 for n in ETH_COUNTERS})),
        })

    def elaborate(self, platform):
        m = Module()
        n = lanes(self.data_width)
        beat = self.mac.payload
        valid = self.mac.valid
        cur = BeatCursor(m, valid, beat.first, beat.be, n)
        count = counter_bank(m, ETH_COUNTERS, self.counters)
        m.d.comb += count["frames"].eq(valid & beat.first)

        def field(offset, nbytes, name):
            return cur.capture(beat.data, offset, nbytes, name)

        # --- Ethernet / VLAN
        ethertype1 = field(12, 2, "ethertype1")
        ethertype2 = field(16, 2, "ethertype2")
        tagged = ethertype1 == frames.ETHERTYPE_VLAN
        l3 = Mux(tagged, frames.ETH_HEADER + frames.VLAN_TAG, frames.ETH_HEADER)
        ethertype = Mux(tagged, ethertype2, ethertype1)
        et_at = Mux(tagged, 17, 13)

        # --- IPv4
        ver_ihl = field(l3, 1, "ver_ihl")
        ihl = ver_ihl[:4]
        l4 = Signal(8, name="l4")
        m.d.comb += l4.eq(l3 + (ihl << 2))
        total_len = field(l3 + 2, 2, "total_len")
        flags_frag = field(l3 + 6, 2, "flags_frag")
        protocol = field(l3 + 9, 1, "protocol")
        src_ip = field(l3 + 12, 4, "src_ip")
        dst_ip = field(l3 + 16, 4, "dst_ip")
        src_mac = field(6, 6, "src_mac")

        # Header checksum: ones'-complement sum of the 16-bit words of the IP header,
        # options included. IP starts at an even offset, so a byte at an even frame
        # offset is always the high half of its word.
        csum_q = Signal(24)
        csum = Signal(24)
        terms = []
        for i in range(n):
            off = cur.offset(i)
            in_ip = (off >= l3) & (off < l4) & beat.be[i]
            high = ~off[0]
            byte = beat.data.word_select(i, 8)
            terms.append(Mux(in_ip, Mux(high, byte << 8, byte), 0))
        m.d.comb += csum.eq(Mux(beat.first, 0, csum_q) + sum(terms))
        with m.If(valid):
            m.d.sync += csum_q.eq(csum)
        fold1 = Signal(17)
        fold2 = Signal(17)
        m.d.comb += [fold1.eq(csum[:16] + csum[16:]), fold2.eq(fold1[:16] + fold1[16:])]
        csum_ok = fold2[:16] == 0xFFFF

        # --- UDP
        src_port = field(l4, 2, "src_port")
        dst_port = field(l4 + 2, 2, "dst_port")
        udp_len = field(l4 + 4, 2, "udp_len")
        pl_start = Signal(9)
        pl_end = Signal(17)
        m.d.comb += [pl_start.eq(l4 + frames.UDP_HEADER), pl_end.eq(l4 + udp_len)]

        # --- UDP checksum: pseudo-header addresses and every UDP byte (header, payload;
        # not the Ethernet padding) in one accumulator; the protocol starts it, the UDP
        # length is added at the verdict. l3 and l4 are even, as for the IP checksum.
        udp_sum_q = Signal(32)
        udp_sum = Signal(32)
        udp_terms = []
        for i in range(n):
            off = cur.offset(i)
            in_addr = (off >= l3 + 12) & (off < l3 + 20)
            # pl_end is known from the UDP length field on: the header's own 8 bytes are in
            in_udp = (off >= l4) & ((off < pl_start) | (off < pl_end))
            byte = beat.data.word_select(i, 8)
            udp_terms.append(Mux((in_addr | in_udp) & beat.be[i],
                                 Mux(~off[0], byte << 8, byte), 0))
        m.d.comb += udp_sum.eq(Mux(beat.first, frames.IP_PROTO_UDP, udp_sum_q) + sum(udp_terms))
        with m.If(valid):
            m.d.sync += udp_sum_q.eq(udp_sum)
        udp_field = field(l4 + 6, 2, "udp_checksum")

        # --- destination
        feed_hit = Signal()
        feed_line = Signal()
        for f in reversed([self.feeds[i] for i in range(MAX_FEEDS)]):
            with m.If(f.enable & (dst_ip == f.group) & (dst_port == f.port)):
                m.d.comb += [feed_hit.eq(1), feed_line.eq(f.line)]
        ctl_hit = (self.ctl_port != 0) & (dst_ip == self.ctl_ip) & (dst_port == self.ctl_port)
        ouch_hit = (self.ouch_port != 0) & (dst_ip == self.ctl_ip) & \
            (dst_port == self.ouch_port)
        # each line's source check beside the filter walk, the line selects last
        src_ok = [(self.feed_src[k] == 0) | (src_ip == self.feed_src[k]) for k in range(2)]
        feed_src_ok = Mux(feed_line, src_ok[1], src_ok[0])

        # --- per-frame decision, taken once (decided), in byte order
        decided_q = Signal()
        decided = Mux(beat.first, 0, decided_q)
        to_feed_q = Signal()
        to_ctl_q = Signal()
        to_ouch_q = Signal()
        line_q = Signal()
        to_feed = Signal()
        to_ctl = Signal()
        to_ouch = Signal()
        line = Signal()
        m.d.comb += [to_feed.eq(to_feed_q & ~beat.first), to_ctl.eq(to_ctl_q & ~beat.first),
                     to_ouch.eq(to_ouch_q & ~beat.first), line.eq(line_q)]
        # l4 means nothing until the version/IHL byte is in (have(l3))
        ip_done = cur.have(l3) & cur.have(l4 - 1)
        decide = Signal()
        with m.If(valid & ~decided):
            with m.If(cur.have(et_at) & (ethertype != frames.ETHERTYPE_IPV4)):
                m.d.comb += [decide.eq(1), count["not_ipv4"].eq(1)]
            with m.Elif(cur.have(l3) & ((ver_ihl[4:] != 4) | (ihl < 5))):
                m.d.comb += [decide.eq(1), count["bad_ip_header"].eq(1)]
            with m.Elif(ip_done & ~csum_ok):
                m.d.comb += [decide.eq(1), count["bad_ip_checksum"].eq(1)]
            with m.Elif(ip_done & (total_len < (ihl << 2) + frames.UDP_HEADER)):
                m.d.comb += [decide.eq(1), count["bad_ip_header"].eq(1)]
            with m.Elif(ip_done & (flags_frag[:14] != 0)):
                m.d.comb += [decide.eq(1), count["fragment"].eq(1)]
            with m.Elif(ip_done & (protocol != frames.IP_PROTO_UDP)):
                m.d.comb += [decide.eq(1), count["not_udp"].eq(1)]
            with m.Elif(ip_done & cur.have(l4 + 7)):
                m.d.comb += decide.eq(1)
                with m.If((udp_len < frames.UDP_HEADER) |
                          (udp_len > total_len - (ihl << 2))):
                    m.d.comb += count["bad_udp_length"].eq(1)
                with m.Elif((udp_len == frames.UDP_HEADER) |
                            (beat.last & (cur.end == pl_start))):
                    m.d.comb += count["empty_payload"].eq(1)
                with m.Elif(feed_hit & ~feed_src_ok):
                    m.d.comb += count["wrong_source"].eq(1)
                with m.Elif(feed_hit):
                    m.d.comb += [to_feed.eq(1), line.eq(feed_line),
                                 count["feed_b"].eq(feed_line), count["feed_a"].eq(~feed_line)]
                with m.Elif(ctl_hit):
                    m.d.comb += [to_ctl.eq(1), count["ctl"].eq(1)]
                with m.Elif(ouch_hit):
                    m.d.comb += [to_ouch.eq(1), count["ouch"].eq(1)]
                with m.Else():
                    m.d.comb += count["filtered"].eq(1)
            with m.Elif(beat.last):
                m.d.comb += [decide.eq(1), count["truncated"].eq(1)]
        with m.If(valid):
            m.d.sync += [decided_q.eq(decided | decide), to_feed_q.eq(to_feed),
                         to_ctl_q.eq(to_ctl), to_ouch_q.eq(to_ouch), line_q.eq(line)]

        # --- payload lanes
        be_out = Signal(n)
        for i in range(n):
            off = cur.offset(i)
            m.d.comb += be_out[i].eq(beat.be[i] & (off >= pl_start) & (off < pl_end))
        started_q = Signal()
        started = Mux(beat.first, 0, started_q)
        passing = valid & (to_feed | to_ctl | to_ouch) & (be_out != 0)
        ends = cur.end >= pl_end
        with m.If(passing):
            m.d.sync += started_q.eq(1)
        with m.Elif(valid & beat.first):
            m.d.sync += started_q.eq(0)
        with m.If(passing & beat.last & ~ends):
            m.d.comb += count["short_payload"].eq(1)

        # the checksum verdict, a cycle after the feed datagram's last byte, from registers
        udp_judge = Signal()
        udp_cut = Signal()
        udp_unchecked = Signal()
        udp_len_q = Signal(16)
        m.d.sync += udp_judge.eq(passing & to_feed & (ends | beat.last))
        with m.If(passing & to_feed & (ends | beat.last)):
            m.d.sync += [udp_cut.eq(~ends), udp_unchecked.eq(udp_field == 0),
                         udp_len_q.eq(udp_len)]
        total = Signal(33)
        fold1 = Signal(18)
        fold2 = Signal(17)
        fold3 = Signal(16)
        m.d.comb += [total.eq(udp_sum_q + udp_len_q), fold1.eq(total[:16] + total[16:]),
                     fold2.eq(fold1[:16] + fold1[16:]), fold3.eq(fold2[:16] + fold2[16:])]
        udp_bad = udp_judge & ~udp_unchecked & (udp_cut | (fold3 != 0xFFFF))
        m.d.comb += count["bad_udp_checksum"].eq(udp_bad)
        m.d.sync += [self.verdict.valid.eq(udp_judge), self.verdict.payload.eq(udp_bad)]

        out = {"data": beat.data, "be": be_out, "first": ~started,
               "last": beat.last | ends}
        m.d.sync += [self.feed.valid.eq(passing & to_feed),
                     self.ctl.valid.eq(passing & to_ctl), self.ouch.valid.eq(passing & to_ouch)]
        with m.If(passing):
            m.d.sync += self.feed.payload.line.eq(line)
            for port in (self.feed, self.ctl, self.ouch):
                m.d.sync += [getattr(port.payload, k).eq(v) for k, v in out.items()]
            for port in (self.ctl, self.ouch):
                m.d.sync += [port.payload.src_mac.eq(src_mac), port.payload.src_ip.eq(src_ip),
                             port.payload.src_port.eq(src_port)]
        return m
