"""``GET/PUT /watchlists``, ``DELETE /watchlists/{name}``: per user, validated, audited,
and the default of a ``/ws`` subscription without symbols (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from tick2trade.host.api.ws import BEARER
from tick2trade.host.services import audit
from tick2trade.host.services.db import AuditRecord

from tests.host.conftest import register_login


def test_put_get_replace_delete(client, platform):
    h = register_login(client, "wendy")
    assert client.get("/watchlists", headers=h).json() == {"watchlists": []}
    r = client.put("/watchlists", headers=h, json={"symbols": ["MSFT", "AAPL"]})
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["symbols"]) == ("default", ["MSFT", "AAPL"])
    r = client.put("/watchlists", headers=h, json={"name": "tech", "symbols": ["NVDA"]})
    assert r.json()["symbols"] == ["NVDA"]
    r = client.put("/watchlists", headers=h, json={"name": "default",
                                                   "symbols": ["BTC-USD", "BRK.B"]})
    assert r.json()["symbols"] == ["BTC-USD", "BRK.B"]
    lists = client.get("/watchlists", headers=h).json()["watchlists"]
    assert [(w["name"], w["symbols"]) for w in lists] == [
        ("default", ["BTC-USD", "BRK.B"]), ("tech", ["NVDA"])]
    assert client.delete("/watchlists/tech", headers=h).status_code == 204
    assert client.delete("/watchlists/tech", headers=h).status_code == 404
    assert [w["name"] for w in client.get("/watchlists", headers=h).json()["watchlists"]
            ] == ["default"]
    assert client.put("/watchlists", headers=h, json={"symbols": []}).json()["symbols"] == []
    with platform.sessions() as s:
        actions = [(r.action, json.loads(r.detail).get("symbols")) for r in s.execute(
            select(AuditRecord).where(AuditRecord.action.like("watchlist.%"))
            .order_by(AuditRecord.seq)).scalars()]
        assert audit.verify(s).ok
    assert actions == [("watchlist.put", ["MSFT", "AAPL"]), ("watchlist.put", ["NVDA"]),
                       ("watchlist.put", ["BTC-USD", "BRK.B"]), ("watchlist.delete", None),
                       ("watchlist.put", [])]


def test_lists_are_per_user(client):
    a, b = register_login(client, "xena"), register_login(client, "yuri")
    client.put("/watchlists", headers=a, json={"symbols": ["AAPL"]})
    assert client.get("/watchlists", headers=b).json() == {"watchlists": []}
    assert client.delete("/watchlists/default", headers=b).status_code == 404
    assert client.get("/watchlists", headers=a).json()["watchlists"][0]["symbols"] == ["AAPL"]


@pytest.mark.parametrize("body,words", [
    ({"symbols": ["aapl"]}, ["body.symbols.0", "pattern"]),
    ({"symbols": ["TOOLONGSYM"]}, ["symbols.0"]),
    ({"symbols": ["AAPL", "AAPL"]}, ["AAPL is listed twice"]),
    ({"symbols": [f"S{i}" for i in range(101)]}, ["at most 100"]),
    ({"symbols": "AAPL"}, ["symbols"]),
    ({"name": "", "symbols": []}, ["name"]),
    ({"name": "has space", "symbols": []}, ["name"]),
    ({"name": "x" * 33, "symbols": []}, ["name"]),
    ({}, ["symbols", "required"]),
    ({"symbols": [], "colour": "red"}, ["colour"]),
])
def test_a_bad_list_is_422_naming_the_field(client, body, words):
    h = register_login(client, "zoe")
    r = client.put("/watchlists", headers=h, json=body)
    assert r.status_code == 422, r.text
    text = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}"
                     for e in r.json()["detail"])
    for w in words:
        assert w in text, r.text
    assert client.get("/watchlists", headers=h).json() == {"watchlists": []}


def test_at_most_20_lists(client):
    h = register_login(client, "abe")
    for i in range(20):
        assert client.put("/watchlists", headers=h, json={"name": f"l{i}", "symbols": []}
                          ).status_code == 200
    r = client.put("/watchlists", headers=h, json={"name": "l20", "symbols": []})
    assert r.status_code == 409 and "at most 20 watchlists" in r.json()["detail"]
    assert client.put("/watchlists", headers=h, json={"name": "l3", "symbols": ["A"]}
                      ).status_code == 200          # replacing one is not a new one


def test_a_subscription_without_symbols_streams_the_watchlist(client, platform):
    h = register_login(client, "bob")
    market = platform.market
    market.update("AAPL", bid=1_000_000, bid_size=5, ask=1_001_000, ask_size=5)
    market.apply("MSFT", bids=[(3_000_000, 10)], asks=[(3_001_000, 10)])
    client.put("/watchlists", headers=h, json={"symbols": ["MSFT", "AAPL", "NEWCO"]})
    client.put("/watchlists", headers=h, json={"name": "one", "symbols": ["AAPL"]})
    with client.websocket_connect("/ws", subprotocols=[BEARER, h["Authorization"][7:]]) as ws:
        assert ws.receive_json()["type"] == "hello"
        ws.send_json({"op": "subscribe"})
        quotes = [ws.receive_json(), ws.receive_json()]
        assert sorted(q["symbol"] for q in quotes) == ["AAPL", "MSFT"]
        assert ws.receive_json() == {"type": "subscribed", "symbols": ["AAPL", "MSFT"],
                                     "channels": {"quotes": ["AAPL", "MSFT"]},
                                     "unknown": ["NEWCO"]}
        ws.send_json({"op": "subscribe", "channels": ["book"], "watchlist": "one"})
        snap = ws.receive_json()
        assert (snap["type"], snap["symbol"], snap["seq"]) == ("book", "AAPL", 0)
        assert ws.receive_json()["channels"]["book"] == ["AAPL"]
        ws.send_json({"op": "subscribe", "watchlist": "nope"})
        err = ws.receive_json()
        assert err["type"] == "error" and "no watchlist 'nope'" in err["detail"]
        market.apply("MSFT", bids=[(3_000_500, 1)])
        assert ws.receive_json()["bid"] == "300.0500"
