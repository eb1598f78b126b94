"""Users and auth through the API: happy paths, failures, throttling, roles, validation."""

from __future__ import annotations

import logging
import random
import string
import time
from datetime import timedelta

import jwt
import pytest
from sqlalchemy import select

from tick2trade.host.services import audit
from tick2trade.host.services.db import AuditRecord, User

from tests.host.conftest import SECRET, register_login

PW = "correct horse battery"


def test_register_login_profile(client):
    r = client.post("/auth/register", json={"username": "alice", "email": "a@example.com",
                                             "password": PW, "display_name": "Alice"})
    assert r.status_code == 201
    body = r.json()
    assert body["username"] == "alice" and body["role"] == "trader"
    assert "password" not in r.text and "hash" not in r.text
    r = client.post("/auth/login", json={"username": "alice", "password": PW})
    assert r.status_code == 200
    tokens = r.json()
    h = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.get("/users/me", headers=h).json()["display_name"] == "Alice"
    r = client.patch("/users/me", headers=h, json={"display_name": "Al",
                                                  "webhook_url": "http://127.0.0.1:9/hook"})
    assert r.status_code == 200
    assert r.json()["display_name"] == "Al"
    assert r.json()["webhook_url"] == "http://127.0.0.1:9/hook"


def test_password_is_hashed_with_argon2id_and_never_stored_or_logged(client, platform, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "Sup3r-secret-pass"
    client.post("/auth/register", json={"username": "bob", "email": "b@example.com",
                                        "password": secret})
    client.post("/auth/login", json={"username": "bob", "password": "wrong-" + secret})
    client.post("/auth/login", json={"username": "bob", "password": secret})
    with platform.sessions() as s:
        user = s.execute(select(User).where(User.username == "bob")).scalar_one()
        assert user.password_hash.startswith("$argon2id$")
        assert secret not in user.password_hash
        details = " ".join(r.detail + r.subject for r in s.execute(select(AuditRecord)).scalars())
    assert secret not in details
    assert secret not in caplog.text


def test_duplicate_username_is_409(client):
    body = {"username": "carol", "email": "c@example.com", "password": PW}
    assert client.post("/auth/register", json=body).status_code == 201
    r = client.post("/auth/register", json=body)
    assert r.status_code == 409 and "taken" in r.json()["detail"]


@pytest.mark.parametrize("body,field", [
    ({"username": "ab", "email": "x@example.com", "password": PW}, "username"),
    ({"username": "dave", "email": "not-an-email", "password": PW}, "email"),
    ({"username": "dave", "email": "x@example.com", "password": "short"}, "password"),
    ({"username": "dave\x00", "email": "x@example.com", "password": PW}, "username"),
    ({"username": "dave", "email": "x@example.com", "password": PW, "role": "admin"}, "role"),
    ({"username": "dave", "email": "x@example.com"}, "password"),
])
def test_register_validation_names_the_field(client, body, field):
    r = client.post("/auth/register", json=body)
    assert r.status_code == 422
    assert any(field in e["loc"] for e in r.json()["detail"])


def test_wrong_password_and_unknown_user_are_the_same_401(client):
    register_login(client, "erin")
    a = client.post("/auth/login", json={"username": "erin", "password": "nope-nope"})
    b = client.post("/auth/login", json={"username": "nobody", "password": "nope-nope"})
    assert a.status_code == b.status_code == 401
    assert a.json() == b.json()


def test_failed_logins_are_audited(client, platform):
    register_login(client, "fred")
    client.post("/auth/login", json={"username": "fred", "password": "nope-nope"})
    with platform.sessions() as s:
        actions = [(r.actor, r.action) for r in s.execute(
            select(AuditRecord).order_by(AuditRecord.seq)).scalars()]
        assert audit.verify(s).ok
    assert actions[-1] == ("fred", "auth.login_failed")


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer garbage", "Basic Zm9vOmJhcg==",
                                    "Bearer " + jwt.encode({"sub": "1"}, "other-key-" + "y" * 32,
                                                           algorithm="HS256")])
def test_protected_routes_refuse_missing_or_bad_tokens(client, header):
    headers = {"Authorization": header} if header else {}
    for path in ("/users/me", "/orders", "/portfolio/positions", "/notifications"):
        r = client.get(path, headers=headers)
        assert r.status_code in (401, 403), (path, r.status_code)
        assert r.status_code == 401


def test_expired_and_refresh_tokens_are_not_access_tokens(client, platform):
    register_login(client, "frank")
    pair = platform.users.login("frank", PW, "testclient")
    expired = jwt.encode({"sub": "1", "name": "frank", "role": "trader", "typ": "access",
                          "exp": 1}, SECRET, algorithm="HS256")
    assert client.get("/users/me", headers={"Authorization": f"Bearer {expired}"}
                      ).json()["detail"] == "token expired"
    r = client.get("/users/me", headers={"Authorization": f"Bearer {pair.refresh_token}"})
    assert r.status_code == 401 and "access" in r.json()["detail"]


def test_refresh_rotates_and_logout_revokes(client, platform):
    register_login(client, "gina")
    tokens = client.post("/auth/login", json={"username": "gina", "password": PW}).json()
    r = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200
    new = r.json()
    assert client.get("/users/me", headers={"Authorization": f"Bearer {new['access_token']}"}
                      ).status_code == 200
    newer = client.post("/auth/refresh", json={"refresh_token": new["refresh_token"]}).json()
    h = {"Authorization": f"Bearer {newer['access_token']}"}
    assert client.post("/auth/logout", headers=h,
                       json={"refresh_token": newer["refresh_token"]}).status_code == 204
    assert client.post("/auth/refresh", json={"refresh_token": newer["refresh_token"]}
                       ).status_code == 401
    # a refresh token works once (presented again, it ends its login: test_hardening)
    again = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 401


def test_access_token_expiry_is_enforced(platform):
    platform.users.access_ttl = timedelta(seconds=-1)
    platform.users.register("hank", "h@example.com", PW)
    pair = platform.users.login("hank", PW, "addr")
    from tick2trade.host.services.auth import AuthError
    with pytest.raises(AuthError, match="expired"):
        platform.users.authenticate(pair.access_token)


def test_a_verified_token_still_expires(platform):
    """``authenticate`` remembers tokens it has verified, but not past their expiry, and
    never remembers a token it refused."""
    from tick2trade.host.services.auth import AuthError
    platform.users.access_ttl = timedelta(seconds=1)
    platform.users.register("ivy", "ivy@example.com", PW)
    pair = platform.users.login("ivy", PW, "addr")
    first = platform.users.authenticate(pair.access_token)
    assert first.username == "ivy"
    assert platform.users.authenticate(pair.access_token) == first
    time.sleep(1.1)      # JWT expiry is in whole seconds: at most 1 s after issue
    with pytest.raises(AuthError, match="expired"):
        platform.users.authenticate(pair.access_token)
    forged = pair.access_token[:-4] + ("AAAA" if pair.access_token[-4:] != "AAAA" else "BBBB")
    for _ in range(2):
        with pytest.raises(AuthError, match="not valid"):
            platform.users.authenticate(forged)


def test_login_throttled_per_address_and_account(client):
    register_login(client, "ivan")
    for _ in range(5):
        assert client.post("/auth/login", json={"username": "ivan", "password": "bad-pass"}
                           ).status_code == 401
    r = client.post("/auth/login", json={"username": "ivan", "password": PW})
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    # another account from the same address is not (the address is under its own limit)
    register_login_ok = client.post("/auth/register", json={
        "username": "judy", "email": "j@example.com", "password": PW})
    assert register_login_ok.status_code == 201
    assert client.post("/auth/login", json={"username": "judy", "password": PW}
                       ).status_code == 200


def test_login_failures_from_many_addresses_do_not_lock_the_account(platform):
    from tick2trade.host.services.auth import AuthError, Throttled
    platform.users.register("kate", "k@example.com", PW)
    rng = random.Random(1)
    for i in range(5):
        with pytest.raises(AuthError):
            platform.users.login("kate", "bad-" + "".join(rng.choices(string.ascii_letters, k=8)),
                                 "10.0.0.9")
        with pytest.raises(AuthError):
            platform.users.login("kate", "bad-" + "".join(rng.choices(string.ascii_letters, k=8)),
                                 f"10.0.0.{i}")
    with pytest.raises(Throttled):
        platform.users.login("kate", PW, "10.0.0.9")
    # the owner, from an address that did not fail five times, gets in
    assert platform.users.login("kate", PW, "10.0.0.99").access_token
    platform.users.register("leo", "l@example.com", PW)
    assert platform.users.login("leo", PW, "10.0.0.9").access_token


def test_roles_gate_operator_and_admin_routes(client, platform):
    trader = register_login(client, "mia")
    operator = register_login(client, "ned", "operator", platform)
    admin = register_login(client, "ola", "admin", platform)
    limits = {"max_order_qty": 100}
    assert client.put("/risk/limits/AAPL", headers=trader, json=limits).status_code == 403
    assert client.put("/risk/limits/AAPL", headers=operator, json=limits).status_code == 200
    assert client.put("/operator/kill-switch", headers=trader,
                      json={"engaged": True}).status_code == 403
    assert client.get("/operator/kill-switch", headers=operator).status_code == 200
    # role changes are admin-only
    assert client.put("/users/mia/role", headers=operator,
                      json={"role": "admin"}).status_code == 403
    r = client.put("/users/mia/role", headers=admin, json={"role": "operator"})
    assert r.status_code == 200 and r.json()["role"] == "operator"
    assert client.put("/users/nobody/role", headers=admin,
                      json={"role": "operator"}).status_code == 404
    assert client.put("/users/mia/role", headers=admin,
                      json={"role": "root"}).status_code == 422


def test_password_change_needs_the_current_password(client):
    h = register_login(client, "pia")
    r = client.patch("/users/me", headers=h, json={"password": "new password 1"})
    assert r.status_code == 401
    r = client.patch("/users/me", headers=h, json={"password": "new password 1",
                                                   "current_password": PW})
    assert r.status_code == 200
    assert client.post("/auth/login", json={"username": "pia", "password": "new password 1"}
                       ).status_code == 200


def test_profile_validation(client):
    h = register_login(client, "quin")
    for body in ({"email": "nope"}, {"webhook_url": "ftp://x"}, {"display_name": "a\nb"},
                 {"role": "admin"}, {"display_name": "x" * 101}):
        assert client.patch("/users/me", headers=h, json=body).status_code == 422, body
