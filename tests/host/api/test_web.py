"""Serving the web client and the docs page from this machine, the CORS allow-list, and
the price-alert list the client shows."""

import re

from fastapi.testclient import TestClient

from tick2trade.host.api import create_app, web

from tests.host.conftest import register_login


def test_the_client_and_the_docs_name_no_other_host(client):
    """Every script, style sheet and image the pages load is served here; a CDN address
    would break them on a machine without internet."""
    for path in ("/", "/docs"):
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:200])
        refs = re.findall(r'(?:src|href)=["\']([^"\']+)', r.text)
        refs += re.findall(r"url:\s*'([^']+)'", r.text)
        assert refs, path
        for ref in refs:
            assert ref.startswith("/"), (path, ref)
            assert client.get(ref).status_code == 200, (path, ref)
    assert client.get("/redoc").status_code == 404
    # the bundles are under /static; the page itself is fetched again after a rebuild
    assert client.get("/").headers["Cache-Control"] == "no-cache"


def test_without_a_build_the_page_says_how_to_make_one(platform, tmp_path, monkeypatch):
    monkeypatch.setattr(web, "STATIC", tmp_path)
    with TestClient(create_app(platform)) as c:
        r = c.get("/")
        assert r.status_code == 503 and "make setup" in r.text
        assert c.get("/docs").status_code == 503
        assert c.get("/openapi.json").status_code == 200     # the API does not need it


def _preflight(c: TestClient, origin: str):
    return c.options("/orders", headers={"Origin": origin,
                                         "Access-Control-Request-Method": "POST",
                                         "Access-Control-Request-Headers": "authorization"})


def test_cors_is_same_origin_unless_listed(platform):
    with TestClient(create_app(platform)) as c:
        r = _preflight(c, "https://desk.example.com")
        assert "access-control-allow-origin" not in r.headers
    allowed = "https://desk.example.com"
    with TestClient(create_app(platform, cors_origins=[allowed])) as c:
        r = _preflight(c, allowed)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == allowed
        assert "authorization" in r.headers["access-control-allow-headers"].lower()
        other = _preflight(c, "https://elsewhere.example.com")
        assert other.headers.get("access-control-allow-origin") != "https://elsewhere.example.com"
        got = c.get("/market", headers={"Origin": allowed})
        assert got.headers["access-control-allow-origin"] == allowed


def test_alerts_are_listed_for_their_owner_only(client, platform):
    a = register_login(client, "alerter")
    b = register_login(client, "other")
    made = [client.post("/alerts", headers=a, json={"symbol": sym, "field": "last", "op": op,
                                                    "threshold": px}).json()
            for sym, op, px in (("AAPL", "above", "200.5"), ("MSFT", "below", "99"))]
    listed = client.get("/alerts", headers=a).json()["items"]
    assert listed == made
    assert [x["threshold"] for x in listed] == ["200.5000", "99.0000"]
    assert all(x["active"] for x in listed)
    assert client.get("/alerts", headers=b).json() == {"items": []}
    assert client.delete(f"/alerts/{made[0]['id']}", headers=a).status_code == 204
    assert [x["id"] for x in client.get("/alerts", headers=a).json()["items"]] == [made[1]["id"]]


def test_the_order_schema_has_what_the_order_form_reads(client):
    """web/src/orderform.ts builds the form from these parts of the document (its unit
    tests use a copy of them): the enums, the quantity's bound, the price's bound."""
    s = client.get("/openapi.json").json()["components"]["schemas"]["OrderIn"]
    p = s["properties"]
    assert {"symbol", "side", "type", "tif", "qty", "price", "stop_price"} <= set(p)
    assert "limit" in p["type"]["enum"] and p["side"]["enum"] == ["buy", "sell"]
    assert p["tif"]["default"] in p["tif"]["enum"]
    assert p["qty"]["maximum"] > 0 and p["qty"]["exclusiveMinimum"] == 0
    assert re.compile(p["symbol"]["pattern"]).match("BTC-USD")
    price = p["price"]["anyOf"][0]["anyOf"][0]
    assert price["maximum"] > 0 and price["type"] == "number"
