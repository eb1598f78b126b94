"""Placing, listing, reading, modifying and canceling the caller's orders, and their
executions."""

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response
from fastapi.concurrency import run_in_threadpool

from tick2trade.host.api.deps import CurrentUser, Limit, Offset, PlatformDep
from tick2trade.host.api.schemas import (ExecutionOut, ModifyIn, OcoIn, OrderIn, OrderOut,
                                         OrderPage)
from tick2trade.host.services import executions
from tick2trade.host.services.orders import order_json
from tick2trade.host.services.status import OPEN, OrderStatus

router = APIRouter(tags=["orders"])

OrderId = Annotated[int, Path(ge=1, le=2**62)]
# the statuses' values, not the enum: the parameter reads in the document as the list of
# strings it is
StatusName = Literal[tuple(s.value for s in OrderStatus)]


@router.post("/orders", status_code=201, response_model=OrderOut)
async def place(body: OrderIn, who: CurrentUser, platform: PlatformDep):
    # the hot path: one hop to a worker thread (placement waits for the writer's
    # commits and the broker's callbacks), the rest on the event loop
    order = await run_in_threadpool(platform.orders.place, who.user_id, who.username,
                                    body.to_new_order())
    return order_json(order)


@router.get("/orders", response_model=OrderPage)
def list_orders(who: CurrentUser, platform: PlatformDep, limit: Limit = 50, offset: Offset = 0,
                status: StatusName | None = None):
    total, rows = platform.orders.list(who.user_id, status, limit, offset)
    return {"total": total, "limit": limit, "offset": offset,
            "items": [order_json(o) for o in rows]}


@router.get("/orders/{order_id}", response_model=OrderOut)
def get_order(order_id: OrderId, who: CurrentUser, platform: PlatformDep):
    return order_json(platform.orders.get(who.user_id, order_id))


@router.delete("/orders/{order_id}", response_model=OrderOut,
               responses={202: {"description": "the cancel is on its way to the venue; "
                                               "the order is still open"}})
def cancel_order(order_id: OrderId, who: CurrentUser, platform: PlatformDep,
                 response: Response):
    order = platform.orders.cancel(who.user_id, order_id, who.username)
    if order.status in OPEN:
        response.status_code = 202
    return order_json(order)


@router.post("/orders/oco", status_code=201, response_model=list[OrderOut])
def place_oco(body: OcoIn, who: CurrentUser, platform: PlatformDep):
    """Two or more orders on one symbol, one-cancels-other: the first execution of one
    cancels the others."""
    legs = [leg.to_new_order() for leg in body.legs]
    return [order_json(o) for o in platform.orders.place_group(who.user_id, who.username,
                                                                legs)]


@router.patch("/orders/{order_id}", response_model=OrderOut)
def modify_order(order_id: OrderId, body: ModifyIn, who: CurrentUser, platform: PlatformDep):
    """An OUCH Replace for an order at the venue (``priority``: ``kept`` when only the
    quantity went down, ``lost`` otherwise), new parameters for one the OMS holds
    (``none``). ``qty`` is the new total, executed shares included."""
    return order_json(platform.orders.modify(who.user_id, order_id, who.username,
                                             **body.changes()))


@router.get("/orders/{order_id}/executions", response_model=list[ExecutionOut])
def order_executions(order_id: OrderId, who: CurrentUser, platform: PlatformDep):
    platform.orders.get(who.user_id, order_id)  # 404 unless it is the caller's
    return [executions.execution_json(e) for e in
            executions.for_order(platform.sessions, order_id)]
