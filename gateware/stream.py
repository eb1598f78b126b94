"""Beat layouts shared by the pipeline stages (the payloads they carry between them are
in ``interfaces``).

Byte order inside a beat: the byte that comes first on the wire is in the lowest lane
(``data[0:8]``). Streams stay *lane-preserving*: a stage never realigns bytes, it only
narrows the byte enables to the bytes it passes on. Realigning would cost a beat of
latency whenever a field straddles two beats; keeping lanes costs a few comparators.
Within a packet the enabled lanes of a beat are contiguous, every beat but the first
starts at lane 0, and every beat but the last ends at the top lane.
"""

from amaranth.lib import data


def lanes(data_width: int) -> int:
    if data_width % 8 or data_width < 8 or data_width & (data_width - 1):
        raise ValueError(f"data width must be 8, 16, 32, 64, ...; got {data_width}")
    return data_width // 8


def beat_layout(data_width: int, **extra) -> data.StructLayout:
    """A packet beat: ``data``, per-lane byte enable ``be``, ``first``/``last`` beat of a
    packet, plus ``extra`` sideband fields (name=shape)."""
    return data.StructLayout({"data": data_width, "be": lanes(data_width), "first": 1,
                              "last": 1, **extra})


def msg_beat_layout(data_width: int) -> data.StructLayout:
    """MoldUDP64 message blocks, one beat per input beat, lane-preserving.

    A beat may hold the tail of one message and the head of the next, so framing is per
    lane rather than per beat:

    ``msg``   lanes holding message bytes (length prefixes and headers are not);
    ``sop``   the lane holding byte 0 of a message (at most one);
    ``eop``   the lane holding the last byte of a message (at most one; a message that
              continues from an earlier beat always starts at lane 0 of this beat);
    ``abort`` the message still open at the end of this beat was cut short by the end of
              its packet: it is incomplete and must be dropped;
    ``seq``   MoldUDP64 sequence number of the message that starts in this beat.
    """
    n = lanes(data_width)
    return data.StructLayout({"data": data_width, "msg": n, "sop": n, "eop": n, "abort": 1,
                              "seq": 64})
