"""Accounts and trading end to end, on each of the four venues: the HTTP API of two gateway
instances (sharing Redis and the SQL store) over the sandbox's accounts, signed by ccxt."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from tests.accounts_harness import (VENUES, btc_market, create_tenant, gateways, make_store, min_size, new_account,
                                    price_below, run, sandbox_app, sandbox_state, venue_paths, venue_requests)
from tests.conftest import TEST_REDIS_URL, ServerThread, require_fixtures
from tests.store_db import pg_database  # noqa: F401  (fixture)

require_fixtures()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[ServerThread]:
    with ServerThread(sandbox_app(history_lag_ms=0)) as server:
        yield server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(request, tmp_path_factory) -> str:
    """The store on a fresh SQLite file, then on a fresh database of the machine's PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('store')}/exgate.db"
    else:
        url = request.getfixturevalue("pg_database")
    run(make_store(url).close())
    return url


@pytest.fixture(scope="module")
def tenant(db_url):
    return create_tenant(db_url, "acme")


@pytest.fixture(scope="module")
def instances(sandbox, db_url) -> Iterator[list[ServerThread]]:
    with gateways(sandbox.url, db_url, 2, redis_url=TEST_REDIS_URL) as servers:
        yield servers


def paths_since(sandbox_url: str, venue: str, before: dict[str, int]) -> dict[str, int]:
    """The requests per path since ``before`` (a by_path snapshot)."""
    now = venue_paths(sandbox_url, venue)
    return {p: n - before.get(p, 0) for p, n in now.items() if n != before.get(p, 0)}


def connect(gateway: ServerThread, sandbox: ServerThread, tenant, user: str, venue: str) -> tuple[dict, dict]:
    """A funded sandbox account on ``venue`` connected for ``user``: (account, connection)."""
    account = new_account(sandbox.url, venue)
    r = httpx.post(f"{gateway.url}/v1/connections", headers=tenant.headers(user), timeout=30,
                   json={"exchange": venue, "credentials": account["credentials"], "is_primary": True})
    assert r.status_code == 201, r.text
    return account, r.json()


@pytest.mark.parametrize("venue", VENUES)
def test_trading_flow_on_each_venue(venue, sandbox, instances, tenant) -> None:
    one, two = instances
    user = f"user-{venue}"
    account, connection = connect(one, sandbox, tenant, user, venue)
    headers = tenant.headers(user)
    params = {"exchange": venue}
    market = btc_market(one.url, venue)
    symbol = market["symbol"]
    low = price_below(one.url, venue, market)
    size = min_size(market, price=Decimal(low))
    assert connection["account_id"] and "secret" not in str(connection).lower()

    # a resting limit order: one upstream request (market data warmed above)
    before, paths = venue_requests(sandbox.url, venue), venue_paths(sandbox.url, venue)
    r = httpx.post(f"{one.url}/v1/orders", params=params, headers=headers, timeout=30,
                   json={"symbol": symbol, "side": "buy", "type": "limit", "size": size, "price": low})
    assert r.status_code == 201, r.text
    placed = r.json()
    assert venue_requests(sandbox.url, venue) - before == 1, paths_since(sandbox.url, venue, paths)
    assert placed["order"]["status"] == "open" and placed["fill"] is None
    order_id = placed["order"]["id"]
    assert placed["order"]["client_order_id"]

    # it is open, on both instances, right away
    for gateway in (one, two):
        r = httpx.get(f"{gateway.url}/v1/account/orders/open", params=params, headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        assert [o["id"] for o in r.json()["orders"]] == [order_id]
    assert len(sandbox_state(sandbox.url, venue, account["account_id"])["open_orders"]) == 1

    # cancel: one upstream request, gone everywhere
    before = venue_requests(sandbox.url, venue)
    r = httpx.delete(f"{one.url}/v1/orders/{order_id}", params={**params, "symbol": symbol}, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert venue_requests(sandbox.url, venue) - before == 1
    for gateway in (one, two):
        r = httpx.get(f"{gateway.url}/v1/account/orders/open", params=params, headers=headers, timeout=30)
        assert r.json()["orders"] == []

    # a market order: the fill and the position after, in the answer
    r = httpx.get(f"{two.url}/v1/account/positions", params=params, headers=headers, timeout=30)
    assert r.status_code == 200 and r.json()["positions"] == [], r.text
    before = venue_requests(sandbox.url, venue)
    r = httpx.post(f"{one.url}/v1/orders", params=params, headers=headers, timeout=30,
                   json={"symbol": symbol, "side": "buy", "type": "market", "size": size})
    assert r.status_code == 201, r.text
    filled = r.json()
    spent = venue_requests(sandbox.url, venue) - before
    assert spent == filled["confirmation"]["upstream_requests"]
    assert spent <= (1 if venue in ("hyperliquid", "binanceusdm") else 2), venue_paths(sandbox.url, venue)
    assert Decimal(filled["fill"]["size"]) == Decimal(size)
    assert Decimal(filled["fill"]["average_price"]) > 0
    assert filled["position"]["side"] == "long" and Decimal(filled["position"]["size"]) == Decimal(size)

    # the position and the fill, read right after on the other instance
    r = httpx.get(f"{two.url}/v1/account/positions", params=params, headers=headers, timeout=30)
    positions = r.json()["positions"]
    assert [(p["symbol"], p["side"], Decimal(p["size"])) for p in positions] == [(symbol, "long", Decimal(size))]
    assert abs(Decimal(positions[0]["entry_price"]) - Decimal(filled["fill"]["average_price"])) \
        <= Decimal(market["tick_size"])
    r = httpx.get(f"{two.url}/v1/account/trades", params={**params, "symbol": symbol}, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    fills = r.json()["fills"]
    assert sum(Decimal(f["size"]) for f in fills) == Decimal(size) and fills[0]["side"] == "buy"
    r = httpx.get(f"{two.url}/v1/account/summary", params=params, headers=headers, timeout=30)
    summary = r.json()
    assert summary["currency"] in ("USDT", "USDC") and Decimal(summary["equity"]) > 0
    assert Decimal(summary["margin_used"]) > 0

    # cancel-all: two resting orders, both gone
    ids = []
    for fraction in ("0.8", "0.75"):
        r = httpx.post(f"{one.url}/v1/orders", params=params, headers=headers, timeout=30,
                       json={"symbol": symbol, "side": "buy", "type": "limit", "size": size,
                             "price": price_below(one.url, venue, market, fraction)})
        assert r.status_code == 201, r.text
        ids.append(r.json()["order"]["id"])
    r = httpx.delete(f"{one.url}/v1/orders", params={**params, "symbol": symbol}, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert sorted(r.json()["canceled"]) == sorted(ids)
    r = httpx.get(f"{two.url}/v1/account/orders/open", params=params, headers=headers, timeout=30)
    assert r.json()["orders"] == []
    assert sandbox_state(sandbox.url, venue, account["account_id"])["open_orders"] == []

    # leverage
    r = httpx.post(f"{one.url}/v1/account/leverage", params=params, headers=headers, timeout=30,
                   json={"symbol": symbol, "leverage": 5})
    assert r.status_code == 200, r.text
    state = sandbox_state(sandbox.url, venue, account["account_id"])
    assert 5 in state["leverage"].values(), state["leverage"]


@pytest.mark.parametrize("venue", ["binanceusdm", "hyperliquid"])
def test_100_concurrent_account_reads_over_3_instances_make_1_upstream_call(venue, sandbox, db_url, tenant) -> None:
    with gateways(sandbox.url, db_url, 3, redis_url=TEST_REDIS_URL, venues=(venue,)) as servers:
        user = f"poller-{venue}"
        connect(servers[0], sandbox, tenant, user, venue)
        headers = tenant.headers(user)
        before = venue_requests(sandbox.url, venue)

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as client:
                return await asyncio.gather(*(
                    client.get(f"{servers[i % 3].url}/v1/account/{'summary' if i % 2 else 'positions'}",
                               params={"exchange": venue}, headers=headers) for i in range(100)))

        answers = run(burst())
        assert {r.status_code for r in answers} == {200}
        assert venue_requests(sandbox.url, venue) - before == 1, venue_paths(sandbox.url, venue)


@pytest.mark.parametrize("venue,emulated", [("binanceusdm", True), ("bybit", False)])
def test_cancel_all_without_a_symbol_is_emulated_where_the_venue_needs_one(venue, emulated, sandbox, instances,
                                                                            tenant) -> None:
    """Binance's cancel-all needs a symbol (ccxt refuses before sending): exgate cancels the open
    orders one by one; Bybit's cancels everything in one call."""
    one, _ = instances
    user = f"cancel-all-{venue}"
    account, _ = connect(one, sandbox, tenant, user, venue)
    headers, params = tenant.headers(user), {"exchange": venue}
    market = btc_market(one.url, venue)
    low = price_below(one.url, venue, market)
    for _ in range(2):
        r = httpx.post(f"{one.url}/v1/orders", params=params, headers=headers, timeout=30,
                       json={"symbol": market["symbol"], "side": "buy", "type": "limit",
                             "size": min_size(market, price=Decimal(low)), "price": low})
        assert r.status_code == 201, r.text
    r = httpx.delete(f"{one.url}/v1/orders", params=params, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert (r.json()["emulated"], len(r.json()["canceled"])) == (emulated, 2)
    assert sandbox_state(sandbox.url, venue, account["account_id"])["open_orders"] == []
