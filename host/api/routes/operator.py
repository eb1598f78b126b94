"""Operator controls: the attached device (status, counters, configuration), the kill
switch, and the WebSocket streams' counters."""

from fastapi import APIRouter

from tick2trade.host.api.deps import Operator, PlatformDep
from tick2trade.host.api.schemas import ConfigIn, KillSwitchIn
from tick2trade.host.services import audit, notify, risk
from tick2trade.host.services.device import Device, NoDevice
from tick2trade.host.services.platform import Platform

router = APIRouter(tags=["operator"])


def _device(platform: Platform) -> Device:
    if platform.device is None:
        raise NoDevice()
    return platform.device


@router.get("/operator/device")
def device_status(who: Operator, platform: PlatformDep):
    return _device(platform).status()


@router.get("/operator/counters")
def device_counters(who: Operator, platform: PlatformDep):
    return _device(platform).counters()


@router.get("/operator/streams")
def stream_stats(who: Operator, platform: PlatformDep):
    """WebSocket connections, subscriptions per channel, and the clients disconnected
    for falling behind (``dropped_slow``)."""
    return platform.hub.stats()


@router.get("/operator/market")
def market_stats(who: Operator, platform: PlatformDep):
    """Where the market comes from and its counters: the software feed's (packets,
    duplicates, gaps, recovered, requests, timeouts, malformed, ...) and gap state, the
    order session's; ``{"live": false}`` when no venue is attached (``t2t api --venue off``,
    ``t2t run --api``, whose FPGA counters are at ``/operator/counters``)."""
    live = platform.live
    if live is None:
        return {"live": False}
    out = {"live": True, "venue": f"{live.orders[0]}:{live.orders[1]}" if live.orders
           else None, **live.counters()}
    if live.feed is not None:
        out["feed_status"] = live.feed.status()
    if live.broker is not None:
        out["order_session"] = "connected" if live.broker.connected else "down"
    return out


@router.put("/operator/config")
def push_config(body: ConfigIn, who: Operator, platform: PlatformDep):
    device = _device(platform)
    with platform.sessions.begin() as s:
        audit.append(s, who.username, "device.config", "device", body.config)
    return device.push_config(body.config)


@router.get("/operator/kill-switch")
def get_kill(who: Operator, platform: PlatformDep):
    with platform.sessions() as s:
        return {"engaged": risk.kill_switch(s)}


@router.put("/operator/kill-switch")
def put_kill(body: KillSwitchIn, who: Operator, platform: PlatformDep):
    """Engaged: new orders are rejected, open orders are canceled, the device (if
    attached) stops sending; every user gets a risk alert. The answer counts the orders
    closed by the time it is sent, those whose cancel is on its way (a venue answers
    later) and those whose cancel the broker refused."""
    with platform.sessions.begin() as s:
        risk.set_kill_switch(s, body.engaged)
        audit.append(s, who.username, "risk.kill_switch", "platform",
                     {"engaged": body.engaged, "reason": body.reason})
        notify.emit_to_all(s, "risk_alert", {
            "level": "kill_switch", "engaged": body.engaged, "by": who.username,
            "reason": body.reason})
    done = platform.orders.cancel_all() if body.engaged else {}
    device = "not attached"
    if platform.device is not None:
        platform.device.set_kill_switch(body.engaged)
        device = "set"
    # what the store says once the cancels were made, not how many were asked
    return {"engaged": body.engaged, "orders_canceled": done.get("canceled", 0),
            "orders_cancel_pending": done.get("pending", 0),
            "orders_cancel_failed": done.get("failed", 0), "device": device}
