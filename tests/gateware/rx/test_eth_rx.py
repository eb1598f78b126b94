"""eth_rx against EthRxModel: random and adversarial frames, W=64 and W=8; feed, control
and order-port (the venue's answers) datagrams split off."""

import pytest

from tick2trade.gateware.rx.eth_rx import EthRx
from tick2trade.protocol import frames
from tick2trade.gateware.models.rx.eth_rx import ETH_COUNTERS, EthRxModel, RxConfig
from tick2trade.testing.traffic import JUNK_KINDS, junk_frame
from tick2trade.gateware.models.rx.eth_rx import feed_frame

from tick2trade.testing.simtools import SEED, rng_for, run
from tick2trade.testing.stream import StreamSink, StreamSource, random_pauses

CFG = RxConfig.default()
CFG.ouch_port = 40001  # ouch_tx's source port: the venue's answers come to it


def configure(ctx, dut, cfg: RxConfig):
    for i, f in enumerate(cfg.feeds):
        ctx.set(dut.feeds[i], {"enable": 1, "line": f.line, "group": f.group, "port": f.port})
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


def check(width, frame_list, idle=0.0, between=(0, 0), name="eth"):
    rng = rng_for(name)
    lanes = width // 8
    dut = EthRx(width)
    model = EthRxModel(CFG)
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
        configure(ctx, dut, CFG)
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


def random_frames(rng, n):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            out.append(feed_frame(CFG, rng.randrange(2), rng.randbytes(rng.randint(1, 300)),
                                  rng))
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
