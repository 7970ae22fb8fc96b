"""The one place cache keys are built.

Shared market data is versioned and exchange-scoped: ``exgate:v1:{venue}:{type}:{symbol}``
followed by the request parameters that change the answer, in a fixed order. Private data
(later issues) is account-scoped with the account id hashed, never a credential.
"""

from __future__ import annotations

from exgate.cache.ttl import DataType

PREFIX = "exgate:v1"


def market_key(venue: str, data_type: DataType, symbol: str | None = None, **params: object) -> str:
    """Key of one shared market-data read.

    >>> market_key("bybit", DataType.ORDER_BOOK, "BTC/USDT:USDT", depth=20)
    'exgate:v1:bybit:orderbook:BTC/USDT:USDT:depth=20'

    ``None`` parameters are left out, so ``limit=None`` and no ``limit`` share a key.
    """
    parts = [PREFIX, venue, data_type.value]
    if symbol is not None:
        parts.append(symbol)
    parts.extend(f"{name}={value}" for name, value in sorted(params.items()) if value is not None)
    return ":".join(parts)
