"""The caller's watchlists: named lists of symbols, the default of ``/ws`` subscriptions."""

from typing import Annotated

from fastapi import APIRouter, Path, Response

from tick2trade.host.api.deps import CurrentUser, PlatformDep
from tick2trade.host.api.schemas import LIST_NAME, WatchlistIn
from tick2trade.host.services import watchlists
from tick2trade.host.services.orders import NotFound

router = APIRouter(tags=["watchlists"])

ListName = Annotated[str, Path(pattern=LIST_NAME, description="1-32 characters "
                                                              "A-Z a-z 0-9 _ . -")]


@router.get("/watchlists")
def get_watchlists(who: CurrentUser, platform: PlatformDep):
    """Every list of the caller, by name: ``{"watchlists": [{"name", "symbols",
    "updated_at"}, ...]}``."""
    with platform.sessions() as s:
        return {"watchlists": [w.to_dict() for w in watchlists.lists(s, who.user_id)]}


@router.put("/watchlists")
def put_watchlist(body: WatchlistIn, who: CurrentUser, platform: PlatformDep):
    """Create or replace one list: ``{"name": "default", "symbols": ["AAPL", ...]}``
    (``name`` may be left out: ``default``, the list a ``/ws`` subscription without
    ``symbols`` streams). Symbols keep the order given; each is 1-8 characters A-Z 0-9
    . -, at most 100, none twice (422 otherwise), and need not have market data yet.
    At most 20 lists per user (409 for a 21st). Answers the stored list."""
    with platform.sessions.begin() as s:
        return watchlists.put(s, who.user_id, who.username, body.name,
                              body.symbols).to_dict()


@router.delete("/watchlists/{name}", status_code=204)
def delete_watchlist(name: ListName, who: CurrentUser, platform: PlatformDep):
    with platform.sessions.begin() as s:
        if not watchlists.remove(s, who.user_id, who.username, name):
            raise NotFound(f"no watchlist {name!r}")
    return Response(status_code=204)
