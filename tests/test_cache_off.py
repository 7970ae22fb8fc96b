"""``EXGATE_CACHE=off``: every read is its own upstream call (the load test's ``direct`` mode)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ServerThread, path_count, sandbox_stats


@pytest.fixture(scope="module")
def uncached(sandbox: ServerThread) -> Iterator[ServerThread]:
    from exgate.config import Settings
    from exgate.http.app import create_app
    from exgate.venues.registry import build_adapters

    venues = ["binanceusdm"]
    app = create_app(build_adapters(venues, {v: f"{sandbox.url}/{v}" for v in venues}),
                     settings=Settings(cache="off", exchanges="binanceusdm"))
    with ServerThread(app) as server:
        httpx.get(f"{server.url}/v1/binanceusdm/markets", timeout=30)  # markets loaded
        yield server


def test_every_read_goes_upstream_and_answers_miss(sandbox: ServerThread, uncached: ServerThread):
    before = path_count(sandbox_stats(sandbox), "binanceusdm", "/fapi/v1/depth")
    answers = [httpx.get(f"{uncached.url}/v1/binanceusdm/markets/BTC/orderbook?depth=5", timeout=30) for _ in range(3)]
    assert [r.status_code for r in answers] == [200] * 3
    assert [r.headers["X-Cache"] for r in answers] == ["miss"] * 3
    assert path_count(sandbox_stats(sandbox), "binanceusdm", "/fapi/v1/depth") - before == 3


def test_concurrent_reads_are_not_coalesced(sandbox: ServerThread, uncached: ServerThread):
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=uncached.url, timeout=30) as client:
            return await asyncio.gather(*(client.get("/v1/binanceusdm/markets/ETH/trades?limit=10") for _ in range(8)))

    before = path_count(sandbox_stats(sandbox), "binanceusdm", "/fapi/v1/aggTrades")
    answers = asyncio.run(burst())
    assert {r.status_code for r in answers} == {200}
    assert path_count(sandbox_stats(sandbox), "binanceusdm", "/fapi/v1/aggTrades") - before == 8


def test_metrics_count_the_reads_as_misses(uncached: ServerThread):
    from prometheus_client.parser import text_string_to_metric_families

    httpx.get(f"{uncached.url}/v1/binanceusdm/prices?symbols=BTC", timeout=30)
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(f"{uncached.url}/metrics").text)}
    lookups = {(s.labels["tier"], s.labels["result"]): s.value for s in families["exgate_cache_lookups"].samples
               if s.name == "exgate_cache_lookups_total"}
    assert lookups["l1", "miss"] >= 1
    assert sum(v for (_, result), v in lookups.items() if result != "miss") == 0


def test_a_bad_value_names_the_variable_and_the_allowed_values():
    from exgate.config import load_settings
    from exgate.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_settings(cache="sometimes")
    assert "EXGATE_CACHE" in caught.value.detail and "'on' or 'off'" in caught.value.detail
