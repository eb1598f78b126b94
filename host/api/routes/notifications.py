"""The caller's notifications, their delivery preferences, and price alerts."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from tick2trade.host.api.deps import CurrentUser, Limit, Offset, PlatformDep
from tick2trade.host.api.schemas import AlertIn, PreferencesIn
from tick2trade.host.services import audit, notify
from tick2trade.host.services.money import px, to_ticks
from tick2trade.host.services.orders import NotFound

router = APIRouter(tags=["notifications"])

RowId = Annotated[int, Path(ge=1, le=2**62)]


def _prefs_json(prefs: dict[tuple[str, str], bool]) -> dict:
    return {"preferences": [{"kind": k, "channel": c, "enabled": v}
                            for (k, c), v in sorted(prefs.items())]}


@router.get("/notifications")
def list_notifications(who: CurrentUser, platform: PlatformDep, limit: Limit = 50,
                       offset: Offset = 0, unread: bool = False,
                       after_id: Annotated[int, Query(ge=0)] = 0):
    with platform.sessions() as s:
        total, rows = notify.page(s, who.user_id, limit, offset, unread, after_id)
        return {"total": total, "limit": limit, "offset": offset,
                "items": [notify.notification_json(n) for n in rows]}


@router.post("/notifications/{notification_id}/read", status_code=204)
def mark_read(notification_id: RowId, who: CurrentUser, platform: PlatformDep):
    with platform.sessions.begin() as s:
        if not notify.mark_read(s, who.user_id, notification_id):
            raise NotFound(f"no notification {notification_id}")
        audit.append(s, who.username, "notification.read", f"notification:{notification_id}")
    return Response(status_code=204)


@router.get("/notifications/preferences")
def get_prefs(who: CurrentUser, platform: PlatformDep):
    with platform.sessions() as s:
        return _prefs_json(notify.preferences(s, who.user_id))


@router.put("/notifications/preferences")
def put_prefs(body: PreferencesIn, who: CurrentUser, platform: PlatformDep):
    changes = [(p.kind, p.channel, p.enabled) for p in body.preferences]
    with platform.sessions.begin() as s:
        notify.set_preferences(s, who.user_id, changes)
        audit.append(s, who.username, "notifications.preferences", f"user:{who.user_id}",
                     {"changes": [list(c) for c in changes]})
        prefs = notify.preferences(s, who.user_id)
    platform.recipients_changed(who.user_id)
    return _prefs_json(prefs)


def _alert_json(a) -> dict:
    return {"id": a.id, "symbol": a.symbol, "field": a.field, "op": a.op,
            "threshold": px(a.threshold), "active": a.active}


@router.get("/alerts")
def list_alerts(who: CurrentUser, platform: PlatformDep):
    """The caller's price alerts, oldest first; one that fired reads ``active`` false."""
    return {"items": [_alert_json(a) for a in platform.alerts.mine(who.user_id)]}


@router.post("/alerts", status_code=201)
def create_alert(body: AlertIn, who: CurrentUser, platform: PlatformDep):
    a = platform.alerts.create(who.user_id, body.symbol, body.field, body.op,
                               to_ticks(body.threshold), who.username)
    return _alert_json(a)


@router.delete("/alerts/{alert_id}", status_code=204)
def delete_alert(alert_id: RowId, who: CurrentUser, platform: PlatformDep):
    if not platform.alerts.delete(who.user_id, alert_id, who.username):
        raise NotFound(f"no alert {alert_id}")
    return Response(status_code=204)
