"""NASDAQ BinaryFILEs (protocol/itchfile.py): read back what was written, plain and gzip,
in bounded memory; packed into MoldUDP64 packets by the documented rule; a file that is
not one, or is cut short, refused with where."""

import gzip
import random
import tracemalloc

import pytest

from tick2trade.protocol import itch, itchfile, moldudp64
from tick2trade.testing.traffic import random_message


def day(rng: random.Random, n: int, *, step_ns: int = 3) -> list[bytes]:
    """Random ITCH messages with non-decreasing timestamps, several sharing each."""
    out, ts = [], 34_200_000_000_000
    for _ in range(n):
        if rng.random() < 0.4:
            ts += rng.randint(1, step_ns)
        raw = bytearray(random_message(rng, locates=8_000))
        raw[itchfile.TIMESTAMP] = ts.to_bytes(6, "big")
        out.append(bytes(raw))
    return out


@pytest.mark.parametrize("name", ["day.itch", "day.itch.gz"])
def test_what_was_written_reads_back_message_for_message(tmp_path, name):
    msgs = day(random.Random(1), 20_000)
    path = tmp_path / name
    itchfile.write(path, msgs)
    assert (path.read_bytes()[:2] == itchfile.GZIP_MAGIC) == name.endswith(".gz")
    reader = itchfile.Reader(path)
    assert list(reader) == msgs
    assert reader.messages == len(msgs) and reader.consumed == path.stat().st_size


def test_a_gz_day_streams_in_bounded_memory(tmp_path):
    """A day four times longer needs no more memory: the peak while reading is the
    reader's chunk and gzip's buffers, whatever the file's length."""
    rng = random.Random(2)
    chunk = 1 << 15
    block = b"".join(len(m).to_bytes(2, "big") + m for m in day(rng, 500))

    def peak_reading(chunks: int) -> tuple[int, int]:
        path = tmp_path / f"day{chunks}.itch.gz"
        repeats = -(-chunks * chunk // len(block))
        with gzip.open(path, "wb") as f:
            for _ in range(repeats):
                f.write(block)
        tracemalloc.start()
        try:
            n = sum(1 for _ in itchfile.Reader(path, chunk=chunk))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert n == 500 * repeats
        return n, peak

    _n, short = peak_reading(10)
    n, long = peak_reading(40)
    size = n * (2 + sum(len(m) for m in day(random.Random(2), 500)) / 500)
    assert long < 1.5 * short and long < size / 4, (short, long, size)


def test_packets_follow_timestamps_and_the_payload_limit():
    rng = random.Random(3)
    msgs = day(rng, 5_000, step_ns=50)
    for window in (0, 20, 10_000):
        for limit in (moldudp64.HEADER + 2 + itch.MAX_LENGTH, 200, 1400):
            pkts = [moldudp64.decode_packet(p) for p in itchfile.packets(
                iter(msgs), "S", max_payload=limit, window_ns=window)]
            assert [m for p in pkts for m in p.messages] == msgs
            seq = 1
            for i, p in enumerate(pkts):
                assert p.seq == seq
                seq += len(p.messages)
                size = moldudp64.HEADER + sum(2 + len(m) for m in p.messages)
                assert size <= limit
                stamps = [itchfile.timestamp(m) for m in p.messages]
                assert stamps[-1] - stamps[0] <= window
                if i + 1 < len(pkts):  # cut only when the next message had to go
                    nxt = pkts[i + 1].messages[0]
                    assert (itchfile.timestamp(nxt) - stamps[0] > window
                            or size + 2 + len(nxt) > limit)


@pytest.mark.parametrize("max_payload,window", [(60, 0), (70_000, 0), (1400, -1)])
def test_impossible_packing_is_refused(max_payload, window):
    with pytest.raises(ValueError):
        itchfile.Packer("S", max_payload=max_payload, window_ns=window)


def test_a_cut_file_says_where_after_the_messages_before_it(tmp_path):
    msgs = day(random.Random(4), 100)
    path = tmp_path / "cut.itch"
    itchfile.write(path, msgs)
    path.write_bytes(path.read_bytes()[:-5])
    got = []
    with pytest.raises(itchfile.FileError, match="cut short at byte"):
        for m in itchfile.Reader(path):
            got.append(m)
    assert got == msgs[:-1]


def test_a_cut_gz_is_an_error_not_a_short_day(tmp_path):
    path = tmp_path / "cut.itch.gz"
    itchfile.write(path, day(random.Random(5), 5_000))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(itchfile.FileError):
        list(itchfile.Reader(path))


def test_a_wrong_length_or_type_names_its_byte(tmp_path):
    good = itch.encode("S", timestamp=1, event_code="O")
    path = tmp_path / "bad.itch"
    path.write_bytes(len(good).to_bytes(2, "big") + good + b"\x00\x05Zabcd")
    with pytest.raises(itchfile.FileError, match=r"byte 14: message type b'Z'"):
        list(itchfile.Reader(path))
    add = itch.encode("A", order_ref=1, side="B", shares=1, stock="X", price=1)
    path.write_bytes((len(add) - 1).to_bytes(2, "big") + add[:-1])
    with pytest.raises(itchfile.FileError, match="'A' message is 36 bytes, this one says 35"):
        list(itchfile.Reader(path))


def test_looks_like_knows_a_binaryfile_from_a_capture():
    add = itch.encode("A", order_ref=1, side="B", shares=1, stock="X", price=1)
    assert itchfile.looks_like(len(add).to_bytes(2, "big") + add)
    assert not itchfile.looks_like(b"\xd4\xc3\xb2\xa1\x02\x00")
    assert not itchfile.looks_like(b"\x00\x24Z")
    assert not itchfile.looks_like(b"")
