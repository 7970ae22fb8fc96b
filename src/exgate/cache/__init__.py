"""The read-through cache: keys, freshness per data type, L1 in-process, L2 in Redis."""

from exgate.cache.circuit import CircuitBreaker, CircuitState
from exgate.cache.entry import CacheResult, CacheStatus, Entry, Fetched, Freshness, Source, Tier, wall_clock_ms
from exgate.cache.keys import account_key, exchange_tag, market_key, market_tag
from exgate.cache.memory import MemoryStore
from exgate.cache.redis_store import RedisStore
from exgate.cache.tiered import Cache, CacheStats
from exgate.cache.ttl import DEFAULT_FRESHNESS, DEFAULT_TTL_MS, DataType, load_freshness

__all__ = [
    "DEFAULT_FRESHNESS", "DEFAULT_TTL_MS", "Cache", "CacheResult", "CacheStats", "CacheStatus", "CircuitBreaker",
    "CircuitState", "DataType", "Entry", "Fetched", "Freshness", "MemoryStore", "RedisStore", "Source", "Tier",
    "account_key", "exchange_tag", "load_freshness", "market_key", "market_tag", "wall_clock_ms",
]
