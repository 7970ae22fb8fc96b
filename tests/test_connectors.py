"""Connector state (issue 14): clock offsets and markets snapshots kept in SQL and Redis with
TTLs, so a restarted gateway makes no upstream call to set its connectors up; corrupt entries
discarded; a database that does not answer costs a cold start and one warning; a stale offset
is re-synced once after the venue's timestamp refusal; instances starting together sync once.

Real SQLite and PostgreSQL (``tests/store_db.py``), real Redis (``EXGATE_TEST_REDIS_URL``), the
sandbox and real gateways on loopback."""

from __future__ import annotations

import asyncio
import os
from decimal import Decimal
import subprocess
import sys

import httpx
import pytest
import sqlalchemy as sa
import structlog

from exgate.cache import CircuitBreaker, RedisStore
from exgate.connectors import ConnectorState, Kind, Synced, environment_of
from exgate.store import SecretBox, Store
from exgate.store.engine import make_engine
from tests.accounts_harness import (SECRET_KEY, T, connect, create_tenant, gateways, make_store, new_account,
                                    order_count, price_below, btc_market, min_size, run, sandbox_app, user)
from tests.conftest import ManualClock, ServerThread, flush_redis
from tests.store_db import db_url, pg_database  # noqa: F401  (fixtures)

VENUES = ("binanceusdm", "bybit")
TIME_PATH = {"binanceusdm": "/fapi/v1/time", "bybit": "/v5/market/time"}
MARKETS_PATH = {"binanceusdm": "/fapi/v1/exchangeInfo", "bybit": "/v5/market/instruments-info"}
REDIS_URL = os.environ.get("EXGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def paths(sandbox: ServerThread, venue: str) -> dict[str, int]:
    return httpx.get(f"{sandbox.url}/__sandbox/stats").json()["venues"].get(venue, {}).get("by_path", {})


def redis_store(clock) -> RedisStore:
    return RedisStore.from_url(REDIS_URL, CircuitBreaker("redis", clock))


def offset_sync(calls: list[int], offset: int = 42, gate: asyncio.Event | None = None):
    async def sync() -> Synced:
        calls.append(1)
        if gate is not None:
            await gate.wait()
        return Synced({"offset_ms": offset}, 7)
    return sync


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/exgate.db"
    run(make_store(url).close())
    return url


# -- the service on its own: tiers, TTLs, corruption, a database that does not answer --------------

def test_an_entry_is_read_back_from_redis_then_sql_and_expires_with_its_ttl(db_url) -> None:
    clock = ManualClock()
    flush_redis(REDIS_URL)

    store = make_store(db_url)

    async def scenario() -> None:
        redis = redis_store(clock)
        try:
            async with ConnectorState(store.engine, redis, clock=clock, offset_ttl_ms=900_000) as writer:
                put = await writer.put("binanceusdm", "public", "mainnet", Kind.TIME_OFFSET, {"offset_ms": -250},
                                       rtt_ms=31)
                assert put.expires_at_ms == clock() + 900_000
            async with ConnectorState(store.engine, redis, clock=clock) as reader:  # a new process, Redis warm
                got = await reader.get("binanceusdm", "public", "mainnet", Kind.TIME_OFFSET)
                assert got is not None and got.offset_ms == -250 and got.rtt_ms == 31
                assert reader.stats()["hits"] == 1
            flush_redis(REDIS_URL)
            async with ConnectorState(store.engine, None, clock=clock) as reader:  # no Redis: from SQL
                got = await reader.get("binanceusdm", "public", "mainnet", Kind.TIME_OFFSET)
                assert got is not None and got.offset_ms == -250
                await reader.flush_hits()
                await reader.refresh()
                figures = reader.stats()
                assert figures["entries"] == {"total": 1, "valid": 1, "expired": 0, "invalid": 0}
                assert figures["by_venue"]["binanceusdm"]["hits"] == 1 and figures["hit_rate"] == 1.0
                assert figures["stored_hits"] == 2  # this process's hit and the one before it, in the row
                clock.advance(900_000)  # its TTL is over
                assert await reader.get("binanceusdm", "public", "mainnet", Kind.TIME_OFFSET) is None
                await reader.refresh()
                assert reader.stats()["entries"]["expired"] == 1
                assert await reader.cleanup_expired() == 1
                await reader.refresh()
                assert reader.stats()["entries"]["total"] == 0
        finally:
            await redis.close()
            await store.close()

    run(scenario())


def test_invalidate_drops_an_entry_everywhere_and_the_next_read_syncs(sqlite_url, clean_redis) -> None:
    """On one Redis server and on a Redis Cluster (an entry's name carries its venue's slot)."""
    clock = ManualClock()
    store = Store(sqlite_url, None)

    async def scenario() -> None:
        redis = RedisStore.from_url(clean_redis, CircuitBreaker("redis", clock))
        calls: list[int] = []
        try:
            async with ConnectorState(store.engine, redis, clock=clock) as state:
                for venue in VENUES:
                    await state.obtain(venue, "public", "mainnet", Kind.TIME_OFFSET, offset_sync(calls))
                assert len(calls) == 2
                await state.obtain("bybit", "public", "mainnet", Kind.TIME_OFFSET, offset_sync(calls))
                assert len(calls) == 2  # a hit
                assert await state.invalidate("bybit") == 1
                assert await state.get("bybit", "public", "mainnet", Kind.TIME_OFFSET) is None
                assert await state.get("binanceusdm", "public", "mainnet", Kind.TIME_OFFSET) is not None
                await state.obtain("bybit", "public", "mainnet", Kind.TIME_OFFSET, offset_sync(calls))
                assert len(calls) == 3
                assert await state.invalidate() == 2
        finally:
            await redis.close()
            await store.close()

    run(scenario())


@pytest.mark.parametrize("corruption", ["unparseable", "negative ttl", "absurd offset"])
def test_a_corrupted_entry_is_discarded_and_overwritten(db_url, corruption) -> None:
    clock = ManualClock()
    payload = {"unparseable": "{not json", "negative ttl": '{"offset_ms": 5}',
               "absurd offset": '{"offset_ms": 172800000}'}[corruption]
    # negative TTL: expiring before it was synced (and not expired yet, else the cleanup at start deletes it)
    synced = clock() + 10_000 if corruption == "negative ttl" else clock()
    expires = clock() + 5_000 if corruption == "negative ttl" else clock() + 600_000

    store = make_store(db_url)

    async def scenario() -> None:
        engine = make_engine(store.url)
        try:
            async with engine.begin() as connection:
                await connection.execute(sa.text(
                    "INSERT INTO connector_state (venue, scope, environment, kind, payload, rtt_ms, synced_at_ms,"
                    " expires_at_ms, valid, hits) VALUES ('binanceusdm', 'public', 'mainnet', 'time_offset', :p, 3,"
                    " :s, :e, :v, 0)"), {"p": payload, "s": synced, "e": expires, "v": True})
            calls: list[int] = []
            async with ConnectorState(store.engine, None, clock=clock) as state:
                assert await state.get("binanceusdm", "public", "mainnet", Kind.TIME_OFFSET) is None
                assert state.stats()["discarded"] == 1
                entry = await state.obtain("binanceusdm", "public", "mainnet", Kind.TIME_OFFSET, offset_sync(calls))
                assert len(calls) == 1 and entry.offset_ms == 42
            async with ConnectorState(store.engine, None, clock=clock) as again:  # overwritten in SQL
                got = await again.get("binanceusdm", "public", "mainnet", Kind.TIME_OFFSET)
                assert got is not None and got.offset_ms == 42 and got.expires_at_ms == clock() + 900_000
        finally:
            await engine.dispose()
            await store.close()

    run(scenario())


def test_an_unreachable_database_is_a_cold_path_with_one_warning() -> None:
    async def scenario() -> tuple[list[dict], dict]:
        store = Store("postgresql+asyncpg://exgate@127.0.0.1:1/nowhere", None)
        calls: list[int] = []
        try:
            with structlog.testing.capture_logs() as logs:
                async with ConnectorState(store.engine, None) as state:
                    for venue in VENUES:  # each syncs, none fails
                        entry = await state.obtain(venue, "public", "mainnet", Kind.TIME_OFFSET, offset_sync(calls))
                        assert entry.offset_ms == 42
                    assert await state.get("bybit", "public", "mainnet", Kind.TIME_OFFSET) is not None  # kept in L1
                    assert await state.invalidate() == 2
                    assert await state.cleanup_expired() == 0
                    assert len(calls) == 2
                    return logs, state.stats()
        finally:
            await store.close()

    logs, figures = run(scenario())
    warnings = [entry for entry in logs if entry["event"] == "connector_state_database_unavailable"]
    assert len(warnings) == 1, logs
    assert figures["database"]["available"] is False and figures["database"]["warnings"] == 1


def test_concurrent_syncs_of_one_entry_coalesce_in_a_process_and_across_instances(sqlite_url) -> None:
    flush_redis(REDIS_URL)

    async def scenario() -> None:
        store = Store(sqlite_url, None)
        one, two = redis_store(ManualClock()), redis_store(ManualClock())
        calls: list[int] = []
        gate = asyncio.Event()
        try:
            async with ConnectorState(store.engine, one) as a, ConnectorState(store.engine, two) as b:
                waiting = [asyncio.create_task(state.obtain("bybit", "public", "mainnet", Kind.TIME_OFFSET,
                                                            offset_sync(calls, gate=gate)))
                           for state in (a, b, a, b, a, b)]
                while not calls:  # the winner is syncing; everyone else waits for it
                    await asyncio.sleep(0)
                gate.set()
                entries = await asyncio.gather(*waiting)
                assert len(calls) == 1
                assert {e.synced_at_ms for e in entries} == {entries[0].synced_at_ms}
                assert a.stats()["syncs"] + b.stats()["syncs"] == 1  # one instance synced, the other waited
        finally:
            await one.close()
            await two.close()
            await store.close()

    run(scenario())


def test_a_caller_that_leaves_does_not_cancel_the_sync_others_wait_for() -> None:
    async def scenario() -> None:
        calls: list[int] = []
        gate = asyncio.Event()
        async with ConnectorState(None, None) as state:
            sync = offset_sync(calls, gate=gate)
            leaving = asyncio.create_task(state.obtain("bybit", "public", "mainnet", Kind.TIME_OFFSET, sync))
            staying = asyncio.create_task(state.obtain("bybit", "public", "mainnet", Kind.TIME_OFFSET, sync))
            while not calls:
                await asyncio.sleep(0)
            leaving.cancel()
            gate.set()
            assert (await staying).offset_ms == 42
            assert leaving.cancelled() and len(calls) == 1
            assert (await state.get("bybit", "public", "mainnet", Kind.TIME_OFFSET)).offset_ms == 42

    run(scenario())


# -- gateways over the sandbox ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def sandbox():
    with ServerThread(sandbox_app(history_lag_ms=0)) as server:
        yield server


def reset(sandbox: ServerThread) -> None:
    assert httpx.post(f"{sandbox.url}/__sandbox/reset").status_code == 200


def summary(gateway: ServerThread, tenant, who: str, venue: str) -> httpx.Response:
    return httpx.get(f"{gateway.url}/v1/account/summary", params={"exchange": venue}, headers=tenant.headers(who),
                     timeout=T)


def test_a_warm_start_makes_no_upstream_call_for_markets_or_the_clock(sandbox, db_url) -> None:
    run(make_store(db_url).close())
    tenant = create_tenant(db_url, "warm")
    who = user()
    reset(sandbox)
    with gateways(sandbox.url, db_url, 1, redis_url=REDIS_URL, venues=VENUES) as (cold,):
        for venue in VENUES:
            connect(cold, sandbox, tenant, who, venue)
            assert summary(cold, tenant, who, venue).status_code == 200
    for venue in VENUES:  # the cold start loaded the markets and synced the clock once
        assert paths(sandbox, venue).get(MARKETS_PATH[venue], 0) >= 1, paths(sandbox, venue)
        assert paths(sandbox, venue).get(TIME_PATH[venue]) == 1, paths(sandbox, venue)

    reset(sandbox)  # and Redis is flushed by the harness: the warm start reads SQL
    with gateways(sandbox.url, db_url, 1, redis_url=REDIS_URL, venues=VENUES) as (warm,):
        for venue in VENUES:
            assert summary(warm, tenant, who, venue).status_code == 200
            seen = paths(sandbox, venue)
            assert MARKETS_PATH[venue] not in seen and TIME_PATH[venue] not in seen, seen
            assert "/fapi/v1/fundingInfo" not in seen, seen
        markets = httpx.get(f"{warm.url}/v1/binanceusdm/markets", timeout=T).json()["markets"]
        assert any(m["symbol"] == "BTC/USDT:USDT" for m in markets)
        funding = httpx.get(f"{warm.url}/v1/binanceusdm/markets/BTC/funding", timeout=T)
        assert funding.status_code == 200 and funding.json()["interval_ms"], funding.text  # intervals kept too

        stats = httpx.get(f"{warm.url}/v1/connectors/stats", timeout=T)
        assert stats.status_code == 200, stats.text
        body = stats.json()
        assert body["enabled"] is True and body["database"]["available"] is True
        assert body["entries"]["valid"] == 4 and body["syncs"] == 0 and body["misses"] == 0
        assert body["hits"] >= 4 and body["hit_rate"] == 1.0
        assert set(body["by_venue"]) == set(VENUES) and body["by_venue"]["bybit"]["entries"]["total"] == 2
        assert body["last_sync_age_ms"] >= 0
        assert "/v1/connectors/stats" in httpx.get(f"{warm.url}/openapi.json", timeout=T).json()["paths"]
        metrics = httpx.get(f"{warm.url}/metrics", timeout=T).text
        assert 'exgate_connector_state_entries{exchange="binanceusdm",state="valid"} 2.0' in metrics
        assert 'exgate_connector_state_hits_total{exchange="bybit"}' in metrics


@pytest.mark.parametrize("venue", VENUES)
def test_a_stale_stored_offset_is_resynced_once_and_the_read_succeeds(sandbox, sqlite_url, venue) -> None:
    environment = environment_of(f"{sandbox.url}/{venue}")

    async def stale() -> None:  # a wrong offset cached with 15 minutes to live: what a skew change leaves
        store = Store(sqlite_url, None)
        try:
            async with ConnectorState(store.engine) as state:
                await state.put(venue, "public", environment, Kind.TIME_OFFSET, {"offset_ms": 60_000}, rtt_ms=5)
        finally:
            await store.close()

    run(stale())
    tenant = create_tenant(sqlite_url, "stale")
    who = user()
    with gateways(sandbox.url, sqlite_url, 1, venues=(venue,)) as (gateway,):
        reset(sandbox)
        connect(gateway, sandbox, tenant, who, venue)  # its balance check is the first signed read
        assert paths(sandbox, venue).get(TIME_PATH[venue]) == 1, paths(sandbox, venue)
        metrics = httpx.get(f"{gateway.url}/metrics", timeout=T).text
        refused = [line for line in metrics.splitlines() if line.startswith("exgate_upstream_requests_total{")
                   and f'exchange="{venue}"' in line and 'operation="fetch_balance"' in line and 'status="ok"' not in line]
        assert refused and all(line.endswith(" 1.0") for line in refused), refused  # the refusal, once
        assert f'exgate_upstream_requests_total{{exchange="{venue}",operation="fetch_balance",status="ok"}} 1.0' \
            in metrics
        r = summary(gateway, tenant, who, venue)
        assert r.status_code == 200, r.text
        assert paths(sandbox, venue).get(TIME_PATH[venue]) == 1  # never again
        body = httpx.get(f"{gateway.url}/v1/connectors/stats", timeout=T).json()
        # two syncs: the markets (a fresh database) and the one re-sync of the clock
        assert body["by_venue"][venue]["syncs"] == 2 and body["by_venue"][venue]["entries"]["valid"] == 2


@pytest.mark.parametrize("venue", VENUES)
def test_a_skew_change_at_the_sandbox_while_an_offset_is_cached_costs_one_resync(sqlite_url, venue) -> None:
    tenant = create_tenant(sqlite_url, "skew")
    with ServerThread(sandbox_app(history_lag_ms=0)) as fresh:
        if httpx.post(f"{fresh.url}/__sandbox/clock", json={"venue": venue, "skew_ms": 0}).status_code == 404:
            pytest.skip("this sandbox has no server clock skew (POST /__sandbox/clock)")
        with gateways(fresh.url, sqlite_url, 1, venues=(venue,)) as (gateway,):
            connect(gateway, fresh, tenant, user(), venue)  # syncs the offset (the venue's clock: ours)
            assert paths(fresh, venue).get(TIME_PATH[venue]) == 1
            r = httpx.post(f"{fresh.url}/__sandbox/clock", json={"venue": venue, "skew_ms": 30_000})
            assert r.status_code == 200, r.text
            who = user()
            connect(gateway, fresh, tenant, who, venue)  # the cached offset is refused once, then re-synced
            assert paths(fresh, venue).get(TIME_PATH[venue]) == 2, paths(fresh, venue)
            assert summary(gateway, tenant, who, venue).status_code == 200
            assert paths(fresh, venue).get(TIME_PATH[venue]) == 2


def _clients(gateway: ServerThread) -> list:
    return list(gateway.server.config.app.state.accounts.pool._clients.values())


def test_an_order_refused_for_its_timestamp_is_looked_up_then_sent_once(sandbox, sqlite_url) -> None:
    tenant = create_tenant(sqlite_url, "orders")
    who = user()
    venue = "binanceusdm"
    with gateways(sandbox.url, sqlite_url, 1, venues=(venue,)) as (gateway,):
        account, _ = connect(gateway, sandbox, tenant, who, venue)
        market = btc_market(gateway.url, venue)
        low = price_below(gateway.url, venue, market)
        (client,) = _clients(gateway)
        client.exchange.options["timeDifference"] = 120_000  # the clock moved under a cached offset
        before = paths(sandbox, venue).get(TIME_PATH[venue], 0)
        r = httpx.post(f"{gateway.url}/v1/orders", params={"exchange": venue}, headers=tenant.headers(who), timeout=T,
                       json={"symbol": market["symbol"], "side": "buy", "type": "limit",
                             "size": min_size(market, price=Decimal(low)), "price": low})
        assert r.status_code == 201, r.text
        assert order_count(sandbox.url, venue, account["account_id"]) == 1
        assert paths(sandbox, venue).get(TIME_PATH[venue], 0) == before + 1
        assert client.exchange.options["timeDifference"] != 120_000


def test_two_gateways_starting_together_sync_each_scope_once(sqlite_url) -> None:
    tenant = create_tenant(sqlite_url, "pair")
    with ServerThread(sandbox_app(history_lag_ms=0)) as fresh:
        with gateways(fresh.url, sqlite_url, 2, redis_url=REDIS_URL, venues=VENUES) as servers:
            syncs = [httpx.get(f"{s.url}/v1/connectors/stats", timeout=T).json()["by_venue"] for s in servers]
            for venue in VENUES:  # one market load in all, whoever made it
                assert sum(each.get(venue, {}).get("syncs", 0) for each in syncs) == 1, syncs
            assert paths(fresh, "binanceusdm").get(MARKETS_PATH["binanceusdm"]) == 1

            async def connect_both(venue: str) -> list[httpx.Response]:
                accounts = [new_account(fresh.url, venue) for _ in servers]
                async with httpx.AsyncClient(timeout=T) as client:
                    return await asyncio.gather(*(
                        client.post(f"{server.url}/v1/connections", headers=tenant.headers(user()),
                                    json={"exchange": venue, "credentials": account["credentials"]})
                        for server, account in zip(servers, accounts)))

            for venue in VENUES:
                assert {r.status_code for r in run(connect_both(venue))} == {201}
                assert paths(fresh, venue).get(TIME_PATH[venue]) == 1, paths(fresh, venue)


def test_an_unreachable_database_still_serves_from_the_venues(sandbox) -> None:
    from exgate.config import Settings
    from exgate.http.app import create_app
    from exgate.venues.registry import build_adapters

    store = Store("postgresql+asyncpg://exgate@127.0.0.1:1/nowhere", SecretBox([SECRET_KEY]))
    app = create_app(build_adapters(["binanceusdm"], {"binanceusdm": f"{sandbox.url}/binanceusdm"}),
                     settings=Settings(exchanges="binanceusdm"), store=store)
    with ServerThread(app) as gateway:
        r = httpx.get(f"{gateway.url}/v1/binanceusdm/markets", timeout=T)
        assert r.status_code == 200 and r.json()["markets"]
        body = httpx.get(f"{gateway.url}/v1/connectors/stats", timeout=T).json()
        assert body["database"]["available"] is False and body["database"]["warnings"] == 1
        assert body["by_venue"]["binanceusdm"]["syncs"] == 1


# -- the command line --------------------------------------------------------------------------------

def exgate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exgate", "connectors", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_connectors_warm_stats_and_invalidate(sandbox, sqlite_url) -> None:
    account = new_account(sandbox.url, "binanceusdm")

    async def connection() -> None:
        store = Store(sqlite_url, SecretBox([SECRET_KEY]))
        try:
            tenant, _ = await store.create_tenant("cli")
            await store.create_connection(tenant.id, "u1", "binanceusdm", account["account_id"],
                                          account["credentials"], {}, True)
        finally:
            await store.close()

    run(connection())
    env = {"EXGATE_DATABASE_URL": sqlite_url, "EXGATE_EXCHANGES": "binanceusdm,bybit",
           "EXGATE_UPSTREAMS": ",".join(f"{v}={sandbox.url}/{v}" for v in VENUES)}
    env.pop("EXGATE_REDIS_URL", None)
    first = exgate(env, "warm")
    assert first.returncode == 0, first.stderr
    assert "binanceusdm: markets" in first.stdout and "(from the venue)" in first.stdout
    assert "binanceusdm: clock offset" in first.stdout and "synced now; 1 active connection" in first.stdout
    assert "bybit: clock offset" not in first.stdout  # no connection on it
    second = exgate(env, "warm")
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("(from stored snapshot)") == 2 and "(stored; 1 active connection)" in second.stdout
    stats = exgate(env, "stats")
    assert stats.returncode == 0, stats.stderr
    assert "entries: 3 (valid 3, expired 0, invalid 0); hits 3;" in stats.stdout  # the second warm's
    assert "binanceusdm: 2 entries (valid 2" in stats.stdout
    dropped = exgate(env, "invalidate", "--exchange", "binanceusdm")
    assert dropped.returncode == 0 and "invalidated 2 entries of binanceusdm" in dropped.stdout, dropped
    assert "binanceusdm: 2 entries (valid 0, expired 0, invalid 2)" in exgate(env, "stats").stdout
