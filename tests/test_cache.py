"""The in-process read-through cache: TTLs, coalescing, cancellation, failures, bounds."""

from __future__ import annotations

import asyncio

import pytest

from exgate.cache import CacheStatus, DataType, MemoryCache, market_key
from tests.conftest import ManualClock


class Upstream:
    """A fetch that counts its calls and completes only when released."""

    def __init__(self, body: bytes = b'{"v":1}', ttl_ms: int = 5_000):
        self.calls = 0
        self.body = body
        self.ttl_ms = ttl_ms
        self.release = asyncio.Event()
        self.error: Exception | None = None

    async def __call__(self) -> tuple[bytes, int]:
        self.calls += 1
        await self.release.wait()
        if self.error:
            raise self.error
        return self.body, self.ttl_ms


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_hit_within_ttl_then_miss_after_expiry():
    clock = ManualClock()
    up = Upstream()
    up.release.set()
    async with MemoryCache(clock=clock) as cache:
        first = await cache.get_or_fetch("k", up)
        clock.advance(4_000)
        second = await cache.get_or_fetch("k", up)
        clock.advance(1_000)
        third = await cache.get_or_fetch("k", up)
    assert (first.status, second.status, third.status) == (CacheStatus.MISS, CacheStatus.HIT, CacheStatus.MISS)
    assert second.body == b'{"v":1}' and second.age_s == 4
    assert up.calls == 2


async def test_hundred_concurrent_reads_of_a_cold_key_make_one_fetch():
    up = Upstream()
    async with MemoryCache(clock=ManualClock()) as cache:
        readers = [asyncio.create_task(cache.get_or_fetch("k", up)) for _ in range(100)]
        await _settle()
        up.release.set()
        results = await asyncio.gather(*readers)
    assert up.calls == 1
    statuses = [r.status for r in results]
    assert statuses.count(CacheStatus.MISS) == 1
    assert statuses.count(CacheStatus.COALESCED) == 99
    assert {r.body for r in results} == {b'{"v":1}'}


async def test_cancelling_waiters_never_cancels_the_shared_fetch():
    up = Upstream()
    async with MemoryCache(clock=ManualClock()) as cache:
        first = asyncio.create_task(cache.get_or_fetch("k", up))  # the caller that started the fetch
        others = [asyncio.create_task(cache.get_or_fetch("k", up)) for _ in range(5)]
        survivor = asyncio.create_task(cache.get_or_fetch("k", up))
        await _settle()
        first.cancel()
        for task in others:
            task.cancel()
        await _settle()
        up.release.set()
        result = await survivor
        after = await cache.get_or_fetch("k", up)
    assert first.cancelled() and all(t.cancelled() for t in others)
    assert result.body == b'{"v":1}'
    assert after.status is CacheStatus.HIT
    assert up.calls == 1


async def test_fetch_completes_and_is_stored_even_if_every_caller_left():
    up = Upstream()
    async with MemoryCache(clock=ManualClock()) as cache:
        caller = asyncio.create_task(cache.get_or_fetch("k", up))
        await _settle()
        caller.cancel()
        await _settle()
        up.release.set()
        await _settle()
        result = await cache.get_or_fetch("k", up)
    assert result.status is CacheStatus.HIT
    assert up.calls == 1


async def test_a_failed_fetch_reaches_every_waiter_and_is_not_cached():
    up = Upstream()
    up.error = RuntimeError("exchange down")
    async with MemoryCache(clock=ManualClock()) as cache:
        readers = [asyncio.create_task(cache.get_or_fetch("k", up)) for _ in range(3)]
        await _settle()
        up.release.set()
        outcomes = await asyncio.gather(*readers, return_exceptions=True)
        assert all(isinstance(o, RuntimeError) for o in outcomes)
        up.error = None
        recovered = await cache.get_or_fetch("k", up)
    assert recovered.status is CacheStatus.MISS
    assert up.calls == 2


async def test_bounded_by_entries_and_bytes_least_recently_used_first():
    async with MemoryCache(clock=ManualClock(), max_entries=2, max_bytes=10) as cache:
        cache.put("a", b"1234", 5_000)
        cache.put("b", b"1234", 5_000)
        assert cache.get("a") is not None  # a is now more recent than b
        cache.put("c", b"1234", 5_000)  # over two entries: b goes
        assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
        cache.put("d", b"123456789", 5_000)  # over ten bytes: the rest goes
        assert len(cache) == 1 and cache.get("d") is not None
        assert cache.stats.evictions == 3


async def test_reading_a_closed_cache_is_a_clear_error():
    cache = MemoryCache()
    with pytest.raises(RuntimeError, match="not open"):
        await cache.get_or_fetch("k", Upstream())


def test_keys_are_versioned_exchange_scoped_and_parameter_ordered():
    assert market_key("bybit", DataType.ORDER_BOOK, "BTC/USDT:USDT", depth=20) == \
        "exgate:v1:bybit:orderbook:BTC/USDT:USDT:depth=20"
    assert market_key("x", DataType.CANDLES, "S", limit=5, interval="1h", start=None) == \
        "exgate:v1:x:klines:S:interval=1h:limit=5"
