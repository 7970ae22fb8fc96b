"""The one place cache keys (and the Redis names derived from them) are built.

Shared market data is versioned and exchange-scoped: ``exgate:v1:{venue}:{type}:{symbol}``
followed by the request parameters that change the answer, in a fixed order. Private data is
account-scoped with the account id hashed (:func:`account_key`), never a credential.
Tags group keys for invalidation: :func:`exchange_tag`, :func:`market_tag`, :func:`account_tag`.
"""

from __future__ import annotations

import hashlib

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


def account_hash(account_id: str) -> str:
    """First 16 hex digits of the SHA-256 of an account id: stable, and not the id itself."""
    return hashlib.sha256(account_id.encode()).hexdigest()[:16]


def account_key(venue: str, account_id: str, data_type: DataType, **params: object) -> str:
    """Key of one private read: ``exgate:v1:{venue}:acct:{sha256(account)[:16]}:{type}:...``.

    >>> account_key("bybit", "user-42", DataType.POSITIONS)
    'exgate:v1:bybit:acct:6d894aa3ee802549:positions'
    """
    parts = [PREFIX, venue, "acct", account_hash(account_id), data_type.value]
    parts.extend(f"{name}={value}" for name, value in sorted(params.items()) if value is not None)
    return ":".join(parts)


def exchange_tag(venue: str) -> str:
    """Tag of everything cached for one venue."""
    return f"exchange:{venue}"


def market_tag(venue: str, symbol: str) -> str:
    """Tag of everything cached for one market of a venue."""
    return f"market:{venue}:{symbol}"


def account_tag(venue: str, account_id: str) -> str:
    """Tag of everything cached for one account (id hashed)."""
    return f"account:{venue}:{account_hash(account_id)}"


def lock_key(key: str) -> str:
    """Redis key of the fetch lock of ``key`` (held by the one instance fetching it)."""
    return f"{PREFIX}:lock:{key}"


def tag_key(tag: str) -> str:
    """Redis set of the keys stored with ``tag``."""
    return f"{PREFIX}:tag:{tag}"


def events_channel(db: int) -> str:
    """Redis pub/sub channel of fill and invalidation events for one database number."""
    return f"{PREFIX}:events:db{db}"
