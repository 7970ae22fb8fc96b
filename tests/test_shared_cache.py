"""The shared cache tier end to end: real `exgate serve` processes on one Redis and one
`exgate sandbox`; Redis stopped and started under load; an exchange failing behind the cache."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from exgate.config import Settings
from tests.conftest import (REDIS_BACKENDS, ManualClock, ServerThread, clean_redis_url, free_port, path_count,
                            sandbox_data, sandbox_data_args, spawn_exgate, stop_all, wait_ready)

BOOK = "/v1/binanceusdm/markets/BTC/orderbook"
BOOK_TAG = "market:binanceusdm:BTC/USDT:USDT"
ADMIN = {"Authorization": "Bearer test-operator-token"}


@pytest.fixture(scope="module", params=REDIS_BACKENDS)
def cluster(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[str]]]:
    """One `exgate sandbox` and three `exgate serve` (binanceusdm) sharing one Redis database,
    then one Redis Cluster (``EXGATE_REDIS_URL=redis+cluster://...``).

    Order-book TTL and L1 TTL are raised to 60 s so that "one upstream request" and "visible
    only through invalidation" do not depend on how fast this machine runs the burst."""
    redis_url = clean_redis_url(request, request.param)
    sandbox_port = free_port()
    procs = [spawn_exgate(["sandbox", "--port", str(sandbox_port), *sandbox_data_args()], {})]
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    try:
        wait_ready(sandbox_url, "sandbox", procs[0], path="/__sandbox/stats")
        env = {"EXGATE_REDIS_URL": redis_url, "EXGATE_EXCHANGES": "binanceusdm",
               "EXGATE_UPSTREAMS": f"binanceusdm={sandbox_url}/binanceusdm",
               "EXGATE_CACHE_TTL_MS": "orderbook=60000", "EXGATE_L1_TTL_MS": "60000",
               "EXGATE_ADMIN_TOKEN": ADMIN["Authorization"].removeprefix("Bearer ")}
        ports = [free_port() for _ in range(3)]
        gateways = [spawn_exgate(["serve", "--port", str(p), "--log-level", "warning"], env) for p in ports]
        procs.extend(gateways)
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        for url, proc in zip(urls, gateways):
            wait_ready(url, "gateway", proc)
        yield sandbox_url, urls
    finally:
        stop_all(procs)


def _book_requests(sandbox_url: str) -> int:
    return path_count(httpx.get(f"{sandbox_url}/__sandbox/stats").json(), "binanceusdm", "/fapi/v1/depth")


async def test_300_concurrent_requests_over_3_instances_make_1_upstream_request(cluster):
    sandbox_url, urls = cluster
    before = _book_requests(sandbox_url)
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        responses = await asyncio.gather(*(client.get(urls[i % 3] + BOOK) for i in range(300)))
    assert [r.status_code for r in responses] == [200] * 300
    assert _book_requests(sandbox_url) - before == 1
    statuses = [r.headers["x-cache"] for r in responses]
    assert statuses.count("miss") == 1 and set(statuses) <= {"miss", "coalesced", "hit"}
    assert len({r.content for r in responses}) == 1


async def test_invalidation_on_one_instance_is_visible_on_every_instance(cluster):
    sandbox_url, urls = cluster
    async with httpx.AsyncClient(timeout=30) as client:
        for url in urls:  # every instance holds the book in its own L1
            await client.get(url + BOOK)
            again = await client.get(url + BOOK)
            assert (again.headers["x-cache"], again.headers["x-cache-tier"]) == ("hit", "l1")
        before = _book_requests(sandbox_url)
        dropped = await client.delete(urls[0] + "/v1/cache", params={"tag": BOOK_TAG}, headers=ADMIN)
        assert dropped.status_code == 200
        assert "exgate:v1:{binanceusdm}:orderbook:BTC/USDT:USDT:depth=20" in dropped.json()["invalidated"]
        for url in urls[1:]:
            for _ in range(100):  # the drop reaches each instance's L1 through Redis pub/sub
                seen = await client.get(url + BOOK)
                if not (seen.headers["x-cache"] == "hit" and seen.headers["x-cache-tier"] == "l1"):
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail(f"{url} still serves its L1 copy after the invalidation")
    assert _book_requests(sandbox_url) - before == 1  # one refetch, shared by all


async def test_cache_invalidation_route_validates_its_input(cluster):
    _, urls = cluster
    async with httpx.AsyncClient(timeout=10) as client:
        empty = await client.delete(urls[0] + "/v1/cache", headers=ADMIN)
        wrong = await client.delete(urls[0] + "/v1/cache", params={"tag": "everything"}, headers=ADMIN)
    assert empty.status_code == 422 and empty.json()["field"] == "key"
    assert wrong.status_code == 422 and wrong.json()["field"] == "tag" and "exchange:" in wrong.json()["allowed"]


# -- Redis stopped and started under load -------------------------------------------------------
class RedisServer:
    """A private redis-server on a free port, stoppable and restartable by the test."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server not installed; it is needed to stop and restart a real Redis", pytrace=False)
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        for _ in range(200):
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


def _l2_hits(metrics_text: str) -> float:
    match = re.search(r'exgate_cache_lookups_total\{result="hit",tier="l2"\} ([0-9.e+]+)', metrics_text)
    assert match, "exgate_cache_lookups_total{tier=l2,result=hit} missing from /metrics"
    return float(match.group(1))


async def test_redis_stopped_under_load_fails_no_request_and_l2_resumes_when_it_is_back(sandbox):
    from exgate.http.app import create_app
    from exgate.venues.registry import build_adapters

    redis_server = RedisServer()
    redis_server.start()
    settings = Settings(redis_url=redis_server.url, l1_ttl_ms=0, redis_cooldown_ms=300, redis_timeout_ms=250)
    venues = ["binanceusdm", "bybit"]
    app = create_app(build_adapters(venues, {v: f"{sandbox.url}/{v}" for v in venues}), settings=settings)
    paths = ["/v1/binanceusdm/markets/BTC/orderbook", "/v1/bybit/markets/BTC/orderbook", "/v1/bybit/prices",
             "/v1/binanceusdm/markets/BTC/funding", "/v1/bybit/markets", "/v1/binanceusdm/prices?symbols=BTC,ETH"]
    codes: list[int] = []
    stop = asyncio.Event()
    try:
        with ServerThread(app) as gw:
            async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
                async def reader(offset: int) -> None:
                    i = offset
                    while not stop.is_set():
                        try:
                            codes.append((await client.get(paths[i % len(paths)])).status_code)
                        except httpx.HTTPError:
                            codes.append(-1)
                        i += 1

                async def l2_hits() -> float:
                    return _l2_hits((await client.get("/metrics")).text)

                readers = [asyncio.create_task(reader(i)) for i in range(8)]
                await asyncio.sleep(1.0)  # load with Redis up (a load phase, not a timing assertion)
                assert await l2_hits() > 0
                redis_server.stop()
                served_while_down = len(codes)
                await asyncio.sleep(2.0)  # load with Redis gone
                served_while_down = len(codes) - served_while_down
                redis_server.start()
                restarted = time.monotonic()
                base = await l2_hits()
                while await l2_hits() <= base:
                    assert time.monotonic() - restarted < 5, "no L2 hit within 5 s of Redis coming back"
                    await asyncio.sleep(0.1)
                stop.set()
                await asyncio.gather(*readers)
    finally:
        redis_server.stop()
    assert served_while_down > 0
    assert codes and set(codes) == {200}, f"failed requests: {[c for c in codes if c != 200][:10]}"


# -- the exchange failing behind the cache ------------------------------------------------------
@pytest.mark.parametrize("backend", ["memory", *REDIS_BACKENDS])
async def test_upstream_failing_serves_stale_within_max_stale_then_503(backend, request):
    from exgate.http.app import create_app
    from exgate.sandbox.app import create_sandbox_app
    from exgate.venues.registry import build_adapters

    redis_url = clean_redis_url(request, backend) if backend != "memory" else None
    clock = ManualClock(time.time_ns() // 1_000_000)
    exchange = ServerThread(create_sandbox_app(sandbox_data())).__enter__()
    app = create_app(build_adapters(["bybit"], {"bybit": f"{exchange.url}/bybit"}, timeout_ms=2_000), clock=clock,
                     settings=Settings(redis_url=redis_url, exchanges="bybit"))
    path = "/v1/bybit/markets/BTC/orderbook"
    try:
        with ServerThread(app) as gw:
            async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
                first = await client.get(path)
                exchange.__exit__()  # the exchange goes away
                clock.advance(3_000)  # order book: 1 s fresh + 1 s grace, 30 s max-stale
                stale = await client.get(path)
                clock.advance(29_000)  # 32 s old: past 1 s + 30 s
                gone = await client.get(path)
    finally:
        exchange.__exit__()
    assert first.status_code == 200 and first.headers["x-cache"] == "miss"
    assert stale.status_code == 200 and stale.headers["x-cache"] == "stale" and stale.headers["age"] == "3"
    assert stale.content == first.content
    assert gone.status_code == 503 and int(gone.headers["retry-after"]) >= 1
    assert gone.headers["content-type"].startswith("application/problem+json")


async def test_metrics_expose_cache_upstream_latency_and_circuit_state(client):
    await client.get("/v1/bybit/markets")
    await client.get("/v1/bybit/markets")
    text = (await client.get("/metrics")).text
    for name in ('exgate_cache_lookups_total{result="hit",tier="l1"}', "exgate_upstream_requests_total{",
                 "exgate_request_duration_seconds_bucket{", "exgate_upstream_duration_seconds_bucket{",
                 'exgate_redis_circuit_state{state="closed"} 1.0'):
        assert name in text, name
    assert 'exgate_upstream_requests_total{exchange="bybit",operation="load_markets",status="ok"}' in text


@pytest.fixture
async def client(gateway: ServerThread):
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as c:
        yield c
