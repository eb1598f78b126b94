"""Reliability of the receive path under malformed and random frames
(``python -m tick2trade.bench.rx_campaign``; figures in bench/README.md, "Reliability").

How: the receive path's RTL in Verilator (``sim.rxsim.RxSim``, lines A and B filtered by
group, port and source) takes ``--frames`` malformed and random frames in batches, then a
clean MoldUDP64 feed with forgeries mixed in, and the golden model (``RxPathModel``)
takes the same frames. Per batch it checks that every frame ended in exactly one of
``eth_rx``'s outcome counters (their sum moved by the batch's size), that every feed
datagram counted there reached ``moldudp``, and that the path still answers: the
batch is followed by one probe frame to the control port, which must come out (a
wedged parser would swallow it). After the clean feed, the RTL's events, gaps and
counters must equal the model's, and every message of the clean feed must have been
decoded — as many as a fresh model fed the clean feed alone delivers, and the same
events — but for the clean session's first packet when the malformed frames left a
junk session provisional (see ``MoldUdpModel``): it is held aside until the second packet
confirms the session, and reported in the gap from 1.

The malformed frames: every drop reason of ``testing.traffic.junk_frame``; random bytes
of random length (1 to 9,018, jumbo frames included); random UDP payloads to the feed
ports, half with a UDP checksum; MoldUDP64 headers with random sessions and sequence
numbers far ahead (random 64-bit, 2**63, one high bit); checksummed feed datagrams with
one to three flipped bits; frames cut short anywhere; feed datagrams from a source the
line does not accept; random datagrams to the control port. The clean feed
(``FeedScenario``: loss on either line, heartbeats, no reordering — late packets
have tests of their own, tests/gateware/rx/test_rx_path.py) has forged far sequence numbers of its own
session, junk and copies from a wrong source mixed in at ``--forged``.

A CI-sized sample of the same campaign runs as a test
(tests/gateware/rx/test_rx_campaign.py).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from tick2trade.gateware.models.rx.eth_rx import ETH_FLAGS, RxConfig, feed_frame
from tick2trade.gateware.models.rx.rx_path import RxPathModel
from tick2trade.protocol import frames, moldudp64
from tick2trade.sim.rxsim import RxSim
from tick2trade.sim.venue.config import SYMBOLS
from tick2trade.testing.traffic import FeedScenario, junk_frame, random_message

# the exchange's publisher, the only source lines A and B accept (``build_udp_frame``'s
# default source, so every generator's feed frames come from it unless told otherwise)
SOURCE = "10.0.0.1"
CLEAN_SESSION = "SESS000001"  # FeedScenario's session
MALFORMED = ("junk", "random_bytes", "random_udp", "forged_header", "flipped", "cut",
             "wrong_source", "ctl")


def campaign_config() -> RxConfig:
    cfg = RxConfig.default(watch=SYMBOLS[:5])
    src = frames.ip_to_int(SOURCE)
    cfg.feed_src = (src, src)
    return cfg


def forged_packet(rng: random.Random, session: str | bytes, *, uniform: bool = False) -> bytes:
    """A packet starting far beyond any window: a random sequence number, or (unless
    ``uniform``) 2**63 or one high bit. Two packets of one session in a row with
    consistent far numbers confirm each other, as a deliberate forgery can always do:
    the clean session's forgeries are ``uniform`` (random corruption, not an attack)."""
    far = rng.randrange(1 << 22, 1 << 64)
    if not uniform:
        far = rng.choice([far, 1 << 63, 1 << rng.randrange(22, 64)])
    msgs = [random_message(rng) for _ in range(rng.randint(0, 4))]
    return moldudp64.encode_packet(session, far, msgs)


def malformed_frame(rng: random.Random, cfg: RxConfig, kind: str) -> bytes:
    line = rng.randrange(2)
    if kind == "junk":
        return junk_frame(rng, cfg)
    if kind == "random_bytes":
        return rng.randbytes(rng.choice([rng.randint(1, 64), rng.randint(1, 1514),
                                         rng.randint(1, 9018)]))
    if kind == "random_udp":
        return feed_frame(cfg, line, rng.randbytes(rng.randint(0, 400)), rng,
                          udp_checksum=rng.random() < 0.5)
    if kind == "forged_header":
        if rng.random() < 0.5:
            return feed_frame(cfg, line, forged_packet(rng, CLEAN_SESSION, uniform=True), rng)
        return feed_frame(cfg, line, forged_packet(rng, rng.randbytes(10)), rng)
    if kind == "flipped":
        fr = bytearray(feed_frame(cfg, line, forged_packet(rng, rng.randbytes(10)), rng,
                                  udp_checksum=True))
        for _ in range(rng.randint(1, 3)):
            fr[rng.randrange(len(fr))] ^= 1 << rng.randrange(8)
        return bytes(fr)
    if kind == "cut":
        fr = feed_frame(cfg, line, forged_packet(rng, CLEAN_SESSION, uniform=True), rng)
        return fr[:rng.randint(1, len(fr))]
    if kind == "wrong_source":
        return feed_frame(cfg, line, moldudp64.encode_packet(CLEAN_SESSION, 1, [
            random_message(rng)]), rng, src_ip="10.0.0.9")
    assert kind == "ctl"
    return frames.build_udp_frame(cfg.ctl_ip, cfg.ctl_port, rng.randbytes(rng.randint(1, 80)))


def probe_frame(cfg: RxConfig, k: int) -> bytes:
    """A control datagram that must come out of the path unchanged."""
    return frames.build_udp_frame(cfg.ctl_ip, cfg.ctl_port, b"probe %d" % k)


def clean_feed(rng: random.Random, cfg: RxConfig, messages: int) -> list[bytes]:
    scenario = FeedScenario(rng, cfg, messages=messages, loss_both=0.0, junk=0.0,
                            broken=0.0, reorder=0.0, session_change_at=None)
    return scenario.frames()


@dataclass
class Result:
    width: int
    malformed: int = 0
    kinds: Counter = field(default_factory=Counter)
    clean_frames: int = 0
    clean_messages: int = 0
    forged_in_clean: int = 0
    wedges: int = 0
    miscounted_batches: int = 0
    decoded: int = 0
    held: int = 0
    matches_model: bool = False
    events_match: bool = False
    counters: dict = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        d = dict(vars(self))
        d["kinds"] = dict(self.kinds)
        return d


def outcomes(eth: dict) -> int:
    return sum(v for k, v in eth.items() if k not in ETH_FLAGS)


def run(width: int, n_frames: int, messages: int, forged: float, seed: int,
        batch: int = 20_000, symbols: int = 64, locates: int = 1024,
        progress: bool = False) -> Result:
    rng = random.Random(seed)
    cfg = campaign_config()
    res = Result(width)
    start = time.perf_counter()
    sim = RxSim(data_width=width, symbols=symbols, locates=locates, config=cfg)
    model = RxPathModel(cfg, locates=locates)
    probes = 0
    while res.malformed < n_frames:
        kinds = [rng.choice(MALFORMED) for _ in range(min(batch, n_frames - res.malformed))]
        burst = [malformed_frame(rng, cfg, k) for k in kinds]
        res.kinds.update(kinds)
        res.malformed += len(burst)
        burst.append(probe_frame(cfg, probes))
        probes += 1
        before = sim.counters()["eth_rx"]
        ctl_before = len(sim.ctl)
        sim.feed(burst, idle=rng.choice([0, 1, 3]))
        for fr in burst:
            model.process(fr)
        after = sim.counters()
        eth = after["eth_rx"]
        if (eth["frames"] - before["frames"] != len(burst) or
                outcomes(eth) - outcomes(before) != len(burst) or
                after["moldudp"]["packets"] != eth["feed_a"] + eth["feed_b"]):
            res.miscounted_batches += 1
        if not sim.ctl[ctl_before:] or sim.ctl[-1].payload != b"probe %d" % (probes - 1):
            res.wedges += 1
        sim.ctl.clear()
        model.ctl.clear()
        if progress:
            print(f"{res.malformed:,} frames, {time.perf_counter() - start:.0f} s, "
                  f"wedges {res.wedges}, miscounted {res.miscounted_batches}, "
                  f"session {model.mold.session}", file=sys.stderr, flush=True)

    clean = clean_feed(rng, cfg, messages)
    mixed = []
    for fr in clean:
        mixed.append(fr)
        if rng.random() < forged:
            res.forged_in_clean += 1
            mixed.append(rng.choice([
                lambda: feed_frame(cfg, rng.randrange(2),
                                   forged_packet(rng, CLEAN_SESSION, uniform=True)),
                lambda: junk_frame(rng, cfg),
                lambda: frames.build_udp_frame(*_dst_of(fr), frames.parse_udp_frame(fr).payload,
                                               src_ip="10.0.0.9")])())
    res.clean_frames = len(clean)
    events_before = len(sim.events)
    model_events_before = len(model.events)
    messages_before = sim.counters()["moldudp"]["messages"]
    gap_messages_before = sim.counters()["moldudp"]["gap_messages"]
    sim.feed(mixed, idle=1)
    for fr in mixed:
        model.process(fr)
    sim.close()
    fresh = RxPathModel(cfg, locates=locates)
    for fr in clean:
        fresh.process(fr)
    counters = sim.counters()
    res.clean_messages = fresh.mold.counters["messages"]
    res.decoded = counters["moldudp"]["messages"] - messages_before
    # a junk session left provisional by the malformed frames costs the clean session's
    # first packet (held aside until the second confirms it): reported in the gap
    res.held = counters["moldudp"]["gap_messages"] - gap_messages_before - \
        fresh.mold.counters["gap_messages"]
    got = sim.events[events_before:]
    res.matches_model = (sim.events == model.events and sim.gaps == model.gaps and
                         all(counters[s] == v for s, v in model.counters().items()))
    res.events_match = got == [e for e in fresh.events if e.seq > res.held] and \
        len(model.events) - model_events_before == len(got)
    res.counters = {"eth_rx": counters["eth_rx"], "moldudp": counters["moldudp"],
                    "fifo": counters["fifo"]}
    res.seconds = round(time.perf_counter() - start, 1)
    return res


def _dst_of(frame: bytes) -> tuple[int, int]:
    dg = frames.parse_udp_frame(frame)
    return dg.dst_ip, dg.dst_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000,
                        help="malformed and random frames (default 1,000,000)")
    parser.add_argument("--messages", type=int, default=50_000,
                        help="ITCH messages in the clean feed after them")
    parser.add_argument("--forged", type=float, default=0.05,
                        help="share of forged frames mixed into the clean feed")
    parser.add_argument("--width", type=int, choices=(8, 64), default=64)
    parser.add_argument("--seed", type=int, default=25)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    res = run(args.width, args.frames, args.messages, args.forged, args.seed, progress=True)
    if args.json:
        print(json.dumps(res.as_dict(), indent=2))
        return
    eth, mold = res.counters["eth_rx"], res.counters["moldudp"]
    print(f"W = {res.width}: {res.malformed:,} malformed/random frames "
          f"({', '.join(f'{k} {v:,}' for k, v in sorted(res.kinds.items()))})")
    print(f"  wedges {res.wedges}, batches miscounted {res.miscounted_batches}")
    print(f"  clean feed: {res.clean_frames:,} frames + {res.forged_in_clean:,} forged mixed "
          f"in; {res.decoded:,} of {res.clean_messages:,} messages decoded "
          f"({100 * res.decoded / max(1, res.clean_messages):.2f} %), {res.held:,} held "
          f"aside at the session start and reported in a gap; events as a fresh model's: "
          f"{res.events_match}; RTL = model: {res.matches_model}")
    print("  eth_rx: " + ", ".join(f"{k} {v:,}" for k, v in eth.items() if v))
    print("  moldudp: " + ", ".join(f"{k} {v:,}" for k, v in mold.items() if v))
    print(f"  fifo: {res.counters['fifo']}; {res.seconds} s")


if __name__ == "__main__":
    main()
