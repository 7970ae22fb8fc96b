"""Redis Cluster specifics: the URL forms ``EXGATE_REDIS_URL`` takes, hash-tag slots, and events
heard whichever node publishes them. The cache, shared-cache and budget suites themselves run
on the local cluster through the ``clean_redis`` / backend parametrization (conftest)."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import redis.asyncio as aioredis

from exgate.budget import RedisBudgetStore
from exgate.cache import Cache, CacheStatus, CircuitBreaker, DataType, Freshness, RedisStore, Tier, market_key
from exgate.cache.client import redis_client
from exgate.cache.keys import lock_key
from exgate.errors import ConfigError
from tests.conftest import ManualClock, free_port

FRESH = Freshness(ttl_ms=5_000, grace_ms=2_000, max_stale_ms=30_000)


def test_every_key_group_one_command_touches_shares_one_cluster_slot():
    """What one script or one multi-key command touches together must hash to one slot, or a
    Redis Cluster refuses it (CROSSSLOT): a venue's market data, tag sets, locks and budget
    keys; an account's private data and its tag set."""
    from redis.crc import key_slot

    from exgate.cache.keys import account_key, account_tag, ban_key, budget_key, exchange_tag, market_tag, tag_key

    def slots(*names: str) -> set[int]:
        return {key_slot(name.encode()) for name in names}

    book = market_key("bybit", DataType.ORDER_BOOK, "BTC/USDT:USDT", depth=20)
    venue = [book, market_key("bybit", DataType.MARKETS), lock_key(book), tag_key(exchange_tag("bybit")),
             tag_key(market_tag("bybit", "BTC/USDT:USDT")), ban_key("bybit"), budget_key("bybit", "ip", 7),
             budget_key("bybit", "ip", 8)]
    positions = account_key("bybit", "user-42", DataType.POSITIONS)
    account = [positions, account_key("bybit", "user-42", DataType.OPEN_ORDERS), lock_key(positions),
               tag_key(account_tag("bybit", "user-42"))]
    assert len(slots(*venue)) == 1 and len(slots(*account)) == 1
    assert slots(*venue) != slots(market_key("binanceusdm", DataType.MARKETS))  # venues spread over the cluster
    assert slots(*account) != slots(account_key("bybit", "user-43", DataType.POSITIONS))  # and accounts too


# Every form of ``EXGATE_REDIS_URL``, accepted (``None``) or refused (a part of the reason), run
# through the settings check and the client factory alike: they once disagreed (the settings
# refused ``rediss+cluster://`` and let through a cluster database or an unknown ``?option``,
# which then failed inside the app's start-up or at the first Redis call).
REDIS_URLS: list[tuple[str, str | None]] = [
    ("redis://127.0.0.1:6379/10", None),
    ("rediss://:hunter2@127.0.0.1:6380/1", None),
    ("unix:///run/redis.sock?db=3", None),
    ("redis+cluster://127.0.0.1:7000", None),
    ("redis+cluster://127.0.0.1:7000,127.0.0.1:7001", None),
    ("rediss+cluster://:hunter2@127.0.0.1:7000", None),
    ("redis://127.0.0.1:6379/0?client_name=exgate&socket_connect_timeout=0.2", None),
    ("memcached://127.0.0.1:11211", "unknown scheme (memcached://)"),
    ("http://127.0.0.1:6379/0", "unknown scheme (http://)"),
    ("127.0.0.1:6379", "unknown scheme (none)"),
    ("notaurl", "unknown scheme (none)"),
    ("redis://", "needs a host"),
    ("unix://", "needs the socket's path"),
    ("redis://:hunter2@h:port/0", "port must be a number"),
    ("redis://127.0.0.1:6379/ten", "database must be a number"),
    ("redis+cluster://127.0.0.1:7000/3", "only database 0"),
    ("redis+cluster://127.0.0.1:7000?db=3", "only database 0"),
    ("redis+cluster://127.0.0.1", "'127.0.0.1' is not host:port"),
    ("redis+cluster://", "at least one host:port"),
    ("redis://127.0.0.1:6379/0?socket_timeout=soon", "Invalid value for 'socket_timeout'"),
    ("redis://127.0.0.1:6379/10?foo=bar", "unknown option 'foo'"),
    ("redis+cluster://127.0.0.1:7000?foo=bar", "unknown option 'foo'"),
]


@pytest.mark.parametrize("url,refusal", REDIS_URLS)
def test_the_settings_and_the_client_agree_on_every_redis_url(url, refusal, monkeypatch):
    from exgate.config import load_settings

    monkeypatch.delenv("EXGATE_REDIS_URL", raising=False)
    if refusal is None:
        assert load_settings(redis_url=url).redis_url == url
        assert redis_client(url) is not None and RedisBudgetStore(url) is not None
        return
    with pytest.raises(ConfigError) as error:
        redis_client(url)
    assert error.value.extra["field"] == "EXGATE_REDIS_URL" and refusal in error.value.detail
    assert error.value.extra["allowed"]  # what the setting takes instead
    with pytest.raises(ConfigError):
        RedisBudgetStore(url)  # the budget store reads the same URL the same way
    with pytest.raises(ConfigError) as refused:
        load_settings(redis_url=url)  # and so does the settings check, in the same words
    line = refused.value.detail
    assert line.startswith(error.value.detail) and "allowed: " in line and "\n" not in line, line
    assert "hunter2" not in line


def test_checking_a_redis_url_connects_to_nothing(monkeypatch):
    """The settings check builds the client (and one connection object) but never connects."""
    import socket

    from exgate.config import load_settings

    monkeypatch.delenv("EXGATE_REDIS_URL", raising=False)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        for url in (f"redis://127.0.0.1:{port}/0", f"redis+cluster://127.0.0.1:{port}"):
            load_settings(redis_url=url)
            redis_client(url)
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody knocked


async def test_an_unforeseen_client_error_keeps_the_circuit_open_and_never_stops_the_cache(redis_url):
    """A client that fails with something other than a Redis error (here redis-py's own TypeError
    for an option it does not take, built around exgate's URL check): the event feed and the
    probe log it and count a Redis failure; the cache serves from L1 and upstream instead of its
    task group (and with it the app's start-up) being cancelled."""
    from exgate.cache import CircuitState, Fetched

    async def fetch() -> Fetched:
        return Fetched(b'{"v":1}', FRESH)

    pool = aioredis.BlockingConnectionPool.from_url(f"{redis_url}?foo=bar")
    clock = ManualClock()
    changes: list[CircuitState] = []
    breaker = CircuitBreaker("redis", clock, failure_threshold=1, cooldown_ms=1_000, on_change=changes.append)
    l2 = RedisStore(aioredis.Redis(connection_pool=pool), breaker, timeout_ms=500)
    async with Cache(clock=clock, l2=l2, l1_ttl_ms=60_000) as cache:
        await _eventually(lambda: changes == [CircuitState.OPEN], "the feed's error opened the circuit")
        clock.advance(1_000)  # the cooldown is over: the background probe meets the same error
        await _eventually(lambda: changes[1:] == [CircuitState.HALF_OPEN, CircuitState.OPEN],
                          "the probe's error kept the circuit open")
        first = await cache.get_or_fetch(market_key("x", DataType.PRICES, "S"), fetch)
        again = await cache.get_or_fetch(market_key("x", DataType.PRICES, "S"), fetch)
    assert (first.status, again.tier) == (CacheStatus.MISS, Tier.L1)


async def test_a_cluster_url_finds_the_cluster_from_any_live_seed(redis_cluster):
    live = redis_cluster.removeprefix("redis+cluster://").split(",")[1]
    client = redis_client(f"redis+cluster://127.0.0.1:{free_port()},{live}")  # the first seed is down
    try:
        await client.set("exgate:v1:{x}:probe", b"1")
        assert await client.get("exgate:v1:{x}:probe") == b"1"
        assert len(client.get_primaries()) == 3
    finally:
        await client.aclose()


async def test_an_event_published_on_any_node_reaches_every_instance(redis_cluster):
    """Classic pub/sub is broadcast over the cluster bus: an instance whose slot map is stale,
    or any tool, may publish on any node and every subscribed instance still drops its copy."""
    from tests.conftest import flush_redis

    flush_redis(redis_cluster)
    clock = ManualClock()
    l2 = RedisStore.from_url(redis_cluster, CircuitBreaker("redis", clock), origin="a")
    async with Cache(clock=clock, l2=l2, l1_ttl_ms=60_000) as cache:
        seeds = redis_cluster.removeprefix("redis+cluster://").split(",")
        keys = [market_key("x", DataType.PRICES, f"S{i}") for i in range(len(seeds))]

        async def fetch() -> object:
            from exgate.cache import Fetched

            return Fetched(b'{"v":1}', FRESH)

        for key in keys:
            await cache.get_or_fetch(key, fetch)
            assert (await cache.get_or_fetch(key, fetch)).tier is Tier.L1
        for seed, key in zip(seeds, keys):  # one invalidation published on each node, whoever owns the channel
            host, port = seed.rsplit(":", 1)
            node = aioredis.Redis(host=host, port=int(port))
            await node.publish(l2.channel, orjson.dumps({"op": "inv", "keys": [key], "tags": [], "origin": "tool"}))
            await node.aclose()
        for _ in range(500):
            if all(cache.l1.get(key, clock()) is None for key in keys):
                break
            await asyncio.sleep(0.01)
        assert [cache.l1.get(key, clock()) for key in keys] == [None] * len(keys)
        again = await cache.get_or_fetch(keys[0], fetch)
    assert (again.status, again.tier) == (CacheStatus.HIT, Tier.L2)


async def _eventually(check, what: str, seconds: float = 15.0) -> None:
    """Wait (bounded) for something carried by Redis to happen; not a timing assertion."""
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


async def test_the_event_feed_moves_to_a_live_node_when_its_node_dies(tmp_path):
    """The node the feed subscribed on goes away (crash, or a failover this instance's slot map
    has not seen): the feed resubscribes on another node instead of retrying the dead one."""
    from exgate.cache import Fetched
    from tests.conftest import local_redis_cluster

    async def fetch() -> Fetched:
        return Fetched(b'{"v":1}', FRESH)

    with local_redis_cluster(tmp_path, node_timeout_ms=60_000) as (url, procs):  # no failover during the test
        clock = ManualClock()
        l2 = RedisStore.from_url(url, CircuitBreaker("redis", clock, failure_threshold=1_000), origin="a")
        async with Cache(clock=clock, l2=l2, l1_ttl_ms=60_000) as cache:
            seeds = url.removeprefix("redis+cluster://").split(",")
            first = l2.client.get_node_from_key(l2.channel)  # where the feed subscribed
            dead = seeds.index(f"{first.host}:{first.port}")
            procs[dead].kill()
            procs[dead].wait()
            await _eventually(lambda: not l2.subscribed.is_set(), "the feed noticed its node died")
            await _eventually(l2.subscribed.is_set, "the feed subscribed again on a live node")
            key = next(k for k in (market_key("x", DataType.PRICES, f"S{i}") for i in range(100))
                       if l2.client.get_node_from_key(k).name != first.name)  # a key a live node holds
            await cache.get_or_fetch(key, fetch)
            assert (await cache.get_or_fetch(key, fetch)).tier is Tier.L1
            host, port = seeds[(dead + 1) % len(seeds)].rsplit(":", 1)
            node = aioredis.Redis(host=host, port=int(port))
            await node.publish(l2.channel, orjson.dumps({"op": "inv", "keys": [key], "tags": [], "origin": "tool"}))
            await node.aclose()
            await _eventually(lambda: cache.l1.get(key, clock()) is None, "the live feed dropped the L1 copy")
