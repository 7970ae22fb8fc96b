"""A Redis that hangs (stopped with SIGSTOP, not killed): once the circuit is open no request
waits for it, the probe runs in the background, and the breaker logs one warning per outage
edge at the default log level."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from exgate.cache import Cache, CacheStatus, CircuitBreaker, CircuitState, Fetched, Freshness, RedisStore, Tier
from tests.conftest import ManualClock
from tests.test_shared_cache import RedisServer


async def _fetch() -> Fetched:
    return Fetched(b'{"v":1}', Freshness(ttl_ms=60_000, grace_ms=0, max_stale_ms=0))


class HangingRedis(RedisServer):
    """A private redis-server that a test can hang (SIGSTOP: it stops answering but keeps its
    connections) and wake again (SIGCONT)."""

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


@pytest.fixture
def server() -> Iterator[HangingRedis]:
    """A running :class:`HangingRedis`, woken and stopped after the test whatever happened."""
    redis_server = HangingRedis()
    redis_server.start()
    try:
        yield redis_server
    finally:
        redis_server.resume()
        redis_server.stop()


class _Calls:
    """Counts the calls of ``obj.name`` (which it wraps) in ``count``."""

    def __init__(self, obj: object, name: str):
        self.count = 0
        real = getattr(obj, name)

        def counting(*args, **kwargs):
            self.count += 1
            return real(*args, **kwargs)

        setattr(obj, name, counting)


async def _eventually(check, what: str) -> None:
    for _ in range(1_000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_a_hanging_redis_is_probed_in_the_background_and_no_request_waits_for_it(server: HangingRedis):
    clock = ManualClock()
    changes: list[CircuitState] = []
    breaker = CircuitBreaker("redis", clock, failure_threshold=3, cooldown_ms=1_000, on_change=changes.append)
    l2 = RedisStore.from_url(server.url, breaker, timeout_ms=1_000)
    async with Cache(clock=clock, l2=l2, l1_ttl_ms=0) as cache:  # l1_ttl_ms=0: every read asks Redis
        await cache.get_or_fetch("warm", _fetch)
        reads = _Calls(l2.client, "get")
        server.pause()
        # noticing the hang costs the first reads their Redis timeout; then the circuit opens
        await asyncio.gather(*(cache.get_or_fetch(f"cold{i}", _fetch) for i in range(3)))
        assert breaker.state is CircuitState.OPEN
        seen = reads.count
        clock.advance(1_000)  # the cooldown is over: a probe is due, and no request may be it
        served = await asyncio.gather(*(cache.get_or_fetch("warm", _fetch) for _ in range(50)))
        assert reads.count == seen  # none of them was the probe
        await _eventually(lambda: CircuitState.HALF_OPEN in changes, "the background probe started")
        served += await asyncio.gather(*(cache.get_or_fetch("warm", _fetch) for _ in range(50)))
        await _eventually(lambda: changes[-1] is CircuitState.OPEN and len(changes) >= 3, "the probe into the hang failed")
        assert reads.count == seen  # no request's read went to Redis while open or half-open
        assert {(r.status, r.tier) for r in served} == {(CacheStatus.HIT, Tier.L1)}
        server.resume()
        clock.advance(1_000)
        await _eventually(lambda: breaker.state is CircuitState.CLOSED, "the probe closed the circuit")
        assert changes[:3] == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.OPEN]
        assert changes[-2:] == [CircuitState.HALF_OPEN, CircuitState.CLOSED]
        back = await cache.get_or_fetch("warm", _fetch)
        assert reads.count == seen + 1 and (back.status, back.tier) == (CacheStatus.HIT, Tier.L2)


def test_the_breaker_logs_one_warning_per_outage_edge_and_hides_its_debug_lines_by_default():
    script = """
from exgate.cache.circuit import CircuitBreaker
now = [0]
breaker = CircuitBreaker("redis", lambda: now[0], failure_threshold=1, cooldown_ms=10)
breaker.failure(ConnectionError("refused"))
for _ in range(3):  # three probes into the same outage
    now[0] += 10
    assert breaker.begin_probe()
    breaker.failure(ConnectionError("refused"))
now[0] += 10
assert breaker.begin_probe()
breaker.success()
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    lines = [line for line in (out.stdout + out.stderr).splitlines() if "circuit_" in line]
    assert len(lines) == 2, lines
    assert "warning" in lines[0] and "circuit_open" in lines[0] and "refused" in lines[0]
    assert "warning" in lines[1] and "circuit_closed" in lines[1]


async def test_budgets_skip_a_hanging_redis_while_the_shared_circuit_is_open_and_use_it_again_after(server: HangingRedis):
    from exgate.budget import RedisBudgetStore
    from exgate.config import Settings
    from exgate.http.app import create_app
    from exgate.venues.registry import build_adapters

    clock = ManualClock()
    settings = Settings(redis_url=server.url, exchanges="binanceusdm", redis_timeout_ms=200,
                        redis_failures_to_open=3, redis_cooldown_ms=1_000)
    adapters = build_adapters(["binanceusdm"], {"binanceusdm": "http://127.0.0.1:9/binanceusdm"})
    app = create_app(adapters, clock=clock, settings=settings, preload=False)
    async with app.router.lifespan_context(app):
        gate = adapters["binanceusdm"].budget
        breaker = app.state.market_data.cache.l2.breaker  # what /readyz reads
        store, limit = gate.store, gate.metering.limits[0]
        await gate.acquire(1)
        calls = _Calls(store.client, "execute_command")
        server.pause()
        for _ in range(3):  # noticing the hang costs these their Redis timeout; they are still granted
            await gate.acquire(1)
        assert breaker.state is CircuitState.OPEN  # the budget's failures open the one breaker of this Redis
        seen = calls.count
        for _ in range(20):
            await gate.acquire(1)
        snapshot = await gate.snapshot()  # what /v1/exchanges shows
        assert calls.count == seen  # nothing went to Redis: counted in process instead
        assert snapshot["limits"][0]["used"] == await store.fallback.used("binanceusdm", limit, clock()) >= 20
        failures = breaker.failures
        clock.advance(1_000)  # the cache's background probe (not a budget call) tries the hung Redis
        await _eventually(lambda: breaker.failures > failures and breaker.state is CircuitState.OPEN,
                          "the probe into the hang failed")
        await gate.acquire(1)
        assert calls.count == seen
        server.resume()
        clock.advance(1_000)
        await _eventually(lambda: breaker.state is CircuitState.CLOSED, "the probe closed the circuit")
        await gate.acquire(1)
        assert calls.count > seen  # back on the shared count
        other = RedisBudgetStore(server.url)  # another instance reads what this one charged
        try:
            shared = await other.used("binanceusdm", limit, clock())
        finally:
            await other.close()
        assert (await gate.snapshot())["limits"][0]["used"] == shared
        assert shared != await store.fallback.used("binanceusdm", limit, clock())


async def test_a_budget_store_on_its_own_probes_its_own_breaker_while_entered(server: HangingRedis):
    from exgate.budget import Limit, RedisBudgetStore, Scope

    clock = ManualClock()
    limit = Limit(Scope.IP, 100, 60_000, "requests_1m")
    async with RedisBudgetStore(server.url, timeout_ms=200, clock=clock) as store:
        await store.acquire("x", [(limit, 100)], 1, clock(), 0)
        server.pause()
        for _ in range(3):
            assert (await store.acquire("x", [(limit, 100)], 1, clock(), 0)).granted  # in-process count
        assert store.breaker.state is CircuitState.OPEN
        store.client.execute_command = None  # any call into Redis now would raise TypeError
        assert (await store.acquire("x", [(limit, 100)], 1, clock(), 0)).granted
        assert await store.used("x", limit, clock()) == 4 and await store.banned_until("x", clock()) == 0
        del store.client.execute_command
        server.resume()
        clock.advance(1_000)
        await _eventually(lambda: store.breaker.state is CircuitState.CLOSED, "its own probe closed the circuit")
        await store.acquire("x", [(limit, 100)], 10, clock(), 0)
        # the shared count again: 1 + 10, plus those of the 3 timed-out scripts Redis ran on waking
        assert 11 <= await store.used("x", limit, clock()) <= 14
        assert await store.fallback.used("x", limit, clock()) == 4
