"""Market-data reads: validate the request, then read through the cache to the adapter.

This is the seam between routes and the flow below them: a route hands over the client's
raw parameters and gets back a :class:`~exgate.cache.CacheResult` of encoded JSON bytes. It
validates against what the venue accepts (depths, intervals, limits), so bad input fails
with a clear :class:`~exgate.errors.BadRequest` before any upstream call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict

from exgate import readkeys
from exgate.cache import (DEFAULT_FRESHNESS, Cache, CacheResult, CacheStatus, DataType, Fetched, Freshness,
                          exchange_tag, market_tag)
from exgate.cache.circuit import CircuitState
from exgate.errors import BadRequest, UnknownExchange, UnknownSymbol, UpstreamUnavailable, echo
from exgate.models import Candle, ExchangeInfo, Market, Ticker, Trade, VenueStatus
from exgate.readkeys import Read
from exgate.venues.base import ExchangeAdapter
from exgate.venues.health import VenueHealth


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


class MarketData:
    """Cached, coalesced market-data reads over a set of adapters.

    Args:
        adapters: venue id → adapter.
        cache: the (open) read-through cache.
        freshness: TTL, grace and max-stale per :class:`DataType` (defaults: :data:`DEFAULT_FRESHNESS`).
        clock: current time in ms, to mark the candle still forming (and to date venue health).

    ``health`` holds one :class:`~exgate.venues.health.VenueHealth` per venue, fed by the
    adapter's :class:`~exgate.venues.calls.CallMeter`.
    """

    def __init__(self, adapters: Mapping[str, ExchangeAdapter], cache: Cache,
                 freshness: Mapping[DataType, Freshness] | None = None, clock: Callable[[], int] | None = None):
        self.adapters = dict(adapters)
        self.cache = cache
        self.freshness = {**DEFAULT_FRESHNESS, **(freshness or {})}
        self.clock = clock or cache.clock
        self.health = {venue: VenueHealth(self.clock) for venue in self.adapters}
        self._keys = readkeys.KeyMemo()  # cached_key's answers, per load of each venue's markets
        for venue, adapter in self.adapters.items():
            if adapter.calls is not None:
                adapter.calls.observers["health"] = self.health[venue].record
        self._started = False
        self.live: Any = None
        """The stream-fed entries (:class:`exgate.streams.LiveView`) reads try first, or ``None``."""
        self._note_read: Callable[..., None] | None = None
        self._streamable: Callable[[str, str], bool] = lambda venue, method: False

    def attach_streams(self, supervisor: Any) -> None:
        """Serve reads from ``supervisor``'s healthy streams first (``X-Cache-Source: stream``)
        and tell it what is read (its tier-2 demand). A read no stream answers goes the REST way."""
        self.live = supervisor.view
        self._note_read = supervisor.note_read
        self._streamable = supervisor.streamable

    def note_read(self, exchange: str, symbol: str) -> None:
        """Count a read of ``symbol`` that the HTTP fast path answered (stream demand, tier 2);
        nothing when no streams are attached or the symbol names no loaded market."""
        if self._note_read is None:
            return
        adapter = self._find(exchange)
        market = adapter.loaded_market(symbol) if adapter is not None else None
        if market is not None:
            self._note_read(adapter.id, market.symbol)

    async def _streamed(self, venue: str, symbol: str, read: Callable[[], Awaitable[CacheResult | None]]
                        ) -> CacheResult | None:
        if self.live is None:
            return None
        assert self._note_read is not None
        self._note_read(venue, symbol)
        return await read()

    def _fetched(self, body: bytes, kind: DataType) -> Fetched:
        return Fetched(body, self.freshness[kind])

    def adapter(self, exchange: str) -> ExchangeAdapter:
        """The adapter of ``exchange``.

        Raises:
            UnknownExchange: not served here; ``available`` lists the ids that are.
        """
        adapter = self._find(exchange)
        if adapter is None:
            raise UnknownExchange(f"exchange {echo(exchange)} is not served by this gateway", field="exchange",
                                  available=sorted(self.adapters))
        return adapter

    def exchanges(self) -> list[ExchangeInfo]:
        """Every served venue with its capabilities, markets loaded and health (status, last
        success and last error with their ages; see :mod:`exgate.venues.health`)."""
        out = []
        for venue, adapter in self.adapters.items():
            loaded = adapter.market_count is not None
            out.append(ExchangeInfo(
                id=venue, name=adapter.name, capabilities=adapter.capabilities.as_dict(),
                markets=adapter.market_count,
                error=adapter.last_error if not loaded else None,
                **self.health[venue].report(loaded, load_failed=adapter.status == "unavailable"),
            ))
        return out

    def started(self) -> bool:
        """Whether start-up is over: every venue has loaded its markets or failed at least once.
        Once true it stays true (liveness must not flap with the venues)."""
        if not self._started:
            self._started = all(adapter.market_count is not None or adapter.status == "unavailable"
                                or self.health[venue].failures for venue, adapter in self.adapters.items())
        return self._started

    def readiness(self) -> tuple[bool, str, dict[str, VenueStatus], CircuitState | None]:
        """``(ready, why_not, venue statuses, Redis circuit state or None without Redis)``.

        Not ready while no venue is usable (``ready`` or ``degraded``), or while Redis is
        configured and its circuit breaker is not closed (open, or half-open while probing).
        """
        statuses = {info.id: info.status for info in self.exchanges()}
        breaker = getattr(getattr(self.cache, "l2", None), "breaker", None)
        redis = breaker.state if breaker is not None else None
        usable = [v for v, s in statuses.items() if s in (VenueStatus.READY, VenueStatus.DEGRADED)]
        if not usable:
            listed = ", ".join(f"{v}: {s.value}" for v, s in statuses.items()) or "none configured"
            return False, f"no venue is usable ({listed})", statuses, redis
        if redis is not None and redis is not CircuitState.CLOSED:
            return False, f"Redis is configured and its circuit breaker is {redis.value}", statuses, redis
        return True, "", statuses, redis

    async def exchanges_with_budget(self) -> list[ExchangeInfo]:
        """:meth:`exchanges` plus each venue's upstream budget state (shared across instances)."""
        out = []
        for info in self.exchanges():
            gate = getattr(self.adapters[info.id], "budget", None)
            out.append(info.model_copy(update={"budget": await gate.snapshot()}) if gate is not None else info)
        return out

    # -- reads ----------------------------------------------------------------------------
    async def markets(self, exchange: str) -> CacheResult:
        """All markets of a venue (freshness: markets)."""
        adapter = self.adapter(exchange)

        async def fetch() -> Fetched:
            markets = await adapter.markets(reload=adapter.status == "ready")
            return self._fetched(MarketsPage(exchange=adapter.id, markets=markets).model_dump_json().encode(),
                                 DataType.MARKETS)

        return await self.cache.get_or_fetch(readkeys.markets_key(adapter), fetch, tags=(exchange_tag(adapter.id),))

    async def prices(self, exchange: str, symbols: str | None = None) -> CacheResult:
        """Tickers of all markets, or of the comma-separated ``symbols`` (freshness: prices).

        One upstream call fetches every ticker of the venue; a subset is cut from that
        cached answer (kept in this process only), so any mix of subsets costs one upstream
        request per TTL.
        """
        adapter = self.adapter(exchange)
        all_key = readkeys.prices_key(adapter, None)
        tags = (exchange_tag(adapter.id),)

        async def fetch_all() -> Fetched:
            tickers = await adapter.tickers()
            return self._fetched(PricesPage(exchange=adapter.id, prices=tickers).model_dump_json().encode(),
                                 DataType.PRICES)

        items = readkeys.price_items(symbols)
        if items is None:
            return await self.cache.get_or_fetch(all_key, fetch_all, tags=tags)
        wanted = readkeys.unique([await adapter.resolve(item) for item in items])
        names = [m.symbol for m in wanted]
        if self.live is not None:
            assert self._note_read is not None
            for name in names:
                self._note_read(adapter.id, name)
            live = await self.live.prices(adapter.id, names)
            if live is not None:
                return live

        def cut(whole: CacheResult) -> bytes:
            by_symbol = {t["symbol"]: t for t in orjson.loads(whole.body)["prices"]}
            return orjson.dumps({"exchange": adapter.id, "prices": [by_symbol[n] for n in names if n in by_symbol]})

        stale: list[CacheResult] = []

        async def fetch_subset() -> Fetched:
            whole = await self.cache.get_or_fetch(all_key, fetch_all, tags=tags)
            if whole.status is CacheStatus.STALE:
                stale.append(whole)
                return Fetched(b"", Freshness(ttl_ms=0))  # nothing kept: answered below, as stale
            # a subset lives exactly as long as the fresh whole it was cut from
            return Fetched(cut(whole), Freshness(ttl_ms=max(0, whole.expires_ms - self.clock())))

        result = await self.cache.get_or_fetch(readkeys.prices_key(adapter, wanted), fetch_subset, tags=tags,
                                               shared=False)
        if not result.body:  # the whole list was stale: say so, with its age
            whole = stale[0] if stale else await self.cache.get_or_fetch(all_key, fetch_all, tags=tags)
            return CacheResult(cut(whole), whole.status, whole.age_s, whole.expires_ms, whole.tier)
        return result

    async def order_book(self, exchange: str, symbol: str, depth: int | None) -> CacheResult:
        """Order book with ``depth`` levels per side (freshness: order book)."""
        adapter = self.adapter(exchange)
        depth = readkeys.book_depth(adapter, depth)
        market = await adapter.resolve(symbol)
        live = await self._streamed(adapter.id, market.symbol,
                                    lambda: self.live.order_book(adapter.id, market.symbol, depth))
        if live is not None:
            return live

        async def fetch() -> Fetched:
            book = await adapter.order_book(market, depth)
            return self._fetched(book.model_dump_json().encode(), DataType.ORDER_BOOK)

        return await self.cache.get_or_fetch(readkeys.order_book_key(adapter, market, depth), fetch,
                                             tags=self._tags(adapter.id, market.symbol))

    async def trades(self, exchange: str, symbol: str, limit: int | None) -> CacheResult:
        """The ``limit`` most recent public trades (freshness: trades)."""
        adapter = self.adapter(exchange)
        limit = readkeys.trades_limit(adapter, limit)
        market = await adapter.resolve(symbol)
        live = await self._streamed(adapter.id, market.symbol,
                                    lambda: self.live.trades(adapter.id, market.symbol, limit))
        if live is not None:
            return live
        if not adapter.capabilities.trades and self._note_read is not None \
                and self._streamable(adapter.id, "watchTrades"):
            self._note_read(adapter.id, market.symbol, force=True)  # only its trades stream can answer
            raise UpstreamUnavailable(f"{adapter.id} publishes trades on its WebSocket only, and the stream of"
                                      f" {market.symbol}'s trades is not live yet (subscribing or reconnecting);"
                                      " retry in a moment", retry_after_s=1)

        async def fetch() -> Fetched:
            trades = await adapter.trades(market, limit)
            page = TradesPage(exchange=adapter.id, symbol=market.symbol, trades=trades)
            return self._fetched(page.model_dump_json().encode(), DataType.TRADES)

        return await self.cache.get_or_fetch(readkeys.trades_key(adapter, market, limit), fetch,
                                             tags=self._tags(adapter.id, market.symbol))

    async def klines(self, exchange: str, symbol: str, interval: str | None, start: int | None,
                     end: int | None, limit: int | None) -> CacheResult:
        """Candles (freshness: klines while the open candle is included, klines_closed after)."""
        adapter = self.adapter(exchange)
        limit = readkeys.candles_limit(adapter, interval, start, end, limit)
        assert interval is not None  # checked by readkeys.candles_limit
        market = await adapter.resolve(symbol)
        if start is None and end is None:
            live = await self._streamed(adapter.id, market.symbol,
                                        lambda: self.live.candles(adapter.id, market.symbol, interval, limit))
            if live is not None:
                return live

        async def fetch() -> Fetched:
            candles = await adapter.candles(
                market, interval, start=start, end=end, limit=limit, now_ms=self.clock())
            page = CandlesPage(exchange=adapter.id, symbol=market.symbol, interval=interval, candles=candles)
            settled = bool(candles) and all(c.closed for c in candles) and end is not None
            return self._fetched(page.model_dump_json().encode(),
                                 DataType.CANDLES_CLOSED if settled else DataType.CANDLES)

        key = readkeys.candles_key(adapter, market, interval, start, end, limit)
        return await self.cache.get_or_fetch(key, fetch, tags=self._tags(adapter.id, market.symbol))

    async def funding(self, exchange: str, symbol: str) -> CacheResult:
        """Current funding rate of a perpetual (freshness: funding)."""
        adapter = self.adapter(exchange)
        market = await adapter.resolve(symbol)

        async def fetch() -> Fetched:
            rate = await adapter.funding_rate(market)
            return self._fetched(rate.model_dump_json().encode(), DataType.FUNDING)

        return await self.cache.get_or_fetch(readkeys.funding_key(adapter, market), fetch,
                                             tags=self._tags(adapter.id, market.symbol))

    async def invalidate(self, keys: Sequence[str] = (), tags: Sequence[str] = ()) -> tuple[list[str], bool]:
        """Drop cached keys and tagged groups on every instance (see :meth:`Cache.invalidate`).

        Each tag is first resolved to the form the reads store (:meth:`resolve_tag`), so
        ``market:BYBIT:BTC`` drops what ``/v1/bybit/markets/BTC/...`` cached. Returns the keys
        that existed and were dropped, and whether the drop reached every instance.

        Raises:
            UnknownExchange, UnknownSymbol: as on the read routes (``field`` is ``tag``).
            UpstreamUnavailable: the venue's markets are needed to resolve a symbol and cannot load.
        """
        resolved = [await self.resolve_tag(tag) for tag in tags]
        return await self.cache.invalidate(keys, list(dict.fromkeys(resolved)))

    async def resolve_tag(self, tag: str) -> str:
        """The canonical tag: ``exchange:{venue}`` with the venue id as served,
        ``market:{venue}:{unified symbol}`` from any symbol form the routes accept
        (``BTC``, ``BTCUSDT``, ``BTC-USDT-PERP``, ``BTC/USDT:USDT``); other tags as they are.

        Raises:
            BadRequest: a ``market:`` tag without a symbol.
            UnknownExchange, UnknownSymbol: the venue or symbol is not served (``field``: ``tag``).
        """
        kind, _, rest = tag.partition(":")
        if kind not in ("exchange", "market"):
            return tag
        venue, _, symbol = rest.partition(":") if kind == "market" else (rest, "", "")
        try:
            adapter = self.adapter(venue)
            if kind == "exchange":
                return exchange_tag(adapter.id)
            if not symbol.strip():
                raise BadRequest(f"tag {echo(tag)} names no symbol; use market:{{venue}}:{{symbol}}", field="tag")
            market = await adapter.resolve(symbol)
        except (UnknownExchange, UnknownSymbol) as exc:
            exc.extra["field"] = "tag"
            raise
        return market_tag(adapter.id, market.symbol)

    def cached_key(self, read: Read, exchange: str, symbol: str | None = None, **params: str | int | None
                   ) -> str | None:
        """The cache key ``read`` of ``exchange`` with these parsed parameters (``symbols``,
        ``depth``, ``limit``, ``interval``, ``start``, ``end``) uses, or ``None`` when it cannot
        be known without calling anything (see :func:`exgate.readkeys.lookup_key`; an exchange
        not served here is ``None`` too). The HTTP fast path asks this before reading L1;
        answers are remembered while the markets they were resolved against stay loaded
        (:class:`exgate.readkeys.KeyMemo`)."""
        adapter = self._find(exchange)
        return None if adapter is None else self._keys.lookup(adapter, read, symbol, **params)

    def _find(self, exchange: str) -> ExchangeAdapter | None:
        return self.adapters.get(exchange.lower())

    # -- helpers --------------------------------------------------------------------------
    @staticmethod
    def _tags(venue: str, symbol: str) -> tuple[str, ...]:
        return exchange_tag(venue), market_tag(venue, symbol)

