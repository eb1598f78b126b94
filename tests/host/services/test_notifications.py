"""Notifications: preferences, the outbox to a real webhook and a real SMTP server on
loopback, delivery after a sink comes back, price alerts, WebSocket push."""

from __future__ import annotations

import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from tick2trade.host.api.ws import BEARER
from tick2trade.host.services.db import OutboxEntry, utcnow
from tick2trade.host.services.notify import Dispatcher, SmtpConfig, WebhookPolicy, WebhookRefused

from tests.host.conftest import register_login

T = 10_000


class Webhook:
    """A loopback HTTP server that records JSON POSTs; ``fail`` makes it answer 500."""

    def __init__(self):
        self.received: list[dict] = []
        self.fail = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.fail:
                    self.send_response(500)
                else:
                    outer.received.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def webhook():
    w = Webhook()
    yield w
    w.close()


@pytest.fixture
def smtp():
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield box, controller
    controller.stop()


def _quote(platform, sym="AAPL", bid=100.0, ask=100.1, size=100):
    platform.market.update(sym, bid=round(bid * T), bid_size=size, ask=round(ask * T),
                           ask_size=size)


def test_default_preferences_and_update(client):
    h = register_login(client, "amy")
    prefs = client.get("/notifications/preferences", headers=h).json()["preferences"]
    assert len(prefs) == 12
    assert {(p["kind"], p["channel"]) for p in prefs if p["enabled"]} == {
        (k, "in_app") for k in ("order_status", "price_alert", "risk_alert", "portfolio_value")}
    r = client.put("/notifications/preferences", headers=h, json={"preferences": [
        {"kind": "order_status", "channel": "webhook", "enabled": True},
        {"kind": "order_status", "channel": "in_app", "enabled": False}]})
    assert r.status_code == 200
    on = {(p["kind"], p["channel"]) for p in r.json()["preferences"] if p["enabled"]}
    assert ("order_status", "webhook") in on and ("order_status", "in_app") not in on
    for bad in ({"preferences": []}, {"preferences": [{"kind": "x", "channel": "in_app",
                                                        "enabled": True}]},
                {"preferences": [{"kind": "order_status", "channel": "sms", "enabled": True}]}):
        assert client.put("/notifications/preferences", headers=h, json=bad).status_code == 422


def test_webhook_and_email_delivery(client, platform, webhook, smtp):
    box, controller = smtp
    h = register_login(client, "bea")
    client.patch("/users/me", headers=h, json={"webhook_url": webhook.url})
    client.put("/notifications/preferences", headers=h, json={"preferences": [
        {"kind": "order_status", "channel": "webhook", "enabled": True},
        {"kind": "order_status", "channel": "email", "enabled": True}]})
    _quote(platform)
    client.post("/orders", headers=h, json={"symbol": "AAPL", "side": "buy", "type": "market",
                                            "qty": 5})
    dispatcher = Dispatcher(platform.sessions, SmtpConfig("127.0.0.1", controller.port),
                            webhooks=platform.webhooks)
    assert dispatcher.deliver_due() == (4, 0)   # accepted + filled, to both sinks
    assert [m["payload"]["status"] for m in webhook.received] == ["accepted", "filled"]
    assert len(box.messages) == 2
    assert box.messages[0].rcpt_tos == ["bea@example.com"]
    assert b"filled" in box.messages[1].content
    assert dispatcher.deliver_due() == (0, 0)   # nothing is sent twice


def test_nothing_is_lost_while_a_sink_is_down(client, platform, webhook, smtp):
    box, controller = smtp
    h = register_login(client, "cat")
    client.patch("/users/me", headers=h, json={"webhook_url": webhook.url})
    client.put("/notifications/preferences", headers=h, json={"preferences": [
        {"kind": "order_status", "channel": "webhook", "enabled": True},
        {"kind": "order_status", "channel": "email", "enabled": True}]})
    _quote(platform)
    webhook.fail = True
    down = Dispatcher(platform.sessions, SmtpConfig("127.0.0.1", _free_port(), timeout=1),
                      webhooks=platform.webhooks)
    client.post("/orders", headers=h, json={"symbol": "AAPL", "side": "buy", "type": "market",
                                            "qty": 5})
    assert down.deliver_due() == (0, 4)
    with platform.sessions() as s:
        rows = list(s.execute(select(OutboxEntry)).scalars())
        assert all(r.attempts == 1 and r.delivered_at is None and r.last_error for r in rows)
    # not due again until the backoff has passed
    assert down.deliver_due() == (0, 0)
    assert down.deliver_due(now=utcnow() + timedelta(seconds=2)) == (0, 4)
    webhook.fail = False
    up = Dispatcher(platform.sessions, SmtpConfig("127.0.0.1", controller.port),
                    webhooks=platform.webhooks)
    assert up.deliver_due(now=utcnow() + timedelta(minutes=30)) == (4, 0)
    assert len(webhook.received) == 2 and len(box.messages) == 2
    # each delivery carries the notification id, so a receiver can de-duplicate
    assert len({m["id"] for m in webhook.received}) == 2


def test_outbox_rows_commit_with_their_event(platform):
    """A notification and its outbox rows are written in the event's transaction: roll
    the transaction back and neither exists."""
    from tick2trade.host.services import notify
    from tick2trade.host.services.db import Notification
    user = platform.users.register("dan", "d@example.com", "correct horse battery")
    with platform.sessions.begin() as s:
        notify.set_preferences(s, user.id, [("risk_alert", "email", True)])
    s = platform.sessions()
    s.begin()
    notify.emit(s, user.id, "risk_alert", {"level": "near"})
    s.rollback()
    s.close()
    with platform.sessions() as s:
        assert s.execute(select(Notification)).first() is None
        assert s.execute(select(OutboxEntry)).first() is None


def test_price_alert_fires_once(client, platform):
    h = register_login(client, "eve")
    r = client.post("/alerts", headers=h, json={"symbol": "AAPL", "field": "bid", "op": "above",
                                                "threshold": "101"})
    assert r.status_code == 201
    alert_id = r.json()["id"]
    other = client.post("/alerts", headers=h, json={"symbol": "AAPL", "field": "last",
                                                    "op": "below", "threshold": "90"}).json()
    _quote(platform, bid=100.9, ask=101.1)
    _quote(platform, bid=101.0, ask=101.2)
    _quote(platform, bid=102.0, ask=102.2)
    notes = [n for n in client.get("/notifications", headers=h).json()["items"]
             if n["kind"] == "price_alert"]
    assert len(notes) == 1
    assert notes[0]["payload"] == {"alert_id": alert_id, "symbol": "AAPL", "field": "bid",
                                   "op": "above", "threshold": "101.0000", "value": "101.0000"}
    assert client.delete(f"/alerts/{other['id']}", headers=h).status_code == 204
    platform.market.trade("AAPL", 89 * T, 1)
    assert len([n for n in client.get("/notifications", headers=h).json()["items"]
                if n["kind"] == "price_alert"]) == 1
    assert client.delete(f"/alerts/{other['id']}", headers=h).status_code == 404
    assert client.post("/alerts", headers=h, json={"symbol": "AAPL", "field": "mid",
                                                   "op": "above", "threshold": "1"}
                       ).status_code == 422


def test_portfolio_value_notification(client, platform):
    h = register_login(client, "fay")
    _quote(platform)
    client.post("/orders", headers=h, json={"symbol": "AAPL", "side": "buy", "type": "market",
                                            "qty": 10})
    _quote(platform, bid=110, ask=110.2)
    assert platform.publish_portfolio_values() == 1
    note = next(n for n in client.get("/notifications", headers=h).json()["items"]
                if n["kind"] == "portfolio_value")
    assert note["payload"] == {"market_value": "1101.0000", "realized": "0.0000",
                               "unrealized": "100.0000", "total_pnl": "100.0000"}


def test_list_unread_and_mark_read(client, platform):
    h = register_login(client, "gus")
    _quote(platform)
    client.post("/orders", headers=h, json={"symbol": "AAPL", "side": "buy", "type": "market",
                                            "qty": 1})
    items = client.get("/notifications", headers=h).json()["items"]
    assert client.post(f"/notifications/{items[0]['id']}/read", headers=h).status_code == 204
    unread = client.get("/notifications", headers=h, params={"unread": True}).json()
    assert unread["total"] == len(items) - 1
    other = register_login(client, "hal")
    assert client.post(f"/notifications/{items[1]['id']}/read", headers=other
                       ).status_code == 404


def test_websocket_quotes_and_notifications(client, platform):
    h = register_login(client, "ian")
    token = h["Authorization"][7:]
    _quote(platform)
    with client.websocket_connect("/ws", subprotocols=[BEARER, token]) as ws:
        assert ws.receive_json()["type"] == "hello"
        ws.send_json({"op": "subscribe", "symbols": ["AAPL"]})
        first = ws.receive_json()
        assert first["type"] == "quote" and first["bid"] == "100.0000"
        assert ws.receive_json() == {"type": "subscribed", "symbols": ["AAPL"],
                                     "channels": {"quotes": ["AAPL"]}}
        _quote(platform, bid=100.5, ask=100.6)
        assert ws.receive_json()["bid"] == "100.5000"
        client.post("/orders", headers=h, json={"symbol": "AAPL", "side": "buy",
                                                "type": "market", "qty": 1})
        got = []
        while len([m for m in got if m["type"] == "notification"]) < 2:
            got.append(ws.receive_json())
        statuses = [m["payload"]["status"] for m in got if m["type"] == "notification"]
        assert statuses == ["accepted", "filled"]
        ws.send_text("not json")
        assert ws.receive_json()["type"] == "error"


def test_websocket_refuses_a_bad_token(client):
    from starlette.websockets import WebSocketDisconnect
    with pytest.raises(WebSocketDisconnect) as err, \
            client.websocket_connect("/ws?token=nope") as ws:
        ws.receive_json()
    assert err.value.code == 1008


@pytest.mark.parametrize("url,kind", [
    ("http://127.0.0.1:8000/hook", "loopback"),
    ("http://localhost/hook", "loopback"),                # a name: resolved, then checked
    ("http://[::1]/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),       # IPv4 hidden in IPv6
    ("http://10.1.2.3/hook", "private"),
    ("http://192.168.0.10/hook", "private"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),   # cloud metadata
    ("http://[fe80::1]/hook", "link-local"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://100.64.0.1/hook", "non-public"),             # carrier-grade NAT
])
def test_webhooks_to_non_public_addresses_are_refused(url, kind):
    with pytest.raises(WebhookRefused, match=f"a {kind} address"):
        WebhookPolicy().check(url)


def test_webhook_policy_checks_every_address_and_honours_allow(monkeypatch):
    WebhookPolicy().check("https://93.184.215.14/hook")     # public: no objection
    with pytest.raises(WebhookRefused, match="only http"):
        WebhookPolicy().check("file:///etc/passwd")
    # a name with one public and one private address is refused for the private one
    answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443)),
               (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 443))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: answers)
    with pytest.raises(WebhookRefused, match="10.0.0.7, a private address"):
        WebhookPolicy().check("https://hooks.example.com/x")
    WebhookPolicy(allow=("10.0.0.0/24",)).check("https://hooks.example.com/x")
    with pytest.raises(WebhookRefused, match="10.0.0.7"):
        WebhookPolicy(allow=("10.0.1.0/24",)).check("https://hooks.example.com/x")


def test_a_refused_webhook_is_not_called_and_not_lost(client, platform, webhook):
    """Delivery to a loopback receiver under the default policy: the receiver sees
    nothing, the row records why and stays owed; once the operator allows loopback the
    same row is delivered."""
    h = register_login(client, "sam")
    client.patch("/users/me", headers=h, json={"webhook_url": webhook.url})
    client.put("/notifications/preferences", headers=h, json={"preferences": [
        {"kind": "order_status", "channel": "webhook", "enabled": True}]})
    _quote(platform)
    client.post("/orders", headers=h, json={"symbol": "AAPL", "side": "buy", "type": "market",
                                            "qty": 5})
    strict = Dispatcher(platform.sessions)
    assert strict.deliver_due() == (0, 2)
    assert webhook.received == []
    with platform.sessions() as s:
        rows = list(s.execute(select(OutboxEntry)).scalars())
    assert all("loopback" in r.last_error and r.delivered_at is None for r in rows)
    allowed = Dispatcher(platform.sessions, webhooks=WebhookPolicy(allow=("127.0.0.1/32",)))
    assert allowed.deliver_due(now=utcnow() + timedelta(minutes=30)) == (2, 0)
    assert [m["payload"]["status"] for m in webhook.received] == ["accepted", "filled"]
