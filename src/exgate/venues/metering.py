"""How each venue meters its public REST API: limits, windows and per-request weight.

Weights start from ccxt's per-endpoint cost tables (``calculate_rate_limiter_cost``, routed
into exgate's budget instead of ccxt's own throttler) and are corrected where the exchange's
documentation says otherwise; each correction cites its source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from exgate.budget.model import Limit, Metering, Scope, ccxt_cost, name_for_window

BINANCE_DOCS = "https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info#limits"
BYBIT_DOCS = "https://bybit-exchange.github.io/docs/v5/rate-limit"
HYPERLIQUID_DOCS = "https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/rate-limits-and-user-limits"


def binance_weight(path: str, params: Mapping[str, object], cost: int) -> int:
    """Binance USD-M request weight: ccxt's table (depth 2/5/10/20 by limit, ticker/24hr 1 with
    a symbol and 40 without, ticker/bookTicker 2 with a symbol and 5 without, klines 1/2/5/10 by
    limit, fundingInfo 1, ...), except ``premiumIndex`` without a symbol, which Binance weighs 10
    (ccxt says 1). Binance documents fundingInfo as weight 0 (sharing fundingRate's 500 per
    5 min); the budget charges every request at least 1."""
    if path == "premiumIndex" and not params.get("symbol"):
        return 10
    return ccxt_cost(path, params, cost)


def bybit_weight(path: str, params: Mapping[str, object], cost: int) -> int:
    """Bybit counts requests, not weight: every public request is 1 of the IP's 600 per 5 s
    (ccxt's cost of 5 is in its own 20 ms units)."""
    return 1


_HL_LIGHT = frozenset({"l2Book", "allMids", "clearinghouseState", "orderStatus", "spotClearinghouseState",
                       "exchangeStatus"})


def hyperliquid_weight(path: str, params: Mapping[str, object], cost: int) -> int:
    """Hyperliquid weight: ``/exchange`` actions ``1 + floor(batch length / 40)`` (orders,
    cancels); ``/info`` by request type: 2 for l2Book, allMids, clearinghouseState, orderStatus,
    spotClearinghouseState and exchangeStatus; 60 for userRole; 20 for the rest (candleSnapshot
    adds 1 per 60 candles returned, not known before the call). ccxt's table (10 for most types,
    4 for candleSnapshot) is about half of the documented weights."""
    if str(path).endswith("exchange"):
        action = params.get("action") if isinstance(params.get("action"), dict) else {}
        batch = action.get("orders") or action.get("cancels") or []
        return 1 + (len(batch) // 40 if isinstance(batch, list) else 0)
    kind = str(params.get("type", ""))
    if kind in _HL_LIGHT:
        return 2
    if kind == "userRole":
        return 60
    return 20


METERING: dict[str, Metering] = {
    "binanceusdm": Metering(
        limits=(Limit(Scope.IP, 2_400, 60_000, "request_weight_1m"),),
        weigh=binance_weight, used_header="X-MBX-USED-WEIGHT-1M", docs=BINANCE_DOCS,
        account_limits=(Limit(Scope.ACCOUNT, 300, 10_000, "orders_10s"), Limit(Scope.ACCOUNT, 1_200, 60_000, "orders_1m")),
    ),
    "bybit": Metering(
        limits=(Limit(Scope.IP, 600, 5_000, "requests_5s"),),
        weigh=bybit_weight, remaining_header="X-Bapi-Limit-Status", capacity_header="X-Bapi-Limit", docs=BYBIT_DOCS,
        account_limits=(Limit(Scope.ACCOUNT, 10, 1_000, "create_order_1s"),),
    ),
    "hyperliquid": Metering(
        limits=(Limit(Scope.IP, 1_200, 60_000, "weight_1m"),),
        weigh=hyperliquid_weight, docs=HYPERLIQUID_DOCS,
    ),
    "pacifica": Metering(
        # Pacifica's own limits are not documented in the notes exgate works from; this is
        # ccxt's model of them (rateLimit 600 ms, cost 1, klines 12): 100 per minute.
        limits=(Limit(Scope.IP, 100, 60_000, "cost_1m"),),
        docs="ccxt pacifica rateLimit/cost table",
    ),
}


def metering_for(venue: str, rate_limit_ms: float) -> Metering:
    """The venue's declared metering, or for any other ccxt id one derived from ccxt's
    ``rateLimit`` (ms per cost unit): ``60000 / rateLimit`` cost per minute."""
    known = METERING.get(venue)
    if known is not None:
        return known
    capacity = max(1, int(60_000 / max(rate_limit_ms, 1)))
    return Metering(limits=(Limit(Scope.IP, capacity, 60_000, "ccxt_1m"),), docs="ccxt rateLimit")


def with_override(metering: Metering, capacity: int, window_ms: int) -> Metering:
    """``metering`` with its first (IP) limit replaced (a lowered budget for tests or a shared IP);
    the limit's name follows the new window (``requests_5s`` overridden to 10 s: ``requests_10s``)."""
    first = metering.limits[0]
    limit = Limit(first.scope, capacity, window_ms, name_for_window(first.name, window_ms))
    return replace(metering, limits=(limit, *metering.limits[1:]))
