"""What a request body may be, checked before anything parses it.

``BodyGuard`` (ASGI middleware) reads an HTTP request's body up to ``MAX_BODY`` bytes and
answers 413 past that, whether the client sent a ``Content-Length`` or streamed chunks:
a 10 MB body to an unauthenticated route used to stall every client while it was
parsed on the event loop. A body within the bound is then checked as strict JSON
(``check``) when it could fail the strict rules, and answered 422 with the reason; the
route parses it as usual.

Strict JSON here is RFC 8259 JSON: no bare ``NaN``/``Infinity`` (Python's parser takes
them, and a 422 that echoed the value could not even be serialised back), no lone UTF-16
surrogate in a string (it cannot be stored or encoded), and at most ``MAX_DEPTH`` levels
of nesting. The WebSocket applies the same rules to each message (``loads``).
"""

from __future__ import annotations

import json
import math
import re

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 1 << 20         # bytes of one HTTP request body
MAX_DEPTH = 32             # levels of nesting of a JSON document
_PARSE_INLINE = 64 << 10   # larger suspicious bodies are checked off the event loop
# what a strict check must look at: a bare constant, a \uD800-\uDFFF escape, an exponent
# that may overflow a double (1e400 is infinity to Python), or enough brackets to nest
# deeper than MAX_DEPTH
_SUSPECT = re.compile(rb"NaN|Infinity|\\u[dD][89a-fA-F]|[eE][+-]?\d{3}")


class NotStrictJSON(ValueError):
    """The document is JSON to Python but not to RFC 8259, or nests too deep."""


def _constant(name: str):
    raise NotStrictJSON(f"{name} is not a JSON number (send a finite number)")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise NotStrictJSON(f"{text[:40]} is out of range of a double (send a finite "
                            f"number)")
    return value


def _walk(value) -> None:
    """Refuse nesting past MAX_DEPTH and lone surrogates, in keys and values."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str):
            _text(item)
            continue
        if not isinstance(item, dict | list):
            continue
        if level > MAX_DEPTH:
            raise NotStrictJSON(f"JSON nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            for key, inner in item.items():
                _text(key)
                stack.append((inner, level + 1))
        else:
            stack.extend((inner, level + 1) for inner in item)


def _text(s: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NotStrictJSON(f"a string holds a lone surrogate (U+{ord(s[exc.start]):04X}); "
                            f"text must be valid Unicode") from None


def loads(text: str | bytes):
    """``json.loads`` under the strict rules above (``NotStrictJSON``; ``ValueError``
    for a document that is not JSON at all)."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float)
    except RecursionError:
        raise NotStrictJSON(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    _walk(value)
    return value


def check(body: bytes) -> str | None:
    """Why ``body`` breaks the strict rules, or None (also for a body that is not JSON:
    the route answers that itself)."""
    if not _SUSPECT.search(body) and body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return None
    try:
        loads(body)
    except NotStrictJSON as exc:
        return str(exc)
    except ValueError:
        return None
    return None


class BodyGuard:
    """ASGI middleware: HTTP bodies bounded to ``max_body`` bytes, then checked by
    ``check``; other scopes pass through."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body

    async def _too_big(self, scope: Scope, receive: Receive, send: Send) -> None:
        # made only when needed: a response is encoded when built, and every request
        # passes here
        await JSONResponse({"detail": f"request body too large: at most {self.max_body} "
                                      f"bytes"}, status_code=413)(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit()
                                              or int(value) > self.max_body):
                await self._too_big(scope, receive, send)
                return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._too_big(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        reason = (await run_in_threadpool(check, body) if len(body) > _PARSE_INLINE
                  else check(body))
        if reason is not None:
            await JSONResponse({"detail": f"body: {reason}"}, status_code=422)(
                scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
