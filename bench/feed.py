"""The software feed handler's throughput (``python -m tick2trade.bench.feed``, part of
``make bench``): ITCH messages per second from MoldUDP64 packets into the full-depth book
and ``MarketData``, beside itch-book (PyPI; a C++ core) building the same book from the
same messages in the same run. Figures, never pass/fail.

How: the venue's synthetic flow (``sim/venue/flow.py``, the eight default instruments,
adds with attribution as the live venue sends them) publishes at least ``--messages``
ITCH messages into MoldUDP64 packets of up to 1400 bytes, in memory, before anything is
timed. Then, best of ``--repeats`` runs each, on one core and a fresh handler every run:

- ``FeedHandler.process`` on every packet of line A into a ``MarketData``, published
  every ``burst`` packets as the receive thread does with a backlog (the handler as
  ``t2t api`` runs it, minus the socket reads);
- the same with lines A and B interleaved, so every other packet is a duplicate;
- line A published after every packet (the thread with no backlog);
- line A into a market that keeps nothing (the handler's own decode and book);
- itch-book: the messages as an ITCH day file (2-byte length before each) read by
  ``itch_book.open(...).batches(tables=("bbo", "trades"))``, which builds the whole book
  to give the top-of-book and trade tables.

Both books are then compared (the best bid and offer of every instrument, and the number
of live orders), so the two figures are for the same work.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import struct
import tempfile
import time
from pathlib import Path

import itch_book

from tick2trade.host.services.feed import FeedHandler
from tick2trade.host.services.marketdata import MarketData
from tick2trade.sim.venue.config import VenueConfig
from tick2trade.sim.venue.flow import Flow
from tick2trade.sim.venue.run import make_venue

DAY = dt.date(2026, 1, 2)


class NullMarket:
    """A market that keeps nothing: what the handler costs without the store."""

    def apply(self, *args, **kw) -> None:
        pass

    def trade(self, *args, **kw) -> None:
        pass

    def snapshot(self, *args, **kw) -> None:
        pass


def venue_feed(messages: int, seed: int = 1) -> tuple[list[bytes], list[bytes]]:
    """(packets, messages): the venue's feed of at least ``messages`` ITCH messages, the
    trading day still open (so the books are full when it ends)."""
    cfg = VenueConfig(seed=seed)
    clock = [34_200_000_000_000]
    venue = make_venue(cfg, clock=lambda: clock[0])
    pub = venue.publisher
    flow = Flow(venue, seed=cfg.seed, rate=cfg.rate, participants=cfg.participants,
                start_mid=cfg.mids)
    packets: list[bytes] = []
    pub.start_of_day(clock[0])
    while len(pub.log) < messages:
        clock[0] = 34_200_000_000_000 + int(flow.now * 1e9)
        flow.step()
        packets += pub.packets()
    packets += pub.flush()
    return packets, list(pub.log)


def best(fn, repeats: int) -> tuple[float, object]:
    seconds, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - start
        if elapsed < seconds:
            seconds, result = elapsed, out
    return seconds, result


def handler_run(packets: list[bytes], market_factory, burst: int) -> FeedHandler:
    """The packets through a fresh handler as its receive thread hands them over: each
    published on its own (``burst`` 1), or ``burst`` at a time, as from a backlog."""
    handler = FeedHandler(market_factory(), [], retransmit=None)
    process, publish = handler.process, handler.publish
    for k, payload in enumerate(packets, 1):
        process(payload, check=False, publish=False)
        if k % burst == 0:
            publish()
    publish()
    return handler


def itch_book_run(path: Path) -> tuple[dict, dict]:
    """itch-book over the day file: (top of book by locate, its stats)."""
    feed = itch_book.open(str(path), date=DAY, price_type="fixed")
    tops: dict[int, tuple] = {}
    for batch in feed.batches(tables=("bbo", "trades"), rows=1 << 20):
        bbo = batch.bbo
        for k in range(len(bbo["locate"])):
            tops[int(bbo["locate"][k])] = (int(bbo["bid_px"][k]), int(bbo["bid_sz"][k]),
                                           int(bbo["ask_px"][k]), int(bbo["ask_sz"][k]))
    return tops, feed.stats


def same_book(handler: FeedHandler, tops: dict, stats: dict, locates: dict) -> bool:
    if stats["live_orders"] != handler.live_orders():
        return False
    for locate, symbol in locates.items():
        book = handler.book(symbol)
        bid = book["bids"][0][:2] if book["bids"] else (0, 0)
        ask = book["asks"][0][:2] if book["asks"] else (0, 0)
        if tops.get(locate, (0, 0, 0, 0)) != (*bid, *ask):
            return False
    return True


def run(messages: int, repeats: int, seed: int) -> dict:
    packets, log = venue_feed(messages, seed)
    count = len(log)
    both = [p for pair in zip(packets, packets, strict=True) for p in pair]
    out = {"messages": count, "packets": len(packets),
           "message_bytes": sum(len(m) for m in log)}
    names = []
    burst = FeedHandler.__init__.__kwdefaults__["burst"]
    for name, feed, factory, n in (
            ("handler, line A", packets, MarketData, burst),
            ("handler, lines A and B", both, MarketData, 2 * burst),
            ("handler, line A, 1 packet a time", packets, MarketData, 1),
            ("handler, line A, no store", packets, NullMarket, burst)):
        seconds, handler = best(lambda f=feed, m=factory, b=n: handler_run(f, m, b),
                                repeats)
        names.append(name)
        out[name] = {"seconds": seconds, "messages_per_second": count / seconds,
                     "book_updates": handler.counters()["book_updates"],
                     "trades": handler.counters()["trades"]}
        if name == "handler, line A":
            reference = handler
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "venue.itch"
        path.write_bytes(b"".join(struct.pack("!H", len(m)) + m for m in log))
        seconds, (tops, stats) = best(lambda: itch_book_run(path), repeats)
    out["itch-book"] = {"seconds": seconds, "messages_per_second": count / seconds}
    locates = {i.locate: i.symbol for i in VenueConfig().instruments}
    out["same_book"] = same_book(reference, tops, stats, locates)
    out["ratio"] = (out["itch-book"]["messages_per_second"]
                    / out["handler, line A"]["messages_per_second"])
    out["runs"] = [*names, "itch-book"]
    out["burst"] = burst
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tick2trade.bench.feed",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300_000,
                        help="ITCH messages of venue feed (at least; default 300000)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--seed", type=int, default=1, help="the venue flow's seed")
    parser.add_argument("--json", action="store_true", help="the figures as JSON")
    args = parser.parse_args()
    out = run(args.messages, args.repeats, args.seed)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"venue feed: {out['messages']:,} ITCH messages in {out['packets']:,} MoldUDP64 "
          f"packets (seed {args.seed}), best of {args.repeats}; published every "
          f"{out['burst']} packets unless said")
    for name in out["runs"]:
        r = out[name]
        print(f"  {name:<34} {r['messages_per_second']:>12,.0f} msg/s  "
              f"({r['seconds'] * 1e3:,.0f} ms)")
    print(f"  itch-book / handler (line A): {out['ratio']:.1f}x; same book: "
          f"{'yes' if out['same_book'] else 'NO'}")


if __name__ == "__main__":
    main()
