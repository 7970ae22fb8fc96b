"""The one place cache keys (and the Redis names derived from them) are built.

Shared market data is versioned and exchange-scoped: ``exgate:v1:{venue}:{type}:{symbol}``
followed by the request parameters that change the answer, in a fixed order. Private data is
account-scoped with the account id hashed (:func:`account_key`), never a credential.
Tags group keys for invalidation: :func:`exchange_tag`, :func:`market_tag`, :func:`account_tag`.

The braces are Redis Cluster hash tags: only the part between them picks the key's slot, so
every group of names that one script or one command touches lands on one slot:

- ``{venue}``: a venue's market data, the sets of its ``exchange:`` and ``market:`` tags, its
  budget windows and its ban (the budget's Lua script reads the ban and charges every window
  at once);
- ``{venue:acct:hash}``: one account's private data and its ``account:`` tag set;
- a fetch lock (``exgate:v1:lock:`` + the key) takes the slot of the key it guards.

On one Redis server the braces are just characters of the name.
"""

from __future__ import annotations

import hashlib

from exgate.cache.ttl import DataType

PREFIX = "exgate:v1"


def market_key(venue: str, data_type: DataType, symbol: str | None = None, **params: object) -> str:
    """Key of one shared market-data read.

    >>> market_key("bybit", DataType.ORDER_BOOK, "BTC/USDT:USDT", depth=20)
    'exgate:v1:{bybit}:orderbook:BTC/USDT:USDT:depth=20'

    ``None`` parameters are left out, so ``limit=None`` and no ``limit`` share a key.
    """
    parts = [PREFIX, _venue_slot(venue), data_type.value]
    if symbol is not None:
        parts.append(symbol)
    parts.extend(f"{name}={value}" for name, value in sorted(params.items()) if value is not None)
    return ":".join(parts)


def _venue_slot(venue: str) -> str:
    return "{" + venue + "}"


def _account_slot(venue: str, digest: str) -> str:
    return "{" + f"{venue}:acct:{digest}" + "}"


def account_hash(account_id: str) -> str:
    """First 16 hex digits of the SHA-256 of an account id: stable, and not the id itself."""
    return hashlib.sha256(account_id.encode()).hexdigest()[:16]


def account_key(venue: str, account_id: str, data_type: DataType, **params: object) -> str:
    """Key of one private read: ``exgate:v1:{venue:acct:sha256(account)[:16]}:{type}:...``.

    >>> account_key("bybit", "user-42", DataType.POSITIONS)
    'exgate:v1:{bybit:acct:6d894aa3ee802549}:positions'
    """
    parts = [PREFIX, _account_slot(venue, account_hash(account_id)), data_type.value]
    parts.extend(f"{name}={value}" for name, value in sorted(params.items()) if value is not None)
    return ":".join(parts)


def idempotency_key(venue: str, account_id: str, scope: str, client_key: str) -> str:
    """Redis key of one order's ``Idempotency-Key`` record, on the account's slot. ``scope``
    (tenant and user) and the client's key are hashed together: neither appears in the name.

    >>> idempotency_key("bybit", "user-42", "t1:u1", "k-1")
    'exgate:v1:{bybit:acct:6d894aa3ee802549}:idempotency:b81bbe742eb59dba29033b7a71f13e1a'
    """
    digest = hashlib.sha256(f"{scope}\x00{client_key}".encode()).hexdigest()[:32]
    return ":".join([PREFIX, _account_slot(venue, account_hash(account_id)), "idempotency", digest])


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
    """Redis key of the fetch lock of ``key`` (held by the one instance fetching it); it holds
    ``key``'s hash tag, so it lives on ``key``'s slot."""
    return f"{PREFIX}:lock:{key}"


def tag_key(tag: str) -> str:
    """Redis sorted set of the keys stored with ``tag``, on the slot of the keys it groups.

    >>> tag_key("market:bybit:BTC/USDT:USDT")
    'exgate:v1:{bybit}:tag:market:bybit:BTC/USDT:USDT'
    >>> tag_key("account:bybit:6d894aa3ee802549")
    'exgate:v1:{bybit:acct:6d894aa3ee802549}:tag:account:bybit:6d894aa3ee802549'
    """
    kind, _, rest = tag.partition(":")
    venue, _, detail = rest.partition(":")
    if kind == "account" and venue and detail:
        slot = _account_slot(venue, detail)
    else:
        slot = _venue_slot(venue or tag)
    return f"{PREFIX}:{slot}:tag:{tag}"


def budget_key(venue: str, limit: str, window: int) -> str:
    """Redis counter of the weight ``venue``'s ``limit`` used in window number ``window``.

    >>> budget_key("binanceusdm", "ip", 29833333)
    'exgate:v1:{binanceusdm}:budget:ip:29833333'
    """
    return f"{PREFIX}:{_venue_slot(venue)}:budget:{limit}:{window}"


def ban_key(venue: str) -> str:
    """Redis key holding when ``venue``'s ban (after a 429/418) lifts, in ms since the epoch."""
    return f"{PREFIX}:{_venue_slot(venue)}:ban"


def events_channel(db: int) -> str:
    """Redis pub/sub channel of fill and invalidation events for one database number."""
    return f"{PREFIX}:events:db{db}"
