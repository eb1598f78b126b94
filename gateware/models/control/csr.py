"""Golden model of the CSR bank (``gateware/control/csr.py``)."""

from __future__ import annotations

from collections import deque

from tick2trade.protocol.control import NO_REGISTER, OK, READ_ONLY
from tick2trade.protocol.regmap import WORD, RegisterMap


class CsrModel:
    """The CSR bank over a ``RegisterMap``: what each word access does (see
    ``protocol.regmap`` for the access kinds).

    ``values`` holds what the blocks present on ``ro`` registers (the test or the
    responder sets them); ``flags`` the ``w1c`` registers (``set_flags`` is the block's
    side); ``fifos`` a deque of entries per ``fifo`` register; every ``pulse`` write is
    appended to ``pulses`` as (name, value).
    """

    def __init__(self, regmap: RegisterMap):
        self.map = regmap
        self.storage = {e.name: e.reset for e in regmap.entries if e.access == "rw"}
        self.values = {e.name: 0 for e in regmap.entries if e.access == "ro"}
        self.flags = {e.name: 0 for e in regmap.entries if e.access == "w1c"}
        self.fifos: dict[str, deque] = {e.name: deque() for e in regmap.entries
                                        if e.access == "fifo"}
        self.pulses: list[tuple[str, int]] = []
        # a fifo register whose word 0 was last read with an entry there: only then
        # does a write to word 0 pop (an entry that came after an empty read stays)
        self.armed = {name: False for name in self.fifos}

    def set_flags(self, name: str, bits: int) -> None:
        self.flags[name] |= bits

    def _word(self, value: int, k: int) -> int:
        return (value >> (WORD * k)) & 0xFFFFFFFF

    def read(self, address: int) -> tuple[int, int]:
        """(status, value) of reading one word."""
        hit = self.map.by_address.get(address)
        if hit is None:
            return NO_REGISTER, 0
        entry, k = hit
        name = entry.name
        if entry.access == "rw":
            return OK, self._word(self.storage[name], k)
        if entry.access == "ro":
            return OK, self._word(self.values[name] & ((1 << entry.width) - 1), k)
        if entry.access == "w1c":
            return OK, self.flags[name]
        if entry.access == "pulse":
            return OK, 0
        queue = self.fifos[name]
        if k == 0:
            self.armed[name] = bool(queue)
            return OK, int(bool(queue))
        return OK, self._word(queue[0], k - 1) if queue else 0

    def write(self, address: int, value: int) -> int:
        """Status of writing one word."""
        hit = self.map.by_address.get(address)
        if hit is None:
            return NO_REGISTER
        entry, k = hit
        name = entry.name
        if entry.access == "rw":
            mask = ((1 << entry.width) - 1) & (0xFFFFFFFF << (WORD * k))
            self.storage[name] = (self.storage[name] & ~mask) | ((value << (WORD * k)) & mask)
            return OK
        if entry.access == "w1c":
            self.flags[name] &= ~value
            return OK
        if entry.access == "pulse":
            self.pulses.append((name, value & ((1 << entry.width) - 1)))
            return OK
        if entry.access == "fifo" and k == 0:
            if self.armed[name] and self.fifos[name]:
                self.fifos[name].popleft()
            self.armed[name] = False
            return OK
        return READ_ONLY
