"""The read-through cache: keys, TTLs and the in-process tier with coalescing."""

from exgate.cache.keys import market_key
from exgate.cache.memory import CacheResult, CacheStatus, MemoryCache
from exgate.cache.ttl import DEFAULT_TTL_MS, DataType

__all__ = ["CacheResult", "CacheStatus", "DEFAULT_TTL_MS", "DataType", "MemoryCache", "market_key"]
