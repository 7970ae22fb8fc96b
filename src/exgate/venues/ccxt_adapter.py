"""The ccxt-backed :class:`~exgate.venues.base.ExchangeAdapter`, used for every venue.

One long-lived ``ccxt.async_support`` instance per venue; markets are loaded once (and again
when the markets cache entry expires). ccxt errors are translated here, once, into exgate's
error tree; nothing above this module sees a ccxt exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import ccxt.async_support as ccxt_async
from ccxt.base.decimal_to_precision import TICK_SIZE

from exgate import errors
from exgate.budget import BudgetGate
from exgate.intervals import interval_ms
from exgate.models import Candle, FundingRate, Market, MarketType, OrderBook, Ticker, Trade
from exgate.symbols import SymbolIndex
from exgate.venues import parse, wire
from exgate.venues.base import Capabilities, ExchangeAdapter
from exgate.venues.calls import CallMeter
from exgate.venues.hooks import keep_error_tables, route_budget, share_tls, url_pairs
from exgate.venues.profiles import VenueProfile
from exgate.venues.transport import _RESPONSES, json_only, translate
from exgate.venues.upstream import rewrite_urls

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MS = 10_000
LOAD_RETRY_S = 5.0
"""After a failed market load, requests fail fast (503) for this long before the next try."""


class CcxtAdapter(ExchangeAdapter):
    """Public market data of one venue through ccxt.

    Args:
        profile: the venue's :class:`VenueProfile`.
        upstream: optional base URL replacing the origin of every venue URL
            (see :mod:`exgate.venues.upstream`).
        timeout_ms: per-request timeout handed to ccxt and enforced around each call.
        exchange: an already built ccxt instance (tests); built from the profile otherwise.

    Raises:
        errors.BadRequest: ``profile.exchange_class`` is not a ccxt exchange id.
    """

    def __init__(self, profile: VenueProfile, *, upstream: str | None = None,
                 timeout_ms: int = DEFAULT_TIMEOUT_MS, exchange: Any | None = None):
        self.profile = profile
        self.id = profile.id
        self.name = profile.name
        self.timeout_ms = timeout_ms
        if exchange is None:
            cls = getattr(ccxt_async, profile.exchange_class, None)
            if cls is None or profile.exchange_class not in ccxt_async.exchanges:
                raise errors.BadRequest(f"{profile.exchange_class!r} is not a ccxt exchange id", field="exchange")
            exchange = cls({"enableRateLimit": True, "timeout": timeout_ms})
        exchange.options = exchange.deep_extend(exchange.options, dict(profile.ccxt_options))
        self.calls = CallMeter(profile.id)
        exchange.fetch = CallMeter.wrap_transport(json_only(exchange.fetch, profile.id))
        if upstream:
            original = exchange.urls["api"]
            exchange.urls["api"] = rewrite_urls(original, upstream, exchange.hostname)
            self._url_pairs = url_pairs(exchange.urls["api"], original)
            keep_error_tables(exchange, self._url_pairs)
        else:
            self._url_pairs = []
        share_tls(exchange)  # one TLS context for the process, shared by every connection's instance
        self.exchange = exchange
        self.upstream = upstream
        has = exchange.has
        self.capabilities = Capabilities(
            markets=bool(has.get("fetchMarkets")),
            tickers=bool(has.get("fetchTickers")),
            order_book=bool(has.get("fetchOrderBook")),
            trades=bool(has.get("fetchTrades")) and profile.trades,
            candles=bool(has.get("fetchOHLCV")),
            funding_rate=bool(has.get("fetchFundingRate") or has.get("fetchFundingRates")),
        )
        self.budget: BudgetGate | None = None
        self._index: SymbolIndex | None = None
        self._markets: list[Market] = []
        self._load_lock = asyncio.Lock()
        self._error: str | None = None
        self._retry_at = 0.0  # loop time before which a failed market load is not retried
        self._funding_intervals: dict[str, int] | None = None  # symbol -> ms, loaded with the markets
        self.snapshots: Any = None
        """Where a first market load may come from instead of the venue (see :meth:`attach_snapshots`)."""
        self._fetched: dict[str, Any] | None = None  # the snapshot this process loaded from the venue last

    def attach_snapshots(self, snapshots: Any) -> None:
        """Take the first market load from ``snapshots`` (an object with ``async obtain(adapter,
        fetch) -> snapshot`` and ``async save(adapter, snapshot)``, e.g.
        :class:`exgate.connectors.MarketsSnapshots`): a snapshot is ``{"markets", "currencies",
        "funding_intervals"}`` (ccxt's structures, what ``set_markets`` needs), and ``fetch``
        loads one from the venue. The adapter itself never touches a cache or a database."""
        self.snapshots = snapshots

    def attach_budget(self, gate: BudgetGate) -> None:
        """Route ccxt's rate limiting into ``gate``: ccxt's per-endpoint cost (corrected by the
        venue's metering) becomes the weight each request waits for in exgate's shared budget,
        and every response is shown to the gate (usage headers, 429/418)."""
        route_budget(self.exchange, gate)
        self.budget = gate

    def private_exchange(self, credentials: dict[str, str]) -> Any:
        """A new ccxt instance of this venue signing with ``credentials`` (one per connection):
        the same URLs, timeout, JSON check and budget as the public instance, the profile's
        ``private_options`` (side calls off), and the public instance's loaded markets and TLS
        context shared (the same objects: no ``load_markets`` and no CA bundle load per user).

        Raises:
            errors.UpstreamUnavailable: the venue's markets are not loaded yet.
        """
        exchange = type(self.exchange)({"enableRateLimit": True, "timeout": self.timeout_ms, **credentials})
        return self.sibling(exchange, dict(self.profile.private_options))

    def sibling(self, exchange: Any, options: dict[str, Any] | None = None) -> Any:
        """Make ``exchange`` (a new ccxt or ccxt.pro instance of this venue) work as the public
        instance does: the profile's options (then ``options``), the JSON check, the upstream
        override of every REST and WebSocket URL, the shared TLS context, the loaded markets
        (shared objects) and the budget. Returns ``exchange``.

        Raises:
            errors.UpstreamUnavailable: the venue's markets are not loaded yet.
        """
        base = self.exchange
        if not base.markets:
            raise errors.UpstreamUnavailable(f"{self.id}: markets are not loaded yet", retry_after_s=2)
        exchange.options = exchange.deep_extend(exchange.options, dict(self.profile.ccxt_options), options or {})
        exchange.fetch = CallMeter.wrap_transport(json_only(exchange.fetch, self.id))
        if "ws" in exchange.urls["api"]:  # ccxt.pro: its own REST and WebSocket URLs, overridden alike
            if self.upstream:
                exchange.urls["api"] = rewrite_urls(exchange.urls["api"], self.upstream, exchange.hostname)
        else:
            exchange.urls["api"] = base.urls["api"]
        keep_error_tables(exchange, self._url_pairs)
        share_tls(exchange)
        for name in ("markets", "markets_by_id", "symbols", "ids", "currencies", "currencies_by_id", "codes",
                     "baseCurrencies", "quoteCurrencies"):
            if hasattr(base, name):
                setattr(exchange, name, getattr(base, name))
        if self.budget is not None:
            route_budget(exchange, self.budget)
        return exchange

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def status(self) -> str:
        if self._index is not None:
            return "ready"
        return "unavailable" if self._error else "loading"

    @property
    def last_error(self) -> str | None:
        """Why the last market load failed, if it did."""
        return self._error

    @property
    def market_count(self) -> int | None:
        """Number of loaded markets, ``None`` before the first load."""
        return len(self._markets) if self._index is not None else None

    async def start(self) -> None:
        await self.markets()

    async def close(self) -> None:
        await self.exchange.close()

    async def _call(self, operation: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one ccxt call under the adapter's timeout, translating its errors; reported to
        :attr:`calls` when it sent a request."""
        with self.calls.measure(operation):
            return await self._call_translated(operation, fn)

    async def _call_translated(self, operation: str, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.timeout_ms / 1000 * 2):
                return await fn()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - translated, never swallowed
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            error = translate(exc, self.id, operation)
            if isinstance(error, errors.UpstreamRateLimited) and self.budget is not None:
                error.retry_after_s = self.budget.retry_after_s()  # the ban or window, not a guess
            raise error from exc

    async def _call_keeping_bodies(self, operation: str, fn: Callable[[], Awaitable[T]]) -> tuple[T, list[Any]]:
        """:meth:`_call`, also returning the decoded response bodies of the requests it made
        (for what only the top level of a response carries, e.g. Bybit's ``time``)."""
        bodies: list[Any] = []
        token = _RESPONSES.set(bodies)  # this coroutine's own context (gather runs each in a task)
        try:
            return await self._call(operation, fn), bodies
        finally:
            _RESPONSES.reset(token)

    # -- markets --------------------------------------------------------------------------
    async def markets(self, *, reload: bool = False) -> list[Market]:
        if self._index is not None and not reload:
            return self._markets
        async with self._load_lock:
            if self._index is not None and not reload:
                return self._markets
            loop = asyncio.get_running_loop()
            if self._index is None and loop.time() < self._retry_at:
                raise errors.UpstreamUnavailable(
                    f"{self.id} markets could not be loaded: {self._error}",
                    retry_after_s=max(1, round(self._retry_at - loop.time())),
                )
            try:
                if self._index is None and self.snapshots is not None:
                    raw = self._apply(await self.snapshots.obtain(self, self._fetch_snapshot))
                else:
                    snapshot = await self._fetch_snapshot()
                    raw = self.exchange.markets
                    if self.snapshots is not None:
                        await self.snapshots.save(self, snapshot)
            except errors.ExgateError as exc:
                if self._index is None:
                    self._error = exc.detail
                    self._retry_at = loop.time() + LOAD_RETRY_S
                raise
            tick_mode = self.exchange.precisionMode == TICK_SIZE
            markets = [parse.parse_market(self.id, m, tick_mode=tick_mode) for m in raw.values()]
            markets.sort(key=lambda m: m.symbol)
            self._markets = markets
            self._index = SymbolIndex(markets, self.profile.settle_preference)
            self._error = None
            return markets

    async def _fetch_snapshot(self) -> dict[str, Any]:
        """Load the markets from the venue (ccxt ``load_markets``, and the funding intervals
        where the profile says so): ``{"markets", "currencies", "funding_intervals"}``.

        Raises:
            errors.ExgateError: the load failed, or the venue listed no markets.
        """
        # always reload: exgate caches markets itself, and ccxt would keep a failed
        # (e.g. empty) listing in its own memo forever
        raw = await self._call("load_markets", lambda: self.exchange.load_markets(reload=True))
        if not raw:
            raise errors.MalformedUpstream(f"{self.id} load_markets: the exchange listed no markets")
        if self.profile.funding_intervals:
            await self._load_funding_intervals()
        self._fetched = {"markets": self.exchange.markets, "currencies": self.exchange.currencies or {},
                         "funding_intervals": self._funding_intervals}
        return self._fetched

    def _apply(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        """Make ``snapshot`` ccxt's loaded markets (``set_markets``, no request) unless it is the
        one this process just loaded from the venue; returns ccxt's markets.

        Raises:
            errors.MalformedUpstream: the snapshot is not something ``set_markets`` takes.
        """
        if snapshot is not self._fetched:
            try:
                self.exchange.set_markets(snapshot["markets"], snapshot.get("currencies") or None)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise errors.MalformedUpstream(f"{self.id}: unusable markets snapshot ({type(exc).__name__})") from exc
            intervals = snapshot.get("funding_intervals")
            if isinstance(intervals, dict):
                self._funding_intervals = {str(k): int(v) for k, v in intervals.items()}
        if not self.exchange.markets:
            raise errors.MalformedUpstream(f"{self.id}: the markets snapshot lists no markets")
        return self.exchange.markets

    async def clock_offset(self) -> tuple[int, int]:
        """The venue's clock against this host's, measured once (ccxt ``fetch_time``, through
        the budget): ``(offset_ms, rtt_ms)``, offset = local time after the answer minus the
        server's time (ccxt's ``options['timeDifference']``), rtt = the request's round trip.

        Raises:
            errors.ExgateError: the request failed, or the answer held no server time.
        """
        exchange = self.exchange
        before = exchange.milliseconds()
        server = await self._call("fetch_time", lambda: exchange.fetch_time())
        after = exchange.milliseconds()
        if not isinstance(server, int) or isinstance(server, bool):
            raise errors.MalformedUpstream(f"{self.id} fetch_time: no server time in the answer")
        return after - server, after - before

    async def _load_funding_intervals(self) -> None:
        """Funding interval per symbol (ccxt ``fetch_funding_intervals``: Binance
        ``GET /fapi/v1/fundingInfo``, weight 1), refreshed with every market load.

        It changes rarely, so it lives as long as the markets. A failed read keeps the last
        intervals (none before the first success: ``interval_ms`` is then ``None``, never a
        guess) and does not fail the market load.
        """
        try:
            raw = await self._call("fetch_funding_intervals", lambda: self.exchange.fetch_funding_intervals())
        except errors.ExgateError as exc:
            log.warning("%s funding intervals not loaded: %s", self.id, exc.detail)
            return
        intervals = {}
        for symbol, item in (raw or {}).items():
            step = interval_ms(item.get("interval")) if isinstance(item, dict) else None
            if step:
                intervals[symbol] = step
        self._funding_intervals = intervals

    def funding_interval_ms(self, symbol: str) -> int | None:
        """The funding interval of ``symbol`` in ms from the loaded ``fundingInfo``: listed, or
        the profile's default for a symbol the venue does not list; ``None`` if never loaded."""
        if self._funding_intervals is None:
            return None
        return self._funding_intervals.get(symbol, self.profile.default_funding_interval_ms)

    async def resolve(self, symbol: str) -> Market:
        if self._index is None:
            await self.markets()
        assert self._index is not None
        return self._index.resolve(symbol)

    def loaded_market(self, symbol: str) -> Market | None:
        return self._index.find(symbol) if self._index is not None else None

    @property
    def markets_load(self) -> object | None:
        return self._index  # a new SymbolIndex per load

    def intervals(self) -> list[str]:
        """The candle intervals the venue serves: ccxt ``timeframes`` less the profile's
        ``unsupported_intervals``."""
        return [t for t in self.exchange.timeframes or {} if t not in self.profile.unsupported_intervals]

    # -- market data ----------------------------------------------------------------------
    async def tickers(self, symbols: Sequence[Market] | None = None) -> list[Ticker]:
        """Tickers through ccxt ``fetch_tickers``, merged per symbol with ``fetch_funding_rates``
        (profile ``tickers_with_funding``) and ``fetch_bids_asks`` (``tickers_with_book``), all
        read concurrently, each request through the budget."""
        self._require("tickers", self.capabilities.tickers)
        wanted = [m.symbol for m in symbols] if symbols else None
        has = self.exchange.has
        with_funding = bool(self.profile.tickers_with_funding and has.get("fetchFundingRates"))
        with_book = bool(self.profile.tickers_with_book and has.get("fetchBidsAsks"))
        calls: list[Awaitable[Any]] = [
            self._call_keeping_bodies("fetch_tickers", lambda: self.exchange.fetch_tickers(wanted))]
        if with_funding:
            calls.append(self._call("fetch_funding_rates", lambda: self.exchange.fetch_funding_rates(wanted)))
        if with_book:
            calls.append(self._call("fetch_bids_asks", lambda: self.exchange.fetch_bids_asks(wanted)))
        results = list(await asyncio.gather(*calls))
        tickers, bodies = results.pop(0)
        funding: dict[str, dict] = results.pop(0) if with_funding else {}
        books: dict[str, dict] = results.pop(0) if with_book else {}
        family = self.exchange.id
        sent = wire.response_time(family, bodies)
        keep = set(wanted) if wanted else None
        return [
            parse.parse_ticker(self.id, t, funding=funding.get(symbol), book=books.get(symbol), family=family,
                               timestamp=sent)
            for symbol, t in sorted(tickers.items())
            if keep is None or symbol in keep
        ]

    async def order_book(self, market: Market, depth: int) -> OrderBook:
        self._require("order book", self.capabilities.order_book)
        limit = self.profile.upstream_depth(depth)
        raw = await self._call("fetch_order_book", lambda: self.exchange.fetch_order_book(market.symbol, limit))
        return parse.parse_order_book(self.id, market.symbol, raw, depth)

    async def trades(self, market: Market, limit: int) -> list[Trade]:
        self._require("trades", self.capabilities.trades)
        raw = await self._call("fetch_trades", lambda: self.exchange.fetch_trades(market.symbol, limit=limit))
        trades = [parse.parse_trade(self.id, t) for t in raw]
        trades.sort(key=lambda t: t.timestamp)
        return trades[-limit:]

    async def candles(self, market: Market, interval: str, *, start: int | None, end: int | None,
                      limit: int, now_ms: int) -> list[Candle]:
        self._require("candles", self.capabilities.candles)
        step = int(self.exchange.parse_timeframe(interval) * 1000)
        params = {"until": end} if end is not None else {}
        since = start
        if since is None and self.profile.candles_need_start:
            last_open = (now_ms if end is None else min(end, now_ms)) // step * step
            since = last_open - (limit - 1) * step
        raw = await self._call(
            "fetch_ohlcv", lambda: self.exchange.fetch_ohlcv(market.symbol, interval, since, limit, params)
        )
        candles = [parse.parse_candle(row, step, now_ms) for row in raw]
        candles = [c for c in candles if (since is None or c.open_time >= since) and (end is None or c.open_time <= end)]
        candles.sort(key=lambda c: c.open_time)
        return candles[:limit] if start is not None else candles[-limit:]

    async def funding_rate(self, market: Market) -> FundingRate:
        self._require("funding rate", self.capabilities.funding_rate)
        if market.type not in (MarketType.PERPETUAL, MarketType.FUTURE):
            raise errors.NotSupported(
                f"{market.symbol} is a {market.type.value} market; funding applies to perpetuals",
                field="symbol",
            )
        if self.exchange.has.get("fetchFundingRate"):
            raw = await self._call("fetch_funding_rate", lambda: self.exchange.fetch_funding_rate(market.symbol))
        else:
            many = await self._call("fetch_funding_rates", lambda: self.exchange.fetch_funding_rates([market.symbol]))
            raw = many.get(market.symbol)
            if raw is None:
                raise errors.MalformedUpstream(f"{self.id} returned no funding rate for {market.symbol}")
        return parse.parse_funding_rate(self.id, raw, family=self.exchange.id,
                                        interval=self.funding_interval_ms(market.symbol))

    def _require(self, what: str, supported: bool) -> None:
        if not supported:
            raise errors.NotSupported(f"{self.id} does not offer {what} through its public REST API")
