"""The API's request and response models.

Requests forbid unknown fields and bound every value: a quantity is a JSON integer
(strictly: not ``true``, ``1.0`` or ``"1"``) that fits 64-bit arithmetic, a price has at
most four decimal places, text has no control, format (bidi overrides, zero-width) or
surrogate characters, and a username is taken in its one spelling (``auth``).
"""

import unicodedata
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, ConfigDict, EmailStr, Field, HttpUrl, StrictInt,
                      field_validator, model_validator)

from tick2trade.host.services.auth import normal_username
from tick2trade.host.services.money import MAX_PRICE, to_ticks
from tick2trade.host.services import ordertypes
from tick2trade.host.services.orders import NewOrder
from tick2trade.host.services.watchlists import DEFAULT as DEFAULT_WATCHLIST
from tick2trade.host.services.watchlists import MAX_SYMBOLS as WATCHLIST_SYMBOLS

SYMBOL = r"^[A-Z0-9][A-Z0-9.\-]{0,7}$"
LIST_NAME = r"^[A-Za-z0-9_.\-]{1,32}$"
USERNAME = r"^[A-Za-z0-9_.\-]{3,32}$"
MAX_QTY = 1_000_000_000
Price = Annotated[Decimal, Field(gt=0, le=MAX_PRICE, decimal_places=4,
                                 description="Decimal, at most 4 places")]


def _plain_text(value: str | None) -> str | None:
    """Refuse control (Cc), format (Cf: bidi overrides, zero-width), surrogate (Cs) and
    private-use (Co) characters: text that would show as other than it is."""
    for c in value or "":
        kind = unicodedata.category(c)
        if kind in ("Cc", "Cf", "Cs", "Co"):
            name = unicodedata.name(c, "a control or surrogate character")
            raise ValueError(f"U+{ord(c):04X} ({name}) is not allowed")
    return value


def _username(value: str) -> str:
    return normal_username(value) if isinstance(value, str) else value


def _ticks(value: Decimal | None) -> int | None:
    return to_ticks(value) if value is not None else None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(Strict):
    username: str = Field(min_length=3, max_length=64,
                          description="3-32 of a-z 0-9 _ . - once NFKC-normalised and "
                                      "case-folded (Bob and bob are one name)")
    email: EmailStr
    password: str = Field(min_length=8, max_length=128)
    display_name: str = Field("", max_length=100)
    _text = field_validator("display_name", "password")(_plain_text)
    _name = field_validator("username")(_username)


class LoginIn(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128)
    _text = field_validator("username", "password")(_plain_text)


class RefreshIn(Strict):
    refresh_token: str = Field(min_length=1, max_length=2000)


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class UserOut(BaseModel):
    id: int
    username: str
    email: str
    role: str
    display_name: str
    webhook_url: str | None
    created_at: datetime


class ProfileIn(Strict):
    display_name: str | None = Field(None, max_length=100)
    email: EmailStr | None = None
    webhook_url: HttpUrl | None = None
    password: str | None = Field(None, min_length=8, max_length=128)
    current_password: str | None = Field(None, max_length=128)
    _text = field_validator("display_name", "password", "current_password")(_plain_text)


class RoleIn(Strict):
    role: Literal["trader", "operator", "admin"]


OrderType = Literal[tuple(ordertypes.TYPES)]


class OrderIn(Strict):
    """One order; which fields each ``type`` takes is ``ordertypes``' table (a wrong
    combination is a 422 saying which); the document publishes that table as
    ``x-type-fields`` (type → required and allowed fields) for the web client's form."""
    model_config = ConfigDict(extra="forbid", json_schema_extra={"x-type-fields": {
        name: {"required": sorted(rule.required), "allowed": sorted(rule.allowed)}
        for name, rule in ordertypes.TYPES.items()}})

    symbol: str = Field(pattern=SYMBOL)
    side: Literal["buy", "sell"]
    type: OrderType
    tif: Literal["day", "gtc", "ioc", "fok"] = "day"
    qty: StrictInt = Field(gt=0, le=MAX_QTY)
    price: Price | None = None
    stop_price: Price | None = None
    trail_amount: Price | None = Field(None, description="trailing_stop: distance in price")
    trail_bps: int | None = Field(None, gt=0, le=ordertypes.MAX_TRAIL_BPS,
                                  description="trailing_stop: distance in basis points")
    trail_ref: Literal[tuple(ordertypes.TRAIL_REFS)] | None = Field(
        None, description="trailing_stop: follow the touch (quote, the default) or the "
                          "last trade")
    display_qty: int | None = Field(None, gt=0, le=MAX_QTY, description="iceberg: shown")
    display_jitter: int | None = Field(None, ge=0, le=MAX_QTY,
                                       description="iceberg: slice size ± at random")
    take_profit: Price | None = Field(None, description="bracket: the exit limit")
    stop_loss: Price | None = Field(None, description="bracket: the exit stop")

    def to_new_order(self) -> NewOrder:
        """The order service's request: prices in ticks."""
        return NewOrder(symbol=self.symbol, side=self.side, type=self.type, tif=self.tif,
                        qty=self.qty, price=_ticks(self.price),
                        stop_price=_ticks(self.stop_price),
                        trail_amount=_ticks(self.trail_amount), trail_bps=self.trail_bps,
                        trail_ref=self.trail_ref, display_qty=self.display_qty,
                        display_jitter=self.display_jitter,
                        take_profit=_ticks(self.take_profit),
                        stop_loss=_ticks(self.stop_loss))


class OcoIn(Strict):
    legs: list[OrderIn] = Field(min_length=2, max_length=4)


class ModifyIn(Strict):
    """What to change: ``qty`` is the order's new total (executed shares included)."""
    qty: int | None = Field(None, gt=0, le=MAX_QTY)
    price: Price | None = None
    stop_price: Price | None = None

    @model_validator(mode="after")
    def _something(self) -> "ModifyIn":
        if self.qty is None and self.price is None and self.stop_price is None:
            raise ValueError("give qty, price or stop_price")
        return self

    def changes(self) -> dict:
        """The order service's ``modify`` arguments: prices in ticks."""
        return {"qty": self.qty, "price": _ticks(self.price),
                "stop_price": _ticks(self.stop_price)}


class OrderOut(BaseModel):
    id: int
    symbol: str
    side: str
    type: OrderType
    tif: str
    qty: int
    price: str | None
    stop_price: str | None
    filled_qty: int
    avg_fill_price: str | None
    status: str
    reason: str | None
    trail_amount: str | None = None
    trail_bps: int | None = None
    trail_ref: str | None = None
    display_qty: int | None = None
    display_jitter: int | None = None
    take_profit: str | None = None
    stop_loss: str | None = None
    group_id: int | None = None
    parent_id: int | None = None
    triggered: bool = False
    priority: Literal["kept", "lost", "none"] | None = None
    created_at: datetime
    updated_at: datetime


class ExecutionOut(BaseModel):
    exec_id: str
    order_id: int
    symbol: str
    side: str
    qty: int
    price: str
    venue: str | None
    liquidity: Literal["added", "removed"] | None
    fee: str | None
    ts: datetime


class Page(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[Any]


class OrderPage(Page):
    items: list[OrderOut]


class LimitsIn(Strict):
    max_order_qty: StrictInt | None = Field(None, gt=0, le=MAX_QTY)
    max_notional: Price | None = Field(None, description="Quote currency, at most 4 places")
    max_position: StrictInt | None = Field(None, gt=0, le=MAX_QTY)


class PreferenceIn(Strict):
    kind: Literal["order_status", "price_alert", "risk_alert", "portfolio_value"]
    channel: Literal["in_app", "webhook", "email"]
    enabled: bool


class PreferencesIn(Strict):
    preferences: list[PreferenceIn] = Field(min_length=1, max_length=12)


class AlertIn(Strict):
    symbol: str = Field(pattern=SYMBOL)
    field: Literal["bid", "ask", "last"]
    op: Literal["above", "below"]
    threshold: Price


class KillSwitchIn(Strict):
    engaged: bool
    reason: str = Field("", max_length=200)
    _text = field_validator("reason")(_plain_text)


class ConfigIn(Strict):
    config: dict[str, Any]


Symbol = Annotated[str, Field(pattern=SYMBOL, description="1-8 characters A-Z 0-9 . - "
                                                          "(e.g. AAPL, BTC-USD)")]


class WatchlistIn(Strict):
    name: str = Field(DEFAULT_WATCHLIST, pattern=LIST_NAME,
                      description="1-32 characters A-Z a-z 0-9 _ . -")
    symbols: list[Symbol] = Field(max_length=WATCHLIST_SYMBOLS)

    @field_validator("symbols")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        seen = set()
        for sym in value:
            if sym in seen:
                raise ValueError(f"{sym} is listed twice")
            seen.add(sym)
        return value


class RfqIn(Strict):
    """A request for quote: every venue's liquidity providers are asked for a firm
    two-sided quote of ``qty``; ``side`` (optional) is what you mean to do."""
    symbol: str = Field(pattern=SYMBOL)
    side: Literal["buy", "sell"] | None = None
    quantity: StrictInt = Field(gt=0, le=MAX_QTY)


class RfqAcceptIn(Strict):
    quote_id: StrictInt = Field(ge=1, le=2**62)
    side: Literal["buy", "sell"] = Field(description="buy at the quote's ask, sell at its bid")


class RfqQuoteOut(BaseModel):
    id: int
    rfq_id: int
    venue: str
    provider: str
    bid: str
    bid_size: int
    ask: str
    ask_size: int
    received_at: datetime
    expires_at: datetime
    status: Literal["open", "accepting", "filled", "expired", "lost"]
    side: Literal["buy", "sell"] | None
    order_id: int | None


class RfqVenueOut(BaseModel):
    venue: str
    status: Literal["asked", "rejected", "unavailable"]
    providers: int | None = None
    reason: str | None = None


class RfqOut(BaseModel):
    id: int
    symbol: str
    side: Literal["buy", "sell"] | None
    qty: int
    status: Literal["open", "accepting", "filled", "rejected"]
    reason: str | None
    created_at: datetime
    quotes: list[RfqQuoteOut]
    venues: list[RfqVenueOut] | None = Field(None, description="each venue's answer "
                                                               "(on creation only)")


class RfqFillOut(BaseModel):
    rfq_id: int
    quote_id: int
    side: Literal["buy", "sell"]
    qty: int
    price: str
    venue: str
    order: OrderOut
    executions: list[ExecutionOut]
