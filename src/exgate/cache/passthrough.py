"""A cache that keeps nothing: every read is its own upstream fetch (``EXGATE_CACHE=off``).

What an app does without a gateway, served through the gateway's routes, budget and adapters:
the ``direct`` mode of ``exgate loadtest`` (the "before" of its scale table), and a way to
check that an answer is not a cache artefact. No L1 or L2 copy is read or written, and no two
callers share a fetch (no coalescing); Redis, when configured, still carries the budgets,
idempotency records and invalidation events, which are not caching.
"""

from __future__ import annotations

from collections.abc import Iterable

from exgate.cache.entry import CacheResult, CacheStatus, Entry, Fetch, Tier
from exgate.cache.tiered import Cache


class PassThroughCache(Cache):
    """:class:`Cache`'s interface with caching and coalescing off: :meth:`get_or_fetch` calls
    ``fetch`` every time and answers ``miss``; :meth:`peek` and :meth:`lookup` find nothing;
    :meth:`invalidate` has nothing to drop. Reads are counted as L1 misses (``on_lookup``)."""

    def peek(self, key: str) -> CacheResult | None:
        return None

    async def lookup(self, key: str, *, local_copy: bool = True) -> CacheResult | None:
        return None

    async def get_or_fetch(self, key: str, fetch: Fetch, *, tags: Iterable[str] = (),
                           shared: bool = True, local_copy: bool = True) -> CacheResult:
        """``fetch()``'s answer, fetched now for this caller alone.

        Raises:
            Exception: whatever ``fetch`` raised (there is no stale copy to serve instead).
        """
        self.stats.fetches += 1
        self.stats.misses += 1
        self._count(Tier.L1, CacheStatus.MISS)
        try:
            fetched = await fetch()
        except BaseException:
            self.stats.fetch_errors += 1
            raise
        now = self.clock()
        entry = Entry.new(fetched.body, fetched.freshness, now)
        return CacheResult(entry.body, CacheStatus.MISS, 0, entry.expires_ms, Tier.L1)

    async def invalidate(self, keys: Iterable[str] = (), tags: Iterable[str] = ()) -> tuple[list[str], bool]:
        """Nothing is kept, so nothing is dropped: ``([], True)``."""
        return [], True
