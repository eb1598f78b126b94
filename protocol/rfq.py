"""The venue simulator's request-for-quote protocol: one JSON object per line over TCP.

OUCH has no RFQ, so the venue takes requests for quote on a port of their own; this
module is the one definition of its messages, used by the venue (``sim.venue.rfq``) and
the host (``host.services.rfq``). Each message is a JSON object on one line (UTF-8,
``\\n``-terminated) whose ``type`` names one of ``MESSAGES``; its fields are that entry's,
each of the given JSON type (``None`` allowed where marked optional). Prices are integers
in 1/10000, as in ITCH and OUCH; quantities are integers.

Client → venue:

- ``request``: ask every liquidity provider for a two-sided quote of ``qty`` of
  ``symbol``; ``ref`` is the client's name for the request (its answers carry it);
  ``side`` (``buy``/``sell`` or null) is what the client means to do, for information.
- ``accept``: trade ``qty`` of quote ``quote_id`` on ``side`` (``buy`` at its ask,
  ``sell`` at its bid); ``ref`` names the accept.

Venue → client:

- ``ack``: the request went to ``providers`` providers; their ``quote`` messages follow.
- ``reject``: the request was refused (``reason``: unknown symbol, a quantity off the
  instrument's lot or limits, no provider quotes that size).
- ``quote``: one provider's firm quote, valid for ``ttl_ms`` milliseconds from when it
  was sent.
- ``fill``: the accept traded ``qty`` at ``price`` (``match`` numbers the trade).
- ``refused``: the accept did not trade; ``reason`` is one of ``REFUSALS``.
- ``error``: a line that did not decode (``detail`` says why).
"""

from __future__ import annotations

import json

SIDES = ("buy", "sell")
MAX_LINE = 4096     # a longer line is not an RFQ message (the connection is closed)

# type → {field: (JSON type, optional)}
MESSAGES: dict[str, dict[str, tuple[type, bool]]] = {
    "request": {"ref": (str, False), "symbol": (str, False), "side": (str, True),
                "qty": (int, False)},
    "accept": {"ref": (str, False), "quote_id": (str, False), "side": (str, False),
               "qty": (int, False)},
    "ack": {"ref": (str, False), "providers": (int, False)},
    "reject": {"ref": (str, False), "reason": (str, False)},
    "quote": {"ref": (str, False), "quote_id": (str, False), "provider": (str, False),
              "symbol": (str, False), "bid": (int, False), "bid_size": (int, False),
              "ask": (int, False), "ask_size": (int, False), "ttl_ms": (int, False)},
    "fill": {"ref": (str, False), "quote_id": (str, False), "side": (str, False),
             "qty": (int, False), "price": (int, False), "match": (int, False)},
    "refused": {"ref": (str, False), "quote_id": (str, False), "reason": (str, False)},
    "error": {"detail": (str, False)},
}

# why an accept did not trade
EXPIRED, TAKEN, UNKNOWN_QUOTE, BAD_ACCEPT = "expired", "taken", "unknown_quote", "bad_accept"
REFUSALS = (EXPIRED, TAKEN, UNKNOWN_QUOTE, BAD_ACCEPT)


class MessageError(ValueError):
    """A line that is not an RFQ message; the text says what is wrong with it."""


def encode(mtype: str, **fields) -> bytes:
    """One message as its line (checked against ``MESSAGES``, as ``decode`` would)."""
    msg = {"type": mtype, **fields}
    _check(msg)
    return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict:
    """A line (with or without its ``\\n``) as a checked message dict."""
    if len(line) > MAX_LINE:
        raise MessageError(f"a line of {len(line)} bytes (at most {MAX_LINE})")
    try:
        msg = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MessageError(f"not JSON ({exc})") from None
    _check(msg)
    return msg


def _check(msg) -> None:
    if not isinstance(msg, dict):
        raise MessageError("not a JSON object")
    table = MESSAGES.get(msg.get("type"))
    if table is None:
        raise MessageError(f"type {msg.get('type')!r} is not one of {', '.join(MESSAGES)}")
    extra = set(msg) - set(table) - {"type"}
    if extra:
        raise MessageError(f"{msg['type']}: unknown field {sorted(extra)[0]!r}")
    for name, (kind, optional) in table.items():
        value = msg.get(name)
        if value is None and optional:
            continue
        if not isinstance(value, kind) or isinstance(value, bool):
            raise MessageError(f"{msg['type']}.{name}: {value!r} is not "
                               f"{'an integer' if kind is int else 'a string'}")
    side = msg.get("side")
    if side is not None and side not in SIDES:
        raise MessageError(f"{msg['type']}.side: {side!r} is not buy or sell")
