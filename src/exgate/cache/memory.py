"""In-process read-through cache with request coalescing.

Values are encoded JSON bytes, stored and returned as they are. For a cold or expired key,
exactly one upstream fetch runs however many callers ask at once; the others await its
result (``X-Cache: coalesced``). The fetch runs as a task the cache owns, so a caller that is
cancelled (client gone, timeout) never cancels the fetch for the others.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType


def wall_clock_ms() -> int:
    """Current time in integer ms since the epoch."""
    return time.time_ns() // 1_000_000


class CacheStatus(StrEnum):
    """How a read was answered (the ``X-Cache`` header)."""

    HIT = "hit"
    MISS = "miss"
    COALESCED = "coalesced"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached value: ``body`` bytes stored at ``stored_ms``, fresh until ``expires_ms``."""

    body: bytes
    stored_ms: int
    expires_ms: int


@dataclass(frozen=True, slots=True)
class CacheResult:
    """What a read returns: the bytes, how they were obtained, their age in whole seconds and
    when they stop being fresh (ms)."""

    body: bytes
    status: CacheStatus
    age_s: int
    expires_ms: int


Fetch = Callable[[], Awaitable[tuple[bytes, int]]]
"""An upstream fetch: returns ``(encoded body, ttl_ms)``; raises to signal failure (not cached)."""


@dataclass
class CacheStats:
    """Counters of the cache's work since start."""

    hits: int = 0
    misses: int = 0
    coalesced: int = 0
    fetches: int = 0
    fetch_errors: int = 0
    evictions: int = 0


class MemoryCache:
    """Bounded in-process read-through cache (LRU by entries and bytes) with coalescing.

    Use as an async context manager: it owns the fetch tasks in a :class:`asyncio.TaskGroup`
    and cancels those still running when it closes.

    Args:
        clock: returns the current time in ms (inject a fake one in tests).
        max_entries: most entries kept; the least recently used go first.
        max_bytes: most value bytes kept.
    """

    def __init__(self, *, clock: Callable[[], int] = wall_clock_ms, max_entries: int = 50_000,
                 max_bytes: int = 256 * 1024 * 1024):
        self.clock = clock
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._bytes = 0
        self._inflight: dict[str, asyncio.Future[Entry]] = {}
        self._tasks: asyncio.TaskGroup | None = None

    async def __aenter__(self) -> MemoryCache:
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        tasks, self._tasks = self._tasks, None
        for future in self._inflight.values():
            future.cancel()
        self._inflight.clear()
        if tasks is not None:
            await tasks.__aexit__(exc_type, exc, tb)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Entry | None:
        """The fresh entry under ``key``, or ``None`` (expired entries are dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_ms <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: str, body: bytes, ttl_ms: int) -> Entry:
        """Store ``body`` under ``key`` for ``ttl_ms`` and evict past the bounds."""
        now = self.clock()
        entry = Entry(body=body, stored_ms=now, expires_ms=now + ttl_ms)
        self._drop(key)
        if ttl_ms <= 0:
            return entry
        self._entries[key] = entry
        self._bytes += len(body)
        while self._entries and (len(self._entries) > self.max_entries or self._bytes > self.max_bytes):
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.stats.evictions += 1
        return entry

    def invalidate(self, key: str) -> None:
        """Forget ``key`` (a fetch already running still completes and stores its result)."""
        self._drop(key)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.body)

    def _age_s(self, entry: Entry) -> int:
        return max(0, (self.clock() - entry.stored_ms) // 1000)

    async def get_or_fetch(self, key: str, fetch: Fetch) -> CacheResult:
        """The value of ``key``: from the cache, from a fetch already running, or fetched now.

        Raises:
            RuntimeError: the cache is not open (use ``async with``).
            Exception: whatever ``fetch`` raised, to this caller and every caller coalesced
                with it; failures are not cached.
        """
        entry = self.get(key)
        if entry is not None:
            self.stats.hits += 1
            return CacheResult(entry.body, CacheStatus.HIT, self._age_s(entry), entry.expires_ms)
        future = self._inflight.get(key)
        status = CacheStatus.COALESCED
        if future is None:
            if self._tasks is None:
                raise RuntimeError("MemoryCache is not open; use 'async with MemoryCache()'")
            status = CacheStatus.MISS
            future = asyncio.get_running_loop().create_future()
            self._inflight[key] = future
            self._tasks.create_task(self._run_fetch(key, fetch, future))
            self.stats.misses += 1
        else:
            self.stats.coalesced += 1
        entry = await asyncio.shield(future)
        return CacheResult(entry.body, status, self._age_s(entry), entry.expires_ms)

    async def _run_fetch(self, key: str, fetch: Fetch, future: asyncio.Future[Entry]) -> None:
        """Run one upstream fetch; its outcome goes to ``future``, never out of the task group."""
        self.stats.fetches += 1
        try:
            body, ttl_ms = await fetch()
            entry = self.put(key, body, ttl_ms)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every waiter, not swallowed
            self.stats.fetch_errors += 1
            if not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved: no "never retrieved" warning without waiters
        else:
            if not future.done():
                future.set_result(entry)
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
