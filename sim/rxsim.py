"""The receive path (``gateware.rx_path.RxPath``) as a Verilator model with a Python face.

``RxSim`` speaks the same language as ``models.rx.rx_path.RxPathModel``: frames in; ITCH events,
gap reports, control datagrams and counters out, so the two can be compared field by
field and counter by counter, and ``t2t replay`` can run captures through the gateware.

Every port value is encoded and every payload decoded with the layouts of RxPath's own
signature (``event_layout``, ``GAP_LAYOUT``, ``counters_layout``, ...): no bit position
is written here.
"""

from __future__ import annotations

import functools
import time

from amaranth.lib import data

from tick2trade.protocol import itch
from tick2trade.gateware.models.rx.eth_rx import CtlDatagram, RxConfig
from tick2trade.gateware.models.rx.moldudp import Gap
from tick2trade.gateware.models.rx.rx_path import EVENT_DEPTH

from tick2trade.sim import verilator

TOP = "rx_path"


@functools.cache
def _rx_path(data_width: int, symbols: int, locates: int, event_depth: int, gap_depth: int):
    """One RxPath per configuration: the build and the layouts come from the same one."""
    from tick2trade.gateware.rx.rx_path import RxPath

    return RxPath(data_width, symbols=symbols, locates=locates, event_depth=event_depth,
                  gap_depth=gap_depth)


@functools.cache
def build_rx_path(data_width: int = 64, symbols: int = 64, locates: int = 16384,
                  event_depth: int = EVENT_DEPTH, gap_depth: int = 16) -> verilator.Build:
    """The Verilator build of one RxPath configuration (cached on disk and per process)."""
    rx = _rx_path(data_width, symbols, locates, event_depth, gap_depth)
    name = f"{TOP}-w{data_width}-s{symbols}-l{locates}-e{event_depth}-g{gap_depth}"
    return verilator.build(rx, name, top=TOP)


def member_layout(component, name: str) -> data.Layout:
    """The layout of a port, or of a stream's payload, from the component's signature."""
    member = component.signature.members[name]
    if member.is_signature:
        return member.signature.members["payload"].shape
    return member.shape


def _bits(layout: data.Layout, value) -> int:
    return layout.const(value).as_value().value


class RxSim(verilator.ModelOwner):
    """The receive path in Verilator, fed whole frames.

    Parameters
    ----------
    data_width, symbols, locates, event_depth, gap_depth
        As for ``RxPath``; each distinct combination is a separate (cached) build.
    config : RxConfig
        Feed filters, control port, watch list and host-written locates; written into
        the configuration ports after reset.

    Events, gaps and control datagrams accumulate in ``events``, ``gaps`` and ``ctl``
    (``take_events()`` hands them over and forgets them, for long replays). Counters
    are 32 bits in the gateware (``moldudp.gap_messages``: 64, saturating);
    ``counters()`` extends them across wrap-around, as long as one call of ``feed``
    does not count 2**32 of anything.
    """

    def __init__(self, data_width: int = 64, symbols: int = 64, locates: int = 16384,
                 config: RxConfig | None = None, *, event_depth: int = EVENT_DEPTH,
                 gap_depth: int = 16):
        self.data_width, self.symbols, self.locates = data_width, symbols, locates
        self.config = config if config is not None else RxConfig.default()
        rx = _rx_path(data_width, symbols, locates, event_depth, gap_depth)
        self._layouts = {name: member_layout(rx, name) for name in (
            "mac", "feeds", "feed_src", "watch", "loc_wr", "events", "gaps", "ctl", "counters")}
        self.build = build_rx_path(data_width, symbols, locates, event_depth, gap_depth)
        self._model = verilator.Model(self.build)
        self._model.bind_input("mac", self._layouts["mac"])
        for stream in ("events", "gaps", "ctl"):
            self._model.bind_output(stream)
        self.events: list[itch.Event] = []
        self.gaps: list[Gap] = []
        self.ctl: list[CtlDatagram] = []
        self._ctl_open: bytes | None = None
        self.cycles = 0  # cycles spent on frames (not on configuration or draining)
        self.sim_seconds = 0.0  # wall time inside the model
        self._counter_raw: dict[tuple[str, str], int] = {}
        self._counter_total: dict[tuple[str, str], int] = {}
        self._model.reset()
        self._configure(self.config)
        self._read_counters()

    # -- configuration ---------------------------------------------------------------

    def _configure(self, cfg: RxConfig) -> None:
        m, lay = self._model, self._layouts
        max_feeds = lay["feeds"].length
        if len(cfg.feeds) > max_feeds:
            raise ValueError(f"{len(cfg.feeds)} feed filters; the gateware has {max_feeds}")
        if len(cfg.watch) > self.symbols:
            raise ValueError(f"{len(cfg.watch)} watched stocks; this build has "
                             f"{self.symbols} symbols")
        feeds = [{"enable": 1, "line": f.line, "group": f.group, "port": f.port}
                 for f in cfg.feeds]
        m["feeds"] = _bits(lay["feeds"], feeds + [{}] * (max_feeds - len(feeds)))
        m["feed_src"] = _bits(lay["feed_src"], list(cfg.feed_src))
        m["seq_window"] = cfg.seq_window
        m["udp_verify"] = int(cfg.udp_verify)
        m["hold_packets"] = cfg.hold_packets
        m["hold_cycles"] = cfg.hold_cycles
        m["ctl_ip"] = cfg.ctl_ip
        m["ctl_port"] = cfg.ctl_port
        watch = [{"enable": 1, "stock": itch.stock_int(s)} for s in cfg.watch]
        m["watch"] = _bits(lay["watch"], watch + [{}] * (lay["watch"].length - len(watch)))
        m["reset_session"] = 0
        m["loc_wr"] = 0
        for locate, sym in cfg.locate_map.items():
            if not 0 <= sym < self.symbols:
                raise ValueError(f"locate {locate} -> symbol {sym}: this build has "
                                 f"{self.symbols} symbols")
            if not 0 <= locate < self.locates:
                continue  # beyond the table: never traded (as in the model)
            # the decoder takes at most one host write every two cycles
            m["loc_wr"] = _bits(lay["loc_wr"], {"stb": 1, "locate": locate, "sym": sym,
                                                "traded": 1})
            m.step(1)
            m["loc_wr"] = 0
            m.step(1)

    def reset_session(self) -> None:
        """Forget the MoldUDP64 session (the next packet's session is adopted)."""
        self._model["reset_session"] = 1
        self._model.step(1)
        self._model["reset_session"] = 0

    # -- traffic ---------------------------------------------------------------------

    def feed(self, frames: list[bytes], idle: int = 0) -> None:
        """Run ``frames`` (without FCS) through the path, ``idle`` cycles between frames,
        and let the pipeline empty. Empty frames are skipped (there is nothing to send)."""
        frames = [f for f in frames if f]
        start = time.perf_counter()
        self.cycles += self._model.run_frames(frames, idle)
        self._model.drain()
        self.sim_seconds += time.perf_counter() - start
        self._collect()
        self._read_counters()

    def release_held(self) -> None:
        """At the end of the input: run idle until a run of held packets (packets that
        came ahead of a hole) has timed out (``hold_cycles``), so that its events come
        out and its hole is reported — what the model's ``expire`` does."""
        start = time.perf_counter()
        self.cycles += self._model.drain(quiet=self.config.hold_cycles + 64,
                                         limit=2 * self.config.hold_cycles + 1024)
        self.sim_seconds += time.perf_counter() - start
        self._collect()
        self._read_counters()

    def take_events(self) -> list[itch.Event]:
        events, self.events = self.events, []
        return events

    def _collect(self) -> None:
        m, lay = self._model, self._layouts
        beats = m.take("events")
        if len(beats):
            cols = verilator.decode_columns(lay["events"], beats)
            names = list(cols)
            values = [cols[n].tolist() for n in names]
            for row in zip(*values):
                fields = dict(zip(names, row))
                fields["type"] = chr(fields["type"])
                self.events.append(itch.Event(**fields))
        beats = m.take("gaps")
        if len(beats):
            cols = verilator.decode_columns(lay["gaps"], beats)
            for i in range(len(beats)):
                session = cols["session"][i].to_bytes(10, "big")
                self.gaps.append(Gap(int(cols["line"][i]), session, int(cols["first"][i]),
                                     int(cols["count"][i])))
        beats = m.take("ctl")
        if len(beats):
            self._collect_ctl(verilator.decode_columns(lay["ctl"], beats), len(beats))

    def _collect_ctl(self, cols: dict, n: int) -> None:
        lanes = self.data_width // 8
        for i in range(n):
            raw = int(cols["data"][i]).to_bytes(lanes, "little")
            be = int(cols["be"][i])
            chunk = bytes(raw[k] for k in range(lanes) if be >> k & 1)
            self._ctl_open = chunk if cols["first"][i] else (self._ctl_open or b"") + chunk
            if cols["last"][i]:
                self.ctl.append(CtlDatagram(int(cols["src_mac"][i]).to_bytes(6, "big"),
                                            int(cols["src_ip"][i]), int(cols["src_port"][i]),
                                            self._ctl_open))
                self._ctl_open = None

    # -- counters --------------------------------------------------------------------

    def _read_counters(self) -> None:
        raw = self._model["counters"]
        for path, (offset, width) in verilator.field_offsets(self._layouts["counters"]).items():
            key = tuple(path.split("."))
            mask = (1 << width) - 1
            value = (raw >> offset) & mask
            delta = (value - self._counter_raw.get(key, 0)) & mask
            self._counter_raw[key] = value
            self._counter_total[key] = self._counter_total.get(key, 0) + delta

    def counters(self) -> dict[str, dict[str, int]]:
        """{stage: {counter: value}}: the stages and names of ``RxPathModel.counters()``
        plus ``fifo`` (``event_overflow``, ``gap_overflow``)."""
        out: dict[str, dict[str, int]] = {}
        for (stage, name), value in self._counter_total.items():
            out.setdefault(stage, {})[name] = value
        return out

    @property
    def cycles_per_second(self) -> float:
        return self.cycles / self.sim_seconds if self.sim_seconds else 0.0

