"""CSV cells a spreadsheet will not run.

A spreadsheet opening a CSV runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and
some, after a leading tab or carriage return) as a formula: a username such as
``=HYPERLINK(...)``, typed into a failed login, would become a link in an auditor's
audit export. ``safe`` puts a ``'`` in front of such a cell (spreadsheets show the rest
as text), leaving numbers such as ``-12.5000`` as they are; a cell that already started
with ``'`` followed by one of those characters gets one more, so ``unescape`` gives back
exactly what was written (the audit export's hashes are over the original text).
Every CSV the project writes goes through ``writer``.
"""

from __future__ import annotations

import csv
import re
from typing import IO, Any

_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?")


def safe(value: Any) -> Any:
    """``value`` as a cell no spreadsheet runs (non-strings are returned as they are)."""
    if not isinstance(value, str) or not value:
        return value
    if value[0] in _FORMULA and not _NUMBER.fullmatch(value):
        return "'" + value
    if value[0] == "'" and value[1:2] and (value[1] in _FORMULA or value[1] == "'"):
        return "'" + value
    return value


def unescape(cell: str) -> str:
    """What ``safe`` was given."""
    if cell[:1] == "'" and cell[1:2] and (cell[1] in _FORMULA or cell[1] == "'"):
        return cell[1:]
    return cell


class _SafeWriter:
    def __init__(self, out: IO[str]) -> None:
        self._w = csv.writer(out)

    def writerow(self, row) -> None:
        self._w.writerow([safe(v) for v in row])

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)


def writer(out: IO[str]) -> _SafeWriter:
    """``csv.writer(out)`` whose every cell goes through ``safe``."""
    return _SafeWriter(out)
