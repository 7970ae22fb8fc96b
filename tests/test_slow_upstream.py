"""A slow or hung exchange behind the gateway (the sandbox's ``delay_ms`` fault): readers with
a copy get it ``stale`` at the soft deadline, readers without one wait for the exchange."""

from __future__ import annotations

import asyncio
import time

import httpx

from exgate.config import Settings
from tests.conftest import ManualClock, ServerThread, sandbox_data

BOOK = "/v1/bybit/markets/{}/orderbook"


async def _limit(client: httpx.AsyncClient) -> dict:
    return (await client.get("/__sandbox/stats")).json()["venues"]["bybit"]["limit"]


async def test_sandbox_delay_holds_the_next_requests_without_stalling_the_sandbox():
    from exgate.sandbox.app import create_sandbox_app

    with ServerThread(create_sandbox_app(sandbox_data(), venues=["bybit"])) as sandbox:
        async with httpx.AsyncClient(base_url=sandbox.url, timeout=30) as client:
            bad = await client.post("/__sandbox/throttle", params={"venue": "bybit", "delay_ms": "soon"})
            assert bad.status_code == 422 and "delay_ms" in bad.json()["error"]
            fault = await client.post("/__sandbox/throttle", params={"venue": "bybit", "delay_ms": 60_000, "count": 1})
            assert fault.json() == {"venue": "bybit", "delay_ms": 60_000, "count": 1}
            url = "/bybit/v5/market/time"
            held = asyncio.create_task(client.get(url))
            while (await _limit(client))["delayed"] == 0:  # until the held request is in
                await asyncio.sleep(0.01)
            assert (await _limit(client))["delay"] is None  # its one request taken
            after = await client.get(url)  # the fault was for one request only
            stats = await client.get("/__sandbox/stats")  # the sandbox's loop keeps serving
            assert after.status_code == 200 and stats.status_code == 200
            assert not held.done()  # still held back
            await client.post("/__sandbox/throttle", params={"venue": "bybit", "delay_ms": 0})
            assert (await held).status_code == 200  # clearing the fault let it go on


async def test_a_hung_exchange_gives_readers_with_a_copy_stale_at_once_and_readers_without_one_wait():
    from exgate.http.app import create_app
    from exgate.sandbox.app import create_sandbox_app
    from exgate.venues.registry import build_adapters

    clock = ManualClock(time.time_ns() // 1_000_000)
    with ServerThread(create_sandbox_app(sandbox_data(), venues=["bybit"])) as sandbox:
        app = create_app(build_adapters(["bybit"], {"bybit": f"{sandbox.url}/bybit"}, timeout_ms=30_000), clock=clock,
                         settings=Settings(exchanges="bybit", stale_after_ms=200))
        with ServerThread(app) as gw:
            async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client, \
                    httpx.AsyncClient(base_url=sandbox.url, timeout=30) as control:
                warm = await client.get(BOOK.format("BTC"))
                assert warm.status_code == 200 and warm.headers["x-cache"] == "miss"
                clock.advance(3_000)  # order book: 1 s fresh + 1 s grace, 30 s max-stale
                await control.post("/__sandbox/throttle", params={"venue": "bybit", "delay_ms": 60_000})
                no_copy = asyncio.create_task(client.get(BOOK.format("ETH")))
                async with asyncio.timeout(10):  # held 60 s, upstream timeout 30 s: only the soft deadline answers
                    readers = await asyncio.gather(*(client.get(BOOK.format("BTC")) for _ in range(5)))
                await asyncio.sleep(0)
                still_waiting = not no_copy.done()
                held = (await _limit(control))["delayed"]
                await control.post("/__sandbox/throttle", params={"venue": "bybit", "delay_ms": 0})  # the exchange is back
                cold = await no_copy
                async with asyncio.timeout(20):  # a guard against a hang, not a timing assertion
                    while (await client.get(BOOK.format("BTC"))).headers["x-cache"] == "stale":
                        await asyncio.sleep(0.02)  # until the background fetch, released, fills
                refreshed = await client.get(BOOK.format("BTC"))
    assert [(r.status_code, r.headers["x-cache"], r.headers["age"]) for r in readers] == [(200, "stale", "3")] * 5
    assert all(r.content == warm.content for r in readers)
    assert still_waiting and held >= 1  # the exchange still held the fetches when the 5 were answered
    assert cold.status_code == 200 and cold.headers["x-cache"] == "miss"  # the reader without a copy waited
    assert refreshed.headers["x-cache"] == "hit"
