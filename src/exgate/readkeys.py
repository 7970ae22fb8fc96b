"""How each market-data read is checked, defaulted and keyed in the cache: the one place.

:class:`~exgate.service.MarketData` builds every read's key here, and so does the HTTP fast
path (:mod:`exgate.http.fastpath`) through :func:`lookup_key`, so a key the fast path looks up
in L1 is exactly the key the read fills. Parameter checks raise
:class:`~exgate.errors.BadRequest` naming the field and the allowed values.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from exgate.cache import DataType, market_key
from exgate.errors import BadRequest, echo
from exgate.models import Market
from exgate.venues.base import ExchangeAdapter

DEFAULT_DEPTH = 20
DEFAULT_TRADES = 100
DEFAULT_CANDLES = 200


class Read(StrEnum):
    """The cached market-data reads, one per read route."""

    MARKETS = "markets"
    PRICES = "prices"
    ORDER_BOOK = "orderbook"
    TRADES = "trades"
    CANDLES = "klines"
    FUNDING = "funding"


def _in_range(field: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise BadRequest(f"{field} must be between {low} and {high}, got {value}", field=field,
                         allowed={"min": low, "max": high})
    return value


def markets_key(adapter: ExchangeAdapter) -> str:
    """Key of a venue's market list."""
    return market_key(adapter.id, DataType.MARKETS)


def price_items(symbols: str | None) -> list[str] | None:
    """The symbols of a comma-separated ``symbols`` list, blanks left out; ``None`` (every
    ticker) when the list is absent or blank."""
    if not symbols or not symbols.strip():
        return None
    return [item for item in symbols.split(",") if item.strip()]


def unique(markets: Sequence[Market]) -> list[Market]:
    """``markets`` without repeats, each kept where it first appears."""
    out: dict[str, Market] = {}
    for market in markets:
        out.setdefault(market.symbol, market)
    return list(out.values())


def prices_key(adapter: ExchangeAdapter, wanted: Sequence[Market] | None) -> str:
    """Key of every ticker (``wanted`` None) or of the subset ``wanted``, in that order."""
    if wanted is None:
        return market_key(adapter.id, DataType.PRICES)
    return market_key(adapter.id, DataType.PRICES, ",".join(m.symbol for m in wanted))


def book_depth(adapter: ExchangeAdapter, depth: int | None) -> int:
    """Levels per side: ``depth`` or 20, within 1..the venue's ``max_depth``.

    Raises:
        BadRequest: out of range (``field="depth"``).
    """
    return _in_range("depth", DEFAULT_DEPTH if depth is None else depth, 1, adapter.profile.max_depth)


def order_book_key(adapter: ExchangeAdapter, market: Market, depth: int) -> str:
    """Key of an order book of ``depth`` levels per side."""
    return market_key(adapter.id, DataType.ORDER_BOOK, market.symbol, depth=depth)


def trades_limit(adapter: ExchangeAdapter, limit: int | None) -> int:
    """Trades asked for: ``limit`` or 100, within 1..the venue's ``max_trades``.

    Raises:
        BadRequest: out of range (``field="limit"``).
    """
    return _in_range("limit", DEFAULT_TRADES if limit is None else limit, 1, adapter.profile.max_trades)


def trades_key(adapter: ExchangeAdapter, market: Market, limit: int) -> str:
    """Key of the ``limit`` most recent trades."""
    return market_key(adapter.id, DataType.TRADES, market.symbol, limit=limit)


def check_interval(adapter: ExchangeAdapter, interval: str | None) -> str:
    """``interval`` when it is one of the venue's candle intervals (ccxt ``timeframes``).

    Raises:
        BadRequest: missing or not one of them, naming ``interval`` with the allowed values.
    """
    allowed = adapter.intervals()
    if not interval or interval not in allowed:
        got = "none was given" if interval is None else f"got {echo(interval)}"
        raise BadRequest(f"interval must be one of {', '.join(allowed)}; {got}", field="interval", allowed=allowed)
    return interval


def candles_limit(adapter: ExchangeAdapter, interval: str | None, start: int | None, end: int | None,
                  limit: int | None) -> int:
    """Check a candles read (interval one of the venue's, times in ms >= 0, start <= end);
    returns its limit: ``limit`` or 200, within 1..the venue's ``max_candles``.

    Raises:
        BadRequest: naming ``interval`` (with the allowed values), ``limit``, ``start`` or ``end``.
    """
    check_interval(adapter, interval)
    limit = _in_range("limit", DEFAULT_CANDLES if limit is None else limit, 1, adapter.profile.max_candles)
    for name, value in (("start", start), ("end", end)):
        if value is not None and value < 0:
            raise BadRequest(f"{name} must be a time in ms since the epoch, got {value}", field=name)
    if start is not None and end is not None and start > end:
        raise BadRequest(f"start ({start}) must not be after end ({end})", field="start")
    return limit


def candles_key(adapter: ExchangeAdapter, market: Market, interval: str, start: int | None, end: int | None,
                limit: int) -> str:
    """Key of a candles read (``start``/``end`` left out when absent)."""
    return market_key(adapter.id, DataType.CANDLES, market.symbol, interval=interval, start=start, end=end,
                      limit=limit)


def funding_key(adapter: ExchangeAdapter, market: Market) -> str:
    """Key of a perpetual's current funding."""
    return market_key(adapter.id, DataType.FUNDING, market.symbol)


def lookup_key(adapter: ExchangeAdapter, read: Read, symbol: str | None = None, *, symbols: str | None = None,
               depth: int | None = None, limit: int | None = None, interval: str | None = None,
               start: int | None = None, end: int | None = None) -> str | None:
    """The key ``read`` with these (parsed) parameters uses on ``adapter``, found without
    calling anything: symbols resolve only among the markets already loaded
    (:meth:`ExchangeAdapter.loaded_market`).

    Returns ``None`` wherever the read itself would do more than look its key up: markets not
    loaded yet, a symbol naming no loaded market, a parameter the read rejects.
    """
    try:
        if read is Read.MARKETS:
            return markets_key(adapter)
        if read is Read.PRICES:
            items = price_items(symbols)
            if items is None:
                return prices_key(adapter, None)
            wanted = [adapter.loaded_market(item) for item in items]
            return prices_key(adapter, unique([m for m in wanted if m is not None])) if None not in wanted else None
        if read is Read.ORDER_BOOK:
            depth = book_depth(adapter, depth)
        elif read is Read.TRADES:
            limit = trades_limit(adapter, limit)
        elif read is Read.CANDLES:
            limit = candles_limit(adapter, interval, start, end, limit)
    except BadRequest:
        return None
    market = adapter.loaded_market(symbol) if symbol is not None else None
    if market is None:
        return None
    if read is Read.ORDER_BOOK:
        assert depth is not None
        return order_book_key(adapter, market, depth)
    if read is Read.TRADES:
        assert limit is not None
        return trades_key(adapter, market, limit)
    if read is Read.CANDLES:
        assert interval is not None and limit is not None
        return candles_key(adapter, market, interval, start, end, limit)
    return funding_key(adapter, market)


class KeyMemo:
    """:func:`lookup_key` answers remembered for as long as the markets they were resolved
    against stay loaded: the HTTP fast path's keys without splitting and resolving symbols
    on every hit.

    An answer is kept with the adapter's :attr:`~ExchangeAdapter.markets_load` and used only
    while that is still the same object, so after a reload every symbol resolves afresh (a
    delisted symbol stops being answered, a new one starts). Only found keys are kept: an
    unknown symbol, a rejected parameter or markets not loaded (``None``) are never
    remembered, nor a symbol or parameter text longer than ``longest`` characters. At most
    ``size`` answers are kept; one more forgets them all (distinct valid spellings are
    endless too).
    """

    def __init__(self, size: int = 1024, longest: int = 256) -> None:
        self.size = size
        self.longest = longest
        self._keys: dict[tuple[object, ...], tuple[object, str]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, adapter: ExchangeAdapter, read: Read, symbol: str | None = None,
               **params: str | int | None) -> str | None:
        """:func:`lookup_key` ``(adapter, read, symbol, **params)``, remembered (see the class)."""
        load = adapter.markets_load
        if load is None:
            return lookup_key(adapter, read, symbol, **params)  # type: ignore[arg-type]
        memo = (adapter.id, read, symbol, *params.items())
        known = self._keys.get(memo)
        if known is not None and known[0] is load:
            return known[1]
        key = lookup_key(adapter, read, symbol, **params)  # type: ignore[arg-type]
        if key is None or any(isinstance(v, str) and len(v) > self.longest for v in (symbol, *params.values())):
            return key
        if len(self._keys) >= self.size and memo not in self._keys:
            self._keys.clear()
        self._keys[memo] = (load, key)
        return key
