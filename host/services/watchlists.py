"""Watchlists: per user, named lists of symbols in the user's order.

A user has at most ``MAX_LISTS`` lists of at most ``MAX_SYMBOLS`` symbols each (the
same bound as one WebSocket subscription); ``DEFAULT`` is the list a WebSocket
subscription without symbols streams. A symbol need not have market data yet: a list
is the user's choice, checked for its form only (``schemas.SYMBOL``). Every change is
audited (``watchlist.put``, ``watchlist.delete``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from tick2trade.host.services import audit
from tick2trade.host.services.audit import as_utc
from tick2trade.host.services.db import Watchlist, utcnow

DEFAULT = "default"
MAX_LISTS = 20
MAX_SYMBOLS = 100


class TooManyLists(ValueError):
    """The user has ``MAX_LISTS`` lists already."""


@dataclass(frozen=True)
class WatchlistView:
    name: str
    symbols: list[str]
    updated_at: datetime

    def to_dict(self) -> dict:
        return {"name": self.name, "symbols": list(self.symbols),
                "updated_at": as_utc(self.updated_at).isoformat()}


def _view(row: Watchlist) -> WatchlistView:
    return WatchlistView(row.name, list(row.symbols), row.updated_at)


def lists(s: Session, user_id: int) -> list[WatchlistView]:
    rows = s.execute(select(Watchlist).where(Watchlist.user_id == user_id)
                     .order_by(Watchlist.name)).scalars()
    return [_view(r) for r in rows]


def put(s: Session, user_id: int, actor: str, name: str,
        symbols: list[str]) -> WatchlistView:
    """Create the list ``name`` or replace its symbols, in ``s``'s transaction."""
    audit.lock(s)    # read-then-write: two first PUTs of one list must not both insert
    row = s.get(Watchlist, (user_id, name))
    if row is None:
        count = s.execute(select(func.count()).select_from(Watchlist)
                          .where(Watchlist.user_id == user_id)).scalar_one()
        if count >= MAX_LISTS:
            raise TooManyLists(f"at most {MAX_LISTS} watchlists per user; delete one "
                               f"first")
        row = Watchlist(user_id=user_id, name=name, symbols=list(symbols))
        s.add(row)
    else:
        row.symbols, row.updated_at = list(symbols), utcnow()
    audit.append(s, actor, "watchlist.put", f"watchlist:{user_id}/{name}",
                 {"symbols": list(symbols)})
    s.flush()
    return _view(row)


def remove(s: Session, user_id: int, actor: str, name: str) -> bool:
    gone = s.execute(delete(Watchlist).where(Watchlist.user_id == user_id,
                                             Watchlist.name == name)).rowcount
    if gone:
        audit.append(s, actor, "watchlist.delete", f"watchlist:{user_id}/{name}")
    return bool(gone)


def symbols(sessions: sessionmaker, user_id: int, name: str = DEFAULT) -> list[str] | None:
    """The symbols of ``user_id``'s list ``name``; None when there is no such list."""
    with sessions() as s:
        row = s.get(Watchlist, (user_id, name))
        return None if row is None else list(row.symbols)
