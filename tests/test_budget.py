"""Upstream budgets: weights per venue, the priority gate, the shared Redis budget, 429/418.

The multi-process overload run is in tests/test_budget_overload.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import httpx
import pytest

from exgate.budget import BudgetGate, Limit, MemoryBudgetStore, Metering, Priority, RedisBudgetStore, Scope
from exgate.config import Settings
from exgate.errors import UpstreamRateLimited
from exgate.venues.metering import METERING, metering_for
from exgate.venues.registry import build_adapters
from tests.conftest import ManualClock, ServerThread, sandbox_data

T0 = 1_790_000_080_000  # 40 s into a minute: no window edge near


# -- weights: what exgate charges equals what the exchange (sandbox) counts --------------------
# (venue, operation, call, documented weight or None when only equality is checked)
CASES = [
    ("binanceusdm", "order book, depth 20", lambda a, m: a.order_book(m, 20), 2),
    ("binanceusdm", "order book, depth 1000", lambda a, m: a.order_book(m, 1000), 20),
    ("binanceusdm", "all tickers (ticker/24hr 40 + premiumIndex 10 + bookTicker 5)", lambda a, m: a.tickers(), 55),
    ("binanceusdm", "one ticker (ticker/24hr 40 + premiumIndex 10 + bookTicker with symbol 2)",
     lambda a, m: a.tickers([m]), 52),
    ("binanceusdm", "markets reload (exchangeInfo 1 + fundingInfo 1)", lambda a, m: a.markets(reload=True), 2),
    ("binanceusdm", "candles, 200", lambda a, m: a.candles(m, "1h", start=None, end=None, limit=200, now_ms=T0), 2),
    ("binanceusdm", "funding (premiumIndex with symbol)", lambda a, m: a.funding_rate(m), 1),
    ("binanceusdm", "trades", lambda a, m: a.trades(m, 100), None),
    ("bybit", "order book", lambda a, m: a.order_book(m, 20), 1),
    ("bybit", "tickers", lambda a, m: a.tickers(), 1),
    ("bybit", "candles", lambda a, m: a.candles(m, "1h", start=None, end=None, limit=200, now_ms=T0), 1),
    ("hyperliquid", "order book (l2Book)", lambda a, m: a.order_book(m, 20), 2),
    ("hyperliquid", "tickers (metaAndAssetCtxs)", lambda a, m: a.tickers(), 20),
    ("hyperliquid", "candles (candleSnapshot)", lambda a, m: a.candles(m, "1h", start=None, end=None, limit=100,
                                                                       now_ms=T0), 20),
    ("pacifica", "order book", lambda a, m: a.order_book(m, 20), 1),
    ("pacifica", "candles (kline)", lambda a, m: a.candles(m, "1h", start=None, end=None, limit=100, now_ms=T0), 12),
]


@pytest.mark.parametrize("batch,weight", [(1, 1), (39, 1), (40, 2), (85, 3)])
def test_hyperliquid_exchange_actions_weigh_what_the_venue_counts(batch: int, weight: int) -> None:
    """An order action weighs 1 + floor(batch / 40) at the gateway and in the sandbox (it was
    charged 20, as an /info read, and an order burst ran out of budget)."""
    from exgate.sandbox.limits import hyperliquid_weight as sandbox_weight
    from exgate.venues.metering import hyperliquid_weight

    action = {"type": "order", "orders": [{}] * batch, "grouping": "na"}
    assert hyperliquid_weight("exchange", {"action": action, "nonce": 1}, 20) == weight
    assert sandbox_weight("/hyperliquid/exchange", {}, {"action": action, "nonce": 1}) == weight


@pytest.fixture(scope="module")
def frozen_sandbox():
    from exgate.sandbox.app import create_sandbox_app

    app = create_sandbox_app(sandbox_data(), clock=ManualClock(T0))
    with ServerThread(app) as server:
        server.limiter = app.state.limiter
        yield server


@pytest.mark.parametrize("venue,operation,call,weight", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
async def test_each_request_is_charged_what_the_exchange_counts(frozen_sandbox, venue, operation, call, weight):
    (adapter,) = build_adapters([venue], {venue: f"{frozen_sandbox.url}/{venue}"}).values()
    store = MemoryBudgetStore()
    # usage headers off: the charge must come from the weights alone, not from reconciliation
    metering = replace(metering_for(venue, adapter.exchange.rateLimit), used_header="", remaining_header="")
    limit = metering.limits[0]
    clock = ManualClock(T0)
    limiter = frozen_sandbox.limiter
    async with BudgetGate(venue, metering, store, clock=clock) as gate:
        adapter.attach_budget(gate)
        try:
            market = await adapter.resolve("BTC")
            charged_before = await store.used(venue, limit, clock())
            counted_before = limiter.snapshot(venue)["used"]
            await call(adapter, market)
            charged = await store.used(venue, limit, clock()) - charged_before
            counted = limiter.snapshot(venue)["used"] - counted_before
        finally:
            await adapter.close()
    assert charged == counted, f"{venue} {operation}: exgate charged {charged}, the exchange counted {counted}"
    if weight is not None:
        assert charged == weight


def test_every_core_venue_declares_its_limits_and_docs():
    assert set(METERING) == {"binanceusdm", "bybit", "hyperliquid", "pacifica"}
    assert METERING["binanceusdm"].limits[0] == Limit(Scope.IP, 2_400, 60_000, "request_weight_1m")
    assert METERING["bybit"].limits[0].capacity == 600 and METERING["bybit"].limits[0].window_ms == 5_000
    assert METERING["hyperliquid"].limits[0].capacity == 1_200
    assert all(m.docs for m in METERING.values())
    generic = metering_for("kraken", 3_000)  # ccxt rateLimit 3 s per cost unit
    assert generic.limits[0].capacity == 20 and generic.limits[0].window_ms == 60_000


# -- the gate ----------------------------------------------------------------------------------
def _metering(capacity: int = 100, window_ms: int = 1_000) -> Metering:
    return Metering(limits=(Limit(Scope.IP, capacity, window_ms, "w"),))


async def _settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def test_with_budget_spent_a_high_priority_caller_is_served_before_queued_market_data():
    clock = ManualClock(T0)
    async with BudgetGate("x", _metering(100, 1_000), MemoryBudgetStore(), clock=clock,
                          deadline_ms={p: 60_000 for p in Priority}) as gate:
        await gate.acquire(60)  # budget mostly spent: each further caller needs a window of its own
        order: list[str] = []

        async def caller(name: str, priority: Priority) -> None:
            await gate.acquire(60, priority)
            order.append(name)

        low = [asyncio.create_task(caller(f"market-{i}", Priority.MARKET_DATA)) for i in range(3)]
        await _settle()
        high = asyncio.create_task(caller("order", Priority.ORDER))
        await _settle()
        assert order == [] and gate.waiting == 4
        for _ in range(4):  # one grant per window
            clock.advance(1_000)
            gate.wake()
            await _settle()
        await asyncio.gather(*low, high)
    assert order == ["order", "market-0", "market-1", "market-2"]


async def test_market_data_leaves_a_reserve_that_orders_can_still_use():
    clock = ManualClock(T0)
    async with BudgetGate("x", _metering(100, 1_000), MemoryBudgetStore(), clock=clock,
                          deadline_ms={p: 0 for p in Priority}) as gate:
        await gate.acquire(95, Priority.MARKET_DATA)
        with pytest.raises(UpstreamRateLimited):
            await gate.acquire(1, Priority.MARKET_DATA)
        await gate.acquire(5, Priority.ORDER)


async def test_a_caller_past_its_deadline_gets_503_with_retry_after_and_the_queue_is_bounded():
    clock = ManualClock(T0)
    async with BudgetGate("x", _metering(10, 60_000), MemoryBudgetStore(), clock=clock, max_waiters=1,
                          deadline_ms={p: 100_000 for p in Priority}) as gate:
        await gate.acquire(9)
        queued = asyncio.create_task(gate.acquire(5))
        await _settle()
        with pytest.raises(UpstreamRateLimited) as full:
            await gate.acquire(5)
        assert "already wait" in full.value.detail and full.value.retry_after_s >= 1
        queued.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await queued
    async with BudgetGate("x", _metering(10, 60_000), MemoryBudgetStore(), clock=clock,
                          deadline_ms={p: 50 for p in Priority}) as gate:
        await gate.acquire(9)
        with pytest.raises(UpstreamRateLimited) as late:
            await gate.acquire(5)  # the window ends in 20 s, far past a 50 ms deadline
        assert late.value.retry_after_s == 20 and late.value.status == 503
    async with BudgetGate("x", _metering(10, 1_000), MemoryBudgetStore(), clock=clock,
                          deadline_ms={p: 1_500 for p in Priority}) as gate:
        await gate.acquire(9)
        with pytest.raises(UpstreamRateLimited) as expired:
            await gate.acquire(5)  # the window should turn within the deadline; the frozen clock never turns it
        assert "no budget within 1500 ms" in expired.value.detail and gate.waiting == 0


async def test_instances_share_one_budget_through_redis(clean_redis):
    clock = ManualClock(T0)
    stores = [RedisBudgetStore(clean_redis), RedisBudgetStore(clean_redis)]
    try:
        async with BudgetGate("x", _metering(10, 60_000), stores[0], clock=clock,
                              deadline_ms={p: 0 for p in Priority}) as a, \
                BudgetGate("x", _metering(10, 60_000), stores[1], clock=clock,
                           deadline_ms={p: 0 for p in Priority}) as b:
            await a.acquire(6, Priority.ORDER)
            with pytest.raises(UpstreamRateLimited):
                await b.acquire(6, Priority.ORDER)  # alone b would have had room
            await b.acquire(4, Priority.ORDER)
            assert await stores[1].used("x", _metering(10, 60_000).limits[0], clock()) == 10
    finally:
        for store in stores:
            await store.close()


async def test_usage_headers_raise_the_shared_count_to_what_the_exchange_reports():
    clock = ManualClock(T0)
    store = MemoryBudgetStore()
    metering = METERING["binanceusdm"]
    async with BudgetGate("binanceusdm", metering, store, clock=clock) as gate:
        await gate.acquire(5)
        gate.observe(200, {"x-mbx-used-weight-1m": "2390"})  # someone else on this IP used a lot
        await _settle()
        assert await store.used("binanceusdm", metering.limits[0], clock()) == 2390
        with pytest.raises(UpstreamRateLimited):
            await gate.acquire(20)


# -- 429/418 from the exchange stop every instance ---------------------------------------------
async def test_an_injected_429_stops_every_instance_until_retry_after_then_reads_resume(clean_redis):
    from exgate.http.app import create_app
    from exgate.sandbox.app import create_sandbox_app

    sandbox_clock, clock = ManualClock(T0), ManualClock(T0)
    settings = Settings(redis_url=clean_redis, exchanges="binanceusdm")
    with ServerThread(create_sandbox_app(sandbox_data(), clock=sandbox_clock)) as sandbox:
        upstreams = {"binanceusdm": f"{sandbox.url}/binanceusdm"}
        apps = [create_app(build_adapters(["binanceusdm"], upstreams), clock=clock, settings=settings) for _ in "ab"]
        with ServerThread(apps[0]) as a, ServerThread(apps[1]) as b:
            async with httpx.AsyncClient(timeout=30) as client:
                for gw in (a, b):  # markets loaded on both
                    assert (await client.get(gw.url + "/v1/binanceusdm/markets")).status_code == 200
                injected = await client.post(sandbox.url + "/__sandbox/throttle",
                                             params={"venue": "binanceusdm", "status": 429, "retry_after_s": 30})
                assert injected.status_code == 200
                hit = await client.get(a.url + "/v1/binanceusdm/markets/BTC/orderbook")
                assert hit.status_code == 503 and int(hit.headers["retry-after"]) >= 29
                for _ in range(100):  # the ban reaches Redis from a's response handler
                    info = (await client.get(b.url + "/v1/exchanges")).json()["exchanges"][0]
                    if info["budget"]["banned_until_ms"]:
                        break
                    await asyncio.sleep(0.02)
                assert info["budget"]["banned_until_ms"] == T0 + 30_000
                stats = (await client.get(sandbox.url + "/__sandbox/stats")).json()["venues"]["binanceusdm"]
                stopped = await client.get(b.url + "/v1/binanceusdm/markets/ETH/funding")  # b never asked before
                assert stopped.status_code == 503 and 1 <= int(stopped.headers["retry-after"]) <= 30
                after = (await client.get(sandbox.url + "/__sandbox/stats")).json()["venues"]["binanceusdm"]
                assert after["requests"] == stats["requests"]  # b did not call the exchange
                sandbox_clock.advance(31_000)
                clock.advance(31_000)
                resumed = await client.get(b.url + "/v1/binanceusdm/markets/ETH/funding")
                assert resumed.status_code == 200
                metrics = (await client.get(a.url + "/metrics")).text
    assert after["by_status"].get("429") == 1
    assert 'exgate_upstream_throttled_total{exchange="binanceusdm",status="429"} 1.0' in metrics
