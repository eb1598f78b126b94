"""How the API is served: one uvicorn configuration for ``t2t api``, ``t2t run --api``
and the benchmarks.

- Forwarding headers (``X-Forwarded-For``/``-Proto``) are honoured only from the proxies
  named to ``create_app`` (``trusted_proxies``), never from uvicorn's own default (which
  trusts 127.0.0.1, so on one host every local client could pick its address).
- WebSocket frames are capped by uvicorn at ``WS_MAX_FRAME`` bytes (the socket is
  closed, 1009); ``ws.MAX_MESSAGE`` refuses smaller oversized messages with a reason.
- Log lines never carry a credential: ``Redact`` blanks ``token=...`` (and
  ``access_token``/``refresh_token`` values) in every record of uvicorn's loggers, for a
  client that still puts its token in the WebSocket URL (refused, but logged).
- ``log_format="json"``: every logger's records as JSON lines (``logs.use_json``), each
  with the request id of the request it was written for, uvicorn's access lines
  included; ``"text"`` (the default) keeps uvicorn's own logging as it was.
"""

from __future__ import annotations

import logging
import re

import uvicorn

from tick2trade.host import logs

WS_MAX_FRAME = 1 << 20
_SECRET = re.compile(r"((?:access_|refresh_)?token=)[^&\s\"']+", re.IGNORECASE)
LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class Redact(logging.Filter):
    """Replace token values in a record's message and arguments with ``[redacted]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _SECRET.sub(r"\1[redacted]", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_SECRET.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                                for a in record.args)
        return True


def redact_logs() -> None:
    """Install ``Redact`` on uvicorn's loggers (once; uvicorn's own logging set-up keeps
    filters on loggers)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, Redact) for f in logger.filters):
            logger.addFilter(Redact())


LOG_FORMATS = ("text", "json")


def config(app, host: str, port: int, *, log_format: str = "text",
           **kwargs) -> uvicorn.Config:
    """The uvicorn configuration the API is served with (``kwargs`` pass through)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r}: one of {', '.join(LOG_FORMATS)}")
    redact_logs()
    if log_format == "json":
        logs.use_json(filters=(Redact(),))
        # uvicorn's own dictConfig would put its text handlers back
        kwargs["log_config"] = None
    return uvicorn.Config(app, host=host, port=port, proxy_headers=False,
                          ws_max_size=WS_MAX_FRAME, **kwargs)


def serve(app, host: str, port: int, *, log_format: str = "text", **kwargs) -> None:
    uvicorn.Server(config(app, host, port, log_format=log_format, **kwargs)).run()
