"""Pure functions from ccxt's unified structures to exgate's models.

ccxt parses each venue's wire payload into its unified dicts (numbers as Python floats that
are the shortest round-trip of the venue's decimal strings); these functions turn those into
frozen models with :class:`~decimal.Decimal` values via ``repr``, so ``"27450.50"`` on the
wire becomes ``Decimal("27450.5")`` here, equal as a decimal. A float cannot carry more than
15 significant digits, so tickers and funding rates read the venue's own decimal strings from
ccxt's ``info`` where :mod:`exgate.venues.wire` knows their names. Any structural surprise
raises :class:`~exgate.errors.MalformedUpstream`, never a bare ``KeyError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from exgate.errors import MalformedUpstream
from exgate.intervals import interval_ms
from exgate.models import Candle, FundingRate, Market, MarketType, OrderBook, Side, Ticker, Trade
from exgate.venues import wire

T = TypeVar("T")

_SIDES = {"buy": Side.BUY, "sell": Side.SELL, "bid": Side.BUY, "ask": Side.SELL, "b": Side.BUY, "a": Side.SELL,
          "long": Side.BUY, "short": Side.SELL}


def dec(value: Any) -> Decimal | None:
    """A ccxt number (float, int, str or None) as a Decimal; ``None`` stays ``None``.

    Raises:
        MalformedUpstream: the value is not a finite number.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise MalformedUpstream(f"expected a number, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return Decimal(int(value)) if value.is_integer() else Decimal(repr(value))
    try:
        out = Decimal(str(value))
    except InvalidOperation as exc:
        raise MalformedUpstream(f"expected a number, got {value!r}") from exc
    if not out.is_finite():
        return None
    return out


def req_dec(value: Any, what: str) -> Decimal:
    """Like :func:`dec` but the value must be present."""
    out = dec(value)
    if out is None:
        raise MalformedUpstream(f"missing {what}")
    return out


def ms(value: Any) -> int | None:
    """A ccxt timestamp (ms as int/float/str) as int ms, or ``None``."""
    if value is None or value == "":
        return None
    try:
        return int(Decimal(str(value)))
    except (InvalidOperation, ValueError) as exc:
        raise MalformedUpstream(f"expected a timestamp in ms, got {value!r}") from exc


def side(value: Any) -> Side | None:
    """Normalize a venue or ccxt side (``buy/sell``, ``bid/ask``, ``BUY/SELL``, ``B/A``)."""
    if value is None:
        return None
    found = _SIDES.get(str(value).strip().lower())
    if found is None:
        raise MalformedUpstream(f"unknown side {value!r}")
    return found


def _guard(kind: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except MalformedUpstream:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, InvalidOperation) as exc:
        raise MalformedUpstream(f"cannot parse {kind}: {exc!r}") from exc


def market_type(m: dict) -> MarketType:
    """ccxt's ``spot``/``swap``/``future``/``option`` flags as a :class:`MarketType`."""
    if m.get("swap"):
        return MarketType.PERPETUAL
    if m.get("future"):
        return MarketType.FUTURE
    if m.get("option"):
        return MarketType.OPTION
    if m.get("spot") or m.get("type") == "spot":
        return MarketType.SPOT
    raise MalformedUpstream(f"market {m.get('symbol')!r} has unknown type {m.get('type')!r}")


def _step(value: Any, tick_mode: bool) -> Decimal | None:
    """ccxt precision → increment: TICK_SIZE mode gives the step, DECIMAL_PLACES the digits."""
    number = dec(value)
    if number is None or tick_mode:
        return number
    return Decimal(1).scaleb(-int(number))


def parse_market(exchange: str, m: dict, *, tick_mode: bool = True) -> Market:
    """A ccxt market structure (``load_markets`` value) as a :class:`Market`."""

    def build() -> Market:
        precision = m.get("precision") or {}
        limits = m.get("limits") or {}
        return Market(
            exchange=exchange,
            symbol=m["symbol"],
            id=str(m["id"]),
            base=m["base"],
            quote=m["quote"],
            settle=m.get("settle"),
            type=market_type(m),
            contract_size=dec(m.get("contractSize")) if m.get("contract") else None,
            tick_size=_step(precision.get("price"), tick_mode),
            lot_size=_step(precision.get("amount"), tick_mode),
            min_size=dec((limits.get("amount") or {}).get("min")),
            max_leverage=dec((limits.get("leverage") or {}).get("max")),
            active=m.get("active") is not False,
        )

    return _guard("market", build)


_MARK_KEYS = ("markPrice", "markPx", "mark")  # Bybit/Binance, Hyperliquid, Pacifica
_INDEX_KEYS = ("indexPrice", "oraclePx", "oracle")


def _first(info: dict, *keys: str) -> Any:
    """The first of ``keys`` present (not ``None``) in a venue's raw ``info`` record."""
    return next((info[k] for k in keys if info.get(k) is not None), None)


def parse_ticker(exchange: str, t: dict, *, funding: dict | None = None, book: dict | None = None,
                 family: str = "", timestamp: int | None = None) -> Ticker:
    """A ccxt ticker (``fetch_tickers`` value) as a :class:`Ticker`.

    ``funding`` is an optional ccxt funding-rate structure for the same symbol, for venues
    whose ticker lacks mark, index and funding (Binance ``ticker/24hr``); ``book`` an optional
    ccxt ``fetch_bids_asks`` ticker (Binance ``ticker/bookTicker``) for the best bid and ask.
    ``family`` (the ccxt exchange id) selects the venue's wire field names
    (:mod:`exgate.venues.wire`): each value the venue's record carries is taken from its raw
    decimal string, exactly; ccxt's unified (float) value is the fallback. Where neither has
    them, the raw ``info`` is read: funding from ``fundingRate``/``funding``, mark from
    ``markPrice``/``markPx``/``mark``, index from ``indexPrice``/``oraclePx``/``oracle``.
    ``timestamp`` (ms) is the venue's time of the whole response, used when neither the record
    nor ccxt has one (Bybit).
    """

    def build() -> Ticker:
        info = t.get("info") if isinstance(t.get("info"), dict) else {}
        raw = wire.ticker_fields(family, info, (book or {}).get("info"))
        rate = _first(info, "fundingRate", "funding")
        mark = t.get("markPrice") if t.get("markPrice") is not None else _first(info, *_MARK_KEYS)
        index = t.get("indexPrice") if t.get("indexPrice") is not None else _first(info, *_INDEX_KEYS)
        bid, ask = t.get("bid"), t.get("ask")
        if book:
            bid = book.get("bid") if book.get("bid") is not None else bid
            ask = book.get("ask") if book.get("ask") is not None else ask
        if funding:
            exact = wire.funding_fields(family, funding.get("info"))
            rate = exact.get("rate", funding.get("fundingRate", rate))
            mark = mark if mark is not None else exact.get("mark", funding.get("markPrice"))
            index = index if index is not None else exact.get("index", funding.get("indexPrice"))
        unified = {
            "last": t.get("last"), "bid": bid, "ask": ask, "mark": mark, "index": index,
            "high_24h": t.get("high"), "low_24h": t.get("low"), "volume_24h": t.get("baseVolume"),
            "quote_volume_24h": t.get("quoteVolume"), "change_24h_pct": t.get("percentage"), "funding_rate": rate,
        }
        values = {name: dec(raw.get(name, value)) for name, value in unified.items()}
        when = ms(raw.get("timestamp")) or ms(t.get("timestamp"))
        return Ticker(exchange=exchange, symbol=t["symbol"], **values,
                      timestamp=when if when is not None else timestamp)

    return _guard("ticker", build)


def _levels(rows: Iterable[Any], depth: int | None, reverse: bool) -> list[tuple[Decimal, Decimal]]:
    levels = [(req_dec(row[0], "price"), req_dec(row[1], "size")) for row in rows]
    levels.sort(key=lambda level: level[0], reverse=reverse)
    return levels[:depth] if depth is not None else levels


def parse_order_book(exchange: str, symbol: str, ob: dict, depth: int | None = None) -> OrderBook:
    """A ccxt order book as an :class:`OrderBook`: bids high→low, asks low→high, ``depth`` per side."""
    return _guard(
        "order book",
        lambda: OrderBook(
            exchange=exchange,
            symbol=ob.get("symbol") or symbol,
            bids=_levels(ob["bids"], depth, reverse=True),
            asks=_levels(ob["asks"], depth, reverse=False),
            timestamp=ms(ob.get("timestamp")),
            sequence=ms(ob.get("nonce")),
        ),
    )


def parse_trade(exchange: str, t: dict) -> Trade:
    """A ccxt public trade as a :class:`Trade` (``side`` is the taker's)."""
    return _guard(
        "trade",
        lambda: Trade(
            exchange=exchange,
            symbol=t["symbol"],
            id=None if t.get("id") is None else str(t["id"]),
            price=req_dec(t.get("price"), "trade price"),
            size=req_dec(t.get("amount"), "trade size"),
            side=side(t.get("side")),
            timestamp=ms(t.get("timestamp")) or 0,
        ),
    )


def parse_candle(row: list, interval_ms: int, now_ms: int) -> Candle:
    """A ccxt OHLCV row ``[open_time, open, high, low, close, volume]`` as a :class:`Candle`.

    ``closed`` is true once ``now_ms`` has passed the candle's ``close_time``.
    """

    def build() -> Candle:
        open_time = ms(row[0])
        if open_time is None:
            raise MalformedUpstream("candle without open time")
        close_time = open_time + interval_ms - 1
        return Candle(
            open_time=open_time,
            open=req_dec(row[1], "open"),
            high=req_dec(row[2], "high"),
            low=req_dec(row[3], "low"),
            close=req_dec(row[4], "close"),
            volume=dec(row[5]) or Decimal(0),
            close_time=close_time,
            closed=now_ms > close_time,
        )

    return _guard("candle", build)


def parse_funding_rate(exchange: str, f: dict, *, family: str = "", interval: int | None = None) -> FundingRate:
    """A ccxt funding-rate structure as a :class:`FundingRate`.

    ``next_funding_time`` is ccxt's ``nextFundingTimestamp``, falling back to
    ``fundingTimestamp`` (the time the current rate is charged). ``rate``, ``mark`` and
    ``index`` come from the venue's raw decimal strings where ``family`` (the ccxt id) names
    them (:func:`exgate.venues.wire.funding_fields`). ``interval`` (ms) is used when ccxt's
    structure has no ``interval`` (Binance: from ``fundingInfo``).
    """

    def build() -> FundingRate:
        exact = wire.funding_fields(family, f.get("info"))
        return FundingRate(
            exchange=exchange,
            symbol=f["symbol"],
            rate=dec(exact.get("rate", f.get("fundingRate"))),
            next_funding_time=ms(f.get("nextFundingTimestamp")) or ms(f.get("fundingTimestamp")),
            interval_ms=interval_ms(f.get("interval")) or interval,
            mark=dec(exact.get("mark", f.get("markPrice"))),
            index=dec(exact.get("index", f.get("indexPrice"))),
            timestamp=ms(f.get("timestamp")),
        )

    return _guard("funding rate", build)
