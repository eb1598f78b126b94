"""The routes' dependencies, as ``Annotated`` types a handler names in its signature.

``CurrentUser`` is the bearer token's principal (401 without a valid one) and counts the
request against the user's rate limit; ``Operator`` and ``Admin`` add a role check (403);
``Anonymous`` rate-limits the token-issuing routes by client address; ``PlatformDep`` is
the ``Platform`` the app serves. They are ``async``: a sync dependency costs a trip
through the thread pool on every request, and a token seen in the last seconds or a
rate-limit hit is a few microseconds of CPU; only a token whose standing must be read
from the database (``Users.authenticate``) goes to the pool.
"""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from tick2trade.host.services.auth import Principal, role_at_least
from tick2trade.host.services.platform import Limits, Platform
from tick2trade.host.services.shared import LIMITS_DOWN, SharedUnavailable

MAX_PAGE = 200  # the largest page a list answers


class RateLimits:
    """The moving-window limits of one app: per user, and per address for anonymous
    calls, counted where ``limits.storage`` says (this process's memory, or Redis for
    all the processes sharing it: then a hit is a round trip to Redis). Exceeded: 429
    with ``Retry-After``; Redis not answering: 503."""

    def __init__(self, limits: Limits) -> None:
        self._limiter = MovingWindowRateLimiter(limits.storage or MemoryStorage())
        self._user = parse_many(limits.requests)
        self._anonymous = parse_many(limits.anonymous)

    def user(self, user_id: int) -> None:
        self._hit(f"user:{user_id}", self._user)

    def anonymous(self, address: str) -> None:
        self._hit(f"addr:{address}", self._anonymous)

    def _hit(self, key: str, rules) -> None:
        for rule in rules:
            try:
                allowed = self._limiter.hit(rule, "api", key)
            except StorageError:
                raise SharedUnavailable(LIMITS_DOWN) from None
            if not allowed:
                reset = self._limiter.get_window_stats(rule, "api", key).reset_time
                wait = max(1, int(reset - datetime.now(UTC).timestamp()) + 1)
                raise HTTPException(429, f"rate limit {rule} exceeded",
                                    headers={"Retry-After": str(wait)})


def address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _platform(request: Request) -> Platform:
    return request.app.state.platform


async def _rate_limits(request: Request) -> RateLimits:
    return request.app.state.rate_limits


PlatformDep = Annotated[Platform, Depends(_platform)]
RateLimitsDep = Annotated[RateLimits, Depends(_rate_limits)]
_bearer = HTTPBearer(auto_error=False)


async def _anonymous(request: Request, rate: RateLimitsDep) -> None:
    rate.anonymous(address(request))


async def _current(platform: PlatformDep, rate: RateLimitsDep,
                   creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
                   ) -> Principal:
    if creds is None:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    # a token seen in the last seconds is answered from memory; otherwise its standing
    # is read from the database, on the thread pool
    who = (platform.users.cached(creds.credentials)
           or await run_in_threadpool(platform.users.authenticate, creds.credentials))
    rate.user(who.user_id)
    return who


def require(role: str):
    """A dependency: the current user, who must hold ``role`` or one above it."""
    async def check(who: Annotated[Principal, Depends(_current)]) -> Principal:
        if not role_at_least(who.role, role):
            raise PermissionError(f"this needs the {role} role (you are {who.role})")
        return who
    return check


Anonymous = Depends(_anonymous)
CurrentUser = Annotated[Principal, Depends(_current)]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Offset = Annotated[int, Query(ge=0, le=10**9)]
