"""The build parameters of the top level, defined once: ``SHIPPED`` (the bitstream the
design is sized for, exactly ``Top``'s defaults), ``SMALL_BOARD`` (the reduced core the
boards build) and ``SMALL_BOOK`` (the small book the simulation tests overflow).

A profile gives ``Top`` its keyword arguments (``top_kwargs``) and the book models and
simulators theirs (``book_kwargs``); ``override`` applies the JSON the build commands take
(``--top '{"symbols": 16, "book": {"capacity": 4096}}'``), the book merged key by key."""

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace


@dataclass(frozen=True)
class BookProfile:
    """The book's parameters, as ``Book`` takes them: ``capacity`` orders in ``ways``-way
    buckets, ``n`` levels a side reported, ``depth`` levels a side kept."""

    capacity: int = 16384
    ways: int = 4
    n: int = 8
    depth: int = 16


@dataclass(frozen=True)
class BuildProfile:
    """The parameters of one ``Top``: ``symbols`` tracked, ``locates`` entries in the
    order-reference table of the receive path, and the book's."""

    symbols: int = 64
    locates: int = 16384
    book: BookProfile = BookProfile()

    def top_kwargs(self) -> dict:
        """Keyword arguments for ``Top`` (and ``register_map``)."""
        return {"symbols": self.symbols, "locates": self.locates, "book": asdict(self.book)}

    def book_kwargs(self) -> dict:
        """Keyword arguments for ``Book``, its model and ``BookSim``: symbols and the book's."""
        return {"symbols": self.symbols, **asdict(self.book)}

    def override(self, over: "str | Mapping | None") -> "BuildProfile":
        """This profile with ``over`` (a mapping, or its JSON text) applied; ``book`` is
        merged key by key. Raises ``ValueError`` naming a key no profile has."""
        if isinstance(over, str):
            over = json.loads(over)
        over = dict(over or {})
        book = over.pop("book", None) or {}
        _check_keys(over, BuildProfile, "")
        _check_keys(book, BookProfile, "book.")
        return replace(self, **over, book=replace(self.book, **book))


def _check_keys(over: Mapping, cls: type, prefix: str) -> None:
    known = [f.name for f in fields(cls)]
    unknown = [k for k in over if k not in known]
    if unknown:
        raise ValueError(f"unknown build parameter {prefix}{unknown[0]!r}; known: "
                         + ", ".join(prefix + k for k in known))


SHIPPED = BuildProfile()

# A reduced core: 8 symbols, a 1024-order book with 4 levels a side. Yosys maps it to
# 25.1k LUT4 + 4.8k CCU2C + 14.9k FF + 32 DP16KD + 8 MULT18X18D (ECP5, summer 2026
# toolchain): the book is not what makes the core big, and even this does not fit a 25F.
SMALL_BOARD = BuildProfile(symbols=8, locates=1024,
                           book=BookProfile(capacity=1024, ways=4, n=4, depth=8))

# A book whose tables overflow under random flow (the simulation tests' small build).
SMALL_BOOK = BuildProfile(symbols=8, book=BookProfile(capacity=256, ways=4, n=3, depth=5))
