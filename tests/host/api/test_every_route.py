"""Properties every route of the published document must have: no token → 401 (except
the three that issue tokens), and the per-user rate limit answers 429 on each."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tick2trade.host.api import create_app

OPEN = {("post", "/auth/register"), ("post", "/auth/login"), ("post", "/auth/refresh")}
SAMPLE = {"symbol": "AAPL", "order_id": "1", "notification_id": "1", "alert_id": "1",
          "username": "someone", "name": "default", "rfq_id": "1"}


def _routes(app):
    for path, item in app.openapi()["paths"].items():
        for method in item:
            yield method, path, re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path)


def test_document_lists_the_issue_paths(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/auth/register", "/auth/login", "/users/me", "/market/{symbol}/quote",
            "/market/{symbol}/book", "/market/{symbol}/history", "/orders",
            "/orders/{order_id}", "/portfolio/positions", "/portfolio/performance",
            "/portfolio/transactions", "/risk/limits", "/notifications",
            "/notifications/preferences", "/watchlists", "/market",
            "/market/{symbol}/trades", "/operator/market", "/orders/oco",
            "/orders/{order_id}/executions", "/rfq", "/rfq/{rfq_id}",
            "/rfq/{rfq_id}/accept"} <= set(paths)
    assert set(paths["/orders"]) == {"get", "post"}
    assert set(paths["/orders/{order_id}"]) == {"get", "patch", "delete"}
    assert client.get("/docs").status_code == 200


def test_every_protected_route_needs_a_token(client):
    checked = 0
    for method, path, url in _routes(client.app):
        if (method, path) in OPEN:
            continue
        r = client.request(method.upper(), url, json={})
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.headers.get("WWW-Authenticate") == "Bearer"
        checked += 1
    assert checked >= 25


def test_every_route_is_rate_limited(platform):
    platform.limits.requests = "3/minute"
    platform.limits.anonymous = "3/minute"
    platform.users.register("limited", "limited@example.com", "correct horse battery")
    token = platform.users.login("limited", "correct horse battery", "x").access_token
    checked = 0
    for method, path, url in _routes(create_app(platform)):
        # a new app per route: its limiter starts with a full allowance
        with TestClient(create_app(platform)) as c:
            h = {} if (method, path) in OPEN else {"Authorization": f"Bearer {token}"}
            codes = [c.request(method.upper(), url, json={}, headers=h).status_code
                     for _ in range(4)]
        assert codes[-1] == 429 and 429 not in codes[:-1], (method, path, codes)
        checked += 1
    assert checked >= 28
