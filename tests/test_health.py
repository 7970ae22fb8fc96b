"""Honest health: liveness (/healthz) apart from readiness (/readyz), per-venue status from recent
upstream outcomes, DELETE /v1/cache by any symbol form behind an operator token, and metrics that
count only calls that reached the exchange."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from exgate.budget.model import name_for_window, window_label
from exgate.cache import DataType, market_key
from exgate.config import Settings
from exgate.errors import UpstreamUnavailable
from exgate.models import VenueStatus
from exgate.venues.calls import UpstreamCall
from exgate.venues.health import VenueHealth
from tests.conftest import ManualClock, ServerThread, clean_redis_url, free_port, sandbox_data

TOKEN = "operator-secret"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
BOOK = "/v1/bybit/markets/BTC/orderbook"
BOOK_KEY = market_key("bybit", DataType.ORDER_BOOK, "BTC/USDT:USDT", depth=20)


@contextmanager
def gateway_on(upstreams: dict[str, str], *, clock=None, preload: bool = True, **settings) -> Iterator[str]:
    """A gateway (in a thread) over ``upstreams``, with 2 s upstream timeouts; yields its URL."""
    from exgate.cache import wall_clock_ms
    from exgate.http.app import create_app
    from exgate.venues.registry import build_adapters

    settings.setdefault("redis_url", None)
    adapters = build_adapters(list(upstreams), upstreams, timeout_ms=2_000)
    app = create_app(adapters, clock=clock or wall_clock_ms, preload=preload,
                     settings=Settings(exchanges=",".join(upstreams), **settings))
    with ServerThread(app) as gw:
        yield gw.url


async def _until(client: httpx.AsyncClient, path: str, status: int) -> httpx.Response:
    """GET ``path`` until it answers ``status`` (a wait for the background load, not a timing)."""
    end = time.monotonic() + 30
    while True:
        r = await client.get(path)
        if r.status_code == status or time.monotonic() > end:
            return r
        await asyncio.sleep(0.05)


def _venue(body: dict, venue: str) -> dict:
    return {e["id"]: e for e in body["exchanges"]}[venue]


# -- VenueHealth rules --------------------------------------------------------------------------
def _failed() -> UpstreamCall:
    return UpstreamCall("bybit", "fetch_order_book", "upstream_unavailable", 0.1,
                        error=UpstreamUnavailable("bybit fetch_order_book: unreachable"))


def test_venue_health_goes_degraded_then_unavailable_and_back():
    clock = ManualClock()
    health = VenueHealth(clock)
    assert health.status(markets_loaded=False) is VenueStatus.LOADING
    health.record(UpstreamCall("bybit", "load_markets", "ok", 0.1))
    assert health.status(True) is VenueStatus.READY
    clock.advance(1_000)
    health.record(_failed())
    assert health.status(True) is VenueStatus.DEGRADED  # one failure beside a recent success
    clock.advance(60_001)  # the success (and that failure) are past the window; failures go on
    health.record(_failed())
    health.record(_failed())
    assert health.status(True) is VenueStatus.DEGRADED  # two failures: not yet every call of enough
    health.record(_failed())
    assert health.status(True) is VenueStatus.UNAVAILABLE
    health.record(UpstreamCall("bybit", "fetch_order_book", "ok", 0.1))
    assert health.status(True) is VenueStatus.DEGRADED
    report = health.report(True)
    assert report["last_success_age_ms"] == 0 and report["last_error_age_ms"] == 0
    assert report["last_error"] == "bybit fetch_order_book: unreachable"
    clock.advance(60_001)
    assert health.status(True) is VenueStatus.READY  # the failures aged out
    assert health.report(True)["last_error_age_ms"] == 60_001


def test_a_load_that_failed_leaves_an_unloaded_venue_unavailable():
    health = VenueHealth(ManualClock())
    assert health.status(False, load_failed=True) is VenueStatus.UNAVAILABLE
    health.record(_failed())
    assert health.status(False) is VenueStatus.UNAVAILABLE


# -- /healthz, /readyz, /v1/exchanges --------------------------------------------------------------
async def test_a_dead_upstream_after_start_up_shows_in_exchanges_and_readiness():
    from exgate.sandbox.app import create_sandbox_app

    clock = ManualClock(time.time_ns() // 1_000_000)
    exchange = ServerThread(create_sandbox_app(sandbox_data(), venues=["bybit"])).__enter__()
    try:
        with gateway_on({"bybit": f"{exchange.url}/bybit"}, clock=clock) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                assert (await client.get(BOOK)).status_code == 200
                live = await _until(client, "/healthz", 200)
                assert live.json() == {"status": "ok", "exchanges": {"bybit": "ready"}}
                assert (await client.get("/readyz")).json()["status"] == "ready"
                exchange.__exit__()  # the exchange dies
                clock.advance(5_000)
                one = await client.get(BOOK, params={"depth": 1})
                degraded = _venue((await client.get("/v1/exchanges")).json(), "bybit")
                for depth in (2, 3):
                    await client.get(BOOK, params={"depth": depth})
                clock.advance(60_000)
                for depth in (4, 5, 6):  # the success is a minute old; every call since failed
                    await client.get(BOOK, params={"depth": depth})
                clock.advance(250)
                down = _venue((await client.get("/v1/exchanges")).json(), "bybit")
                live = await client.get("/healthz")
                ready = await client.get("/readyz")
    finally:
        exchange.__exit__()
    assert one.status_code == 503
    assert degraded["status"] == "degraded" and degraded["markets"] and degraded["last_error"]
    assert degraded["last_success_age_ms"] == 5_000 and degraded["last_error_age_ms"] == 0
    assert down["status"] == "unavailable" and "bybit" in down["last_error"]
    assert down["last_error_age_ms"] == 250 and down["last_success_age_ms"] == 65_250
    assert down["last_success_ms"] == clock.now - 65_250
    assert live.status_code == 200 and live.json() == {"status": "ok", "exchanges": {"bybit": "unavailable"}}
    assert ready.status_code == 503 and ready.headers["content-type"].startswith("application/problem+json")
    assert ready.json()["status"] == 503 and "no venue is usable (bybit: unavailable)" in ready.json()["detail"]
    assert ready.json()["exchanges"] == {"bybit": "unavailable"}


async def test_every_venue_unreachable_at_start_is_live_but_not_ready():
    dead = f"http://127.0.0.1:{free_port()}"
    with gateway_on({"bybit": f"{dead}/bybit", "pacifica": f"{dead}/pacifica"}) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            live = await _until(client, "/healthz", 200)  # once each venue has failed once
            ready = await client.get("/readyz")
            info = {e["id"]: e for e in (await client.get("/v1/exchanges")).json()["exchanges"]}
    assert live.json() == {"status": "ok", "exchanges": {"bybit": "unavailable", "pacifica": "unavailable"}}
    assert ready.status_code == 503 and "no venue is usable" in ready.json()["detail"]
    for venue in ("bybit", "pacifica"):
        assert info[venue]["status"] == "unavailable" and info[venue]["markets"] is None
        assert info[venue]["error"] and info[venue]["last_error"] and info[venue]["last_success_ms"] is None


async def test_healthz_is_503_starting_until_each_venue_has_loaded_or_failed(sandbox):
    with gateway_on({"bybit": f"{sandbox.url}/bybit"}, preload=False) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            starting = await client.get("/healthz")
            not_ready = await client.get("/readyz")
            await client.get("/v1/bybit/markets")
            live = await client.get("/healthz")
            ready = await client.get("/readyz")
    assert starting.status_code == 503 and starting.json() == {"status": "starting", "exchanges": {"bybit": "loading"}}
    assert not_ready.status_code == 503 and not_ready.json()["exchanges"] == {"bybit": "loading"}
    assert live.status_code == 200 and live.json() == {"status": "ok", "exchanges": {"bybit": "ready"}}
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "exchanges": {"bybit": "ready"},
                                                         "redis": None}


async def test_readiness_follows_the_redis_circuit(sandbox, clean_redis):
    with gateway_on({"bybit": f"{sandbox.url}/bybit"}, redis_url=clean_redis) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            await client.get(BOOK)
            up = await _until(client, "/readyz", 200)
    assert up.json() == {"status": "ready", "exchanges": {"bybit": "ready"}, "redis": "closed"}
    gone = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: every Redis call fails
    with gateway_on({"bybit": f"{sandbox.url}/bybit"}, redis_url=gone, redis_failures_to_open=1,
                    redis_cooldown_ms=600_000) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            served = await client.get(BOOK)  # fails open: served without Redis
            down = await client.get("/readyz")
    assert served.status_code == 200
    assert down.status_code == 503 and down.json()["redis"] in ("open", "half_open")
    assert "Redis is configured and its circuit breaker is" in down.json()["detail"]


# -- DELETE /v1/cache ---------------------------------------------------------------------------------
@pytest.fixture(params=["memory", "redis"])
def cache_settings(request) -> dict:
    if request.param == "memory":
        return {}
    return {"redis_url": clean_redis_url(request, "redis")}


@pytest.mark.parametrize("tag", ["market:bybit:BTC", "market:bybit:BTCUSDT", "market:bybit:BTC-USDT-PERP",
                                 "market:BYBIT:btc-usdt-perp", "market:bybit:BTC/USDT:USDT", "exchange:ByBit"])
async def test_invalidation_by_tag_takes_every_symbol_form_the_routes_take(sandbox, cache_settings, tag):
    with gateway_on({"bybit": f"{sandbox.url}/bybit"}, admin_token=TOKEN, **cache_settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            await client.get(BOOK)
            assert (await client.get(BOOK)).headers["x-cache"] == "hit"
            dropped = await client.delete("/v1/cache", params={"tag": tag}, headers=ADMIN)
            after = await client.get(BOOK)
            await client.delete("/v1/cache", params={"tag": tag}, headers=ADMIN)
            again = await client.delete("/v1/cache", params={"tag": tag, "key": market_key("bybit", DataType.MARKETS) + ":nothing"},
                                        headers=ADMIN)
    assert dropped.status_code == 200, dropped.text
    assert BOOK_KEY in dropped.json()["invalidated"]
    assert after.headers["x-cache"] == "miss"
    assert again.status_code == 200 and again.json()["invalidated"] == []  # nothing cached: nothing reported


async def test_invalidation_of_an_unknown_venue_or_symbol_is_404_like_the_routes(sandbox):
    with gateway_on({"bybit": f"{sandbox.url}/bybit"}, admin_token=TOKEN) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            venue = await client.delete("/v1/cache", params={"tag": "market:nowhere:BTC"}, headers=ADMIN)
            symbol = await client.delete("/v1/cache", params={"tag": "market:bybit:BTC-EUR"}, headers=ADMIN)
            exchange = await client.delete("/v1/cache", params={"tag": "exchange:nowhere"}, headers=ADMIN)
            bare = await client.delete("/v1/cache", params={"tag": "market:bybit"}, headers=ADMIN)
    assert venue.status_code == 404 and venue.json()["available"] == ["bybit"] and venue.json()["field"] == "tag"
    assert symbol.status_code == 404 and "BTC/USDT:USDT" in symbol.json()["suggestions"]
    assert symbol.headers["content-type"].startswith("application/problem+json")
    assert exchange.status_code == 404
    assert bare.status_code == 422 and bare.json()["field"] == "tag"


async def test_invalidation_needs_the_operator_token(sandbox):
    with gateway_on({"bybit": f"{sandbox.url}/bybit"}) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            disabled = await client.delete("/v1/cache", params={"tag": "exchange:bybit"}, headers=ADMIN)
    with gateway_on({"bybit": f"{sandbox.url}/bybit"}, admin_token=TOKEN) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            missing = await client.delete("/v1/cache", params={"tag": "exchange:bybit"})
            wrong = await client.delete("/v1/cache", params={"tag": "exchange:bybit"},
                                        headers={"Authorization": "Bearer guess"})
            basic = await client.delete("/v1/cache", params={"tag": "exchange:bybit"},
                                        headers={"Authorization": f"Basic {TOKEN}"})
            right = await client.delete("/v1/cache", params={"tag": "exchange:bybit"}, headers=ADMIN)
    assert disabled.status_code == 403 and "set EXGATE_ADMIN_TOKEN" in disabled.json()["detail"]
    for refused in (missing, wrong, basic):
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert TOKEN not in refused.text
    assert right.status_code == 200


# -- metrics ----------------------------------------------------------------------------------------
async def test_only_calls_that_reach_the_exchange_count_as_upstream_requests(sandbox):
    with gateway_on({"hyperliquid": f"{sandbox.url}/hyperliquid"}) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            assert (await client.get("/v1/hyperliquid/markets/BTC/trades")).status_code == 404
            assert (await client.get("/v1/hyperliquid/markets/BTC/orderbook")).status_code == 200
            text = (await client.get("/metrics")).text
    upstream = [line for line in text.splitlines() if line.startswith("exgate_upstream_requests_total{")]
    assert not [line for line in upstream if "trades" in line or "not_supported" in line], upstream
    assert any('operation="load_markets",status="ok"' in line for line in upstream), upstream
    assert any('operation="fetch_order_book",status="ok"' in line for line in upstream), upstream


async def test_docs_and_openapi_get_their_route_label(sandbox):
    with gateway_on({"bybit": f"{sandbox.url}/bybit"}) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for path in ("/docs", "/openapi.json", "/docs/oauth2-redirect", "/no/such/route"):
                await client.get(path)
            text = (await client.get("/metrics")).text
    counts = [line for line in text.splitlines() if line.startswith("exgate_request_duration_seconds_count{")]
    for route, status in (("/docs", "200"), ("/openapi.json", "200"), ("/docs/oauth2-redirect", "200"),
                          ("unmatched", "404")):
        assert any(f'route="{route}"' in line and f'status="{status}"' in line for line in counts), (route, counts)
    assert not any('route="unmatched"' in line and 'status="200"' in line for line in counts), counts


def test_window_names_follow_the_window():
    assert [window_label(ms) for ms in (1_000, 10_000, 60_000, 90_000, 3_600_000, 1_500)] == \
        ["1s", "10s", "1m", "90s", "1h", "1500ms"]
    assert name_for_window("requests_5s", 10_000) == "requests_10s"
    assert name_for_window("request_weight_1m", 30_000) == "request_weight_30s"
    assert name_for_window("custom", 60_000) == "custom_1m"


async def test_an_overridden_budget_is_named_by_its_own_window(sandbox):
    with gateway_on({"bybit": f"{sandbox.url}/bybit"}, budgets="bybit=6/10000") as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            [info] = (await client.get("/v1/exchanges")).json()["exchanges"]
    [limit] = info["budget"]["limits"]
    assert (limit["name"], limit["capacity"], limit["window_ms"]) == ("requests_10s", 6, 10_000)
