"""Replaying a capture through the receive path's Verilator model (``t2t replay``).

A capture is read with scapy's ``RawPcapReader`` (pcap or pcapng, Ethernet link type
only, plain or gzip); a NASDAQ BinaryFILE (``protocol.itchfile``, plain or gzip) is
streamed and packed into MoldUDP64 frames on lines A and B. The frames are cut into
batches and fed to :class:`sim.rxsim.RxSim`; the events each batch yields are handed to
a callback, so an input of any length runs in bounded memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tick2trade.protocol import itch, itchfile
from tick2trade.gateware.models.book import BUY, SELL, apply_update
from tick2trade.protocol.moldudp64 import DEFAULT_LINE_A, DEFAULT_LINE_B
from tick2trade.gateware.models.rx.eth_rx import RxConfig
from tick2trade.sim.rxsim import RxSim

LINKTYPE_ETHERNET = 1
BATCH_FRAMES = 4096


class CaptureError(ValueError):
    """The capture cannot be replayed (not a capture, or not Ethernet)."""


@dataclass
class ReplayResult:
    records: int = 0  # capture records read
    empty_records: int = 0  # zero-length records, not sent
    events: int = 0
    cycles: int = 0
    sim_seconds: float = 0.0
    setup_seconds: float = 0.0  # Verilog, build (if not cached), reset and configuration
    build_seconds: float = 0.0  # of which building; 0.0 when the build was cached
    seconds: float = 0.0  # running the capture
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    gaps: list = field(default_factory=list)
    ctl_datagrams: int = 0


def replay_config(line_a: tuple[str, int] = DEFAULT_LINE_A,
                  line_b: tuple[str, int] = DEFAULT_LINE_B, watch: tuple[str, ...] = (),
                  all_symbols: bool | None = None, symbols: int = 64,
                  locates: int = 16384) -> RxConfig:
    """The configuration ``t2t replay`` runs with.

    Watched stocks become symbols 0, 1, ... as their Stock Directory messages arrive.
    With ``all_symbols`` (the default when nothing is watched) the host also writes every
    locate of the table as traded, symbol ``locate % symbols``, so a capture without
    directory messages still yields events; the cost is 2 cycles per locate at start-up.
    """
    if all_symbols is None:
        all_symbols = not watch
    cfg = RxConfig.default(line_a=line_a, line_b=line_b, watch=watch)
    if all_symbols:
        cfg.locate_map = {loc: loc % symbols for loc in range(1, locates)}
    return cfg


PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
               b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a")
FILE_SESSION = "ITCHFILE01"


def input_kind(path: str | Path) -> str:
    """``"pcap"`` (pcap or pcapng, plain or gzip) or ``"itch"`` (a NASDAQ BinaryFILE,
    plain or gzip), from the file's first bytes; CaptureError for anything else."""
    try:
        head = itchfile.Reader(Path(path)).head(8)
    except itchfile.FileError as exc:
        raise CaptureError(f"{path}: {exc}") from None
    if head[:4] in PCAP_MAGICS:
        return "pcap"
    if itchfile.looks_like(head):
        return "itch"
    raise CaptureError(f"{path}: not a pcap or pcapng capture nor a NASDAQ ITCH 5.0 "
                       f"BinaryFILE (plain or .gz)")


def read_frames(path: str | Path, config: RxConfig | None = None, *,
                session: str = FILE_SESSION, max_payload: int = itchfile.DEFAULT_MAX_PAYLOAD,
                window_ns: int = 0, lines: str = "AB") -> Iterator[tuple[bytes, int]]:
    """(frame, bytes of the file consumed so far) per frame. A capture's frames are its
    records; a BinaryFILE's messages are packed into MoldUDP64 packets
    (``protocol.itchfile.Packer``: ``max_payload``, ``window_ns``) and each packet sent
    as a frame to every line of ``lines`` (``config``'s groups), A before B, as the venue
    simulator publishes. The file is opened and checked before this returns."""
    if input_kind(path) == "itch":
        return _file_frames(Path(path), config or RxConfig.default(), session,
                            max_payload, window_ns, lines)
    return _capture_frames(path)


def _file_frames(path: Path, config: RxConfig, session: str, max_payload: int,
                 window_ns: int, lines: str) -> Iterator[tuple[bytes, int]]:
    from tick2trade.gateware.models.rx.eth_rx import feed_frame

    if not lines or set(lines) - set("AB"):
        raise ValueError(f"lines {lines!r}: A, B or AB")
    reader = itchfile.Reader(path)
    line_numbers = ["AB".index(x) for x in lines]

    def frames() -> Iterator[tuple[bytes, int]]:
        try:
            for packet in itchfile.packets(iter(reader), session, max_payload=max_payload,
                                           window_ns=window_ns):
                for line in line_numbers:
                    yield feed_frame(config, line, packet), reader.consumed
        except itchfile.FileError as exc:
            raise CaptureError(str(exc)) from None

    return frames()


def _capture_frames(path: str | Path) -> Iterator[tuple[bytes, int]]:
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapReader

    try:
        reader = RawPcapReader(str(path))
    except Scapy_Exception as exc:
        raise CaptureError(f"{path}: not a pcap or pcapng capture ({exc})") from None
    linktype = getattr(reader, "linktype", None)
    if linktype is not None and linktype != LINKTYPE_ETHERNET:
        reader.close()
        raise CaptureError(f"{path}: link type {linktype}; only Ethernet "
                           f"({LINKTYPE_ETHERNET}) captures can be replayed")

    def records() -> Iterator[tuple[bytes, int]]:
        with reader:
            for number, (frame, meta) in enumerate(reader, 1):
                kind = getattr(meta, "linktype", LINKTYPE_ETHERNET)
                if kind != LINKTYPE_ETHERNET:
                    raise CaptureError(f"{path}: record {number} has link type {kind}; "
                                       f"only Ethernet ({LINKTYPE_ETHERNET}) can be replayed")
                yield frame, reader.f.tell()

    return records()


def replay(frames: Iterable[tuple[bytes, int]], config: RxConfig, *, data_width: int = 64,
           symbols: int = 64, locates: int = 16384,
           on_events: Callable[[list[itch.Event]], None],
           on_progress: Callable[[int], None] | None = None,
           batch_frames: int = BATCH_FRAMES) -> ReplayResult:
    """Run every frame of a capture (``read_frames``) through the receive path.

    ``on_events`` gets each batch's events in order; ``on_progress`` the capture bytes
    read after each batch.
    """
    result = ReplayResult()
    start = time.perf_counter()
    with RxSim(data_width, symbols, locates, config) as sim:
        result.build_seconds = sim.build.seconds
        result.setup_seconds = time.perf_counter() - start
        start = time.perf_counter()
        batch: list[bytes] = []
        done = 0

        def flush() -> None:
            sim.feed(batch)
            batch.clear()
            events = sim.take_events()
            result.events += len(events)
            on_events(events)
            if on_progress:
                on_progress(done)

        for frame, done in frames:
            result.records += 1
            if not frame:
                result.empty_records += 1
                continue
            batch.append(frame)
            if len(batch) >= batch_frames:
                flush()
        flush()
        # packets held at the end of the capture (ahead of a hole nothing filled) time
        # out and come out, the hole reported
        sim.release_held()
        flush()
        result.cycles, result.sim_seconds = sim.cycles, sim.sim_seconds
        result.counters = sim.counters()
        result.gaps = list(sim.gaps)
        result.ctl_datagrams = len(sim.ctl)
    result.seconds = time.perf_counter() - start
    return result


class BookReplay:
    """The book stage behind the receive path: events in, and a consumer's copy of every
    symbol's top N rebuilt from the book's update stream, as the host would keep it.

    The receive path and the book are separate Verilator models here, joined per batch
    (in the gateware a stream with backpressure joins them). Symbols are named from the
    Stock Directory events seen; a symbol that carries more than one locate (with
    ``--all-symbols`` and locates beyond the build's symbols) cannot be named and is
    reported in ``shared``.
    """

    BOOK_EVENTS = frozenset("AFECXDU")

    def __init__(self, symbols: int, **params):
        from tick2trade.sim.booksim import BookSim

        self.sim = BookSim(symbols, **params)
        self.n = self.sim.n
        self.tops: dict[tuple[int, int], list] = {}
        self.names: dict[int, str] = {}  # sym -> stock, from directory events
        self.locates: dict[int, set[int]] = {}  # sym -> locates of its book events

    def feed(self, events: list[itch.Event]) -> None:
        for e in events:
            if e.type == "R":
                self.names.setdefault(e.sym, itch.stock_str(e.stock))
            elif e.type in self.BOOK_EVENTS:
                self.locates.setdefault(e.sym, set()).add(e.locate)
        self.sim.feed(events)
        for up in self.sim.take_updates():
            keys = ([k for k in self.tops if up.all_syms or k[0] == up.sym]
                    if up.action == "clear" else [(up.sym, up.side)])
            for key in keys:
                self.tops[key] = apply_update(self.tops.get(key, []), up, self.n)

    @property
    def shared(self) -> dict[int, list[int]]:
        return {s: sorted(locs) for s, locs in self.locates.items() if len(locs) > 1}

    def name(self, sym: int) -> str:
        if sym in self.shared:
            return f"SYM{sym}"
        if sym in self.names:
            return self.names[sym]
        return f"LOCATE{next(iter(self.locates[sym]))}"

    def books(self) -> dict[str, dict[str, list[list[int]]]]:
        """Every symbol that had book events: {"SYMBOL": {"bids": [[price, shares,
        orders], ...], "asks": [...]}}, best first, prices in 1/10000."""
        return {self.name(sym): {
            "bids": [list(lv) for lv in self.tops.get((sym, BUY), [])],
            "asks": [list(lv) for lv in self.tops.get((sym, SELL), [])],
        } for sym in sorted(self.locates)}

    def close(self) -> None:
        self.sim.close()


@dataclass
class TradeReplay:
    """What ``t2t replay --orders`` found: the order frames the gateware sent, each
    order with its latency, rejects by reason and every counter of the trade path."""

    frames: int = 0
    order_frames: list[bytes] = field(default_factory=list)
    orders: list[dict] = field(default_factory=list)
    rejects: dict[str, int] = field(default_factory=dict)
    decisions: int = 0
    records_lost: int = 0
    cycles: int = 0
    seconds: float = 0.0


def trade_replay(frames: Iterable[tuple[bytes, int]], config_text: str, *,
                 config_path: str = "<config>", data_width: int = 64,
                 on_progress: Callable[[int], None] | None = None,
                 batch_frames: int = 32) -> TradeReplay:
    """Run a capture through the whole top level (receive path, book, trade path) with
    the configuration ``config_text`` pushed first, as ``t2t config push`` would.

    Frames go in batches of ``batch_frames``; after each, the risk gate's decisions and
    the telemetry's per-order records are drained (their FIFOs hold 64, so a batch that
    produces more than that many orders loses records — counted in ``records_lost``). An order's
    ``tick_to_trade_cycles`` runs from the first beat of the frame that triggered it to
    its own first beat; ``decision_cycles`` from its event reaching the strategy (for a take
    decided on the fast path: its early event, in the beat of the message's last byte) to
    the risk gate's decision.
    """
    from tick2trade.protocol import ouch, soupbintcp
    from tick2trade.protocol.frames import parse_udp_frame
    from tick2trade.gateware.models.trade.risk import REASONS
    from tick2trade.host.config import parse, watch_size
    from tick2trade.sim.local_device import LocalDevice
    from tick2trade.sim.topsim import TopSim

    out = TradeReplay()
    start = time.perf_counter()
    sim = TopSim(data_width)
    dev = LocalDevice(sim)
    cfg = parse(config_text, config_path, symbols=watch_size(dev.map))
    cfg.push(dev)
    venue = (cfg.venue.get("venue_ip"), cfg.venue.get("venue_port"))
    records: dict[int, dict] = {}

    def flush(batch: list[bytes]) -> None:
        for frame in sim.run(batch, quiet=64):
            dg = parse_udp_frame(frame)
            if isinstance(dg, str) or (venue[0] is not None and
                                       (dg.dst_ip, dg.dst_port) != venue):
                continue
            out.order_frames.append(frame)
            packets, _rest = soupbintcp.split(dg.payload)
            for p in packets:
                msg = soupbintcp.decode(p)
                order = ouch.decode_inbound(msg["message"]) if msg["type"] == "U" else None
                if order and order["type"] == "O":
                    out.orders.append({"user_ref": order["user_ref"],
                                       "symbol": order["symbol"], "side": order["side"],
                                       "price": order["price"],
                                       "quantity": order["quantity"], "tif": order["tif"]})
        out.decisions += len(dev.drain_fifo("risk.decisions"))
        for rec in dev.drain_fifo("telemetry.records"):
            records[rec["user_ref"]] = rec
        batch.clear()

    batch: list[bytes] = []
    for frame, done in frames:
        if frame:
            out.frames += 1
            batch.append(frame)
        if len(batch) >= batch_frames:
            flush(batch)
            if on_progress:
                on_progress(done)
    flush(batch)
    counters = dev.read_many([f"risk.counters.{r}" for r in REASONS])
    out.rejects = {r: counters[f"risk.counters.{r}"] for r in REASONS if r != "pass"}
    for order in out.orders:
        rec = records.get(order["user_ref"])
        if rec is None:
            out.records_lost += 1
            order.update(tick_to_trade_cycles=None, decision_cycles=None)
            continue
        order.update(tick_to_trade_cycles=(rec["t_out"] - rec["t_in"]) & 0xFFFFFFFF,
                     decision_cycles=(rec["t_decide"] - rec["t_event"]) & 0xFFFFFFFF)
    out.cycles = sim.cycles
    sim.close()
    out.seconds = time.perf_counter() - start
    return out
