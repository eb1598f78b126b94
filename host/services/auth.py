"""Users, passwords, tokens, roles and login throttling.

- Passwords: argon2id (argon2-cffi's defaults, RFC 9106's second recommended setting).
  A password never reaches a log, an audit record or an error message.
- Tokens: JWT (PyJWT, HS256) with the user id, role, expiry and a type claim. Access
  tokens are short-lived and not stored; refresh tokens are stored by their ``jti`` and
  rotated on use (a refresh token works once), so logout and theft can be answered by
  revoking rows. A role change takes effect at the next access token.
- Roles: ``trader`` < ``operator`` < ``admin``. Only operators and admins touch FPGA
  config, risk limits and the kill switch; only admins change roles.
- Throttling: failed logins are counted per account and per client address in a moving
  window (the ``limits`` library); past the limit, login answers 429 before the
  password is even checked, so a throttled attacker learns nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import select
from sqlalchemy.orm import Session

from tick2trade.host.services import audit
from tick2trade.host.services.audit import as_utc
from tick2trade.host.services.db import RefreshToken, User, utcnow

ROLES = ("trader", "operator", "admin")
VERIFIED_TOKENS = 10_000     # access tokens remembered as verified, at most
_hasher = PasswordHasher()
# verified against when the user does not exist, so a wrong username costs the same time
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class AuthError(Exception):
    """Credentials or a token were not accepted (401)."""


class Throttled(Exception):
    """Too many failed logins (429); ``retry_after`` seconds until the window frees."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed logins")
        self.retry_after = retry_after


class Conflict(Exception):
    """The request clashes with stored state (409), e.g. a taken username."""


def role_at_least(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class Principal:
    """Who an access token speaks for."""
    user_id: int
    username: str
    role: str


class Users:
    """Registration, login, tokens and profiles over one session factory."""

    def __init__(self, sessions, secret: str, access_ttl: timedelta = timedelta(minutes=15),
                 refresh_ttl: timedelta = timedelta(days=7),
                 login_failures: str = "5/5 minutes") -> None:
        self.sessions = sessions
        self.secret = secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._limit = parse(login_failures)
        self._failures = MovingWindowRateLimiter(MemoryStorage())
        # access tokens already verified → (who, expiry): a client sends the same token
        # with every request, and checking its signature was a tenth of an order's CPU
        self._verified: dict[str, tuple[Principal, float]] = {}

    # --- passwords and throttling -----------------------------------------------------

    def _throttle_check(self, username: str, address: str) -> None:
        for key in (f"user:{username.lower()}", f"addr:{address}"):
            if not self._failures.test(self._limit, "login", key):
                reset = self._failures.get_window_stats(self._limit, "login", key).reset_time
                raise Throttled(max(1, int(reset - utcnow().timestamp()) + 1))

    def _throttle_fail(self, username: str, address: str) -> None:
        for key in (f"user:{username.lower()}", f"addr:{address}"):
            self._failures.hit(self._limit, "login", key)

    # --- users --------------------------------------------------------------------------

    def register(self, username: str, email: str, password: str,
                 display_name: str = "", role: str = "trader", actor: str | None = None) -> User:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        with self.sessions.begin() as s:
            taken = s.execute(select(User.id).where(User.username == username)).first()
            if taken:
                raise Conflict(f"username {username!r} is taken")
            user = User(username=username, email=email, password_hash=_hasher.hash(password),
                        role=role, display_name=display_name)
            s.add(user)
            s.flush()
            audit.append(s, actor or username, "user.register", f"user:{user.id}",
                         {"username": username, "role": role})
        return user

    def login(self, username: str, password: str, address: str) -> TokenPair:
        with self.sessions.begin() as s:
            user = self._check_password(s, username, password, address)
            audit.append(s, username, "auth.login", f"user:{user.id}", {"address": address})
            return self._issue(s, user)

    def confirm_password(self, username: str, password: str, address: str) -> None:
        """Check a password again (before changing it), throttled like a login."""
        with self.sessions.begin() as s:
            self._check_password(s, username, password, address)

    def _check_password(self, s: Session, username: str, password: str, address: str) -> User:
        self._throttle_check(username, address)
        user = s.execute(select(User).where(User.username == username)).scalar_one_or_none()
        try:
            _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
            if user is None:
                raise VerificationError
        except (VerificationError, InvalidHashError):
            self._throttle_fail(username, address)
            audit.append(s, username[:64], "auth.login_failed", f"addr:{address}"[:100])
            # the failure record must survive the AuthError that rolls back the caller
            s.commit()
            raise AuthError("wrong username or password") from None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        return user

    def refresh(self, refresh_token: str) -> TokenPair:
        claims = self._decode(refresh_token, "refresh")
        with self.sessions.begin() as s:
            row = s.get(RefreshToken, claims["jti"], with_for_update=True)
            if row is None or row.revoked or as_utc(row.expires_at) <= utcnow():
                raise AuthError("refresh token revoked or expired")
            row.revoked = True
            user = s.get(User, row.user_id)
            audit.append(s, user.username, "auth.refresh", f"user:{user.id}")
            return self._issue(s, user)

    def logout(self, refresh_token: str) -> None:
        claims = self._decode(refresh_token, "refresh")
        with self.sessions.begin() as s:
            row = s.get(RefreshToken, claims["jti"])
            if row is not None and not row.revoked:
                row.revoked = True
                audit.append(s, str(claims["name"]), "auth.logout", f"user:{row.user_id}")

    def _issue(self, s: Session, user: User) -> TokenPair:
        now = utcnow()
        jti = secrets.token_hex(16)
        s.add(RefreshToken(jti=jti, user_id=user.id, expires_at=now + self.refresh_ttl))
        base = {"sub": str(user.id), "name": user.username, "role": user.role, "iat": now}
        access = jwt.encode({**base, "typ": "access", "exp": now + self.access_ttl},
                            self.secret, algorithm="HS256")
        refresh = jwt.encode({**base, "typ": "refresh", "jti": jti,
                              "exp": now + self.refresh_ttl}, self.secret, algorithm="HS256")
        return TokenPair(access, refresh, int(self.access_ttl.total_seconds()))

    def _decode(self, token: str, typ: str) -> dict:
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"],
                                options={"require": ["exp", "sub", "typ"]})
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidTokenError:
            raise AuthError("token not valid") from None
        if claims.get("typ") != typ:
            raise AuthError(f"not an {typ} token" if typ == "access" else f"not a {typ} token")
        return claims

    def authenticate(self, access_token: str) -> Principal:
        """Who the token speaks for. A token seen before is not verified again until it
        expires: access tokens are never revoked (they are not stored), so the answer
        cannot change before then."""
        known = self._verified.get(access_token)
        if known is not None and utcnow().timestamp() < known[1]:
            return known[0]
        claims = self._decode(access_token, "access")
        try:
            who = Principal(int(claims["sub"]), str(claims["name"]), str(claims["role"]))
            expires = float(claims["exp"])
        except (KeyError, ValueError, TypeError):
            raise AuthError("token not valid") from None
        if len(self._verified) >= VERIFIED_TOKENS:
            self._verified.clear()
        self._verified[access_token] = (who, expires)
        return who

    # --- profiles and roles -------------------------------------------------------------

    def get(self, user_id: int) -> User:
        with self.sessions() as s:
            user = s.get(User, user_id)
            if user is None:
                raise AuthError("user no longer exists")
            return user

    def update_profile(self, user_id: int, changes: dict) -> User:
        """Apply ``changes`` (display_name, email, webhook_url, password); the audit
        record names the fields changed, never a password."""
        with self.sessions.begin() as s:
            user = s.get(User, user_id)
            if user is None:
                raise AuthError("user no longer exists")
            for key, value in changes.items():
                if key == "password":
                    user.password_hash = _hasher.hash(value)
                else:
                    setattr(user, key, value)
            audit.append(s, user.username, "user.update", f"user:{user.id}",
                         {"fields": sorted(changes)})
        return user

    def set_role(self, username: str, role: str, actor: str) -> User:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        with self.sessions.begin() as s:
            user = s.execute(select(User).where(User.username == username)).scalar_one_or_none()
            if user is None:
                raise LookupError(f"no user {username!r}")
            old, user.role = user.role, role
            audit.append(s, actor, "user.role", f"user:{user.id}", {"from": old, "to": role})
        return user
