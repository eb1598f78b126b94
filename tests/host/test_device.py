"""The host device driver: SimDevice against `t2t sim` (the real Verilator model over
ZeroMQ) and BoardDevice against a loopback UDP responder that runs the golden model."""

import random
import socket
import threading

import pytest
import zmq

from tick2trade.protocol import control as proto

from tick2trade.gateware.models.control.control import device_model
from tick2trade.protocol import moldudp64
from tick2trade.gateware.models.rx.eth_rx import LINE_A, LINE_B, RxConfig
from tick2trade.gateware.models.rx.rx_path import RxPathModel
from tick2trade.host.device import (BoardDevice, DeviceTimeout, MapMismatch, NotInBitstream,
                                    RegisterError, SimDevice)
from tick2trade.gateware.models.rx.eth_rx import feed_frame
from tick2trade.testing.simtools import SEED, rng_for

pytestmark = pytest.mark.verilator

# rw registers a test may scribble on: everything but the control address (the link)
# and the feed filters and event channel (the event test sets those itself)
SPARED = ("rx.ctl_ip", "rx.ctl_port", "ctl.event_enable")


def scribble_names(regmap) -> list[str]:
    return [e.name for e in regmap.entries if e.access == "rw" and e.name not in SPARED]


def test_register_round_trips_through_the_verilator_model(sim_endpoint):
    rng = rng_for("roundtrip")
    with SimDevice(sim_endpoint) as dev:
        dev.connect()
        names = scribble_names(dev.map)
        resets = {n: dev.map[n].reset for n in names}
        for _round in range(3):
            chosen = rng.sample(names, k=min(len(names), 40))
            values = {n: rng.getrandbits(dev.map[n].width) for n in chosen}
            dev.write_many(values)
            assert dev.read_many(chosen) == values, f"seed {SEED}"
        with pytest.raises(RegisterError, match="read-only"):
            dev.access([("sys.id", proto.Op.write(dev.map["sys.id"].address, 1))])
        with pytest.raises(RegisterError, match="cannot be written"):
            dev.write("rx.counters.eth_rx.frames", 0)
        with pytest.raises(KeyError, match="no register"):
            dev.read("book.depth")
        dev.require("book", "the order book")
        with pytest.raises(NotInBitstream, match="not in this bitstream"):
            dev.require("router", "the smart order router")
        cycles = dev.read("sys.cycles")
        assert dev.read("sys.cycles") > cycles  # the clock ran for the request
        dev.write_many(resets)
        assert dev.read_many(names) == resets


def test_a_new_client_finds_the_state_the_last_one_left(sim_endpoint):
    value = random.Random(SEED).getrandbits(32)
    with SimDevice(sim_endpoint) as first:
        first.write("sys.scratch", value)
    # a client that dies with a request in flight leaves the device serving
    context = zmq.Context.instance()
    dead = context.socket(zmq.DEALER)
    dead.setsockopt(zmq.LINGER, 0)
    dead.connect(sim_endpoint)
    dead.send_multipart([b"ctl", proto.encode_request(9, [proto.Op.read(4)] * 32)])
    dead.send_multipart([b"subscribe"])
    dead.close(0)
    with SimDevice(sim_endpoint) as second:
        assert second.connect().read("sys.scratch") == value
        assert second.hello()["requests"] >= 2


def test_wrong_map_is_refused(sim_endpoint):
    from tick2trade.gateware.top import register_map

    other = register_map(data_width=64, symbols=16, locates=64)
    with SimDevice(sim_endpoint, regmap=other) as dev, \
            pytest.raises(MapMismatch, match="another bitstream"):
        dev.connect()


def gap_scenario(rng, packets: int) -> list[bytes]:
    """Packets of one message on lines A and B; every few packets one is lost on both
    lines, so the next one reveals a gap."""
    cfg = RxConfig.default()
    msg = b"S" + bytes(10) + b"O"
    out, seq = [], 1
    for _ in range(packets):
        if rng.random() < 0.5:
            seq += rng.randint(1, 3)
        payload = moldudp64.encode_packet("LOADTEST01", seq, [msg] * 3)
        out += [feed_frame(cfg, LINE_A, payload), feed_frame(cfg, LINE_B, payload)]
        seq += 3
    return out


def test_event_stream_delivers_every_gap_under_load(sim_endpoint):
    rng = rng_for("events")
    frames = gap_scenario(rng, 600)
    with SimDevice(sim_endpoint) as dev:
        dev.subscribe()
        dev.write("rx.reset_session", 1)
        before = dev.read("rx.counters.fifo.gap_overflow")
        dev.write_many({"ctl.event_ip": 0x0A000063, "ctl.event_port": 9999,
                        "ctl.event_enable": 1})
        for start in range(0, len(frames), 100):
            dev.feed(frames[start:start + 100])
        overflow = dev.read("rx.counters.fifo.gap_overflow") - before
        events = dev.next_events(timeout=2.0)
        dev.write("ctl.event_enable", 0)
    model = RxPathModel(RxConfig.default())
    for f in frames:
        model.process(f)
    want = [proto.GapEvent(g.line, g.session, g.first, g.count) for g in model.gaps]
    assert len(want) > 100
    assert dev.events_lost == 0
    assert len(events) + overflow == len(want), f"seed {SEED}"
    it = iter(want)  # what arrived is what the model reported, in order
    assert all(any(e == w for w in it) for e in events), f"seed {SEED}"


def test_gap_reports_wait_in_the_fifo_register_while_events_are_off(sim_endpoint):
    rng = rng_for("fifo")
    while True:  # a scenario with enough gaps that five entries span two requests
        frames = gap_scenario(rng, 12)
        model = RxPathModel(RxConfig.default())
        for f in frames:
            model.process(f)
        if len(model.gaps) >= 5:
            break
    with SimDevice(sim_endpoint) as dev:
        dev.write_many({"ctl.event_enable": 0, "rx.reset_session": 1})
        while dev.pop_fifo("rx.gaps") is not None:  # what earlier tests left
            pass
        dev.feed(frames)
        entries = dev.pop_fifo_many("rx.gaps", 5)  # 9 ops each: requests cut entries
        assert len(entries) == 5
        while (entry := dev.pop_fifo("rx.gaps")) is not None:
            entries.append(entry)
        assert dev.pop_fifo_many("rx.gaps", 3) == []
        popped = [proto.GapEvent(e["line"], e["session"].to_bytes(10, "big"), e["first"],
                                 e["count"]) for e in entries]
    assert popped == [proto.GapEvent(g.line, g.session, g.first, g.count)
                      for g in model.gaps][:16], f"seed {SEED}"
    assert popped


# ---------------------------------------------------------------------------------------
# BoardDevice over UDP, against the golden model

class Responder:
    """A board stand-in on loopback: ControlModel behind a UDP socket; it ignores the
    first ``drop`` datagrams (lost packets) and stops answering when ``mute``."""

    def __init__(self, regmap, drop: int = 0):
        self.model = device_model(regmap)
        self.drop = drop
        self.mute = False
        self.received = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.address = self.sock.getsockname()
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            self.received += 1
            if self.drop:
                self.drop -= 1
                continue
            reply = None if self.mute else self.model.process(data)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def close(self):
        self._stop = True
        self.thread.join()
        self.sock.close()


@pytest.fixture
def board_map():
    from tick2trade.gateware.top import register_map

    return register_map(data_width=64, symbols=8, locates=64)


def test_board_device_round_trips_through_the_model_over_udp(board_map):
    rng = rng_for("board")
    responder = Responder(board_map, drop=1)  # the first request is lost and retried
    try:
        with BoardDevice(responder.address, board_map, timeout=0.1) as dev:
            dev.connect()
            names = scribble_names(board_map)
            values = {n: rng.getrandbits(board_map[n].width) for n in names}
            dev.write_many(values)
            assert dev.read_many(names) == values
            assert {n: responder.model.csr.storage[n] for n in names} == values
            assert responder.received >= 2 + len(names) // proto.MAX_OPS
            responder.model.csr.values["rx.counters.eth_rx.frames"] = 1234
            assert dev.counters()["rx.counters.eth_rx.frames"] == 1234
    finally:
        responder.close()


def test_board_device_times_out_with_a_clear_error_and_never_retries_a_pulse(board_map):
    responder = Responder(board_map)
    responder.mute = True
    try:
        with BoardDevice(responder.address, board_map, timeout=0.05, retries=2) as dev:
            with pytest.raises(DeviceTimeout, match=r"after 3 tries of 0.05 s"):
                dev.read("sys.id")
            assert responder.received == 3
            with pytest.raises(DeviceTimeout, match="not retried"):
                dev.write("rx.reset_session", 1)
            assert responder.received == 4
    finally:
        responder.close()


def test_client_survives_a_restart_of_the_virtual_fpga(tmp_path):
    """The device process goes away and comes back on the same endpoint: the client's
    socket reconnects by itself; a request made while it was gone times out with a clear
    error, the next one is answered (by a fresh device, registers at reset)."""
    from tests.host.conftest import start_sim, stop_sim

    endpoint = f"ipc://{tmp_path}/restart"
    proc = start_sim(endpoint)
    try:
        dev = SimDevice(endpoint, timeout=0.3, retries=0)
        dev.connect().write("sys.scratch", 77)
        stop_sim(proc)
        with pytest.raises(DeviceTimeout, match="no reply from virtual FPGA"):
            dev.read("sys.scratch")
        proc = start_sim(endpoint)
        dev.timeout, dev.retries = 2.0, 2
        assert dev.read("sys.scratch") == 0
        assert dev.connect().read("sys.id") == proto.DEVICE_ID
        dev.close()
    finally:
        stop_sim(proc)


def test_board_device_subscribes_and_takes_events_only_from_the_board(board_map):
    responder = Responder(board_map)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gap = proto.GapEvent(1, b"SESSION001", 100, 7)
    try:
        with BoardDevice(responder.address, board_map, bind=("127.0.0.1", 0),
                         host_mac=bytes.fromhex("0200000000aa"), timeout=0.2) as dev:
            dev.subscribe()
            storage = responder.model.csr.storage
            here = dev._sock.getsockname()
            assert (storage["ctl.event_ip"], storage["ctl.event_port"]) == \
                (0x7F000001, here[1])
            assert storage["ctl.event_enable"] == 1
            assert storage["ctl.event_mac"] == 0x0200000000AA
            stranger.sendto(proto.encode_events(0, [gap]), here)
            for seq in (5, 6, 8):  # the frame with seq 7 was lost on the way
                responder.sock.sendto(proto.encode_events(seq, [gap]), here)
            events = dev.next_events(timeout=1.0)
            while len(events) < 3 and (more := dev.next_events(timeout=0.5)):
                events += more
            assert events == [gap] * 3
            assert dev.events_lost == 1
    finally:
        stranger.close()
        responder.close()
