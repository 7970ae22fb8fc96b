"""The adapter interface every venue implements, and what it can do."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from exgate.models import Candle, FundingRate, Market, OrderBook, Ticker, Trade
from exgate.venues.calls import CallMeter
from exgate.venues.profiles import VenueProfile


@dataclass(frozen=True)
class Capabilities:
    """Which market-data operations a venue's adapter supports."""

    markets: bool = True
    tickers: bool = True
    order_book: bool = True
    trades: bool = True
    candles: bool = True
    funding_rate: bool = True

    def as_dict(self) -> dict[str, bool]:
        """``{"markets": True, ...}`` for JSON."""
        return asdict(self)


class ExchangeAdapter(abc.ABC):
    """One venue's public market data, parsed into exgate's normalized models.

    Adapters talk to the exchange and parse; they never touch the cache. Every method raises
    only :class:`~exgate.errors.ExgateError` subclasses: ``UnknownSymbol`` for a symbol the
    venue does not list, ``NotSupported`` for an operation it lacks, ``UpstreamUnavailable`` /
    ``UpstreamRateLimited`` / ``UpstreamError`` when the exchange fails, and
    ``MalformedUpstream`` when its payload cannot be parsed.
    """

    id: str
    name: str
    profile: VenueProfile
    capabilities: Capabilities
    calls: CallMeter | None = None
    """Reports each call that reached the exchange (metrics, venue health); ``None``: not observed."""

    @property
    def market_count(self) -> int | None:
        """Number of loaded markets, ``None`` before the first successful load."""
        return None

    @property
    def last_error(self) -> str | None:
        """Why the last market load failed, if it did."""
        return None

    @abc.abstractmethod
    async def start(self) -> None:
        """Load the venue's markets (once; later calls return at once)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @property
    @abc.abstractmethod
    def status(self) -> str:
        """``"ready"`` (markets loaded), ``"loading"``, or ``"unavailable"``."""

    @abc.abstractmethod
    async def resolve(self, symbol: str) -> Market:
        """The market a client's symbol names (see :mod:`exgate.symbols`), loading markets if needed."""

    def loaded_market(self, symbol: str) -> Market | None:
        """The market ``symbol`` names among the markets already loaded, as :meth:`resolve`
        would return it; ``None`` when they are not loaded or none matches. Never calls the
        exchange and never waits (the HTTP fast path asks it on every cached read)."""
        return None

    @property
    def markets_load(self) -> object | None:
        """The load of markets :meth:`loaded_market` answers from now: one object per load,
        replaced by the next (a reload, even of the same list), so whatever was worked out
        from one load can be kept while it is still this object. ``None``: nothing may be
        kept (not loaded, or an adapter that does not say)."""
        return None

    @abc.abstractmethod
    def intervals(self) -> list[str]:
        """Candle intervals the venue offers (``"1m"``, ``"1h"``, ...)."""

    @abc.abstractmethod
    async def markets(self, *, reload: bool = False) -> list[Market]:
        """All markets of the venue (source: ccxt ``load_markets``)."""

    @abc.abstractmethod
    async def tickers(self, symbols: Sequence[Market] | None = None) -> list[Ticker]:
        """Tickers of ``symbols`` (all markets when ``None``; ccxt ``fetch_tickers``)."""

    @abc.abstractmethod
    async def order_book(self, market: Market, depth: int) -> OrderBook:
        """Up to ``depth`` levels per side (ccxt ``fetch_order_book``)."""

    @abc.abstractmethod
    async def trades(self, market: Market, limit: int) -> list[Trade]:
        """The ``limit`` most recent public trades, oldest first (ccxt ``fetch_trades``)."""

    @abc.abstractmethod
    async def candles(
        self, market: Market, interval: str, *, start: int | None, end: int | None, limit: int, now_ms: int
    ) -> list[Candle]:
        """Candles of ``interval`` in ``[start, end]`` ms, oldest first (ccxt ``fetch_ohlcv``).

        ``now_ms`` decides which candle is still open (``closed=False``).
        """

    @abc.abstractmethod
    async def funding_rate(self, market: Market) -> FundingRate:
        """Current funding of a perpetual (ccxt ``fetch_funding_rate`` or ``fetch_funding_rates``)."""
