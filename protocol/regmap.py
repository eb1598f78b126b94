"""The register map: registers declared by the blocks that own them, one address space.

Pure Python, shared by the gateware (``gateware.csr`` builds the bank from it), the golden
model (``models.control.csr.CsrModel``), the host driver (registers by name) and the
generated documentation (``t2t regmap``). Nothing here knows an address by heart: the
map is computed from the declarations, in block order.

Design decisions
----------------
* The bus is 32 bits wide and word-addressed (16-bit addresses). A register wider than
  32 bits takes consecutive words, least significant first. Multi-word accesses are not
  atomic: the host writes configuration while the block it configures is idle, and the
  wide read-only values (the cycle counter) are read twice when it matters.
* Each block starts on a multiple of ``BLOCK_ALIGN`` words, so a block that grows or a
  block added at the end does not move the addresses of the others.
* A register whose value is a struct keeps its field layout in the map (``fields``), so
  the host composes and decomposes values by field name.
* Access kinds: ``ro`` (the block's value, e.g. a counter), ``rw`` (storage in the bank,
  driving the block's configuration input, ``reset`` after reset), ``w1c`` (sticky flags
  set by the block, a written 1 clears; a set in the same cycle wins), ``pulse`` (a write
  drives the written value into the block for exactly one cycle; reads give 0) and
  ``fifo`` (the head of a FIFO of event records: word 0 is the status, bit 0 = an entry
  is waiting; words 1.. hold the entry, 0 when there is none; a write to word 0 pops it
  if the last read of word 0 showed it, so an entry that arrived after an empty read is
  never popped unseen).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

ACCESS = ("ro", "rw", "w1c", "pulse", "fifo")
WORD = 32
BLOCK_ALIGN = 0x100
ADDRESS_BITS = 16


@dataclass(frozen=True)
class Register:
    """One register as its block declares it."""

    name: str  # within the block, e.g. "counters.frames" or "feeds[1].group"
    width: int
    access: str
    reset: int = 0
    doc: str = ""
    fields: tuple[tuple[str, int, int], ...] = ()  # (name, bit offset, width)

    def __post_init__(self):
        if self.access not in ACCESS:
            raise ValueError(f"{self.name}: access {self.access!r}; one of {ACCESS}")
        if self.width < 1:
            raise ValueError(f"{self.name}: width {self.width}")
        if self.access in ("w1c", "pulse") and self.width > WORD:
            raise ValueError(f"{self.name}: a {self.access} register is at most {WORD} bits")
        if not 0 <= self.reset < 1 << self.width:
            raise ValueError(f"{self.name}: reset {self.reset:#x} does not fit {self.width} bits")

    @property
    def words(self) -> int:
        data_words = (self.width + WORD - 1) // WORD
        return data_words + 1 if self.access == "fifo" else data_words


@dataclass(frozen=True)
class Entry:
    """A register placed in the map."""

    name: str  # "<block>.<register>"
    block: str
    address: int
    register: Register

    width = property(lambda self: self.register.width)
    access = property(lambda self: self.register.access)
    reset = property(lambda self: self.register.reset)
    doc = property(lambda self: self.register.doc)
    words = property(lambda self: self.register.words)
    fields = property(lambda self: self.register.fields)

    def to_json(self) -> dict:
        out = {"name": self.name, "address": self.address, "words": self.words,
               "width": self.width, "access": self.access, "reset": self.reset,
               "doc": self.doc}
        if self.fields:
            out["fields"] = {n: {"offset": o, "width": w} for n, o, w in self.fields}
        return out

    def compose(self, **values: int) -> int:
        """A value of a struct register from its fields by name."""
        known = {n: (o, w) for n, o, w in self.fields}
        out = 0
        for name, value in values.items():
            if name not in known:
                raise KeyError(f"{self.name} has no field {name!r}; fields: "
                               f"{', '.join(known) or 'none'}")
            offset, width = known[name]
            if not 0 <= value < 1 << width:
                raise ValueError(f"{self.name}.{name} = {value} does not fit {width} bits")
            out |= value << offset
        return out

    def decompose(self, value: int) -> dict[str, int]:
        return {n: (value >> o) & ((1 << w) - 1) for n, o, w in self.fields}


@dataclass
class Block:
    """The registers of one block, in declaration order."""

    name: str
    doc: str
    registers: list[Register] = field(default_factory=list)


class RegisterMap:
    """Blocks placed in order, each on a ``BLOCK_ALIGN`` boundary."""

    def __init__(self, blocks: list[Block]):
        self.blocks = blocks
        self.entries: list[Entry] = []
        self.by_name: dict[str, Entry] = {}
        self.by_address: dict[int, tuple[Entry, int]] = {}  # word address -> (entry, word)
        address = 0
        for block in blocks:
            address = -(-address // BLOCK_ALIGN) * BLOCK_ALIGN
            for reg in block.registers:
                entry = Entry(f"{block.name}.{reg.name}", block.name, address, reg)
                if entry.name in self.by_name:
                    raise ValueError(f"register {entry.name} declared twice")
                self.entries.append(entry)
                self.by_name[entry.name] = entry
                for k in range(reg.words):
                    self.by_address[address + k] = (entry, k)
                address += reg.words
        if address > 1 << ADDRESS_BITS:
            raise ValueError(f"the map needs {address} words; the bus has {1 << ADDRESS_BITS}")

    def __getitem__(self, name: str) -> Entry:
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(f"no register {name!r} in this register map") from None

    def __contains__(self, name: str) -> bool:
        return name in self.by_name

    def has_block(self, block: str) -> bool:
        return any(b.name == block for b in self.blocks)

    def to_json(self) -> dict:
        return {"word_bits": WORD, "address_bits": ADDRESS_BITS,
                "blocks": [{"name": b.name, "doc": b.doc} for b in self.blocks],
                "registers": [e.to_json() for e in self.entries]}

    @classmethod
    def from_json(cls, doc: dict) -> RegisterMap:
        blocks: dict[str, Block] = {b["name"]: Block(b["name"], b["doc"]) for b in doc["blocks"]}
        for r in doc["registers"]:
            block, _, name = r["name"].partition(".")
            fields = tuple((n, f["offset"], f["width"]) for n, f in r.get("fields", {}).items())
            blocks[block].registers.append(Register(name, r["width"], r["access"], r["reset"],
                                                    r["doc"], fields))
        regmap = cls(list(blocks.values()))
        for r in doc["registers"]:
            if regmap[r["name"]].address != r["address"]:
                raise ValueError(f"{r['name']}: address {r['address']:#x} in the document, "
                                 f"{regmap[r['name']].address:#x} when placed")
        return regmap

    @property
    def hash(self) -> int:
        """32 bits of a SHA-256 of the map's layout (names, addresses, widths, access
        kinds, resets, fields — not the descriptions, so rewording a doc string does not
        change the bitstream), readable from the device as ``sys.map_hash``: the host
        refuses a device whose map is not the one it holds."""
        layout = [{k: v for k, v in e.to_json().items() if k != "doc"} for e in self.entries]
        text = json.dumps(layout, sort_keys=True, separators=(",", ":"))
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")

    # -- generated documents ---------------------------------------------------------

    def to_markdown(self) -> str:
        lines = ["# Register map", "",
                 "Generated from the gateware by `t2t regmap --format md`; do not edit.",
                 (f"Map hash (`sys.map_hash`): `{self.hash:#010x}`. Addresses are 32-bit word "
                  "addresses; a wider register takes consecutive words, least significant "
                  "first. Access kinds are described in `docs/control.md`."), ""]
        for block in self.blocks:
            lines += [f"## {block.name}", "", block.doc, "",
                      "| address | name | width | access | reset | description |",
                      "| --- | --- | ---: | --- | ---: | --- |"]
            for e in self.entries:
                if e.block != block.name:
                    continue
                doc = e.doc
                if e.fields:
                    doc += " Fields: " + ", ".join(f"`{n}` [{o + w - 1}:{o}]"
                                                   for n, o, w in e.fields) + "."
                doc = doc.strip().replace("|", "\\|")
                lines.append(f"| `{e.address:#06x}` | `{e.name}` | {e.width} | {e.access} | "
                             f"{e.reset:#x} | {doc} |")
            lines.append("")
        return "\n".join(lines)

    def to_c_header(self) -> str:
        def ident(name: str) -> str:
            return "T2T_" + "".join(c if c.isalnum() else "_" for c in name).upper()

        lines = [("/* tick2trade register map. Generated by `t2t regmap --format c`; "
                  "do not edit. */"), "#pragma once", "",
                 f"#define T2T_MAP_HASH 0x{self.hash:08x}u", ""]
        for e in self.entries:
            base = ident(e.name).replace("[", "_").replace("]", "")
            lines.append(f"#define {base}_ADDR 0x{e.address:04x}u /* {e.access}, "
                         f"{e.width} bits, {e.words} word(s) */")
            for n, o, w in e.fields:
                lines.append(f"#define {base}_{ident(n)[4:]}_SHIFT {o}u")
                lines.append(f"#define {base}_{ident(n)[4:]}_WIDTH {w}u")
        return "\n".join(lines) + "\n"
