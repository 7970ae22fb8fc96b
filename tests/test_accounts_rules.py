"""Accounts and trading, the rules: isolation of tenants and users, authentication, secrets that
never leak, idempotent orders and bad input (unknown outcomes: ``test_accounts_faults``). Through the HTTP API of real gateway instances over the sandbox (real ccxt,
Redis db of ``EXGATE_TEST_REDIS_URL``, a migrated SQLite store)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from exgate.store import SecretBox, Store
from tests.accounts_harness import (SECRET_KEY, VENUES, T, Tenant, assert_problem, btc_market, connect,
                                    create_tenant, gateways, make_store, min_size, new_account, order_count,
                                    market_order, price_below, run, sandbox_app, sandbox_state, user, venue_paths)
from tests.conftest import TEST_REDIS_URL, ServerThread, require_fixtures

require_fixtures()



@pytest.fixture(scope="module")
def sandbox() -> Iterator[ServerThread]:
    with ServerThread(sandbox_app(history_lag_ms=0)) as server:
        yield server


@pytest.fixture(scope="module")
def db_url(tmp_path_factory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('store')}/exgate.db"
    run(make_store(url).close())
    return url


@pytest.fixture(scope="module")
def acme(db_url) -> Tenant:
    return create_tenant(db_url, "acme")


@pytest.fixture(scope="module")
def globex(db_url) -> Tenant:
    return create_tenant(db_url, "globex")


@pytest.fixture(scope="module")
def instances(sandbox, db_url) -> Iterator[list[ServerThread]]:
    with gateways(sandbox.url, db_url, 2, redis_url=TEST_REDIS_URL) as servers:
        yield servers


# -- 1. isolation and auth ------------------------------------------------------------------------------------
def test_a_tenant_sees_nothing_of_another_tenants_user_with_the_same_id(sandbox, instances, acme, globex) -> None:
    gw = instances[0].url
    same = user()
    account, theirs = connect(instances[0], sandbox, globex, same, "binanceusdm")
    mine = acme.headers(same)
    r = httpx.get(f"{gw}/v1/connections", headers=mine, timeout=T)
    assert r.status_code == 200 and r.json() == {"connections": []}, r.text
    for path in ("/v1/account/summary", "/v1/account/positions", "/v1/account/orders/open", "/v1/account/trades"):
        for params in ({}, {"exchange": "binanceusdm"}):
            assert_problem(httpx.get(f"{gw}{path}", params=params, headers=mine, timeout=T), 404)
    market = btc_market(gw, "binanceusdm")
    low = price_below(gw, "binanceusdm", market)
    order = {"symbol": market["symbol"], "side": "buy", "type": "limit", "size": min_size(market, price=Decimal(low)),
             "price": low}
    assert_problem(httpx.post(f"{gw}/v1/orders", params={"exchange": "binanceusdm"}, headers=mine, json=order,
                              timeout=T), 404)
    assert_problem(httpx.delete(f"{gw}/v1/orders", params={"exchange": "binanceusdm", "symbol": market["symbol"]},
                                headers=mine, timeout=T), 404)
    assert_problem(httpx.post(f"{gw}/v1/account/leverage", params={"exchange": "binanceusdm"}, headers=mine,
                              json={"symbol": market["symbol"], "leverage": 3}, timeout=T), 404)
    # the other tenant's connection id: 404, not 403 (its existence is not revealed), and untouched
    assert_problem(httpx.patch(f"{gw}/v1/connections/{theirs['id']}", headers=mine, json={"is_active": False},
                               timeout=T), 404)
    assert_problem(httpx.delete(f"{gw}/v1/connections/{theirs['id']}", headers=mine, timeout=T), 404)
    r = httpx.get(f"{gw}/v1/connections", headers=globex.headers(same), timeout=T)
    assert [(c["id"], c["is_active"]) for c in r.json()["connections"]] == [(theirs["id"], True)]
    assert order_count(sandbox.url, "binanceusdm", account["account_id"]) == 0


def test_a_user_cannot_use_another_users_connection(sandbox, instances, acme) -> None:
    gw = instances[1].url
    x, y = user(), user()
    account, ys = connect(instances[0], sandbox, acme, y, "bybit")
    connect(instances[0], sandbox, acme, x, "binanceusdm")  # x has a connection, on another venue
    xh = acme.headers(x)
    assert [c["exchange"] for c in httpx.get(f"{gw}/v1/connections", headers=xh, timeout=T).json()["connections"]] \
        == ["binanceusdm"]
    for path in ("/v1/account/summary", "/v1/account/orders/open"):
        assert_problem(httpx.get(f"{gw}{path}", params={"exchange": "bybit"}, headers=xh, timeout=T), 404)
    market = btc_market(gw, "bybit")
    r = httpx.post(f"{gw}/v1/orders", params={"exchange": "bybit"}, headers=xh, timeout=T,
                   json={"symbol": market["symbol"], "side": "buy", "type": "market", "size": min_size(market)})
    assert_problem(r, 404)
    assert_problem(httpx.patch(f"{gw}/v1/connections/{ys['id']}", headers=xh, json={"is_primary": True},
                               timeout=T), 404)
    assert_problem(httpx.delete(f"{gw}/v1/connections/{ys['id']}", headers=xh, timeout=T), 404)
    assert order_count(sandbox.url, "bybit", account["account_id"]) == 0
    r = httpx.get(f"{gw}/v1/account/summary", params={"exchange": "bybit"}, headers=acme.headers(y), timeout=T)
    assert r.status_code == 200, r.text


def test_authentication_is_a_problem_401_or_403(instances, acme, db_url) -> None:
    gw = instances[0].url
    paths = [("GET", "/v1/connections"), ("GET", "/v1/account/summary"), ("POST", "/v1/orders"),
             ("DELETE", "/v1/connections/00000000-0000-0000-0000-000000000000")]
    body = {"symbol": "BTC/USDT:USDT", "side": "buy", "type": "market", "size": "0.001"}
    revoked = create_tenant(db_url, f"gone-{uuid.uuid4().hex[:6]}")

    async def revoke() -> None:
        store = Store(db_url, SecretBox([SECRET_KEY]))
        try:
            assert await store.revoke_tenant(revoked.name)
        finally:
            await store.close()

    assert httpx.get(f"{gw}/v1/connections", headers=revoked.headers("u"), timeout=T).status_code == 200
    run(revoke())
    cases = [({"X-User-Id": "u"}, 401), ({"Authorization": "Bearer nope", "X-User-Id": "u"}, 401),
             ({"Authorization": acme.key, "X-User-Id": "u"}, 401),  # no Bearer scheme
             (revoked.headers("u"), 401), ({"Authorization": f"Bearer {acme.key}"}, 403),
             ({"Authorization": f"Bearer {acme.key}", "X-User-Id": ""}, 403)]
    for headers, status in cases:
        for method, path in paths:
            r = httpx.request(method, f"{gw}{path}", headers=headers, json=body if method == "POST" else None,
                              timeout=T)
            problem = assert_problem(r, status)
            assert acme.key not in r.text and revoked.key not in r.text
            assert problem["field"] == ("Authorization" if status == 401 else "X-User-Id"), problem


# -- 5. bad input -------------------------------------------------------------------------------------------
def test_unknown_and_inactive_connections_are_404(sandbox, instances, acme) -> None:
    gw = instances[0].url
    who = user()
    headers = acme.headers(who)
    assert_problem(httpx.get(f"{gw}/v1/account/summary", headers=headers, timeout=T), 404)  # no primary
    connect(instances[0], sandbox, acme, who, "binanceusdm", is_primary=True)
    _, second = connect(instances[0], sandbox, acme, who, "bybit")
    assert second["is_primary"] is False
    assert_problem(httpx.get(f"{gw}/v1/account/summary", params={"exchange": "hyperliquid"}, headers=headers,
                             timeout=T), 404)
    for method in ("PATCH", "DELETE"):
        assert_problem(httpx.request(method, f"{gw}/v1/connections/{uuid.uuid4()}", headers=headers,
                                     json={"is_active": False} if method == "PATCH" else None, timeout=T), 404)
    r = httpx.get(f"{gw}/v1/account/summary", params={"exchange": "bybit"}, headers=headers, timeout=T)
    assert r.status_code == 200, r.text
    r = httpx.patch(f"{gw}/v1/connections/{second['id']}", headers=headers, json={"is_active": False}, timeout=T)
    assert r.status_code == 200 and r.json()["is_active"] is False, r.text
    for gateway in instances:  # inactive everywhere, cached reads or not
        for path in ("/v1/account/summary", "/v1/account/positions", "/v1/account/orders/open"):
            assert_problem(httpx.get(f"{gateway.url}{path}", params={"exchange": "bybit"}, headers=headers,
                                     timeout=T), 404)
    assert httpx.get(f"{gw}/v1/account/summary", headers=headers, timeout=T).status_code == 200  # the primary


def test_a_second_primary_and_a_duplicate_connection_are_409(sandbox, instances, acme) -> None:
    gw = instances[1].url
    who = user()
    headers = acme.headers(who)
    _, first = connect(instances[0], sandbox, acme, who, "binanceusdm", is_primary=True)
    _, second = connect(instances[0], sandbox, acme, who, "bybit")
    assert_problem(httpx.patch(f"{gw}/v1/connections/{second['id']}", headers=headers, json={"is_primary": True},
                               timeout=T), 409, "is_primary")
    account = new_account(sandbox.url, "bybit")
    r = httpx.post(f"{gw}/v1/connections", headers=headers, timeout=T,
                   json={"exchange": "binanceusdm", "credentials": new_account(sandbox.url, "binanceusdm")["credentials"]})
    assert_problem(r, 409, "binanceusdm")
    r = httpx.post(f"{gw}/v1/connections", headers=headers, timeout=T,
                   json={"exchange": "bybit", "credentials": account["credentials"], "is_primary": True})
    assert_problem(r, 409)
    connections = httpx.get(f"{gw}/v1/connections", headers=headers, timeout=T).json()["connections"]
    assert [(c["id"], c["is_primary"]) for c in connections] == [(first["id"], True), (second["id"], False)]
    # unset the first, then the second may be primary
    assert httpx.patch(f"{gw}/v1/connections/{first['id']}", headers=headers, json={"is_primary": False},
                       timeout=T).status_code == 200
    r = httpx.patch(f"{gw}/v1/connections/{second['id']}", headers=headers, json={"is_primary": True}, timeout=T)
    assert r.status_code == 200 and r.json()["is_primary"] is True, r.text


@pytest.fixture(scope="module")
def trader(sandbox, instances, acme) -> tuple[dict, dict, dict[str, str]]:
    """A funded binanceusdm account connected as primary: (account, connection, headers)."""
    who = user()
    account, connection = connect(instances[0], sandbox, acme, who, "binanceusdm", is_primary=True)
    return account, connection, acme.headers(who)


def test_malformed_order_fields_are_422_naming_the_field_and_allowed_values(sandbox, instances, trader) -> None:
    account, _, headers = trader
    gw = instances[0].url
    market = btc_market(gw, "binanceusdm")
    lot, tick, least = Decimal(market["lot_size"]), Decimal(market["tick_size"]), Decimal(market["min_size"])
    low = Decimal(price_below(gw, "binanceusdm", market))
    good = {"symbol": market["symbol"], "side": "buy", "type": "limit", "size": min_size(market, price=low),
            "price": str(low)}
    before = venue_paths(sandbox.url, "binanceusdm")
    cases = [
        ({"size": str(least - lot)} if least - lot > 0 else {"size": str(least / 2)}, "size", str(least)),
        ({"size": str(least + lot / 2)}, "size", str(lot)),
        ({"price": str(low + tick / 2)}, "price", str(tick)),
        ({"side": "long"}, "side", "sell"),
        ({"type": "stop"}, "type", "limit"),
        ({"price": None}, "price", "limit"),
        ({"type": "market"}, "price", "market"),
        ({"size": "-1"}, "size", "greater than 0"),
        ({"size": "lots"}, "size", "decimal"),
        ({"leverage": 3}, "leverage", "extra"),
    ]
    for change, field, allowed in cases:
        body = {k: v for k, v in {**good, **change}.items() if v is not None}
        r = httpx.post(f"{gw}/v1/orders", headers=headers, json=body, timeout=T)
        problem = assert_problem(r, 422, allowed)
        assert field in (problem.get("field") if isinstance(problem.get("field"), list) else [problem.get("field")]), \
            (change, problem)
    assert venue_paths(sandbox.url, "binanceusdm") == before  # nothing reached the venue
    assert order_count(sandbox.url, "binanceusdm", account["account_id"]) == 0


@pytest.mark.parametrize("venue", ["binanceusdm", "bybit"])
def test_an_order_the_venue_refuses_is_422_with_its_reason_and_a_corrected_retry_goes_through(
        venue, sandbox, instances, acme) -> None:
    gw = instances[0].url
    who = user()
    account, _ = connect(instances[0], sandbox, acme, who, venue, balance="20", is_primary=True)
    headers = {**acme.headers(who), "Idempotency-Key": f"k-{uuid.uuid4()}"}
    market = btc_market(gw, venue)
    low = Decimal(price_below(gw, venue, market, "0.9"))
    lot = Decimal(market["lot_size"])
    small = Decimal(min_size(market, price=low))
    huge = small + lot * 1000  # on the lot grid, far past what 20 USDT carries
    order = {"symbol": market["symbol"], "side": "buy", "type": "limit", "price": str(low)}
    r = httpx.post(f"{gw}/v1/orders", headers=headers, json={**order, "size": str(huge)}, timeout=T)
    problem = assert_problem(r, 422)
    assert problem.get("venue_error"), problem
    assert problem["venue_error"] in problem["detail"], problem
    assert {"binanceusdm": "Margin is insufficient. (code -2019)",
            "bybit": "(code 110007)"}[venue] in problem["detail"], problem
    assert problem["venue_error_type"] == "InsufficientFunds", problem
    assert order_count(sandbox.url, venue, account["account_id"]) == 0
    # the same key, corrected: placed (the failure left no record), on the other instance too
    r = httpx.post(f"{instances[1].url}/v1/orders", headers=headers, json={**order, "size": str(small)}, timeout=T)
    assert r.status_code == 201, r.text
    assert r.json()["order"]["status"] == "open"
    again = httpx.post(f"{gw}/v1/orders", headers=headers, json={**order, "size": str(small)}, timeout=T)
    assert (again.status_code, again.json()["order"]["id"]) == (201, r.json()["order"]["id"])
    assert order_count(sandbox.url, venue, account["account_id"]) == 1


@pytest.mark.parametrize("venue", ["binanceusdm", "bybit"])
def test_a_wrong_secret_is_422_naming_the_venues_answer_stores_nothing_and_is_sent_once(
        venue, sandbox, instances, acme) -> None:
    gw = instances[1].url
    who = user()
    headers = acme.headers(who)
    credentials = dict(new_account(sandbox.url, venue)["credentials"])
    credentials["secret"] = credentials["secret"][::-1]
    before = venue_paths(sandbox.url, venue)
    r = httpx.post(f"{gw}/v1/connections", headers=headers, timeout=T,
                   json={"exchange": venue, "credentials": credentials, "is_primary": True})
    problem = assert_problem(r, 422)
    assert problem.get("venue_error") and problem["venue_error"] in problem["detail"], problem
    code = {"binanceusdm": "-1022", "bybit": "10004"}[venue]
    assert code in problem["detail"], problem
    assert credentials["secret"] not in r.text and credentials["apiKey"] not in r.text
    after = venue_paths(sandbox.url, venue)
    sent = {p: n - before.get(p, 0) for p, n in after.items() if n != before.get(p, 0)}
    # never retried: each signed path once; Binance's check is one request, Bybit's is ccxt's account-type
    # probe (two signed reads sent together by fetch_balance, both refused)
    assert set(sent.values()) == {1}, sent
    assert len(sent) == (1 if venue == "binanceusdm" else 2), sent
    assert httpx.get(f"{gw}/v1/connections", headers=headers, timeout=T).json() == {"connections": []}
    assert_problem(httpx.get(f"{gw}/v1/account/summary", headers=headers, timeout=T), 404)


# -- 2. secrets never leak ---------------------------------------------------------------------------------------
def redis_dump(url: str) -> list[bytes]:
    """Every key of the test database and its value(s), whatever the type."""
    import redis

    client = redis.Redis.from_url(url)
    out: list[bytes] = []
    try:
        for key in client.scan_iter(count=1000):
            out.append(key)
            kind = client.type(key)
            if kind == b"string":
                out.append(client.get(key) or b"")
            elif kind == b"hash":
                for k, v in client.hgetall(key).items():
                    out += [k, v]
            elif kind == b"list":
                out += client.lrange(key, 0, -1)
            elif kind == b"set":
                out += list(client.smembers(key))
            elif kind == b"zset":
                out += [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
            elif kind == b"stream":
                for _, fields in client.xrange(key):
                    for k, v in fields.items():
                        out += [k, v]
    finally:
        client.close()
    return out


def test_credentials_and_tenant_keys_never_appear_in_responses_logs_metrics_or_redis(
        sandbox, instances, acme, capfd) -> None:
    from exgate.logs import configure_logging

    seen: list[str] = []

    def keep(response: httpx.Response) -> None:
        response.read()
        seen.append(f"{response.status_code} {dict(response.headers)} {response.text}")

    secrets: list[str] = [acme.key, SECRET_KEY]
    configure_logging("debug")
    try:
        with httpx.Client(timeout=T, event_hooks={"response": [keep]}) as client:
            for i, venue in enumerate(VENUES):
                gw, other = instances[i % 2].url, instances[(i + 1) % 2].url
                who = user()
                headers = acme.headers(who)
                account = new_account(sandbox.url, venue)
                credentials = account["credentials"]
                secrets += [credentials[k] for k in ("apiKey", "secret", "privateKey") if k in credentials]
                if "secret" in credentials:  # a wrong secret first: refused by the venue
                    r = client.post(f"{gw}/v1/connections", headers=headers, json={
                        "exchange": venue, "credentials": {**credentials, "secret": credentials["secret"][::-1]}})
                    assert r.status_code == 422, r.text
                r = client.post(f"{gw}/v1/connections", headers=headers,
                                json={"exchange": venue, "credentials": credentials, "is_primary": True})
                assert r.status_code == 201, r.text
                connection = r.json()
                if venue == "binanceusdm":
                    assert connection["account_id"].startswith("apikey:")
                r = client.post(f"{gw}/v1/connections", headers=headers,  # a duplicate: 409
                                json={"exchange": venue, "credentials": credentials})
                assert r.status_code == 409, r.text
                market = btc_market(gw, venue)
                low = price_below(gw, venue, market)
                size = min_size(market, price=Decimal(low))
                order = {"symbol": market["symbol"], "side": "buy", "type": "limit", "size": size, "price": low}
                r = client.post(f"{gw}/v1/orders", headers={**headers, "Idempotency-Key": f"k-{uuid.uuid4()}"},
                                json=order)
                assert r.status_code == 201, r.text
                assert client.post(f"{gw}/v1/orders", headers=headers, json={**order, "side": "up"}).status_code == 422
                r = client.post(f"{gw}/v1/orders", headers=headers, json={**order, "size": str(Decimal(size) * 10 ** 6)})
                assert r.status_code == 422, r.text
                for gateway in (gw, other):
                    for path in ("summary", "positions", "orders/open", "trades"):
                        r = client.get(f"{gateway}/v1/account/{path}", headers=headers,
                                       params={"symbol": market["symbol"]} if path == "trades" else None)
                        assert r.status_code == 200, r.text
                assert client.post(f"{gw}/v1/account/leverage", headers=headers,
                                   json={"symbol": market["symbol"], "leverage": 3}).status_code == 200
                assert client.delete(f"{gw}/v1/orders", headers=headers,
                                     params={"symbol": market["symbol"]}).status_code == 200
                assert client.get(f"{other}/v1/connections", headers=headers).status_code == 200
            metrics = [client.get(f"{g.url}/metrics").text for g in instances]
    finally:
        configure_logging("info")
    out, err = capfd.readouterr()
    assert "connection_created" in out + err  # the logs were captured
    stored = redis_dump(TEST_REDIS_URL)
    assert any(b"acct" in k or b"account" in k for k in stored), "no account keys in Redis to scan"
    places = {"responses": "\n".join(seen), "logs": out + err, "metrics": "\n".join(metrics)}
    for secret in secrets:
        for where, text in places.items():
            assert secret not in text, f"a secret appears in the {where}"
        assert not any(secret.encode() in item for item in stored), "a secret appears in Redis"


# -- 3. idempotency ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("venue,kind", [("binanceusdm", "market"), ("hyperliquid", "limit")])
def test_20_concurrent_identical_orders_with_one_key_on_2_instances_place_one(venue, kind, sandbox, instances,
                                                                              acme) -> None:
    who = user()
    account, _ = connect(instances[0], sandbox, acme, who, venue, is_primary=True)
    market = btc_market(instances[0].url, venue)
    low = price_below(instances[0].url, venue, market)
    order = {"symbol": market["symbol"], "side": "buy", "type": kind, "size": min_size(market, price=Decimal(low))}
    if kind == "limit":
        order["price"] = low
    headers = {**acme.headers(who), "Idempotency-Key": f"burst-{uuid.uuid4()}"}
    before = venue_paths(sandbox.url, venue)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=T) as client:
            return await asyncio.gather(*(client.post(f"{instances[i % 2].url}/v1/orders", headers=headers,
                                                      json=order) for i in range(20)))

    answers = run(burst())
    assert {r.status_code for r in answers} == {201}, {r.status_code: r.text for r in answers}
    assert len({r.json()["order"]["id"] for r in answers}) == 1
    assert len({r.content for r in answers}) == 1  # the first answer, byte for byte
    assert order_count(sandbox.url, venue, account["account_id"]) == 1
    state = sandbox_state(sandbox.url, venue, account["account_id"])
    if kind == "market":
        assert len(state["positions"]) == 1 and Decimal(state["positions"][0]["size"]) == Decimal(order["size"])
    else:
        assert len(state["open_orders"]) == 1
    order_path = {"binanceusdm": "/fapi/v1/order", "hyperliquid": "/exchange"}[venue]
    after = venue_paths(sandbox.url, venue)
    assert after.get(order_path, 0) - before.get(order_path, 0) == 1, after


# -- 6. a leverage change, read on the other instance -------------------------------------------------------------
@pytest.mark.parametrize("venue", ["binanceusdm", "hyperliquid"])
def test_positions_read_right_after_a_leverage_change_on_one_instance_show_it_on_the_other(
        venue, sandbox, instances, acme) -> None:
    one, two = instances
    who = user()
    connect(one, sandbox, acme, who, venue, is_primary=True)
    headers = acme.headers(who)
    order = market_order(one.url, venue)
    assert httpx.post(f"{one.url}/v1/orders", headers=headers, json=order, timeout=T).status_code == 201
    r = httpx.get(f"{two.url}/v1/account/positions", headers=headers, timeout=T)  # cached on two now
    (held,) = r.json()["positions"]
    leverage = 7 if Decimal(held["leverage"] or 0) != 7 else 6
    r = httpx.post(f"{one.url}/v1/account/leverage", headers=headers, timeout=T,
                   json={"symbol": order["symbol"], "leverage": leverage})
    assert r.status_code == 200, r.text
    r = httpx.get(f"{two.url}/v1/account/positions", headers=headers, timeout=T)
    assert [Decimal(p["leverage"]) for p in r.json()["positions"]] == [leverage], r.text
