"""The scrape-time gauges of ``/metrics`` (venue status, budget use and queue), through a real
gateway over the sandbox, and the budget gate's own view of its use."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ManualClock, ServerThread

VENUE = "binanceusdm"


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """``{(sample name, labels): value}`` of one ``GET /metrics``."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


@pytest.fixture(scope="module")
def one_venue(sandbox: ServerThread) -> Iterator[ServerThread]:
    """A gateway of its own (fresh budget, cache and frozen clock) over the sandbox's Binance USDⓈ-M."""
    import time

    from exgate.http.app import create_app
    from exgate.venues.registry import build_adapters

    clock = ManualClock(time.time_ns() // 1_000_000)
    app = create_app(build_adapters((VENUE,), {VENUE: f"{sandbox.url}/{VENUE}"}), clock=clock)
    with ServerThread(app) as server:
        yield server


def test_a_read_raises_the_budget_used_ratio_and_the_venue_shows_ready(one_venue: ServerThread):
    before = value(scrape(one_venue.url), "exgate_budget_used_ratio", exchange=VENUE)
    assert httpx.get(f"{one_venue.url}/v1/{VENUE}/prices", timeout=30).status_code == 200

    after = scrape(one_venue.url)
    used = value(after, "exgate_budget_used_ratio", exchange=VENUE)
    assert before < used <= 1  # the window does not turn: the gateway's clock is frozen
    assert value(after, "exgate_budget_waiting", exchange=VENUE) == 0
    statuses = {status: value(after, "exgate_venue_status", exchange=VENUE, status=status)
                for status in ("loading", "ready", "degraded", "unavailable")}
    assert statuses == {"loading": 0, "ready": 1, "degraded": 0, "unavailable": 0}


def test_throttle_counters_exist_at_zero_before_any_429(one_venue: ServerThread):
    samples = scrape(one_venue.url)
    assert value(samples, "exgate_upstream_throttled_total", exchange=VENUE, status="429") == 0
    assert value(samples, "exgate_upstream_throttled_total", exchange=VENUE, status="418") == 0


def test_the_session_gateway_reports_every_venue(gateway: ServerThread):
    samples = scrape(gateway.url)
    venues = {dict(labels)["exchange"] for name, labels in samples if name == "exgate_venue_status"}
    assert venues == {"binanceusdm", "bybit", "hyperliquid", "pacifica"}
    for venue in venues:  # one-hot: exactly one status per venue
        assert sum(v for (name, labels), v in samples.items()
                   if name == "exgate_venue_status" and dict(labels)["exchange"] == venue) == 1


async def test_used_ratio_follows_grants_the_exchanges_count_and_the_window():
    from exgate.budget import BudgetGate, MemoryBudgetStore
    from exgate.venues.metering import METERING

    clock = ManualClock(1_790_000_010_000)  # 10 s into a 1-minute window
    async with BudgetGate(VENUE, METERING[VENUE], MemoryBudgetStore(), clock=clock) as gate:
        assert gate.used_ratio() == 0
        await gate.acquire(240)
        assert gate.used_ratio() == 0.1  # 240 of 2400 weight per minute
        gate.observe(200, {"X-MBX-USED-WEIGHT-1M": "1200"})  # other users of the IP count too
        assert gate.used_ratio() == 0.5
        clock.advance(60_000)
        assert gate.used_ratio() == 0  # a new window
