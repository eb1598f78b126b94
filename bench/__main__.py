"""Benchmarks (``make bench``): the receive path and the venue simulator. Figures, never
pass/fail. See bench/README.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tick2trade.protocol import moldudp64
from tick2trade.gateware.models.stream import min_message_frame_payload
from tick2trade.gateware.models.rx.eth_rx import LINE_A, RxConfig
from tick2trade.protocol.pcap import write_pcap
from tick2trade.sim.rxsim import RxSim, build_rx_path
from tick2trade.sim.toolchain import BUILD_ROOT
from tick2trade.testing.traffic import FeedScenario
from tick2trade.gateware.models.rx.eth_rx import feed_frame

WIDTH = 64
# the 12-byte inter-frame gap plus the 8-byte preamble, rounded up to whole 64-bit beats
IFG_BEATS = 3
FRAME_BYTES = 1400


def min_message_frames(frames: int) -> tuple[list[bytes], int]:
    """Frames of about FRAME_BYTES packed with 12-byte system events; (frames, per frame)."""
    cfg = RxConfig.default()
    overhead = len(feed_frame(cfg, LINE_A, moldudp64.encode_packet("BENCH", 1, [])))
    per_frame = (FRAME_BYTES - overhead) // (2 + 12)
    return [feed_frame(cfg, LINE_A, min_message_frame_payload(per_frame,
                                                              seq=1 + k * per_frame))
            for k in range(frames)], per_frame


def throughput(frames: int, idle: int) -> dict:
    """(a) back-to-back minimum-size messages at W=64: does every message come out?"""
    batch, per_frame = min_message_frames(frames)
    with RxSim(WIDTH, config=RxConfig.default()) as sim:
        sim.feed(batch, idle=idle)
        counters = sim.counters()
        messages = per_frame * frames
        out = len(sim.events)
        overflow = counters["fifo"]["event_overflow"]
        return {"idle": idle, "frame_bytes": len(batch[0]), "per_frame": per_frame,
                "messages": messages, "events": out, "cycles": sim.cycles,
                "cycles_per_message": sim.cycles / messages, "event_overflow": overflow,
                "kept_up": out == messages and overflow == 0
                and counters["itch"]["events"] == messages,
                "cycles_per_second": sim.cycles_per_second}


def capture(messages: int, seed: int = 1) -> tuple[Path, int]:
    """(b) the 1M-message capture: a FeedScenario on lines A and B (copies on both, a
    little loss, junk and heartbeats), written once and kept under build/bench/."""
    path = BUILD_ROOT / "bench" / f"feed-{messages}-{seed}.pcap"
    meta = path.with_suffix(".json")
    if not path.exists() or not meta.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        cfg = RxConfig.default()
        frames = FeedScenario(random.Random(seed), cfg, messages=messages, max_per_packet=40,
                              loss_a=0.01, loss_b=0.01, junk=0.01, broken=0.001,
                              reorder=0.0, heartbeat=0.01, locates=8192).frames()
        count = write_pcap(path.with_suffix(".part"), frames)
        path.with_suffix(".part").rename(path)
        meta.write_text(json.dumps({"frames": count}))
    return path, json.loads(meta.read_text())["frames"]


def replay_speed(path: Path, frames: int) -> dict:
    """(b) `t2t replay` on the capture, as a user runs it (a process of its own)."""
    out_dir = BUILD_ROOT / "bench"
    summary = out_dir / "replay-summary.json"
    t2t = Path(sys.executable).with_name("t2t")
    start = time.perf_counter()
    subprocess.run([str(t2t), "replay", str(path), "--events", str(out_dir / "events.jsonl"),
                    "--summary", str(summary)], check=True, capture_output=True)
    wall = time.perf_counter() - start
    (out_dir / "events.jsonl").unlink()
    s = json.loads(summary.read_text())
    messages = s["counters"]["moldudp"]["messages"]
    return {"frames": frames, "messages": messages, "events": s["events"],
            "seconds": s["seconds"], "wall": wall, "sim_seconds": s["sim_seconds"],
            "cycles": s["cycles"], "messages_per_second": messages / s["seconds"],
            "frames_per_second": frames / s["seconds"],
            "cycles_per_second": s["cycles"] / s["sim_seconds"]}


def top_speed(idle_cycles: int, messages: int, requests: int) -> dict:
    """(h) the whole top level (RX path, CSR bank, control endpoint, TX arbiter) in
    Verilator: simulated cycles/s idle, while a feed flows, and control requests/s."""
    from tick2trade.protocol import control as proto
    from tick2trade.sim.topsim import TopSim

    out = {}
    with TopSim(WIDTH) as sim:
        out["build"] = sim.build
        sim.step(1000)
        start, cycles = sim.sim_seconds, sim.cycles
        sim.step(idle_cycles)
        out["idle"] = (sim.cycles - cycles) / (sim.sim_seconds - start)
        frames = FeedScenario(random.Random(2), RxConfig.default(), messages=messages,
                              locates=8192).frames()
        start, cycles = sim.sim_seconds, sim.cycles
        for k in range(0, len(frames), 2000):
            sim.run(frames[k:k + 2000], quiet=1)
        out["feed"] = (sim.cycles - cycles) / (sim.sim_seconds - start)
        out["feed_frames"], out["feed_cycles"] = len(frames), sim.cycles - cycles
        ops = [proto.Op.read(sim.map["sys.scratch"].address)]
        wall = time.perf_counter()
        cycles = sim.cycles
        for seq in range(requests):
            assert sim.request(proto.encode_request(seq, ops))
        wall = time.perf_counter() - wall
        out["requests_per_second"] = requests / wall
        out["cycles_per_request"] = (sim.cycles - cycles) / requests
    return out


def zmq_speed(requests: int) -> dict:
    """(i) `t2t sim` in a process of its own, driven by SimDevice over ZeroMQ (ipc):
    requests/s with one read and with a full batch of 32 reads."""
    import tempfile

    from tick2trade.host.device import SimDevice

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        endpoint = f"ipc://{tmp}/bench"
        proc = subprocess.Popen([sys.executable, "-m", "tick2trade.cli", "sim", "--endpoint", endpoint],
                                cwd=root, stdout=subprocess.PIPE, text=True)
        try:
            while "ready on" not in proc.stdout.readline():
                if proc.poll() is not None:
                    raise RuntimeError("t2t sim did not start")
            with SimDevice(endpoint) as dev:
                dev.connect()
                one = ["sys.scratch"]
                batch = [e.name for e in dev.map.entries if e.words == 1][:32]
                out = {}
                for label, names in (("1 read", one), ("32 reads", batch)):
                    start = time.perf_counter()
                    for _ in range(requests):
                        dev.read_many(names)
                    out[label] = requests / (time.perf_counter() - start)
        finally:
            proc.terminate()
            proc.wait()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tick2trade.bench", description=__doc__)
    parser.add_argument("--frames", type=int, default=4000,
                        help="frames of minimum-size messages for (a)")
    parser.add_argument("--messages", type=int, default=1_000_000,
                        help="messages in the replay capture for (b)")
    parser.add_argument("--section", choices=("all", "rx", "book", "top", "trade", "stream", "run",
                                                "venue"),
                        default="all", help="run one group of figures only")
    parser.add_argument("--run-cycles", type=int, default=10_000_000,
                        help="loop cycles of the end-to-end run (t)")
    parser.add_argument("--book-events", type=int, default=100_000,
                        help="events per mix for the book's (j)")
    parser.add_argument("--venue-actions", type=int, default=300_000,
                        help="synthetic flow actions for the venue's (e, f)")
    args = parser.parse_args()
    console = Console()
    if args.section in ("all", "rx"):
        receive_path(args, console)
    if args.section in ("all", "book"):
        book_section(args, console)
    if args.section in ("all", "top"):
        top_section(console)
    if args.section in ("all", "trade"):
        trade_section(console)
    if args.section in ("all", "stream"):
        stream_section(console)
    if args.section in ("all", "run"):
        run_section(args, console)
    if args.section in ("all", "venue"):
        venue_section(args, console)


def _values(seen: list[int]) -> str:
    """The distinct values a measurement took, e.g. "3" or "3/4"."""
    return "/".join(str(x) for x in seen)


def trade_section(console: Console) -> None:
    """(m) tick-to-trade, (n) where the cycles go, (o) the risk gate's share; W=64 and 8."""
    from tick2trade.bench import trade

    console.print("trade: builds the top level in Verilator at W=64 and W=8 (minutes each "
                  "the first time)", highlight=False)
    table = Table(title="(m, n, o) tick-to-trade from the telemetry records, cycles")
    for col in ("W", "orders", "decided by", "floor", "t2t min / median / max",
                "registers min / max",
                "field → event", "event → decision", "field → decision", "decision → out"):
        table.add_column(col, justify="right")
    for width in (64, 8):
        r = trade.tick_to_trade(width)
        table.add_row(str(width), f"{r['orders']} of {r['sent_of']}",
                      ", ".join(f"{k} {v}" for k, v in r["decided_by"].items()),
                      str(r["floor"]),
                      f"{r['ttt_min']} / {r['ttt_median']:g} / {r['ttt_max']}",
                      f"{r['register_min']} / {r['register_max']}",
                      _values(r["field_to_event"]), _values(r["event_to_decide"]),
                      _values(r["field_to_decide"]), _values(r["decide_to_out"]))
    console.print(table)


def stream_section(console: Console) -> None:
    """The book stream: a book update from the feed frame's last beat to the event
    frame toward the host, and how many a burst keeps; W=64 and 8, in cycles."""
    from tick2trade.bench import stream

    table = Table(title="book stream: feed frame's last beat → event frame (cycles), and a "
                        "burst of back-to-back new levels")
    for col in ("W", "records", "→ first beat min / median / max",
                "→ last beat min / median / max", "burst: updates", "received", "overflow",
                "cycles / record"):
        table.add_column(col, justify="right")
    for width in (64, 8):
        r = stream.measure(width)
        b = r["burst"]
        table.add_row(str(width), f"{r['records']} of {r['of']}",
                      " / ".join(f"{x:g}" for x in r["first_beat"]),
                      " / ".join(f"{x:g}" for x in r["last_beat"]),
                      f"{b['updates']:,}", f"{b['received']:,}", f"{b['overflow']:,}",
                      f"{b['cycles_per_record']:.1f}")
    console.print(table)


def run_section(args, console: Console) -> None:
    """(t) the end-to-end loop (t2t run) for a fixed number of cycles: tick-to-trade
    percentiles, fills/s, host answer processing."""
    from tick2trade.sim.cli.run import DEMO, open_loop, render, summary

    loop = open_loop(DEMO, seed=1, rate=200_000.0, flatten_at=500)  # t2t run's defaults
    while loop.now - loop.start < args.run_cycles:
        loop.step()
    console.print(render(summary(loop), f"(t) t2t run, {args.run_cycles:,} cycles, seed 1, "
                                        f"docs/demo.toml"))


def venue_section(args, console: Console) -> None:
    """(e) matching throughput, (f) ITCH publishing rate, (g) order → ack latency."""
    from tick2trade.bench import venue

    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    start = time.perf_counter()
    calls, events = venue.recorded_flow(args.venue_actions)
    console.print(f"venue: {len(calls):,} engine calls recorded from the synthetic flow in "
                  f"{time.perf_counter() - start:.1f} s", highlight=False)
    m = venue.matching(calls)
    p = venue.publishing(events)
    lat = venue.latency()
    table = Table(title=f"(e, f, g) venue simulator, one core each ({machine})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    mix = ", ".join(f"{n} {v:,}" for n, v in m["mix"].items())
    for name, value in (
            ("(e) engine calls (mix)", f"{m['orders']:,} ({mix})"),
            ("(e) matching: orders/s", f"{m['orders_per_second']:,.0f}"),
            ("(f) engine events → ITCH messages / packets",
             f"{p['events']:,} → {p['messages']:,} / {p['packets']:,}"),
            ("(f) ITCH publishing: messages/s", f"{p['messages_per_second']:,.0f}"),
            ("(g) order → Accepted over loopback TCP: orders", f"{lat['orders']:,}"),
            ("(g) p50 / p99 / p99.9 µs",
             f"{lat['p50']:.1f} / {lat['p99']:.1f} / {lat['p999']:.1f}"),
            ("(g) min / max µs", f"{lat['min']:.1f} / {lat['max']:.1f}")):
        table.add_row(name, value)
    console.print(table)


def book_section(args, console: Console) -> None:
    """(j) cycles/event by mix, (k) latency in cycles, (l) block RAM and logic."""
    from tick2trade.bench import book

    table = Table(title=f"(j) book, shipped size {book.SHIPPED.book_kwargs()}: events back to back")
    for col in ("mix", "events", "cycles/event", "updates", "table_full", "unknown_ref",
                "RX beats/msg at W=64"):
        table.add_column(col, justify="left" if col == "mix" else "right")
    for r in book.throughput(args.book_events):
        beats = f"{r['rx_beats']:.2f}" if r["rx_beats"] else "-"
        table.add_row(r["mix"], f"{r['events']:,}", f"{r['cycles_per_event']:.3f}",
                      f"{r['updates']:,}", f"{r['table_full']:,}",
                      f"{r['unknown_ref']:,}", beats)
    console.print(table)
    table = Table(title="(k) book latency: event taken → its update out, cycles")
    table.add_column("event")
    table.add_column("cycles", justify="right")
    for r in book.latency():
        table.add_row(r["event"], str(r["cycles"]))
    console.print(table)
    console.print("(l) yosys synth_ecp5 of the book (a few minutes per set the first time; "
                  "cached under build/bench/)…", highlight=False)
    table = Table(title="(l) book resources, ECP5 (LFE5U-85: 208 DP16KD, 83,640 LUT4)")
    for col in ("symbols", "capacity", "ways", "n", "depth", "DP16KD", "LUT4", "FF"):
        table.add_column(col, justify="right")
    for r in book.resources():
        table.add_row(*(f"{r[c]:,}" for c in ("symbols", "capacity", "ways", "n", "depth",
                                              "DP16KD", "LUT4", "FF")))
    console.print(table)


def top_section(console: Console) -> None:
    """(h) simulated cycles/s of the whole top level, (i) control requests over ZeroMQ."""
    machine = f"{platform.machine()}, {os.cpu_count()} cores"

    t = top_speed(5_000_000, 100_000, 2000)
    build = t["build"]
    table = Table(title=f"(h) whole top level W={WIDTH} in Verilator ({machine}; build "
                  f"{'cached' if build.cached else f'{build.seconds:.0f} s'})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("simulated cycles/s, idle", f"{t['idle']:,.0f}")
    table.add_row(f"simulated cycles/s, feed flowing ({t['feed_frames']:,} frames, "
                  f"{t['feed_cycles']:,} cycles)", f"{t['feed']:,.0f}")
    table.add_row("control requests/s (1 read, model + Python, no ZeroMQ)",
                  f"{t['requests_per_second']:,.0f}")
    table.add_row("cycles simulated per request", f"{t['cycles_per_request']:,.0f}")
    console.print(table)
    z = zmq_speed(500)
    table = Table(title="(i) t2t sim over ZeroMQ (ipc), SimDevice.read_many")
    table.add_column("request")
    table.add_column("requests/s", justify="right")
    for label, rate in z.items():
        table.add_row(label, f"{rate:,.0f}")
    console.print(table)


def receive_path(args, console: Console) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    start = time.perf_counter()
    build = build_rx_path(WIDTH)
    console.print(f"RxPath W={WIDTH}: Verilator build "
                  f"{'cached' if build.cached else f'{build.seconds:.1f} s'} "
                  f"({time.perf_counter() - start:.1f} s with Verilog generation)")

    table = Table(title=f"(a) minimum-size ITCH messages back to back, W={WIDTH} ({machine})")
    table.add_column("figure")
    runs = [throughput(args.frames, idle) for idle in (0, IFG_BEATS)]
    for r in runs:
        table.add_column(f"{r['idle']} idle beats/frame", justify="right")
    for name, show in (
            ("frame bytes / messages per frame", lambda r: f"{r['frame_bytes']} / {r['per_frame']}"),
            ("cycles/message", lambda r: f"{r['cycles_per_message']:.3f}"),
            ("messages in", lambda r: f"{r['messages']:,}"),
            ("events out", lambda r: f"{r['events']:,}"),
            ("event FIFO overflow", lambda r: f"{r['event_overflow']:,}"),
            ("kept up", lambda r: "yes" if r["kept_up"] else "[red]no[/red]"),
            ("simulated cycles/s", lambda r: f"{r['cycles_per_second']:,.0f}")):
        table.add_row(name, *map(show, runs))
    console.print(table)

    start = time.perf_counter()
    path, frames = capture(args.messages)
    console.print(f"capture {path} ready in {time.perf_counter() - start:.1f} s")
    r = replay_speed(path, frames)
    table = Table(title=f"(b, c) t2t replay of {path.name} ({machine})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in (
            ("frames / messages / events written",
             f"{r['frames']:,} / {r['messages']:,} / {r['events']:,}"),
            ("messages/s", f"{r['messages_per_second']:,.0f}"),
            ("frames/s", f"{r['frames_per_second']:,.0f}"),
            ("replay time (process wall time)", f"{r['seconds']:.1f} s ({r['wall']:.1f} s)"),
            ("simulated cycles/s, model only", f"{r['cycles_per_second']:,.0f}"),
            ("share of replay time in the model", f"{r['sim_seconds'] / r['seconds']:.0%}")):
        table.add_row(name, value)
    console.print(table)

if __name__ == "__main__":
    main()
