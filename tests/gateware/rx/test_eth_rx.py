"""eth_rx against EthRxModel: random and adversarial frames, W=64 and W=8; feed, control
and order-port (the venue's answers) datagrams split off."""

import pytest

from tick2trade.gateware.rx.eth_rx import EthRx
from tick2trade.protocol import frames
import dataclasses

from tick2trade.gateware.models.rx.eth_rx import ETH_COUNTERS, ETH_FLAGS, EthRxModel, RxConfig
from tick2trade.testing.traffic import JUNK_KINDS, junk_frame
from tick2trade.gateware.models.rx.eth_rx import feed_frame

from tick2trade.testing.simtools import SEED, rng_for, run
from tick2trade.testing.stream import StreamSink, StreamSource, random_pauses

CFG = RxConfig.default()
CFG.ouch_port = 40001  # ouch_tx's source port: the venue's answers come to it


def configure(ctx, dut, cfg: RxConfig):
    for i, f in enumerate(cfg.feeds):
        ctx.set(dut.feeds[i], {"enable": 1, "line": f.line, "group": f.group, "port": f.port})
    for k, src in enumerate(cfg.feed_src):
        ctx.set(dut.feed_src[k], src)
    ctx.set(dut.ctl_ip, cfg.ctl_ip)
    ctx.set(dut.ctl_port, cfg.ctl_port)
    ctx.set(dut.ouch_port, cfg.ouch_port)


def packets(beats, lanes, meta=()):
    """Reassemble output beats into (meta..., payload) tuples, checking the framing."""
    out, cur = [], None
    for b in beats:
        if b.first:
            assert cur is None, "first inside an open packet"
            cur = bytearray()
        assert cur is not None, "beat outside a packet"
        be = int(b.be)
        assert be, "beat with no byte enabled"
        data = int(b.data).to_bytes(lanes, "little")
        cur += bytes(data[i] for i in range(lanes) if be >> i & 1)
        if b.last:
            out.append(tuple(int(getattr(b, k)) for k in meta) + (bytes(cur),))
            cur = None
    assert cur is None, "packet never closed"
    return out


def check(width, frame_list, idle=0.0, between=(0, 0), name="eth", cfg=CFG):
    rng = rng_for(name)
    lanes = width // 8
    dut = EthRx(width)
    model = EthRxModel(cfg)
    want_feed, want = [], {"ctl": [], "ouch": []}
    for fr in frame_list:
        got = model.process(fr)
        if got and got[0] == "feed":
            want_feed.append((got[1], got[2]))
        elif got:
            d = got[1]
            want[got[0]].append((int.from_bytes(d.src_mac, "big"), d.src_ip, d.src_port,
                                 d.payload))
    counters = {}
    mac = StreamSource(dut.mac, random_pauses(rng, idle), gap=between, rng=rng)
    feed, ctl, ouch = (StreamSink(port, framed=True, name=name)
                       for port, name in ((dut.feed, "feed"), (dut.ctl, "ctl"),
                                          (dut.ouch, "ouch")))

    async def tb(ctx):
        configure(ctx, dut, cfg)
        await mac.send_frames(ctx, frame_list, lanes)
        await ctx.tick().repeat(4)
        for k in ETH_COUNTERS:
            counters[k] = ctx.get(getattr(dut.counters, k))

    run(dut, tb, processes=[feed.process, ctl.process, ouch.process])
    feed, ctl, ouch = feed.items, ctl.items, ouch.items
    msg = f"seed {SEED}"
    assert packets(feed, lanes, ("line",)) == want_feed, msg
    assert packets(ctl, lanes, ("src_mac", "src_ip", "src_port")) == want["ctl"], msg
    assert packets(ouch, lanes, ("src_mac", "src_ip", "src_port")) == want["ouch"], msg
    assert counters == dict(model.counters), msg
    # every frame ends in exactly one outcome counter
    assert sum(v for k, v in counters.items() if k not in ETH_FLAGS) == counters["frames"]
    return model


def checksummed_feed_frame(rng, cfg, line, **kw):
    """A feed frame with a UDP checksum half the time, a flipped bit one time in five
    (anywhere past the Ethernet header), cut short one time in twenty."""
    fr = bytearray(feed_frame(cfg, line, rng.randbytes(rng.randint(1, 300)), rng,
                              udp_checksum=rng.random() < 0.5, **kw))
    if rng.random() < 0.2:
        fr[rng.randrange(14, len(fr))] ^= 1 << rng.randrange(8)
    if rng.random() < 0.05:
        fr = fr[:rng.randrange(42, len(fr) + 1)]
    return bytes(fr)


def random_frames(rng, n):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            out.append(checksummed_feed_frame(rng, CFG, rng.randrange(2)))
        elif r < 0.6:
            out.append(frames.build_udp_frame(CFG.ctl_ip, rng.choice([CFG.ctl_port,
                                                                     CFG.ouch_port]),
                                              rng.randbytes(rng.randint(1, 80)),
                                              src_ip=rng.getrandbits(32),
                                              src_port=rng.randrange(65536),
                                              src_mac=rng.randbytes(6)))
        else:
            out.append(junk_frame(rng, CFG))
    return out


@pytest.mark.parametrize("width", [64, 8])
def test_random_mix_back_to_back(width):
    rng = rng_for(f"mix{width}")
    check(width, random_frames(rng, 150 if width == 64 else 40), name=f"mix{width}")


@pytest.mark.parametrize("width", [64, 8])
def test_valid_gaps_mid_frame(width):
    rng = rng_for(f"gaps{width}")
    check(width, random_frames(rng, 60 if width == 64 else 20), idle=0.3, between=(0, 3),
          name=f"gaps{width}")


@pytest.mark.parametrize("kind", JUNK_KINDS)
def test_every_drop_reason_is_counted(kind):
    rng = rng_for(kind)
    fr = [junk_frame(rng, CFG, kind) for _ in range(6)]
    # a good frame after the junk proves the junk did not wedge the parser
    fr.append(feed_frame(CFG, 0, b"still alive"))
    check(64, fr, name=kind)


def test_vlan_and_ip_options_shift_every_field():
    rng = rng_for("shift")
    fr = [feed_frame(CFG, line, rng.randbytes(n), vlan=vlan, ip_options=bytes(opt))
          for line in (0, 1) for n in (1, 7, 8, 9, 64) for vlan in (None, 5)
          for opt in (0, 4, 40)]
    check(64, fr, name="shift")


def test_padding_of_short_frames_is_not_payload():
    # a 1-byte payload travels in a 60-byte frame: 17 bytes of padding must be cut off
    fr = feed_frame(CFG, 0, b"x")
    assert len(fr) == frames.MIN_FRAME
    check(64, [fr] * 3, name="pad")


@pytest.mark.parametrize("width", [64, 8])
def test_a_flipped_payload_bit_fails_the_udp_checksum(width):
    """Checksummed feed datagrams with one bit flipped in the UDP header or payload
    (odd and even lengths, VLAN tags and IP options moving the offsets), cut short, or
    with no checksum (0: none sent, never judged)."""
    rng = rng_for(f"csum{width}")
    fr = []
    for i in range(40 if width == 64 else 16):
        payload = rng.randbytes(rng.randint(1, 120))
        opts = bytes([1]) * (4 * rng.randint(0, 3))
        vlan = rng.choice([None, 7])
        good = bytearray(feed_frame(CFG, i % 2, payload, udp_checksum=i % 4 != 3,
                                    ip_options=opts, vlan=vlan))
        l4 = 14 + 4 * (vlan is not None) + 20 + len(opts)
        bad = bytearray(good)
        bad[rng.randrange(l4, l4 + 8 + len(payload))] ^= 1 << rng.randrange(8)
        fr += [bytes(good), bytes(bad), bytes(good[:l4 + 8 + len(payload) - 1])]
    model = check(width, fr, name=f"csum{width}")
    assert model.counters["bad_udp_checksum"] >= len(fr) // 4


@pytest.mark.parametrize("width", [64, 8])
def test_feed_datagrams_from_another_source_are_dropped(width):
    rng = rng_for(f"src{width}")
    cfg = dataclasses.replace(CFG, feed_src=(frames.ip_to_int("10.9.0.1"), 0))
    sources = ["10.9.0.1", "10.9.0.2", "10.0.0.1"]
    # every (line, source) pair once, then at random (12 random frames at W = 8 missed
    # the one accepted pair on line A about one run in nine)
    pairs = [(line, src) for line in (0, 1) for src in sources]
    pairs += [(rng.randrange(2), rng.choice(sources)) for _ in range(24 if width == 64 else 6)]
    rng.shuffle(pairs)
    fr = [feed_frame(cfg, line, rng.randbytes(rng.randint(1, 40)), src_ip=src)
          for line, src in pairs]
    model = check(width, fr, name=f"src{width}", cfg=cfg)
    c = model.counters
    assert c["wrong_source"] > 0 and c["feed_a"] > 0 and c["feed_b"] > 0
