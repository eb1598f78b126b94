"""How service errors answer: one table from exception type to HTTP status, shared by
the exception handlers of the app and by WebSocket order entry (which answers a failed
placement with the status the same request over HTTP would have had)."""

from fastapi import HTTPException
from pydantic import ValidationError

from tick2trade.host.services.auth import AuthError, BadUsername, Conflict
from tick2trade.host.services.device import DeviceRefused, DeviceTimeout, NoDevice
from tick2trade.host.services.orders import BrokerUnavailable, NotFound, OrderError
from tick2trade.host.services.orders import Conflict as OrderConflict
from tick2trade.host.services.rfq import (NoRfqVenues, QuoteExpired, QuoteTaken, RfqError,
                                          VenueUnavailable)
from tick2trade.host.services.shared import SharedUnavailable
from tick2trade.host.services.watchlists import TooManyLists
from tick2trade.host.services.writer import WriteFailed

STATUS: dict[type[Exception], int] = {
    AuthError: 401, PermissionError: 403, NotFound: 404, LookupError: 404, Conflict: 409,
    OrderConflict: 409, OrderError: 422, NoDevice: 503, BrokerUnavailable: 503,
    WriteFailed: 503, DeviceRefused: 409, DeviceTimeout: 503,
    TooManyLists: 409, BadUsername: 422, SharedUnavailable: 503,
    RfqError: 422, QuoteExpired: 410, QuoteTaken: 409, VenueUnavailable: 503,
    NoRfqVenues: 409,
}


def failure(exc: Exception) -> tuple[int, str]:
    """The status code and message an HTTP request failing with ``exc`` is answered with
    (``exc`` is an ``HTTPException``, a ``ValidationError`` or in ``STATUS``)."""
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail)
    if isinstance(exc, ValidationError):
        return 422, "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'order'}: "
                              f"{e['msg']}" for e in exc.errors())
    status = next(code for kind, code in STATUS.items() if isinstance(exc, kind))
    return status, str(exc)
