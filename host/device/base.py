"""``Device``: registers by name over the control protocol, whatever carries the frames.

Subclasses move control payloads: ``SimDevice`` over ZeroMQ to ``t2t sim``,
``BoardDevice`` over UDP to a board. Everything else — the register map, batching,
sequence numbers, timeouts and retries, turning op statuses into errors, events — is
here, once.

Design decisions
----------------
* Registers are named, never addressed: the map comes from the device (the virtual FPGA
  serves it) or from the JSON ``t2t regmap`` wrote for the bitstream, and ``connect``
  checks ``sys.id`` and ``sys.map_hash`` before anything is written, so a map that is
  not the bitstream's is refused (``MapMismatch``) instead of writing the wrong words.
* Accesses are batched: up to ``MAX_OPS`` word ops per request, in order; a register
  wider than 32 bits is its consecutive words in one batch.
* Timeouts and retries: a request unanswered within ``timeout`` is sent again with the
  same sequence number, up to ``retries`` times; replies with another sequence number
  (late answers to an earlier try) are ignored. A request that pops a FIFO entry or
  writes a ``pulse`` register is not idempotent and is never retried: it fails with
  ``DeviceTimeout`` and the caller decides.
* Blocks not in the bitstream: ``require(block)`` raises ``NotInBitstream`` naming the
  block, so a command for a block that does not exist says so and never shows made-up
  data.
"""

from __future__ import annotations

import itertools
import time
from collections import deque

from tick2trade.protocol import control as proto
from tick2trade.protocol.regmap import WORD, RegisterMap


class DeviceError(RuntimeError):
    """Anything a device operation could not do; the message says what and where."""


class DeviceTimeout(DeviceError):
    pass


class RegisterError(DeviceError):
    pass


class MapMismatch(DeviceError):
    pass


class NotInBitstream(DeviceError):
    def __init__(self, block: str, what: str):
        super().__init__(f"{what}: not in this bitstream (the register map has no "
                         f"'{block}' block)")
        self.block = block


NOT_IDEMPOTENT = ("pulse", "fifo")


class Device:
    """Register access by name, batched; event subscription.

    Parameters
    ----------
    regmap : RegisterMap | None
        None: ask the device (the virtual FPGA serves its map).
    timeout : float
        Seconds to wait for each try of a request.
    retries : int
        Extra tries of an idempotent request.
    """

    name = "device"

    def __init__(self, regmap: RegisterMap | None = None, timeout: float = 0.5,
                 retries: int = 2):
        self.timeout = timeout
        self.retries = retries
        self._seq = itertools.count(1)
        self._events: deque = deque()
        self.events_lost = 0
        self._event_seq: int | None = None
        self.map = regmap if regmap is not None else self._fetch_map()

    # -- transport (subclasses) ------------------------------------------------------

    def _send(self, payload: bytes) -> None:
        raise NotImplementedError

    def _recv(self, timeout: float) -> tuple[str, bytes] | None:
        """The next ("ctl" | "event", payload) from the device, or None after timeout
        (a transport may also return ("other", b"") for a message of its own)."""
        raise NotImplementedError

    def _fetch_map(self) -> RegisterMap:
        raise DeviceError(f"{self.name} cannot tell its register map: give the JSON "
                          f"`t2t regmap` wrote for this bitstream")

    def subscribe(self) -> None:
        """Start receiving event frames (``next_events``)."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- requests --------------------------------------------------------------------

    def transact(self, ops: list[proto.Op], retry: bool = True) -> list[proto.Op]:
        """One request (at most ``MAX_OPS`` ops); the reply's ops."""
        seq = next(self._seq) & 0xFFFF
        payload = proto.encode_request(seq, ops)
        tries = 1 + (self.retries if retry else 0)
        for _attempt in range(tries):
            self._send(payload)
            deadline = time.monotonic() + self.timeout
            while (left := deadline - time.monotonic()) > 0:
                got = self._recv(left)
                if got is None:
                    break
                kind, data = got
                if kind == "event":
                    self._take_event(data)
                if kind != "ctl":
                    continue
                try:
                    frame = proto.check(data, proto.KIND_REPLY)
                except proto.ControlError:
                    continue
                if frame.seq == seq and len(frame.ops) == len(ops):
                    return list(frame.ops)
        raise DeviceTimeout(f"no reply from {self.name} to request {seq} "
                            f"({len(ops)} ops) after {tries} tr{'y' if tries == 1 else 'ies'}"
                            f" of {self.timeout:g} s" +
                            ("" if retry else " (not retried: it pops or pulses)"))

    def access(self, ops: list[tuple[str, proto.Op]]) -> list[proto.Op]:
        """(register name, op) pairs in batches; raises RegisterError on a refused op."""
        out = []
        for start in range(0, len(ops), proto.MAX_OPS):
            batch = ops[start:start + proto.MAX_OPS]
            retry = not any(self.map[n].access in NOT_IDEMPOTENT and o.op == proto.OP_WRITE
                            for n, o in batch)
            replies = self.transact([o for _n, o in batch], retry)
            for (name, _op), reply in zip(batch, replies):
                if reply.status != proto.OK:
                    what = "read of" if reply.op == proto.OP_READ else "write to"
                    raise RegisterError(f"{what} {name} (word {reply.address:#06x}) refused: "
                                        f"{proto.STATUS_NAMES.get(reply.status, reply.status)}")
            out += replies
        return out

    def read_many(self, names) -> dict[str, int]:
        ops = [(n, proto.Op.read(self.map[n].address + k)) for n in names
               for k in range(self.map[n].words)]
        values = iter(r.value for r in self.access(ops))
        return {n: sum(next(values) << (WORD * k) for k in range(self.map[n].words))
                for n in names}

    def read(self, name: str) -> int:
        return self.read_many([name])[name]

    def write_many(self, values: dict[str, int]) -> None:
        self.write_sequence(list(values.items()))

    def write(self, name: str, value: int) -> None:
        self.write_many({name: value})

    def write_sequence(self, pairs: list[tuple[str, int]]) -> None:
        """Writes in this order, as few requests as fit: unlike ``write_many`` the same
        register may come twice (a staged value, its strobe, the next value...)."""
        ops = []
        for name, value in pairs:
            e = self.map[name]
            if e.access not in ("rw", "w1c", "pulse"):
                raise RegisterError(f"{name} is {e.access}: it cannot be written")
            if not 0 <= value < 1 << e.width:
                raise RegisterError(f"{name} = {value} does not fit its {e.width} bits")
            ops += [(name, proto.Op.write(e.address + k, (value >> (WORD * k)) & 0xFFFFFFFF))
                    for k in range(e.words)]
        self.access(ops)

    # -- what the CLI and services use -----------------------------------------------

    def connect(self) -> Device:
        """Check that the device is a tick2trade device with this register map."""
        got = self.read_many(["sys.id", "sys.map_hash"])
        if got["sys.id"] != proto.DEVICE_ID:
            raise MapMismatch(f"{self.name} answers with id {got['sys.id']:#010x}, not a "
                              f"tick2trade device of protocol {proto.VERSION} "
                              f"({proto.DEVICE_ID:#010x})")
        if got["sys.map_hash"] != self.map.hash:
            raise MapMismatch(f"{self.name} has register map {got['sys.map_hash']:#010x}; "
                              f"the map given is {self.map.hash:#010x} (another bitstream?)")
        return self

    def require(self, block: str, what: str) -> None:
        if not self.map.has_block(block):
            raise NotInBitstream(block, what)

    def counters(self) -> dict[str, int]:
        """Every ``ro`` register under a ``counters`` prefix, by name."""
        names = [e.name for e in self.map.entries
                 if e.access == "ro" and ".counters." in e.name]
        return self.read_many(names)

    def pop_fifo(self, name: str) -> dict[str, int] | None:
        """The head entry of a ``fifo`` register, by field, popped in the same request
        (read every word, then write word 0); None when the FIFO is empty. Not retried:
        a lost reply loses the entry, which the block's counters still show."""
        e = self.map[name]
        if e.access != "fifo":
            raise RegisterError(f"{name} is {e.access}, not a FIFO register")
        ops = [(name, proto.Op.read(e.address + k)) for k in range(e.words)]
        ops.append((name, proto.Op.write(e.address, 1)))
        replies = self.access(ops)
        if not replies[0].value & 1:
            return None
        value = sum(r.value << (WORD * k) for k, r in enumerate(replies[1:e.words]))
        return e.decompose(value) if e.fields else {"value": value}

    def drain_fifo(self, name: str, limit: int = 1 << 16) -> list[dict[str, int]]:
        """Pop a ``fifo`` register until it is empty (at most ``limit`` entries), as many
        entries to a request as fit in one."""
        per = max(1, proto.MAX_OPS // (self.map[name].words + 1))
        out: list[dict[str, int]] = []
        while len(out) < limit:
            got = self.pop_fifo_many(name, min(per, limit - len(out)))
            out += got
            if len(got) < per:
                break
        return out

    def pop_fifo_many(self, name: str, count: int) -> list[dict[str, int]]:
        """Up to ``count`` entries of a ``fifo`` register, as :meth:`pop_fifo` gives
        them, several to a request (each entry is its words read, then the pop). An
        entry that arrives after an empty read is read and popped by a later slot of the
        same request (the bank pops only what word 0 showed), so every slot that read
        an entry counts. Not retried, like :meth:`pop_fifo`."""
        e = self.map[name]
        if e.access != "fifo":
            raise RegisterError(f"{name} is {e.access}, not a FIFO register")
        one = [(name, proto.Op.read(e.address + k)) for k in range(e.words)]
        one.append((name, proto.Op.write(e.address, 1)))
        replies = self.access(one * count)
        out = []
        for i in range(0, len(replies), len(one)):
            words = replies[i:i + e.words]
            if not words[0].value & 1:
                continue
            value = sum(r.value << (WORD * k) for k, r in enumerate(words[1:]))
            out.append(e.decompose(value) if e.fields else {"value": value})
        return out

    # -- events ----------------------------------------------------------------------

    def _take_event(self, payload: bytes) -> None:
        try:
            frame = proto.check(payload, proto.KIND_EVENT)
        except proto.ControlError:
            return
        if self._event_seq is not None:
            self.events_lost += (frame.seq - self._event_seq - 1) & 0xFFFF
        self._event_seq = frame.seq
        self._events.extend(frame.events)

    def next_events(self, timeout: float = 0.0, limit: int | None = None) -> list:
        """Events received so far, waiting up to ``timeout`` for the first one."""
        deadline = time.monotonic() + timeout
        while not self._events and (left := deadline - time.monotonic()) > 0:
            got = self._recv(left)
            if got is None:
                break
            if got[0] == "event":
                self._take_event(got[1])
        while True:  # whatever else is already here
            got = self._recv(0)
            if got is None:
                break
            if got[0] == "event":
                self._take_event(got[1])
        n = len(self._events) if limit is None else min(limit, len(self._events))
        return [self._events.popleft() for _ in range(n)]
