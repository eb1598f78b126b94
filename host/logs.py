"""Log records that say which request they belong to, and a JSON form of them.

- ``request_id`` (a context variable) is the id of the API request being handled: the
  API's middleware sets it for each request (``X-Request-ID`` when the client sent a
  sane one, see ``accept_request_id``, else a new one) and the thread pool carries it
  into the handlers. Work done on other threads for that request (the writer's
  transaction, a venue's answer on the order session's thread) names the id itself:
  the OMS keeps it with the order and logs with ``extra=tagged(rid)``.
- ``JsonFormatter``: one JSON object per line, ``ts`` (UTC, ISO 8601), ``level``,
  ``logger``, ``msg``, ``request_id``, then whatever the call passed in ``extra``, and
  ``exc`` with the traceback when there is one. ``use_json`` puts it on the root
  logger (``t2t api --log-format json``); the default text logging is left alone.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

request_id: ContextVar[str | None] = ContextVar("t2t_request_id", default=None)

# what a client's X-Request-ID may be: what a proxy or a tracer makes (uuids, hex, base64url
# ids), short enough to put on every line, and nothing that could forge a log line
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# ids made here: this process's random prefix and a sequence number (unique, and a
# fraction of uuid4's cost, which reads the kernel's random source on every request)
_PREFIX = uuid.uuid4().hex[:12]
_NEXT = itertools.count(1)
# attributes every LogRecord has: the rest came in ``extra`` (but uvicorn's
# ``color_message``, its text with terminal colours)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message"}


def accept_request_id(given: str | None) -> str:
    """``given`` when it is 1-64 characters of ``A-Z a-z 0-9 . _ : -``, else a new id
    (``<12 hex digits of this process>-<hex sequence number>``)."""
    if given is not None and _SANE_ID.fullmatch(given):
        return given
    return f"{_PREFIX}-{next(_NEXT):x}"


def tagged(rid: str | None) -> dict:
    """The ``extra`` of a log call made for request ``rid`` away from its context."""
    return {"request_id": rid}


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                   timespec="microseconds"),
               "level": record.levelname, "logger": record.name,
               "msg": record.getMessage(),
               "request_id": getattr(record, "request_id", None) or request_id.get()}
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def use_json(level: int = logging.INFO, stream=None, filters=()) -> logging.Handler:
    """Every record from ``level`` up, from every logger (uvicorn's included: they are
    made to propagate), as JSON lines on ``stream`` (stderr). ``filters`` go on the
    handler, so they see every record (``serving.Redact``)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    for f in filters:
        handler.addFilter(f)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True
    return handler
