"""Exact values from the venues' own records, by ccxt exchange family.

ccxt's unified structures hold Python floats, so a wire decimal of more than 15 significant
digits loses its tail on the way (Hyperliquid's ``dayNtlVlm`` ``"1516669192.1953897476"``
comes out of ccxt as ``1516669192.1953897``). ccxt keeps each venue record it parsed, as
decoded JSON, in the structure's ``info``; the four served venues send prices, sizes, volumes
and rates there as JSON *strings*, so the decimal is still whole. The functions here read those
strings for the fields whose wire names are known, field by field the same ones ccxt's own
parser reads (sources: ccxt's ``parse_ticker`` / ``parse_funding_rate`` of each venue), and
derive what the venue publishes only implicitly (24 h change from the previous day's price).

Every function returns a dict of exgate model field name → raw wire value (a decimal string, an
int, or a derived :class:`~decimal.Decimal`); a field the record does not carry is absent, so
the caller keeps ccxt's unified value for it. Venue families without a table here return ``{}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any


def _pick(info: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    return {field: info[key] for field, key in names.items() if info.get(key) not in (None, "")}


def _change_pct(last: Any, previous: Any) -> Decimal | None:
    """``(last - previous) / previous * 100`` from two wire decimals (Decimal context precision)."""
    try:
        now, before = Decimal(str(last)), Decimal(str(previous))
    except (InvalidOperation, ValueError):
        return None
    if not now.is_finite() or not before.is_finite() or before == 0:
        return None
    return (now - before) / before * 100


_BINANCE_TICKER = {  # /ticker/24hr (spot and USD-M); the spot answer also has bidPrice/askPrice
    "last": "lastPrice", "bid": "bidPrice", "ask": "askPrice", "high_24h": "highPrice", "low_24h": "lowPrice",
    "volume_24h": "volume", "quote_volume_24h": "quoteVolume", "change_24h_pct": "priceChangePercent",
}
_BINANCE_BOOK = {"bid": "bidPrice", "ask": "askPrice"}  # /ticker/bookTicker
_BYBIT_TICKER = {  # /v5/market/tickers
    "last": "lastPrice", "bid": "bid1Price", "ask": "ask1Price", "mark": "markPrice", "index": "indexPrice",
    "high_24h": "highPrice24h", "low_24h": "lowPrice24h", "volume_24h": "volume24h",
    "quote_volume_24h": "turnover24h", "funding_rate": "fundingRate",
}
_HYPERLIQUID_TICKER = {  # metaAndAssetCtxs asset context (ccxt: last = close = midPx)
    "last": "midPx", "mark": "markPx", "index": "oraclePx", "volume_24h": "dayBaseVlm",
    "quote_volume_24h": "dayNtlVlm", "funding_rate": "funding",
}
_PACIFICA_TICKER = {  # /info/prices (ccxt: last = close = mid; volume_24h is in USD)
    "last": "mid", "mark": "mark", "index": "oracle", "quote_volume_24h": "volume_24h", "funding_rate": "funding",
}


def ticker_fields(family: str, info: Any, book: Any = None) -> dict[str, Any]:
    """Ticker fields of one venue record (ccxt ticker ``info``) as their wire values.

    Args:
        family: the ccxt exchange id (``binance``/``binanceusdm``, ``bybit``, ``hyperliquid``,
            ``pacifica``).
        info: the venue's ticker record.
        book: Binance only: the ``ticker/bookTicker`` record of the same symbol (best bid and ask,
            which USD-M's ``ticker/24hr`` lacks).

    Returns:
        ``{"last": "27450.50", ..., "timestamp": 1710328245391}``; ``change_24h_pct`` in percent,
        derived as ``(last - prevDayPx) / prevDayPx * 100`` (Hyperliquid) or from
        ``yesterday_price`` (Pacifica) where the venue sends no change. ``timestamp`` is the
        venue's: Binance ``closeTime`` of the 24 h window, Pacifica ``timestamp``.
    """
    if not isinstance(info, Mapping):
        return {}
    out: dict[str, Any] = {}
    if family in ("binance", "binanceusdm"):
        out = _pick(info, _BINANCE_TICKER)
        if isinstance(book, Mapping):
            out.update(_pick(book, _BINANCE_BOOK))
        if isinstance(info.get("closeTime"), int):
            out["timestamp"] = info["closeTime"]
    elif family == "bybit":
        out = _pick(info, _BYBIT_TICKER)
        pct = info.get("price24hPcnt")
        if pct not in (None, ""):
            out["change_24h_pct"] = Decimal(str(pct)) * 100  # a fraction on the wire
    elif family == "hyperliquid":
        out = _pick(info, _HYPERLIQUID_TICKER)
        impact = info.get("impactPxs")
        if isinstance(impact, list) and len(impact) == 2:  # ccxt's bid/ask for Hyperliquid
            out["bid"], out["ask"] = impact
        change = _change_pct(info.get("midPx"), info.get("prevDayPx")) if "last" in out else None
        if change is not None:
            out["change_24h_pct"] = change
    elif family == "pacifica":
        out = _pick(info, _PACIFICA_TICKER)
        change = _change_pct(info.get("mid"), info.get("yesterday_price")) if "last" in out else None
        if change is not None:
            out["change_24h_pct"] = change
        if isinstance(info.get("timestamp"), int):
            out["timestamp"] = info["timestamp"]
    return out


_FUNDING = {
    "binance": {"rate": "lastFundingRate", "mark": "markPrice", "index": "indexPrice"},  # premiumIndex
    "binanceusdm": {"rate": "lastFundingRate", "mark": "markPrice", "index": "indexPrice"},
    "bybit": {"rate": "fundingRate", "mark": "markPrice", "index": "indexPrice"},  # tickers
    "hyperliquid": {"rate": "funding", "mark": "markPx", "index": "oraclePx"},  # asset context
    "pacifica": {"rate": "funding", "mark": "mark", "index": "oracle"},  # /info/prices
}


def funding_fields(family: str, info: Any) -> dict[str, Any]:
    """Funding-rate fields (``rate``, ``mark``, ``index``) of one venue record (ccxt funding
    ``info``) as wire strings; the same keys ccxt's ``parse_funding_rate`` reads."""
    names = _FUNDING.get(family)
    if names is None or not isinstance(info, Mapping):
        return {}
    return _pick(info, names)


def response_time(family: str, responses: Iterable[Any]) -> int | None:
    """The venue's own time of a response body, where it is only at the top level: Bybit's
    ``time`` (ms) of ``/v5/market/tickers`` (its ticker records carry no time of their own)."""
    if family != "bybit":
        return None
    for body in responses:
        sent = body.get("time") if isinstance(body, Mapping) else None
        if isinstance(sent, int) and not isinstance(sent, bool):
            return sent
        if isinstance(sent, str) and sent.isdigit():
            return int(sent)
    return None

