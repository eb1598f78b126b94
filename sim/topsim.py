"""The whole top level (``gateware.top.Top``) as a Verilator model: Ethernet frames in on
the MAC RX port, whole frames out of the MAC TX port, per batch.

The C ABI of ``sim/harness.cpp`` drives a batch of frames into ``mac_rx`` one beat per
cycle and captures every beat of ``mac_tx`` (its ``ready`` held high, as a MAC that
always takes a frame: control replies, events and order frames); Python is called once
per batch and reassembles the frames from the captured beats
(``models.stream.beats_to_frames``). Layouts come from Top's own signature.
"""

from __future__ import annotations

import functools
import time

from tick2trade.gateware.models.stream import beats_to_frames
from tick2trade.gateware.models.rx.eth_rx import RxConfig

from tick2trade.sim import verilator
from tick2trade.sim.control_frames import HOST, Endpoint, to_device, udp_payload
from tick2trade.sim.rxsim import member_layout

TOP = "top"
# Cycles without an output beat after which a control request has certainly been
# answered: a 32-op request is walked one byte per cycle (about 650 cycles) before its
# reply frame starts to leave.
CONTROL_QUIET = 1024
REPLY_POLL = 64


@functools.cache
def _top(data_width: int, symbols: int, locates: int):
    from tick2trade.gateware.top import Top

    return Top(data_width, symbols=symbols, locates=locates, config=RxConfig.default())


@functools.cache
def build_top(data_width: int = 64, symbols: int = 64, locates: int = 16384) -> verilator.Build:
    """The Verilator build of one Top configuration (cached on disk and per process)."""
    return verilator.build(_top(data_width, symbols, locates),
                           f"{TOP}-w{data_width}-s{symbols}-l{locates}", top=TOP)


def top_map(data_width: int = 64, symbols: int = 64, locates: int = 16384):
    return _top(data_width, symbols, locates).map


class TopSim(verilator.ModelOwner):
    """The virtual FPGA: frames in, frames out.

    ``device`` is the control endpoint's address after reset (``RxConfig.default()``'s
    ``ctl_ip``:``ctl_port``); ``request`` wraps a control payload in a frame from ``HOST``
    to it. ``cycles`` counts every simulated cycle, ``sim_seconds`` the wall time spent
    inside the model.
    """

    def __init__(self, data_width: int = 64, symbols: int = 64, locates: int = 16384):
        self.data_width = data_width
        self.lanes = data_width // 8
        top = _top(data_width, symbols, locates)
        self.map = top.map
        cfg = RxConfig.default()
        self.device = Endpoint(bytes.fromhex("020000000002"), cfg.ctl_ip, cfg.ctl_port)
        self._layouts = {n: member_layout(top, n) for n in ("mac_rx", "mac_tx")}
        self.build = build_top(data_width, symbols, locates)
        self._model = verilator.Model(self.build)
        self._model.bind_input("mac_rx", self._layouts["mac_rx"])
        self._model.bind_output("mac_tx")
        self._beats: list[tuple] = []
        self.pending: list[bytes] = []  # frames from request() not addressed to the host
        self.cycles = 0
        self.sim_seconds = 0.0
        self._model.reset()

    def _timed(self, fn, *args) -> int:
        start = time.perf_counter()
        cycles = fn(*args)
        self.sim_seconds += time.perf_counter() - start
        self.cycles += cycles
        return cycles

    def run(self, frames: list[bytes], idle: int = 0, quiet: int = CONTROL_QUIET
            ) -> list[bytes]:
        """Drive ``frames`` into the MAC RX port, run until no output beat has come for
        ``quiet`` cycles, and return the whole frames the MAC TX port sent. The default
        is long enough for every frame the gateware has started to build (replies and
        event frames are built a byte per cycle before their first beat leaves)."""
        self.push(frames, idle)
        self._timed(self._model.drain, quiet)
        return self._collect()

    def push(self, frames: list[bytes], idle: int = 0) -> None:
        """Drive ``frames`` into the MAC RX port, ``idle`` cycles after each, and stop:
        the model's last cycle is the last frame's last beat (or its idle). What comes
        out stays for ``step``, ``until_frame`` or ``run``."""
        frames = [f for f in frames if f]
        if frames:
            self._timed(self._model.run_frames, frames, idle)

    def step(self, cycles: int) -> list[bytes]:
        """Let the clock run ``cycles`` with nothing arriving."""
        if cycles:
            self._timed(lambda n: self._model.step(n) or n, cycles)
        return self._collect()

    def until_frame(self, limit: int) -> tuple[int | None, int | None, list[bytes]]:
        """Step a cycle at a time until a frame has left whole, at most ``limit``
        cycles: (cycles to its first beat, cycles to its last beat, the frames), the
        cycle counts None when nothing or only part of a frame came. For latency
        figures; slow (a call into the model per cycle)."""
        first = None
        for t in range(1, limit + 1):
            self._timed(lambda: self._model.step(1) or 1)
            had = len(self._beats)
            ended = self._take_beats()
            if first is None and len(self._beats) > had:
                first = t
            if ended:
                return first, t, self._collect()
        return first, None, self._collect()

    def request(self, payload: bytes, host: Endpoint = HOST) -> list[bytes]:
        """Send one control payload; the UDP payloads of the frames sent back to ``host``
        (its reply, unless the request was dropped). Frames to anyone else (events) are
        kept in ``pending`` for the caller.

        The model runs in short drains until the reply has left, or until
        ``CONTROL_QUIET`` cycles have passed without one (a dropped request)."""
        replies: list[bytes] = []
        frames = [to_device(payload, self.device.ip, self.device.port, host)]
        waited = 0
        while not replies and waited < CONTROL_QUIET:
            out = self.run(frames, quiet=REPLY_POLL)
            waited = 0 if frames else waited + REPLY_POLL
            frames = []
            for frame in out:
                dg, data = udp_payload(frame)
                if dg is not None and dg.dst_ip == host.ip and dg.dst_port == host.port:
                    replies.append(data)
                else:
                    self.pending.append(frame)
        return replies

    def _take_beats(self) -> bool:
        """Move the MAC TX beats the model captured into ``_beats``; True if one of them
        ended a frame."""
        beats = self._model.take("mac_tx")
        if not len(beats):
            return False
        cols = verilator.decode_columns(self._layouts["mac_tx"], beats)
        self._beats += zip(cols["data"].tolist(), cols["be"].tolist(),
                           cols["first"].tolist(), cols["last"].tolist())
        return any(cols["last"].tolist())

    def _collect(self) -> list[bytes]:
        self._take_beats()
        # a frame cut by the end of a step() stays here until its last beat
        ends = [i for i, b in enumerate(self._beats) if b[3]]
        if not ends:
            return []
        done, _rest = beats_to_frames(self._beats[:ends[-1] + 1], self.lanes)
        del self._beats[:ends[-1] + 1]
        return done

    @property
    def cycles_per_second(self) -> float:
        return self.cycles / self.sim_seconds if self.sim_seconds else 0.0
