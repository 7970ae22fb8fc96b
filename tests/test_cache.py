"""The read-through cache, one suite over every backend: in-process only, L1 + one real Redis,
and L1 + a local 3-master Redis Cluster.

Then what only a shared tier can do: coalescing and invalidation across two cache instances
(two gateway processes' worth) on one Redis, dead lock holders, waits that time out, fail-open.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from exgate.cache import (Cache, CacheStatus, CircuitBreaker, CircuitState, DataType, Fetched, Freshness, MemoryStore,
                          RedisStore, Tier, market_key)
from exgate.cache.client import redis_client
from exgate.cache.keys import lock_key
from exgate.errors import NotSupported, UpstreamUnavailable
from tests.conftest import REDIS_BACKENDS, ManualClock, clean_redis_url, free_port

FRESH = Freshness(ttl_ms=5_000, grace_ms=2_000, max_stale_ms=30_000)


class Upstream:
    """A fetch that counts its calls and completes only when released."""

    def __init__(self, body: bytes = b'{"v":1}', freshness: Freshness = FRESH):
        self.calls = 0
        self.body = body
        self.freshness = freshness
        self.release = asyncio.Event()
        self.error: Exception | None = None

    async def __call__(self) -> Fetched:
        self.calls += 1
        await self.release.wait()
        if self.error:
            raise self.error
        return Fetched(self.body, self.freshness)


def ready(body: bytes = b'{"v":1}', freshness: Freshness = FRESH) -> Upstream:
    up = Upstream(body, freshness)
    up.release.set()
    return up


async def _settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def _coordinating(*caches: Cache) -> None:
    """Wait until every cache has subscribed to the events channel: a cache starts serving
    after at most 1 s without it (fetching on its own), which a loaded machine can take, and
    the cross-instance tests are about caches that coordinate."""
    await _eventually(lambda: all(c.l2 is not None and c.l2.coordinating for c in caches), "subscribed")


async def _eventually(check: Callable[[], bool], what: str) -> None:
    """Wait for an event to be delivered through Redis (bounded, not a timing assertion)."""
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


CacheFactory = Callable[..., "contextlib.AbstractAsyncContextManager[Cache]"]


@pytest.fixture(params=["memory", *REDIS_BACKENDS])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def make_cache(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Cache]]:
    """Open caches of the parametrized backend; with Redis, every one shares one clean database."""
    url = clean_redis_url(request, backend) if backend != "memory" else None
    async with contextlib.AsyncExitStack() as stack:
        async def factory(clock: Callable[[], int] | None = None, **options: object) -> Cache:
            clock = clock or ManualClock()
            store = options.pop("l1", None) or MemoryStore()
            l2 = RedisStore.from_url(url, CircuitBreaker("redis", clock), origin="test") if url else None
            return await stack.enter_async_context(Cache(clock=clock, l1=store, l2=l2, **options))

        yield factory


# -- one suite, every backend ------------------------------------------------------------------
async def test_hit_within_ttl_then_stale_in_grace_then_miss_after_it(make_cache):
    clock = ManualClock()
    cache = await make_cache(clock)
    up = ready()
    first = await cache.get_or_fetch("k", up)
    clock.advance(4_000)
    second = await cache.get_or_fetch("k", up)
    clock.advance(3_500)  # 7.5 s: past ttl (5 s) and grace (2 s)
    third = await cache.get_or_fetch("k", up)
    assert (first.status, second.status, third.status) == (CacheStatus.MISS, CacheStatus.HIT, CacheStatus.MISS)
    assert second.body == b'{"v":1}' and second.age_s == 4
    assert up.calls == 2


async def test_hundred_concurrent_reads_of_a_cold_key_make_one_fetch(make_cache):
    cache = await make_cache()
    up = Upstream()
    readers = [asyncio.create_task(cache.get_or_fetch("k", up)) for _ in range(100)]
    await _eventually(lambda: up.calls == 1, "the fetch started")
    await _settle()
    up.release.set()
    results = await asyncio.gather(*readers)
    assert up.calls == 1
    statuses = [r.status for r in results]
    assert statuses.count(CacheStatus.MISS) == 1
    assert statuses.count(CacheStatus.COALESCED) == 99
    assert {r.body for r in results} == {b'{"v":1}'}


async def test_cancelling_waiters_never_cancels_the_shared_fetch(make_cache):
    cache = await make_cache()
    up = Upstream()
    first = asyncio.create_task(cache.get_or_fetch("k", up))  # the caller that started the fetch
    others = [asyncio.create_task(cache.get_or_fetch("k", up)) for _ in range(5)]
    survivor = asyncio.create_task(cache.get_or_fetch("k", up))
    await _eventually(lambda: up.calls == 1, "the fetch started")
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


async def test_fetch_completes_and_is_stored_even_if_every_caller_left(make_cache):
    cache = await make_cache()
    up = Upstream()
    caller = asyncio.create_task(cache.get_or_fetch("k", up))
    await _eventually(lambda: up.calls == 1, "the fetch started")
    caller.cancel()
    await _settle()
    up.release.set()
    await _eventually(lambda: cache.stats.fetches == 1 and not cache._inflight, "fetch finished")
    result = await cache.get_or_fetch("k", up)
    assert result.status is CacheStatus.HIT
    assert up.calls == 1


async def test_a_failed_fetch_reaches_every_waiter_and_is_not_cached(make_cache):
    cache = await make_cache()
    up = Upstream()
    up.error = UpstreamUnavailable("exchange down")
    readers = [asyncio.create_task(cache.get_or_fetch("k", up)) for _ in range(3)]
    await _eventually(lambda: up.calls == 1, "the fetch started")
    await _settle()
    up.release.set()
    outcomes = await asyncio.gather(*readers, return_exceptions=True)
    assert all(isinstance(o, UpstreamUnavailable) for o in outcomes)
    up.error = None
    recovered = await cache.get_or_fetch("k", up)
    assert recovered.status is CacheStatus.MISS
    assert up.calls == 2


async def test_within_grace_stale_is_served_at_once_while_one_refresh_runs(make_cache):
    clock = ManualClock()
    cache = await make_cache(clock)
    await cache.get_or_fetch("k", ready(b'{"v":1}'))
    clock.advance(6_000)  # expired 1 s ago, grace is 2 s
    refresh = Upstream(b'{"v":2}')
    stale = await asyncio.gather(*(cache.get_or_fetch("k", refresh) for _ in range(10)))
    assert {r.status for r in stale} == {CacheStatus.STALE}
    assert {r.body for r in stale} == {b'{"v":1}'} and stale[0].age_s == 6
    refresh.release.set()
    await _eventually(lambda: not cache._inflight, "background refresh done")
    fresh = await cache.get_or_fetch("k", refresh)
    assert (fresh.status, fresh.body, fresh.age_s) == (CacheStatus.HIT, b'{"v":2}', 0)
    assert refresh.calls == 1


async def test_upstream_failure_serves_stale_within_max_stale_then_raises(make_cache):
    clock = ManualClock()
    cache = await make_cache(clock)
    await cache.get_or_fetch("k", ready(b'{"v":1}'))
    down = ready()
    down.error = UpstreamUnavailable("exchange down", retry_after_s=7)
    clock.advance(20_000)  # past grace, within ttl + max-stale (35 s)
    stale = await cache.get_or_fetch("k", down)
    assert (stale.status, stale.body, stale.age_s) == (CacheStatus.STALE, b'{"v":1}', 20)
    clock.advance(16_000)  # 36 s: beyond max-stale
    with pytest.raises(UpstreamUnavailable) as raised:
        await cache.get_or_fetch("k", down)
    assert raised.value.retry_after_s == 7
    assert down.calls == 2


# -- the soft deadline: a slow upstream -----------------------------------------------------
async def test_a_slow_fetch_gives_every_waiter_the_copy_at_the_soft_deadline_and_still_fills(make_cache):
    clock = ManualClock()
    cache = await make_cache(clock, stale_after_ms=50)
    await cache.get_or_fetch("k", ready(b'{"v":1}'))
    clock.advance(8_000)  # past ttl (5 s) and grace (2 s), within max-stale (30 s)
    up = Upstream(b'{"v":2}')  # blocked until released: the exchange hangs
    async with asyncio.timeout(10):  # a guard against a hang, not a timing assertion
        results = await asyncio.gather(*(cache.get_or_fetch("k", up) for _ in range(5)))
        assert not up.release.is_set() and up.calls == 1  # answered while the fetch is still blocked
        late = await cache.get_or_fetch("k", up)  # arriving after the deadline: the copy at once
    assert [(r.status, r.body, r.age_s) for r in results] == [(CacheStatus.STALE, b'{"v":1}', 8)] * 5
    assert late.status is CacheStatus.STALE and up.calls == 1 and cache._inflight
    up.release.set()  # the fetch, left running in the background, fills as usual
    await _eventually(lambda: not cache._inflight, "the slow fetch finished")
    after = await cache.get_or_fetch("k", up)
    assert (after.status, after.body, up.calls) == (CacheStatus.HIT, b'{"v":2}', 1)


async def test_readers_without_a_usable_copy_keep_waiting_for_the_slow_fetch(make_cache):
    clock = ManualClock()
    cache = await make_cache(clock, stale_after_ms=50)
    private = Freshness(ttl_ms=5_000)  # never served stale (like account data)
    await cache.get_or_fetch("private", ready(freshness=private))
    await cache.get_or_fetch("public", ready())
    clock.advance(8_000)
    slow = Upstream(freshness=private)
    cold = Upstream()
    waiting = [asyncio.create_task(cache.get_or_fetch("private", slow)),
               asyncio.create_task(cache.get_or_fetch("cold", cold))]
    await _settle()
    async with asyncio.timeout(10):  # started after the others: its deadline passes after theirs
        public = await cache.get_or_fetch("public", Upstream())
    await _settle()
    assert public.status is CacheStatus.STALE
    assert not any(task.done() for task in waiting)  # past their soft deadline, still waiting
    slow.release.set()
    cold.release.set()
    assert [r.status for r in await asyncio.gather(*waiting)] == [CacheStatus.MISS] * 2


async def test_a_copy_that_ages_past_max_stale_during_the_wait_is_not_served(make_cache):
    clock = ManualClock()
    cache = await make_cache(clock, stale_after_ms=50)
    await cache.get_or_fetch("k", ready(b'{"v":1}'))
    await cache.get_or_fetch("marker", ready(freshness=Freshness(ttl_ms=5_000, grace_ms=2_000, max_stale_ms=60_000)))
    clock.advance(34_000)  # k within max-stale (5 s + 30 s) when the read starts
    up = Upstream(b'{"v":2}')
    reader = asyncio.create_task(cache.get_or_fetch("k", up))
    await _settle()
    clock.advance(2_000)  # and past it by the soft deadline
    async with asyncio.timeout(10):  # started after the reader: its deadline passes after the reader's
        assert (await cache.get_or_fetch("marker", Upstream())).status is CacheStatus.STALE
    await _settle()
    assert not reader.done()
    up.release.set()
    assert (await reader).body == b'{"v":2}'


async def test_errors_that_are_not_upstream_failures_are_never_hidden_by_stale(make_cache):
    clock = ManualClock()
    cache = await make_cache(clock)
    await cache.get_or_fetch("k", ready())
    clock.advance(10_000)
    broken = ready()
    broken.error = NotSupported("venue no longer lists it")
    with pytest.raises(NotSupported):
        await cache.get_or_fetch("k", broken)


async def test_invalidate_by_key_and_by_tag(make_cache):
    cache = await make_cache()
    up = ready()
    await cache.get_or_fetch("a", up, tags=("market:x:BTC",))
    await cache.get_or_fetch("b", up, tags=("market:x:BTC", "exchange:x"))
    await cache.get_or_fetch("c", up, tags=("market:x:ETH",))
    assert await cache.invalidate(keys=["c"]) == (["c"], True)
    assert await cache.invalidate(tags=["market:x:BTC"]) == (["a", "b"], True)
    statuses = [(await cache.get_or_fetch(k, up)).status for k in "abc"]
    assert statuses == [CacheStatus.MISS] * 3
    assert up.calls == 6


async def test_reading_a_closed_cache_is_a_clear_error():
    with pytest.raises(RuntimeError, match="not open"):
        await Cache(clock=ManualClock()).get_or_fetch("k", ready())


# -- L1 bounds -------------------------------------------------------------------------------
def test_l1_is_bounded_by_entries_and_bytes_least_recently_used_first():
    from exgate.cache import Entry

    store = MemoryStore(max_entries=2, max_bytes=10)
    now = 1_000
    entry = Entry.new(b"1234", FRESH, now)
    store.put("a", entry, now + 5_000, ("t",))
    store.put("b", entry, now + 5_000, ("t",))
    assert store.get("a", now) is not None  # a is now more recent than b
    store.put("c", entry, now + 5_000)  # over two entries: b goes
    assert store.get("b", now) is None and store.get("a", now) is not None and store.get("c", now) is not None
    store.put("d", Entry.new(b"123456789", FRESH, now), now + 5_000)  # over ten bytes: the rest goes
    assert len(store) == 1 and store.get("d", now) is not None
    assert store.evictions == 3
    assert store.drop_tag("t") == []  # evicted keys left the tag index too


def test_entries_round_trip_through_their_wire_form():
    from exgate.cache import Entry

    entry = Entry.new(b'{"p":"1.5"}', FRESH, 1_790_000_000_000)
    assert Entry.decode(entry.encode()) == entry
    with pytest.raises(ValueError, match="header"):
        Entry.decode(b"short")


# -- only a shared tier ------------------------------------------------------------------------
@pytest.fixture
async def two_instances(clean_redis: str) -> AsyncIterator[tuple[Cache, Cache]]:
    """Two caches as two gateway processes would hold them: own L1, one Redis."""
    clock = ManualClock()
    async with contextlib.AsyncExitStack() as stack:
        caches = []
        for name in ("a", "b"):
            l2 = RedisStore.from_url(clean_redis, CircuitBreaker("redis", clock), origin=name)
            caches.append(await stack.enter_async_context(Cache(clock=clock, l2=l2, l1_ttl_ms=60_000)))
        await _coordinating(*caches)
        yield caches[0], caches[1]


async def test_two_instances_make_one_upstream_fetch_for_a_cold_key(two_instances):
    a, b = two_instances
    up = Upstream()
    readers = [asyncio.create_task(c.get_or_fetch("k", up)) for c in (a, b) * 50]
    await _eventually(lambda: up.calls == 1 and (a._remote._waiters or b._remote._waiters), "one holds the lock")
    up.release.set()
    results = await asyncio.gather(*readers)
    assert up.calls == 1
    assert [r.status for r in results].count(CacheStatus.MISS) == 1
    assert a.stats.remote_fills + b.stats.remote_fills == 1  # the other instance waited, woken by the fill event


async def test_a_value_fetched_by_one_instance_is_an_l2_hit_on_the_other(two_instances):
    a, b = two_instances
    up = ready()
    await a.get_or_fetch("k", up)
    result = await b.get_or_fetch("k", up)
    assert (result.status, result.tier, up.calls) == (CacheStatus.HIT, Tier.L2, 1)


async def test_invalidation_on_one_instance_drops_the_l1_copy_of_the_other(two_instances):
    a, b = two_instances
    up = ready()
    for cache in (a, b):
        await cache.get_or_fetch("k", up, tags=("market:x:BTC",))
    assert (await b.get_or_fetch("k", up)).tier is Tier.L1
    await a.invalidate(tags=["market:x:BTC"])
    await _eventually(lambda: b.l1.get("k", b.clock()) is None, "b's L1 copy dropped")
    after = await b.get_or_fetch("k", up)
    assert after.status is CacheStatus.MISS and up.calls == 2


async def test_without_a_local_copy_a_read_after_another_instances_drop_never_sees_the_old_value(two_instances):
    """Private reads (``local_copy=False``) go to Redis, so a value another instance dropped is
    gone at once, before its event reaches this process (here: no event at all, the key deleted
    in Redis directly); a market-data read keeps serving its L1 copy until the event comes."""
    a, b = two_instances
    up = ready()
    await a.get_or_fetch("acct", up)
    await b.get_or_fetch("acct", up)
    assert (await b.get_or_fetch("acct", up)).tier is Tier.L1
    await b.l2.client.delete("acct")  # as another instance's invalidation, before its event arrives
    assert (await b.get_or_fetch("acct", up)).tier is Tier.L1  # market data: the L1 copy
    again = await b.get_or_fetch("acct", up, local_copy=False)
    assert again.status is CacheStatus.MISS and up.calls == 2
    assert (await b.lookup("acct", local_copy=False)).tier is Tier.L2


async def _read_while_another_holds_the_lock(url: str, lease_ms: int, wait_timeout_ms: int) -> tuple[int, object, int]:
    """Read a cold key whose fetch lock another instance holds (and never fills): the fetches
    made 0.2 s in, the result, and the fetches made in all."""
    client = redis_client(url)
    await client.set(lock_key("k"), "other-instance", px=lease_ms)
    await client.aclose()
    clock = ManualClock()
    l2 = RedisStore.from_url(url, CircuitBreaker("redis", clock))
    async with Cache(clock=clock, l2=l2, wait_timeout_ms=wait_timeout_ms) as cache:
        reader = asyncio.create_task(cache.get_or_fetch("k", ready()))
        await asyncio.sleep(0.2)
        early = cache.stats.fetches
        result = await reader
    return early, result, cache.stats.fetches


async def test_a_dead_lock_holder_is_replaced_when_its_lease_runs_out(clean_redis):
    early, result, fetches = await _read_while_another_holds_the_lock(clean_redis, lease_ms=1_500,
                                                                      wait_timeout_ms=10_000)
    assert early == 0  # the lock is respected while its lease runs
    assert result.status is CacheStatus.MISS and fetches == 1


async def test_a_waiter_that_times_out_fetches_itself_rather_than_failing(clean_redis):
    early, result, fetches = await _read_while_another_holds_the_lock(clean_redis, lease_ms=60_000,
                                                                      wait_timeout_ms=1_000)
    assert early == 0  # still waiting for the holder
    assert result.status is CacheStatus.MISS and fetches == 1


async def test_waiters_on_another_instances_slow_fetch_get_the_l2_copy_at_the_soft_deadline(clean_redis):
    clock = ManualClock()
    async with contextlib.AsyncExitStack() as stack:
        a, b = [await stack.enter_async_context(Cache(
            clock=clock, l2=RedisStore.from_url(clean_redis, CircuitBreaker("redis", clock), origin=name),
            l1_ttl_ms=60_000, stale_after_ms=50)) for name in ("a", "b")]
        await _coordinating(a, b)
        await a.get_or_fetch("k", ready(b'{"v":1}'))
        clock.advance(8_000)  # past ttl and grace, within max-stale
        slow = Upstream(b'{"v":2}')
        a_reader = asyncio.create_task(a.get_or_fetch("k", slow))
        await _eventually(lambda: slow.calls == 1, "a holds the lock and fetches")
        b_up = ready(b'{"v":3}')
        async with asyncio.timeout(10):  # a guard against a hang, not a timing assertion
            results = await asyncio.gather(*(b.get_or_fetch("k", b_up) for _ in range(5)))
            assert (await a_reader).status is CacheStatus.STALE
        assert not slow.release.is_set() and b_up.calls == 0 and b._inflight  # b still waits for a's fill
        assert [(r.status, r.tier, r.body) for r in results] == [(CacheStatus.STALE, Tier.L2, b'{"v":1}')] * 5
        slow.release.set()
        await _eventually(lambda: not b._inflight, "b's wait ended with a's fill")
        after = await b.get_or_fetch("k", b_up)
        assert (after.status, after.body, b_up.calls, b.stats.remote_fills) == (CacheStatus.HIT, b'{"v":2}', 0, 1)


async def test_a_bad_event_on_the_channel_never_stops_the_cache(two_instances, clean_redis):
    a, b = two_instances
    client = redis_client(clean_redis)
    await client.publish(a.l2.channel, b'{"op":"inv","keys":5}')
    await client.publish(a.l2.channel, b"not json")
    await client.aclose()
    await asyncio.sleep(0.1)
    up = ready()
    await a.get_or_fetch("k", up)
    assert (await b.get_or_fetch("k", up)).status is CacheStatus.HIT and up.calls == 1


@pytest.mark.parametrize("url", ["redis://127.0.0.1:{port}/0", "redis+cluster://127.0.0.1:{port}"])
async def test_with_redis_unreachable_reads_are_served_and_the_circuit_opens(url):
    clock = ManualClock()
    changes: list[CircuitState] = []
    breaker = CircuitBreaker("redis", clock, failure_threshold=3, cooldown_ms=1_000, on_change=changes.append)
    l2 = RedisStore.from_url(url.format(port=free_port()), breaker)
    async with Cache(clock=clock, l2=l2) as cache:
        up = ready()
        results = [await cache.get_or_fetch(f"k{i}", up) for i in range(10)]
        assert {r.status for r in results} == {CacheStatus.MISS}
        assert breaker.state is CircuitState.OPEN and changes == [CircuitState.OPEN]
        again = await cache.get_or_fetch("k0", up)  # Redis down: L1 serves its full TTL
        assert again.status is CacheStatus.HIT
    assert up.calls == 10


# -- circuit breaker ---------------------------------------------------------------------------
def test_circuit_opens_after_consecutive_failures_and_only_the_background_probe_tries_it_again():
    clock = ManualClock()
    changes: list[CircuitState] = []
    breaker = CircuitBreaker("redis", clock, failure_threshold=3, cooldown_ms=1_000, on_change=changes.append)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    breaker.success()  # consecutive only
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state is CircuitState.OPEN and not breaker.allow() and not breaker.begin_probe()
    clock.advance(1_000)
    assert not breaker.allow()  # a request never probes
    assert breaker.begin_probe() and not breaker.begin_probe()  # exactly one probe
    assert breaker.state is CircuitState.HALF_OPEN and not breaker.allow()  # requests skip it while half-open
    breaker.failure()
    assert breaker.state is CircuitState.OPEN and not breaker.begin_probe()
    clock.advance(1_000)
    assert breaker.begin_probe()
    breaker.success()
    assert breaker.state is CircuitState.CLOSED and breaker.allow() and breaker.allow()
    assert changes == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.OPEN, CircuitState.HALF_OPEN,
                       CircuitState.CLOSED]


def test_keys_are_versioned_exchange_scoped_and_parameter_ordered():
    assert market_key("bybit", DataType.ORDER_BOOK, "BTC/USDT:USDT", depth=20) == \
        "exgate:v1:{bybit}:orderbook:BTC/USDT:USDT:depth=20"
    assert market_key("x", DataType.CANDLES, "S", limit=5, interval="1h", start=None) == \
        "exgate:v1:{x}:klines:S:interval=1h:limit=5"


def test_account_keys_hash_the_account_id():
    from exgate.cache import account_key

    key = account_key("bybit", "user-42", DataType.POSITIONS)
    assert "user-42" not in key and key.startswith("exgate:v1:{bybit:acct:") and key.endswith(":positions")
    assert key == account_key("bybit", "user-42", DataType.POSITIONS)
