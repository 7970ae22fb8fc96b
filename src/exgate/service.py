"""Market-data reads: validate the request, then read through the cache to the adapter.

This is the seam between routes and the flow below them: a route hands over the client's
raw parameters and gets back a :class:`~exgate.cache.CacheResult` of encoded JSON bytes. It
validates against what the venue accepts (depths, intervals, limits), so bad input fails
with a clear :class:`~exgate.errors.BadRequest` before any upstream call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import orjson
from pydantic import BaseModel, ConfigDict

from exgate.cache import CacheResult, DataType, MemoryCache, market_key
from exgate.cache.ttl import DEFAULT_TTL_MS
from exgate.errors import BadRequest, UnknownExchange
from exgate.models import Candle, ExchangeInfo, Market, Ticker, Trade
from exgate.venues.base import ExchangeAdapter

DEFAULT_DEPTH = 20
DEFAULT_TRADES = 100
DEFAULT_CANDLES = 200


class MarketsPage(BaseModel):
    """``GET /v1/{exchange}/markets``."""

    model_config = ConfigDict(frozen=True)
    exchange: str
    markets: list[Market]


class PricesPage(BaseModel):
    """``GET /v1/{exchange}/prices``."""

    model_config = ConfigDict(frozen=True)
    exchange: str
    prices: list[Ticker]


class TradesPage(BaseModel):
    """``GET /v1/{exchange}/markets/{symbol}/trades``: oldest first."""

    model_config = ConfigDict(frozen=True)
    exchange: str
    symbol: str
    trades: list[Trade]


class CandlesPage(BaseModel):
    """``GET /v1/{exchange}/markets/{symbol}/klines``: oldest first."""

    model_config = ConfigDict(frozen=True)
    exchange: str
    symbol: str
    interval: str
    candles: list[Candle]


def _in_range(field: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise BadRequest(f"{field} must be between {low} and {high}, got {value}", field=field,
                         allowed={"min": low, "max": high})
    return value


class MarketData:
    """Cached, coalesced market-data reads over a set of adapters.

    Args:
        adapters: venue id → adapter.
        cache: the (open) read-through cache.
        ttl_ms: TTL per :class:`DataType` (defaults: :data:`DEFAULT_TTL_MS`).
        clock: current time in ms, to mark the candle still forming.
    """

    def __init__(self, adapters: Mapping[str, ExchangeAdapter], cache: MemoryCache,
                 ttl_ms: Mapping[DataType, int] | None = None, clock: Callable[[], int] | None = None):
        self.adapters = dict(adapters)
        self.cache = cache
        self.ttl_ms = {**DEFAULT_TTL_MS, **(ttl_ms or {})}
        self.clock = clock or cache.clock

    def adapter(self, exchange: str) -> ExchangeAdapter:
        """The adapter of ``exchange``.

        Raises:
            UnknownExchange: not served here; ``available`` lists the ids that are.
        """
        adapter = self.adapters.get(exchange.lower())
        if adapter is None:
            raise UnknownExchange(f"exchange {exchange!r} is not served by this gateway", field="exchange",
                                  available=sorted(self.adapters))
        return adapter

    def exchanges(self) -> list[ExchangeInfo]:
        """Every served venue with its capabilities and load status."""
        out = []
        for venue, adapter in self.adapters.items():
            out.append(ExchangeInfo(
                id=venue, name=adapter.name, capabilities=adapter.capabilities.as_dict(), status=adapter.status,
                markets=adapter.market_count,
                error=adapter.last_error if adapter.status != "ready" else None,
            ))
        return out

    # -- reads ----------------------------------------------------------------------------
    async def markets(self, exchange: str) -> CacheResult:
        """All markets of a venue (TTL: markets)."""
        adapter = self.adapter(exchange)

        async def fetch() -> tuple[bytes, int]:
            markets = await adapter.markets(reload=adapter.status == "ready")
            return MarketsPage(exchange=adapter.id, markets=markets).model_dump_json().encode(), \
                self.ttl_ms[DataType.MARKETS]

        return await self.cache.get_or_fetch(market_key(adapter.id, DataType.MARKETS), fetch)

    async def prices(self, exchange: str, symbols: str | None = None) -> CacheResult:
        """Tickers of all markets, or of the comma-separated ``symbols`` (TTL: prices).

        One upstream call fetches every ticker of the venue; a subset is cut from that
        cached answer, so any mix of subsets costs one upstream request per TTL.
        """
        adapter = self.adapter(exchange)
        all_key = market_key(adapter.id, DataType.PRICES)

        async def fetch_all() -> tuple[bytes, int]:
            tickers = await adapter.tickers()
            return PricesPage(exchange=adapter.id, prices=tickers).model_dump_json().encode(), \
                self.ttl_ms[DataType.PRICES]

        if not symbols or not symbols.strip():
            return await self.cache.get_or_fetch(all_key, fetch_all)
        wanted = await self._resolve_many(adapter, symbols.split(","))
        names = [m.symbol for m in wanted]

        async def fetch_subset() -> tuple[bytes, int]:
            whole = await self.cache.get_or_fetch(all_key, fetch_all)
            page = orjson.loads(whole.body)
            by_symbol = {t["symbol"]: t for t in page["prices"]}
            body = orjson.dumps({"exchange": adapter.id, "prices": [by_symbol[n] for n in names if n in by_symbol]})
            return body, max(1, whole.expires_ms - self.clock())

        return await self.cache.get_or_fetch(market_key(adapter.id, DataType.PRICES, ",".join(names)), fetch_subset)

    async def order_book(self, exchange: str, symbol: str, depth: int | None) -> CacheResult:
        """Order book with ``depth`` levels per side (TTL: order book)."""
        adapter = self.adapter(exchange)
        depth = _in_range("depth", DEFAULT_DEPTH if depth is None else depth, 1, adapter.profile.max_depth)
        market = await adapter.resolve(symbol)

        async def fetch() -> tuple[bytes, int]:
            book = await adapter.order_book(market, depth)
            return book.model_dump_json().encode(), self.ttl_ms[DataType.ORDER_BOOK]

        key = market_key(adapter.id, DataType.ORDER_BOOK, market.symbol, depth=depth)
        return await self.cache.get_or_fetch(key, fetch)

    async def trades(self, exchange: str, symbol: str, limit: int | None) -> CacheResult:
        """The ``limit`` most recent public trades (TTL: trades)."""
        adapter = self.adapter(exchange)
        limit = _in_range("limit", DEFAULT_TRADES if limit is None else limit, 1, adapter.profile.max_trades)
        market = await adapter.resolve(symbol)

        async def fetch() -> tuple[bytes, int]:
            trades = await adapter.trades(market, limit)
            page = TradesPage(exchange=adapter.id, symbol=market.symbol, trades=trades)
            return page.model_dump_json().encode(), self.ttl_ms[DataType.TRADES]

        key = market_key(adapter.id, DataType.TRADES, market.symbol, limit=limit)
        return await self.cache.get_or_fetch(key, fetch)

    async def klines(self, exchange: str, symbol: str, interval: str | None, start: int | None,
                     end: int | None, limit: int | None) -> CacheResult:
        """Candles (TTL: klines while the open candle is included, klines_closed after)."""
        adapter = self.adapter(exchange)
        allowed = adapter.intervals()
        if not interval or interval not in allowed:
            raise BadRequest(f"interval must be one of {', '.join(allowed)}; got {interval!r}",
                             field="interval", allowed=allowed)
        limit = _in_range("limit", DEFAULT_CANDLES if limit is None else limit, 1, adapter.profile.max_candles)
        for name, value in (("start", start), ("end", end)):
            if value is not None and value < 0:
                raise BadRequest(f"{name} must be a time in ms since the epoch, got {value}", field=name)
        if start is not None and end is not None and start > end:
            raise BadRequest(f"start ({start}) must not be after end ({end})", field="start")
        market = await adapter.resolve(symbol)

        async def fetch() -> tuple[bytes, int]:
            candles = await adapter.candles(market, interval, start=start, end=end, limit=limit, now_ms=self.clock())
            page = CandlesPage(exchange=adapter.id, symbol=market.symbol, interval=interval, candles=candles)
            settled = bool(candles) and all(c.closed for c in candles) and end is not None
            ttl = self.ttl_ms[DataType.CANDLES_CLOSED if settled else DataType.CANDLES]
            return page.model_dump_json().encode(), ttl

        key = market_key(adapter.id, DataType.CANDLES, market.symbol, interval=interval, start=start, end=end,
                         limit=limit)
        return await self.cache.get_or_fetch(key, fetch)

    async def funding(self, exchange: str, symbol: str) -> CacheResult:
        """Current funding rate of a perpetual (TTL: funding)."""
        adapter = self.adapter(exchange)
        market = await adapter.resolve(symbol)

        async def fetch() -> tuple[bytes, int]:
            rate = await adapter.funding_rate(market)
            return rate.model_dump_json().encode(), self.ttl_ms[DataType.FUNDING]

        return await self.cache.get_or_fetch(market_key(adapter.id, DataType.FUNDING, market.symbol), fetch)

    # -- helpers --------------------------------------------------------------------------
    @staticmethod
    async def _resolve_many(adapter: ExchangeAdapter, raw: Sequence[str]) -> list[Market]:
        out: dict[str, Market] = {}
        for item in raw:
            if item.strip():
                market = await adapter.resolve(item)
                out.setdefault(market.symbol, market)
        return list(out.values())
