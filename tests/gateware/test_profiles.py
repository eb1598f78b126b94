"""BuildProfile: Top's defaults, overrides as the build commands give them, frozen."""

import dataclasses
import inspect

import pytest

from tick2trade.gateware.book import Book
from tick2trade.gateware.profiles import SHIPPED, SMALL_BOARD, BookProfile, BuildProfile
from tick2trade.gateware.top import Top


def _defaults(fn) -> dict:
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def test_shipped_is_tops_defaults():
    top, book = _defaults(Top.__init__), _defaults(Book.__init__)
    assert (SHIPPED.symbols, SHIPPED.locates) == (top["symbols"], top["locates"])
    assert top["book"] is None  # so the book's own defaults are Top's
    assert SHIPPED.symbols == book["symbols"]
    for name, value in dataclasses.asdict(SHIPPED.book).items():
        assert value == book[name], name


def test_override_merges_the_book_key_by_key():
    p = SMALL_BOARD.override('{"symbols": 16, "book": {"capacity": 4096}}')
    assert p == BuildProfile(symbols=16, locates=1024,
                             book=BookProfile(capacity=4096, ways=4, n=4, depth=8))
    assert SMALL_BOARD.override({"locates": 2048}).locates == 2048
    assert SMALL_BOARD.override(None) == SMALL_BOARD


def test_keyword_arguments():
    assert SMALL_BOARD.top_kwargs() == {
        "symbols": 8, "locates": 1024,
        "book": {"capacity": 1024, "ways": 4, "n": 4, "depth": 8}}
    assert SHIPPED.book_kwargs() == {"symbols": 64, "capacity": 16384, "ways": 4, "n": 8,
                                     "depth": 16}


@pytest.mark.parametrize("over, key", [({"symbol": 16}, "'symbol'"),
                                       ({"book": {"size": 4}}, "book.'size'")])
def test_unknown_key_is_named(over, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        SHIPPED.override(over)


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SHIPPED.symbols = 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        SHIPPED.book.capacity = 8
