"""The HTTP/WebSocket API (FastAPI; OpenAPI at ``/docs`` and ``/openapi.json``; the web
client at ``/``, ``web``).

Design decisions:
- Every route but register/login/refresh needs a bearer access token; roles are checked
  by dependency (``deps.Operator``, ``deps.Admin``: ``require("operator")``), so a
  route states who may call it.
- Rate limits per user (per client address for anonymous calls) in a moving window
  (``limits``), answered with 429 and ``Retry-After``. Failed logins have their own,
  stricter throttle (``auth.Users``).
- Bodies are bounded (1 MiB) and strict JSON before a route parses them (``guard``);
  an unhandled error answers 500 "internal error", never its text or a stack trace.
- Requests are validated by pydantic models with bounds (``schemas``: a quantity fits
  64-bit arithmetic, text has no control characters), so bad input is a 4xx saying
  which field and why; service errors map to 401/403/404/409/422/503 in one table
  (``errors.STATUS``).
- Prices cross the API as decimal strings with four places (inputs may be JSON
  numbers or strings); inside they are integer ticks (``money``).
- Lists are paginated with ``limit``/``offset`` and return ``total``.
- Handlers are plain ``def``: FastAPI runs them on its thread pool, which suits the
  blocking database drivers. The WebSocket is ``async``, and so is order placement,
  the hot path, which makes a single hop to the pool (each sync dependency or handler
  would be one more); the dependencies (``deps``) are ``async`` because they never block.
- The routes hold no SQL: they call the services (``tick2trade.host.services``), one
  router per OpenAPI tag under ``routes``; the WebSocket is ``ws``.
- Monitoring (``routes.health``, ``metrics``): ``/metrics``, ``/health`` and ``/ready``
  need no token (Prometheus and probes call them; restrict them by network) and are
  left out of the OpenAPI document. Every request has an id (``X-Request-ID``, given
  or made) that its log records and the log lines of the orders it placed carry.
"""

import logging
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from tick2trade.host.api import errors, web, ws
from tick2trade.host.api.deps import RateLimits
from tick2trade.host.api.guard import BodyGuard
from tick2trade.host.api.metrics import Metrics, Observe
from tick2trade.host.api.routes import (health, market, notifications, operator, orders,
                                        portfolio, rfq, risk, users, watchlists)
from tick2trade.host.services.auth import Throttled
from tick2trade.host.services.platform import Platform

ROUTERS = (users.router, market.router, orders.router, portfolio.router, risk.router,
           notifications.router, operator.router, watchlists.router, rfq.router, ws.router,
           health.router)


log = logging.getLogger(__name__)


def create_app(platform: Platform, cors_origins: Sequence[str] = (),
               trusted_proxies: tuple[str, ...] = ()) -> FastAPI:
    """The API over ``platform``; serving it does not start background work (``t2t api``
    does, tests call the passes themselves). ``cors_origins``: the other origins whose
    pages may call it (none: same origin only). ``trusted_proxies``: addresses or
    networks whose ``X-Forwarded-For`` names the client (from any other peer it is
    ignored)."""
    app = FastAPI(title="tick2trade host API", version="0.1.0",
                  description="Users, market data, orders, portfolio, risk, notifications "
                              "and operator controls of the tick2trade host. Prices are "
                              "decimal strings with 4 places; quantities are integers.",
                  # the docs page is ours (``web``): Swagger UI from local files;
                  # ReDoc would load from a CDN, so there is none
                  docs_url=None, redoc_url=None)
    app.state.platform = platform
    app.state.rate_limits = RateLimits(platform.limits)
    app.state.metrics = Metrics(platform)

    for exc_type, status in errors.STATUS.items():
        def handler(request: Request, exc: Exception, status: int = status) -> JSONResponse:
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)
        app.add_exception_handler(exc_type, handler)

    @app.exception_handler(Throttled)
    def throttled(request: Request, exc: Throttled) -> JSONResponse:
        return JSONResponse({"detail": "too many failed logins; try again later"},
                            status_code=429, headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(Exception)
    def internal(request: Request, exc: Exception) -> JSONResponse:
        # the log has the stack; the client gets no trace, SQL or message of it
        log.error("unhandled error on %s %s", request.method, request.url.path,
                  exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(BodyGuard)
    if trusted_proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(trusted_proxies))
    # after the routers (the client's files are mounted at /) and outermost (CORS
    # headers on every answer, a refused body's 413 included)
    web.install(app, cors_origins)
    # outermost of all: a refused body or a CORS answer is timed and has its id too
    app.add_middleware(Observe, metrics=app.state.metrics)
    return app
