"""Accounts and trading, unknown outcomes: a timeout, a 5xx or a 429 injected by the sandbox
on an order. The order is never re-sent: found by its client order id it is 201 as usual, else
202 ``unknown``; a retry with the same Idempotency-Key looks it up, never sends a second order."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from tests.accounts_harness import (T, arm, connect, create_tenant, gateways, make_store, market_order, order_count, run,
                                    sandbox_app, user, venue_paths)
from tests.conftest import ServerThread, require_fixtures

require_fixtures()


@pytest.fixture(scope="module")
def db_url(tmp_path_factory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('store')}/exgate.db"
    run(make_store(url).close())
    return url


@pytest.fixture(scope="module")
def acme(db_url):
    return create_tenant(db_url, "acme")


ORDER_PATH = {"binanceusdm": "/fapi/v1/order", "bybit": "/v5/order/create", "hyperliquid": "/exchange",
              "pacifica": "/api/v1/orders/create_market"}
FAULT_VENUES = ("binanceusdm", "bybit", "hyperliquid", "pacifica")


@pytest.fixture(scope="module")
def faulty() -> Iterator[ServerThread]:
    """A sandbox of its own for injected faults (they are armed per venue, for the next orders)."""
    with ServerThread(sandbox_app(history_lag_ms=0)) as server:
        yield server


@pytest.fixture(scope="module")
def impatient(faulty, db_url) -> Iterator[ServerThread]:
    """One gateway with a 1.5 s upstream timeout and no Redis (its budget bans stay its own)."""
    with gateways(faulty.url, db_url, 1, timeout_ms=1500, venues=FAULT_VENUES) as servers:
        yield servers[0]


def sent_orders(sandbox_url: str, venue: str, at_least: int = 0) -> int:
    """Requests on the venue's order path (Binance's order lookups share it: GET /fapi/v1/order),
    waiting up to 4 s for ``at_least`` (the sandbox counts a request when its answer ends: a
    held one late)."""
    import time

    for _ in range(80):
        count = venue_paths(sandbox_url, venue).get(ORDER_PATH[venue], 0)
        if count >= at_least:
            return count
        time.sleep(0.05)
    return count


def lookups_on_order_path(venue: str, answer: dict) -> int:
    """The answer's requests after the order itself that hit the order path (Binance's lookup)."""
    return answer["confirmation"]["upstream_requests"] - 1 if venue == "binanceusdm" else 0


@pytest.mark.parametrize("fault", ["timeout", "5xx"])
@pytest.mark.parametrize("venue", FAULT_VENUES)
def test_a_lost_answer_is_found_by_the_client_order_id_and_never_resent(venue, fault, faulty, impatient,
                                                                         acme) -> None:
    who = user()
    account, _ = connect(impatient, faulty, acme, who, venue, is_primary=True)
    order = market_order(impatient.url, venue)
    headers = {**acme.headers(who), "Idempotency-Key": f"k-{uuid.uuid4()}"}
    arm(faulty.url, venue, fault, delay_ms=2500)
    before = sent_orders(faulty.url, venue)
    r = httpx.post(f"{impatient.url}/v1/orders", headers=headers, json=order, timeout=T)
    assert r.status_code == 201, r.text
    placed = r.json()
    assert placed["outcome"] == "placed" and placed["order"]["client_order_id"], placed
    assert Decimal(placed["order"]["filled"]) == Decimal(order["size"]), placed
    expected = before + (2 if venue == "binanceusdm" else 1)  # the order (and Binance's lookup, on its path)
    assert sent_orders(faulty.url, venue, expected) == expected
    assert order_count(faulty.url, venue, account["account_id"]) == 1
    # a retry with the key: the same answer, nothing sent
    again = httpx.post(f"{impatient.url}/v1/orders", headers=headers, json=order, timeout=T)
    assert (again.status_code, again.json()["order"]["id"]) == (201, placed["order"]["id"])
    assert sent_orders(faulty.url, venue) == expected
    assert order_count(faulty.url, venue, account["account_id"]) == 1
    r = httpx.get(f"{impatient.url}/v1/account/positions", headers=acme.headers(who), timeout=T)
    assert [Decimal(p["size"]) for p in r.json()["positions"]] == [Decimal(order["size"])], r.text


@pytest.mark.parametrize("venue", FAULT_VENUES)
def test_a_429_on_an_order_is_202_unknown_not_resent_and_a_retry_sends_nothing(venue, faulty, db_url, acme) -> None:
    with gateways(faulty.url, db_url, 1, timeout_ms=1500, venues=(venue,)) as (gateway,):
        who = user()
        account, _ = connect(gateway, faulty, acme, who, venue, is_primary=True)
        order = market_order(gateway.url, venue)
        headers = {**acme.headers(who), "Idempotency-Key": f"k-{uuid.uuid4()}"}
        arm(faulty.url, venue, "429")
        before = sent_orders(faulty.url, venue)
        r = httpx.post(f"{gateway.url}/v1/orders", headers=headers, json=order, timeout=T)
        assert r.status_code == 202, r.text
        unknown = r.json()
        assert unknown["outcome"] == "unknown" and unknown["order"] is None, unknown
        assert "not re-sent" in unknown["detail"] and "Idempotency-Key" in unknown["detail"], unknown
        sent = sent_orders(faulty.url, venue)
        assert sent == before + 1 + lookups_on_order_path(venue, unknown)
        assert order_count(faulty.url, venue, account["account_id"]) == 0
        again = httpx.post(f"{gateway.url}/v1/orders", headers=headers, json=order, timeout=T)
        assert again.status_code == 202, again.text
        assert again.json()["outcome"] == "unknown" and again.json()["order"] is None, again.text
        # never a second order: at most the retry's one lookup (Binance's is on the order path)
        assert sent_orders(faulty.url, venue) - sent <= (1 if venue == "binanceusdm" else 0)
        assert order_count(faulty.url, venue, account["account_id"]) == 0
