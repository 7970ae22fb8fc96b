"""Overload: 3 `exgate serve` processes sharing Redis, offered 3x a lowered sandbox budget of
mixed market reads for 60 s. The exchange must never answer 429/418; clients get data (fresh
or stale) or 503 with Retry-After, never a 500."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

import httpx
import pytest

from tests.conftest import free_port, sandbox_data_args, spawn_exgate, stop_all, wait_ready

BUDGET = (120, 10_000)  # weight per window (ms): 12 weight/s, 1/200 of Binance's real budget
SECONDS = 60.0


@pytest.fixture(scope="module")
def overloaded_cluster(redis_url: str):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    sandbox_port = free_port()
    limit = f"binanceusdm={BUDGET[0]}/{BUDGET[1]}"
    procs = [spawn_exgate(["sandbox", "--port", str(sandbox_port), *sandbox_data_args(), "--rate-limit", limit], {})]
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    try:
        wait_ready(sandbox, "sandbox", procs[0], path="/__sandbox/stats")
        env = {"EXGATE_REDIS_URL": redis_url, "EXGATE_EXCHANGES": "binanceusdm", "EXGATE_BUDGETS": limit,
               "EXGATE_UPSTREAMS": f"binanceusdm={sandbox}/binanceusdm"}
        ports = [free_port() for _ in range(3)]
        procs += [spawn_exgate(["serve", "--port", str(p), "--log-level", "warning"], env) for p in ports]
        for port, proc in zip(ports, procs[1:]):
            wait_ready(f"http://127.0.0.1:{port}", "gateway", proc)
        yield sandbox, [f"http://127.0.0.1:{p}" for p in ports]
    finally:
        stop_all(procs)


async def offer_load(urls: list[str], seconds: float, weight_per_s: float) -> list[httpx.Response]:
    """Open-loop mixed reads: uncacheable candle ranges (weight 1 each) at ``weight_per_s``
    spread over the instances, plus order books (weight 2, cached 1 s) and funding (weight 1,
    cached 10 s) ten times a second."""
    rng = random.Random(7)
    # distinct (start, limit) ranges in the last 40 minutes: uncacheable, weight 1 (limit < 100),
    # and cheap for the sandbox, which walks candles back from now
    now_min = time.time_ns() // 60_000_000
    pool = [(start * 60_000, limit) for limit in range(1, 100) for start in range(now_min - 40, now_min)]
    rng.shuffle(pool)
    ranges = itertools.cycle(pool)
    responses: list[httpx.Response] = []
    errors: list[Exception] = []
    gate = asyncio.Semaphore(200)
    # a connection per request: no request may race a server closing an idle keep-alive connection
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client, asyncio.TaskGroup() as tasks:
        async def one(path: str) -> None:
            async with gate:
                try:
                    responses.append(await client.get(rng.choice(urls) + path))
                except httpx.TransportError as exc:
                    errors.append(exc)

        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        tick = 0
        while loop.time() < end:
            tick += 1
            for _ in range(int(weight_per_s / 10)):
                start, limit = next(ranges)
                tasks.create_task(one(f"/v1/binanceusdm/markets/BTC/klines?interval=1m&limit={limit}&start={start}"))
            tasks.create_task(one("/v1/binanceusdm/markets/BTC/orderbook" if tick % 2 else
                                  "/v1/binanceusdm/markets/ETH/funding"))
            await asyncio.sleep(0.1)
    if errors:
        raise AssertionError(f"{len(errors)} requests got no HTTP answer, e.g. {errors[0]!r}")
    return responses


async def test_three_x_the_budget_for_60_s_never_reaches_the_exchange_as_429(overloaded_cluster):
    sandbox, urls = overloaded_cluster
    started = time.monotonic()
    responses = await offer_load(urls, SECONDS, weight_per_s=3 * BUDGET[0] * 1000 / BUDGET[1])
    elapsed = time.monotonic() - started
    venue = httpx.get(sandbox + "/__sandbox/stats").json()["venues"]["binanceusdm"]
    assert set(venue["by_status"]) == {"200"}, f"the exchange answered {venue['by_status']}"
    codes = {r.status_code for r in responses}
    assert codes <= {200, 503}, f"client statuses {codes}"
    refused = [r for r in responses if r.status_code == 503]
    assert refused and all(int(r.headers["retry-after"]) >= 1 for r in refused)
    assert all(r.headers["content-type"].startswith("application/problem+json") for r in refused)
    served = [r for r in responses if r.status_code == 200]
    assert len(served) > len(responses) / 4
    # the exchange got no more than its budget (plus the three start-up market loads)
    assert venue["limit"]["admitted_weight"] <= BUDGET[0] * (elapsed * 1000 / BUDGET[1] + 1) + 3
