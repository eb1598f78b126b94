"""Requests for quote: ask the venues' liquidity providers, read their quotes, accept one.
The quotes also stream over the WebSocket as they arrive (``rfq_quote``)."""

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool

from tick2trade.host.api.deps import CurrentUser, PlatformDep
from tick2trade.host.api.schemas import RfqAcceptIn, RfqFillOut, RfqIn, RfqOut

router = APIRouter(tags=["rfq"])

RfqId = Annotated[int, Path(ge=1, le=2**62)]


@router.post("/rfq", status_code=201, response_model=RfqOut,
             responses={409: {"description": "no venue that quotes is connected here"},
                        422: {"description": "invalid, or no venue would quote"},
                        503: {"description": "no venue could be asked"}})
async def request_quotes(body: RfqIn, who: CurrentUser, platform: PlatformDep):
    return await run_in_threadpool(platform.rfqs.request, who.user_id, who.username,
                                   body.symbol, body.side, body.quantity)


@router.get("/rfq/{rfq_id}", response_model=RfqOut)
def get_rfq(rfq_id: RfqId, who: CurrentUser, platform: PlatformDep):
    return platform.rfqs.get(who.user_id, rfq_id)


@router.post("/rfq/{rfq_id}/accept", response_model=RfqFillOut,
             responses={404: {"description": "no such RFQ or quote of yours"},
                        409: {"description": "the quote (or another of the RFQ's) was "
                                             "taken"},
                        410: {"description": "the quote expired"}})
async def accept_quote(rfq_id: RfqId, body: RfqAcceptIn, who: CurrentUser,
                       platform: PlatformDep):
    return await run_in_threadpool(platform.rfqs.accept, who.user_id, who.username, rfq_id,
                                   body.quote_id, body.side)
