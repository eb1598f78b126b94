"""Reading the FPGA's book through its registers (``book.peek_select`` → ``book.peek``):
what ``t2t book`` prints and what the host's copy of the book resyncs from
(``host.services.fpgabook``).

Any object with ``map``, ``write`` and ``read_many`` will do (a ``Device``, the golden
models' ``ModelFpga``).
"""

from __future__ import annotations

SIDES = ((0, "bids"), (1, "asks"))
SYM_SHIFT = 1  # peek_select is (side, sym), side in bit 0


def peek_depth(regmap) -> int:
    """Levels per side the book's level row holds (``book.peek.levels[i]``)."""
    return sum(1 for e in regmap.entries
               if e.name.startswith("book.peek.levels[") and e.name.endswith(".price"))


def _side(got: dict[str, int], depth: int) -> dict:
    count = min(got["count"], depth)
    return {"levels": [[got[f"levels[{i}].price"], got[f"levels[{i}].shares"],
                        got[f"levels[{i}].orders"]] for i in range(count)],
            "limited": bool(got["limited"]), "limit": got["limit"] if got["limited"] else None,
            "untracked_orders": got["untracked"]}


def read_book_side(dev, sym: int, side: int, before: str | None = None,
                   after: str | None = None) -> dict:
    """One side (0 bids, 1 asks) of a symbol's book in the FPGA: ``levels`` [[price,
    shares, orders], ...] best first, whether the side is ``limited`` (levels at or
    beyond ``limit`` dropped for depth) and its untracked orders. ``before``/``after``
    name a register read in the same requests just before / after the level row (its
    values under those keys)."""
    names = [e.name for e in dev.map.entries if e.name.startswith("book.peek.")]
    dev.write("book.peek_select", sym << SYM_SHIFT | side)
    got = dev.read_many(([before] if before else []) + names + ([after] if after else []))
    out = _side({n.removeprefix("book.peek."): got[n] for n in names}, peek_depth(dev.map))
    if before:
        out["before"] = got[before]
    if after:
        out["after"] = got[after]
    return out


def read_book(dev, sym: int, marker: str | None = None) -> dict:
    """Both sides of a symbol's book, ``{"bids": side, "asks": side}`` as
    :func:`read_book_side` gives them; with ``marker`` (a register, e.g. the tap's
    ``book_stream.seq``) also ``marker``: its value (read before the bids, after the
    asks), so the caller can tell whether the book moved while it was being read."""
    bids = read_book_side(dev, sym, 0, before=marker)
    asks = read_book_side(dev, sym, 1, after=marker)
    out = {"bids": bids, "asks": asks}
    if marker:
        out["marker"] = (bids.pop("before"), asks.pop("after"))
    return out
