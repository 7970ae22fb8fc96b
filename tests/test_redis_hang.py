"""A Redis that hangs (stopped with SIGSTOP, not killed): once the circuit is open no request
waits for it, the probe runs in the background, and the breaker logs one warning per outage
edge at the default log level."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from exgate.cache import Cache, CacheStatus, CircuitBreaker, CircuitState, Fetched, Freshness, RedisStore, Tier
from tests.conftest import ManualClock
from tests.test_shared_cache import RedisServer


async def _fetch() -> Fetched:
    return Fetched(b'{"v":1}', Freshness(ttl_ms=60_000, grace_ms=0, max_stale_ms=0))


async def _eventually(check, what: str) -> None:
    for _ in range(1_000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_a_hanging_redis_is_probed_in_the_background_and_no_request_waits_for_it():
    server = RedisServer()
    server.start()
    assert server.proc is not None
    try:
        clock = ManualClock()
        changes: list[CircuitState] = []
        breaker = CircuitBreaker("redis", clock, failure_threshold=3, cooldown_ms=1_000, on_change=changes.append)
        l2 = RedisStore.from_url(server.url, breaker, timeout_ms=1_000)
        async with Cache(clock=clock, l2=l2, l1_ttl_ms=0) as cache:  # l1_ttl_ms=0: every read asks Redis
            await cache.get_or_fetch("warm", _fetch)
            reads = 0
            real_get = l2.client.get

            def counting_get(*args, **kwargs):
                nonlocal reads
                reads += 1
                return real_get(*args, **kwargs)

            l2.client.get = counting_get
            os.kill(server.proc.pid, signal.SIGSTOP)
            # noticing the hang costs the first reads their Redis timeout; then the circuit opens
            await asyncio.gather(*(cache.get_or_fetch(f"cold{i}", _fetch) for i in range(3)))
            assert breaker.state is CircuitState.OPEN
            seen = reads
            clock.advance(1_000)  # the cooldown is over: a probe is due, and no request may be it
            served = await asyncio.gather(*(cache.get_or_fetch("warm", _fetch) for _ in range(50)))
            assert reads == seen  # none of them was the probe
            await _eventually(lambda: CircuitState.HALF_OPEN in changes, "the background probe started")
            served += await asyncio.gather(*(cache.get_or_fetch("warm", _fetch) for _ in range(50)))
            await _eventually(lambda: changes[-1] is CircuitState.OPEN and len(changes) >= 3, "the probe into the hang failed")
            assert reads == seen  # no request's read went to Redis while open or half-open
            assert {(r.status, r.tier) for r in served} == {(CacheStatus.HIT, Tier.L1)}
            os.kill(server.proc.pid, signal.SIGCONT)
            clock.advance(1_000)
            await _eventually(lambda: breaker.state is CircuitState.CLOSED, "the probe closed the circuit")
            assert changes[:3] == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.OPEN]
            assert changes[-2:] == [CircuitState.HALF_OPEN, CircuitState.CLOSED]
            back = await cache.get_or_fetch("warm", _fetch)
            assert reads == seen + 1 and (back.status, back.tier) == (CacheStatus.HIT, Tier.L2)
    finally:
        if server.proc is not None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()


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
