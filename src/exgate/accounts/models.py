"""Normalized private models: account summary, balances, positions, orders, fills, and the
bodies of the private routes.

As in :mod:`exgate.models`: money and sizes are :class:`~decimal.Decimal` (decimal strings in
JSON), times integer ms since the epoch, sides, types, statuses and modes enums. Sizes are in
base currency (contracts times the contract size where a venue trades contracts); PnL, margin,
equity, fees in the settle currency unless ``fee_currency`` says otherwise.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from exgate.models import Side, _Frozen


class PositionSide(StrEnum):
    LONG = "long"
    SHORT = "short"


class MarginMode(StrEnum):
    CROSS = "cross"
    ISOLATED = "isolated"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class TimeInForce(StrEnum):
    """``GTC`` rests until canceled, ``IOC`` takes what it can now, ``FOK`` all or nothing,
    ``PO`` post-only (rests or is refused, never takes)."""

    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    PO = "PO"


class OrderStatus(StrEnum):
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


class Balance(_Frozen):
    """One currency of the account: ``total`` = ``free`` + ``used`` (currency units)."""

    currency: str
    total: Decimal
    free: Decimal | None = None
    used: Decimal | None = None


class Account(_Frozen):
    """``GET /v1/account/summary``: the account marked to market, in ``currency`` (the settle
    currency): ``equity`` (wallet + unrealized PnL), ``available`` (free for new orders),
    ``margin_used`` (positions and open orders), ``unrealized_pnl``, and every ``balances`` line.
    Values the venue does not report are ``null``."""

    exchange: str
    currency: str
    equity: Decimal | None
    available: Decimal | None
    margin_used: Decimal | None
    unrealized_pnl: Decimal | None
    balances: list[Balance]
    timestamp: int | None = None


class Position(_Frozen):
    """An open position: ``size`` (base units, positive; ``side`` says long or short),
    ``entry_price``/``mark_price``/``liquidation_price`` (quote per base), ``unrealized_pnl``,
    ``margin`` (settle currency), ``notional`` (size x mark, quote), ``leverage``."""

    exchange: str
    symbol: str
    id: str
    side: PositionSide
    size: Decimal
    entry_price: Decimal | None
    mark_price: Decimal | None
    unrealized_pnl: Decimal | None
    leverage: Decimal | None
    liquidation_price: Decimal | None
    margin_mode: MarginMode | None
    margin: Decimal | None
    notional: Decimal | None
    timestamp: int | None = None


class Order(_Frozen):
    """An order as the venue reports it: ``size`` and ``filled`` base units, ``price`` the
    limit (``null`` for market orders), ``average_price`` the mean fill price (quote per base),
    ``created``/``updated`` ms, ``fee`` paid so far in ``fee_currency`` where the venue says."""

    exchange: str
    id: str
    client_order_id: str | None
    symbol: str
    side: Side
    type: OrderType
    price: Decimal | None
    size: Decimal
    filled: Decimal
    average_price: Decimal | None
    status: OrderStatus
    reduce_only: bool
    time_in_force: TimeInForce | None
    created: int | None
    updated: int | None
    fee: Decimal | None = None
    fee_currency: str | None = None


class Fill(_Frozen):
    """One execution (``GET /v1/account/trades``): ``price`` quote per base, ``size`` base,
    ``fee`` in ``fee_currency``, ``realized_pnl`` settle currency (``null`` where the venue does
    not say), ``maker`` true when the order rested."""

    exchange: str
    id: str
    order_id: str | None
    symbol: str
    side: Side
    price: Decimal
    size: Decimal
    fee: Decimal | None
    fee_currency: str | None
    realized_pnl: Decimal | None
    maker: bool | None
    timestamp: int


class Execution(_Frozen):
    """The immediate fill of a new order: ``size`` (base), ``average_price`` (quote per base),
    ``fee`` in ``fee_currency``; ``fee_estimated`` when the venue's answer has no fee and it is
    the size x price x the market's taker rate."""

    size: Decimal
    average_price: Decimal
    fee: Decimal | None
    fee_currency: str | None
    fee_estimated: bool = False


class Confirmation(_Frozen):
    """How the order was confirmed: ``upstream_requests`` to the venue for it (the order and
    its follow-ups); ``position_source`` ``venue`` (read from the venue after the order),
    ``computed`` (the position before, from the account's cached snapshot, plus the fill),
    ``cache`` (no fill: the cached position, unchanged) or ``null`` (no fill, nothing cached)."""

    upstream_requests: int
    position_source: str | None = None


class OrderResult(_Frozen):
    """``POST /v1/orders``: the venue's ``order``; ``fill`` when it executed at once; the
    account's ``position`` in that symbol after the order (``null``: flat); ``outcome`` is
    ``placed`` (201), or ``unknown`` (202: the venue did not answer and does not know the
    client order id yet; do not re-send, look it up or retry with the same Idempotency-Key);
    ``client_order_id`` the one sent."""

    outcome: str
    client_order_id: str | None = None
    order: Order | None
    fill: Execution | None = None
    position: Position | None = None
    confirmation: Confirmation
    detail: str | None = None


class CanceledOrders(_Frozen):
    """``DELETE /v1/orders?symbol=``: the orders canceled; ``emulated`` when the venue has no
    cancel-all and exgate canceled them one by one."""

    exchange: str
    canceled: list[str]
    emulated: bool


class LeverageResult(_Frozen):
    exchange: str
    symbol: str
    leverage: int
    margin_mode: MarginMode | None


class Connection(_Frozen):
    """An exchange connection as the API shows it: never a credential."""

    id: str
    exchange: str
    account_id: str
    user_id: str
    is_active: bool
    is_primary: bool
    settings: dict
    connected_at: int
    updated_at: int


# -- request bodies ------------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewConnection(_Body):
    """``POST /v1/connections``: ``credentials`` are ccxt's credential fields (``apiKey``,
    ``secret``, ``password``, ``uid``, ``walletAddress``, ``privateKey``), write-only."""

    exchange: str = Field(min_length=1, max_length=64)
    account_id: str | None = Field(None, max_length=200,
                                   description="API key id (Binance, Bybit) or wallet address (Hyperliquid, Pacifica); "
                                               "default: walletAddress, else apikey: + a hash of apiKey")
    credentials: dict[str, str] = Field(description="ccxt credential fields; never returned")
    is_primary: bool = False
    settings: dict[str, str | bool | int] = Field(default_factory=dict)

    @field_validator("credentials")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        allowed = {"apiKey", "secret", "password", "uid", "walletAddress", "privateKey", "token"}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ValueError(f"unknown credential fields {unknown}; allowed: {sorted(allowed)}")
        if not value:
            raise ValueError(f"give at least one credential field of {sorted(allowed)}")
        return value


class ConnectionPatch(_Body):
    is_primary: bool | None = None
    is_active: bool | None = None


class NewOrder(_Body):
    """``POST /v1/orders``: ``size`` base units, ``price`` quote per base (limit orders only),
    ``client_order_id`` (default: one exgate generates; always sent to the venue)."""

    symbol: str = Field(min_length=1, max_length=100)
    side: Side
    type: OrderType
    size: Decimal = Field(gt=0)
    price: Decimal | None = Field(None, gt=0)
    reduce_only: bool = False
    time_in_force: TimeInForce | None = None
    client_order_id: str | None = Field(None, min_length=1, max_length=36, pattern=r"^[A-Za-z0-9_\-]+$")


class LeverageChange(_Body):
    symbol: str = Field(min_length=1, max_length=100)
    leverage: int = Field(ge=1, le=200)
    margin_mode: MarginMode | None = None
