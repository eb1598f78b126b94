"""Users, passwords, tokens, roles and login throttling.

- Passwords: argon2id (argon2-cffi's defaults, RFC 9106's second recommended setting).
  A password never reaches a log, an audit record or an error message.
- Tokens: JWT (PyJWT, HS256) with the user id, expiry, a type claim, the user's token
  version (``ver``) and the login's family (``fam``). Refresh tokens are stored by their
  ``jti`` and rotated on use (a refresh token works once); every token of one login is
  one family. What a token may do is read from the database, not from the token: the
  user's role, that the user exists, that ``ver`` is the user's current token version
  and that the family still has a live refresh token (``authenticate``; the answer is
  cached per token and dropped at once when this process changes any of them, or
  another process that shares Redis with it does; without Redis, changes made by
  another process are seen after ``recheck`` seconds). Logout burns
  the family, a password change bumps the version (every session ends), and a refresh
  token presented a second time burns its family: whoever holds the token it was
  rotated into, thief or owner, must log in again.
- Roles: ``trader`` < ``operator`` < ``admin``. Only operators and admins touch FPGA
  config, risk limits and the kill switch; only admins change roles.
- Throttling: failed logins are counted per client address and account pair (5 in 5
  minutes by default) and per client address (30 in 5 minutes) in a moving window (the
  ``limits`` library, in memory or in Redis, which several processes then share); past
  either, login from that address answers 429 before the
  password is even checked, so a throttled attacker learns nothing. An account is never
  throttled from everywhere: that would let anyone lock its owner out.
- Usernames are stored in one spelling, NFKC-normalised and case-folded (``Bob``,
  ``BOB`` and fullwidth ``Ｂｏｂ`` are one account), and after that must be ASCII
  letters, digits, ``_ . -``: a bidi override (U+202E), a zero-width character, a
  combining mark or a Cyrillic look-alike is refused, not kept.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from limits import parse
from limits.errors import StorageError
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from tick2trade.host.services import audit
from tick2trade.host.services.audit import as_utc
from tick2trade.host.services.db import RefreshToken, User, utcnow
from tick2trade.host.services.shared import LIMITS_DOWN, SharedUnavailable

ROLES = ("trader", "operator", "admin")
VERIFIED_TOKENS = 10_000     # access tokens remembered as verified, at most
RECHECK = 2.0                # seconds a token's standing is cached before it is re-read
_USERNAME = re.compile(r"^[a-z0-9_.\-]{1,32}$")   # the API asks for 3 at least
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


class BadUsername(ValueError):
    """A username that is not one of the accepted spellings (422)."""


def normal_username(name: str) -> str:
    """The one spelling of ``name`` (NFKC, case-folded, NFKC again: case folding can
    undo the normal form); ``BadUsername`` says why one is refused."""
    norm = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    if _USERNAME.match(norm):
        return norm
    odd = next((c for c in norm if not (c.isascii() and (c.isalnum() or c in "_.-"))), None)
    if odd is not None:
        what = unicodedata.name(odd, "a control character")
        raise BadUsername(f"letters a-z, digits, _ . - only (U+{ord(odd):04X} {what} is "
                          f"not allowed)")
    raise BadUsername("1-32 letters a-z, digits, _ . -")


def _login_key(name: str) -> str:
    """The spelling a login looks up: as ``normal_username``, but anything is looked up
    (and fails like a wrong password) rather than refused."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


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
                 login_failures: str = "5/5 minutes",
                 address_failures: str = "30/5 minutes", recheck: float = RECHECK,
                 storage=None) -> None:
        self.sessions = sessions
        self.secret = secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.recheck = recheck
        self.pair_limit = parse(login_failures)
        self.address_limit = parse(address_failures)
        # ``storage``: where failures are counted (a ``limits`` storage, e.g. Redis's to
        # share them between processes); None: this process's memory
        self._failures = MovingWindowRateLimiter(storage or MemoryStorage())
        # called with a user id whenever ``forget`` drops the user's tokens, to tell the
        # other processes (services/shared.py)
        self.on_forget: Callable[[int], None] | None = None
        # access tokens already verified → (who, expiry, when its standing was read): a
        # client sends the same token with every request, and checking its signature
        # and standing each time was a tenth of an order's CPU
        self._verified: dict[str, tuple[Principal, float, float]] = {}
        self._lock = threading.Lock()

    # --- passwords and throttling -----------------------------------------------------

    def _throttle_keys(self, username: str, address: str):
        return ((self.pair_limit, f"pair:{address}|{_login_key(username)}"),
                (self.address_limit, f"addr:{address}"))

    def _throttle_check(self, username: str, address: str) -> None:
        try:
            for limit, key in self._throttle_keys(username, address):
                if not self._failures.test(limit, "login", key):
                    reset = self._failures.get_window_stats(limit, "login", key).reset_time
                    raise Throttled(max(1, int(reset - utcnow().timestamp()) + 1))
        except StorageError:
            raise SharedUnavailable(LIMITS_DOWN) from None

    def _throttle_fail(self, username: str, address: str) -> None:
        try:
            for limit, key in self._throttle_keys(username, address):
                self._failures.hit(limit, "login", key)
        except StorageError:
            raise SharedUnavailable(LIMITS_DOWN) from None

    # --- users --------------------------------------------------------------------------

    def register(self, username: str, email: str, password: str,
                 display_name: str = "", role: str = "trader", actor: str | None = None) -> User:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        username = normal_username(username)
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
            audit.append(s, user.username, "auth.login", f"user:{user.id}",
                         {"address": address})
            return self._issue(s, user)

    def confirm_password(self, username: str, password: str, address: str) -> None:
        """Check a password again (before changing it), throttled like a login."""
        with self.sessions.begin() as s:
            self._check_password(s, username, password, address)

    def _check_password(self, s: Session, username: str, password: str, address: str) -> User:
        self._throttle_check(username, address)
        user = s.execute(select(User).where(User.username == _login_key(username))
                         ).scalar_one_or_none()
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
            if row is not None and row.revoked:
                # used before: a copy is in someone else's hands, so the whole login ends
                self._burn(s, row.family or row.jti)
                audit.append(s, str(claims.get("name", "?"))[:64], "auth.refresh_reused",
                             f"user:{row.user_id}")
                s.commit()
                self.forget(row.user_id)
                raise AuthError("refresh token already used (or logged out): this login "
                                "is ended everywhere; log in again")
            if row is None or as_utc(row.expires_at) <= utcnow():
                raise AuthError("refresh token revoked or expired")
            user = s.get(User, row.user_id)
            if user is None:
                raise AuthError("user no longer exists")
            row.revoked = True
            audit.append(s, user.username, "auth.refresh", f"user:{user.id}")
            return self._issue(s, user, row.family or row.jti)

    def logout(self, refresh_token: str) -> None:
        """End the login the refresh token belongs to: its refresh and access tokens."""
        claims = self._decode(refresh_token, "refresh")
        with self.sessions.begin() as s:
            row = s.get(RefreshToken, claims["jti"])
            if row is None:
                return
            user_id = row.user_id
            self._burn(s, row.family or row.jti)
            audit.append(s, str(claims["name"]), "auth.logout", f"user:{user_id}")
        self.forget(user_id)

    def _burn(self, s: Session, family: str) -> None:
        s.execute(update(RefreshToken).where(
            (RefreshToken.family == family) | (RefreshToken.jti == family))
            .values(revoked=True))

    def forget(self, user_id: int) -> None:
        """Drop what is cached of the user's tokens (their standing changed), here and,
        through ``on_forget``, in the other processes."""
        self.drop_cached(user_id)
        if self.on_forget is not None:
            self.on_forget(user_id)

    def drop_cached(self, user_id: int) -> None:
        """Drop what this process cached of the user's tokens."""
        with self._lock:
            for token in [t for t, (who, *_x) in self._verified.items()
                          if who.user_id == user_id]:
                del self._verified[token]

    def _issue(self, s: Session, user: User, family: str | None = None) -> TokenPair:
        now = utcnow()
        jti = secrets.token_hex(16)
        family = family or jti
        s.add(RefreshToken(jti=jti, user_id=user.id, family=family,
                           expires_at=now + self.refresh_ttl))
        base = {"sub": str(user.id), "name": user.username, "ver": user.token_version,
                "fam": family, "iat": now}
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

    def cached(self, access_token: str) -> Principal | None:
        """Who the token speaks for, if that was read less than ``recheck`` seconds ago
        and nothing has changed since (no database access: the event loop may call it)."""
        known = self._verified.get(access_token)
        if known is None:
            return None
        who, expires, checked = known
        now = time.time()
        if now >= expires or now - checked >= self.recheck:
            return None
        return who

    def authenticate(self, access_token: str) -> Principal:
        """Who the token speaks for, with the role the database holds now; ``AuthError``
        when it is forged or expired, its user gone, its version old or its login
        ended (see the module's docstring)."""
        who = self.cached(access_token)
        if who is not None:
            return who
        claims = self._decode(access_token, "access")
        try:
            user_id, version = int(claims["sub"]), int(claims["ver"])
            family, expires = str(claims["fam"]), float(claims["exp"])
        except (KeyError, ValueError, TypeError):
            raise AuthError("token not valid") from None
        live = (exists().where(RefreshToken.family == family, RefreshToken.revoked.is_(False),
                               RefreshToken.expires_at > utcnow())
                .correlate(None))
        with self.sessions() as s:
            row = s.execute(select(User.username, User.role, User.token_version,
                                   live.label("live")).where(User.id == user_id)).one_or_none()
        if row is None:
            raise AuthError("user no longer exists")
        if row.token_version != version:
            raise AuthError("token revoked (the password was changed); log in again")
        if not row.live:
            raise AuthError("token revoked (logged out); log in again")
        who = Principal(user_id, row.username, row.role)
        with self._lock:
            if len(self._verified) >= VERIFIED_TOKENS:
                self._verified.clear()
            self._verified[access_token] = (who, expires, time.time())
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
                    # every session of the user ends, this one included
                    user.token_version += 1
                    s.execute(update(RefreshToken).where(RefreshToken.user_id == user.id)
                              .values(revoked=True))
                else:
                    setattr(user, key, value)
            audit.append(s, user.username, "user.update", f"user:{user.id}",
                         {"fields": sorted(changes)})
        self.forget(user_id)
        return user

    def set_role(self, username: str, role: str, actor: str) -> User:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        with self.sessions.begin() as s:
            user = s.execute(select(User).where(User.username == _login_key(username))
                             ).scalar_one_or_none()
            if user is None:
                raise LookupError(f"no user {username!r}")
            old, user.role = user.role, role
            audit.append(s, actor, "user.role", f"user:{user.id}", {"from": old, "to": role})
        self.forget(user.id)
        return user
