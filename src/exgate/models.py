"""Normalized market-data models shared by every venue.

Every price and size is a :class:`~decimal.Decimal` (serialized as a decimal string in JSON),
every time is integer milliseconds since the Unix epoch, and sides and market types are enums.
Models are frozen: a value read from the cache can be shared between callers safely.
"""

from __future__ import annotations

from typing import Annotated, Any

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema


class Side(StrEnum):
    """Taker side of a trade or side of an order: ``buy`` or ``sell``."""

    BUY = "buy"
    SELL = "sell"


class MarketType(StrEnum):
    """Kind of instrument: ``spot``, ``perpetual`` (swap, no expiry) or dated ``future``."""

    SPOT = "spot"
    PERPETUAL = "perpetual"
    FUTURE = "future"
    OPTION = "option"


class VenueStatus(StrEnum):
    """Health of a venue from its recent upstream outcomes (see :mod:`exgate.venues.health`)."""

    LOADING = "loading"
    READY = "ready"
    DEGRADED = "degraded"
    UNAVAILABLE = "unavailable"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, ser_json_inf_nan="null")


class Market(_Frozen):
    """One tradable instrument of a venue.

    ``symbol`` is the ccxt unified symbol (``BTC/USDT:USDT``), ``id`` the venue's own
    (``BTCUSDT``). ``tick_size`` is the price increment (quote currency), ``lot_size`` the size
    increment and ``min_size`` the smallest order size (base currency, or contracts where
    ``contract_size`` is set). ``max_leverage`` is ``None`` where the venue does not say.
    """

    exchange: str
    symbol: str
    id: str
    base: str
    quote: str
    settle: str | None = None
    type: MarketType
    contract_size: Decimal | None = None
    tick_size: Decimal | None = None
    lot_size: Decimal | None = None
    min_size: Decimal | None = None
    max_leverage: Decimal | None = None
    active: bool = True


class Ticker(_Frozen):
    """Latest prices of one market (quote currency) with 24 h statistics.

    ``volume_24h`` is in base currency, ``quote_volume_24h`` in quote currency, ``change_24h_pct``
    in percent. ``mark``, ``index`` and ``funding_rate`` are set where the venue reports them
    (perpetuals). ``timestamp`` is the venue's time of the data in ms (Binance: ``closeTime``
    of the 24 h window; Bybit: the response's ``time``; Pacifica: the record's ``timestamp``),
    ``None`` where the venue sends none (Hyperliquid's asset contexts).
    """

    exchange: str
    symbol: str
    last: Decimal | None = None
    bid: Decimal | None = None
    ask: Decimal | None = None
    mark: Decimal | None = None
    index: Decimal | None = None
    high_24h: Decimal | None = None
    low_24h: Decimal | None = None
    volume_24h: Decimal | None = None
    quote_volume_24h: Decimal | None = None
    change_24h_pct: Decimal | None = None
    funding_rate: Decimal | None = None
    timestamp: int | None = None


BookLevel = Annotated[tuple[Decimal, Decimal], WithJsonSchema({
    "type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2,
    "description": "[price, size] as decimal strings: price in quote currency, size in base currency or contracts",
})]
"""One price level ``(price, size)``: price in quote currency, size in base currency or contracts.

On the wire a two-item array of decimal strings; its JSON schema says so without
``prefixItems`` (which schemathesis 4 rejects)."""


class OrderBook(_Frozen):
    """Order book snapshot: ``bids`` best (highest) first, ``asks`` best (lowest) first."""

    exchange: str
    symbol: str
    bids: list[BookLevel]
    asks: list[BookLevel]
    timestamp: int | None = None
    sequence: int | None = None


class Trade(_Frozen):
    """One public trade; ``side`` is the taker's side."""

    exchange: str
    symbol: str
    id: str | None = None
    price: Decimal
    size: Decimal
    side: Side | None = None
    timestamp: int


class Candle(_Frozen):
    """One kline/candle: OHLC in quote currency, ``volume`` in base currency.

    ``close_time`` is the last millisecond the candle covers (``open_time + interval - 1``);
    ``closed`` is false for the candle still forming at the time of the read.
    """

    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    close_time: int
    closed: bool


class FundingRate(_Frozen):
    """Current funding of a perpetual: ``rate`` per funding interval (0.0001 = 0.01 %)."""

    exchange: str
    symbol: str
    rate: Decimal | None = None
    next_funding_time: int | None = None
    interval_ms: int | None = None
    mark: Decimal | None = None
    index: Decimal | None = None
    timestamp: int | None = None


class ExchangeInfo(_Frozen):
    """A venue the gateway serves, with what its adapter supports and its health.

    ``status`` comes from recent upstream outcomes (:mod:`exgate.venues.health`);
    ``last_success_ms`` / ``last_error_ms`` are when the last call that reached the exchange
    succeeded / failed (ms since the epoch) and ``*_age_ms`` how long ago; ``last_error`` is
    what that failure told the client. ``error`` is why the market load failed while the venue
    has no markets.
    """

    id: str
    name: str
    capabilities: dict[str, bool] = Field(default_factory=dict)
    status: VenueStatus
    markets: int | None = None
    error: str | None = None
    last_success_ms: int | None = None
    last_success_age_ms: int | None = None
    last_error: str | None = None
    last_error_ms: int | None = None
    last_error_age_ms: int | None = None
    budget: dict[str, Any] | None = None
    """Upstream budget: each limit's use in the current window, ``banned_until_ms`` after a
    429/418, and how many requests wait."""
    streams: list[dict[str, Any]] | None = None
    """Each public stream kind's status (:class:`exgate.streams.StreamStatus`: state, owner,
    connected since, last message age, reconnects, gaps, messages/s); ``None`` when the gateway
    does not stream."""
