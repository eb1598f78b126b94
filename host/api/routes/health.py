"""For the machines that watch the API: ``GET /metrics`` (Prometheus' text format,
``metrics``), ``GET /health`` (liveness) and ``GET /ready`` (readiness).

None of them needs a token: Prometheus and an orchestrator's probes call them without
one. They answer no user's data (counts and states only); an operator who does not want
them reachable restricts them by network, at the proxy or firewall in front of the API.
They are not in the OpenAPI document, which describes the trading API.

- ``/health``: 200 ``{"status": "ok"}`` whenever the process serves requests at all.
- ``/ready``: 200 ``{"status": "ready", "checks": {...}}`` when the database answers a
  ``SELECT 1`` within ``READY_TIMEOUT`` and the market's feed (when the platform has
  one) is running; 503 ``{"status": "not ready", "reason": ..., "checks": {...}}``
  saying which check failed otherwise.
"""

import asyncio

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from tick2trade.host.api.deps import PlatformDep
from tick2trade.host.services.platform import Platform

router = APIRouter(tags=["monitoring"], include_in_schema=False)

READY_TIMEOUT = 2.0   # seconds the database has to answer /ready's query


@router.get("/metrics")
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)


@router.get("/health")
async def health() -> dict:
    return {"status": "ok"}


def _select_one(platform: Platform) -> None:
    with platform.engine.connect() as conn:
        conn.execute(text("SELECT 1")).scalar_one()


async def _database(platform: Platform) -> str | None:
    """Why the database is not usable, or None."""
    try:
        await asyncio.wait_for(run_in_threadpool(_select_one, platform), READY_TIMEOUT)
    except TimeoutError:
        return f"database: no answer to SELECT 1 within {READY_TIMEOUT:g} s"
    except Exception as exc:
        # the driver's class only: its message may carry the URL
        return f"database: SELECT 1 failed ({type(exc).__name__})"
    return None


def _market(platform: Platform) -> str | None:
    feed = getattr(platform.live, "feed", None)
    if feed is not None and not feed.running:
        return "market: the feed handler is not running"
    return None


@router.get("/ready")
async def ready(platform: PlatformDep) -> JSONResponse:
    checks = {"database": await _database(platform), "market": _market(platform)}
    failed = [reason for reason in checks.values() if reason is not None]
    summary = {name: reason or "ok" for name, reason in checks.items()}
    if failed:
        return JSONResponse({"status": "not ready", "reason": "; ".join(failed),
                             "checks": summary}, status_code=503)
    return JSONResponse({"status": "ready", "checks": summary})
