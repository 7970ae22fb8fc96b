"""The sandbox's Bybit v5 private REST through a real ccxt bybit client: v5 signatures
verified as Bybit does, a unified trading account, orders on the matching engine, positions,
order lookups that see fills at once, lagged executions, Bybit's retCodes raising ccxt's
exception classes, injected order faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import ccxt
import httpx
import pytest

from tests import accounts_harness
from tests.conftest import ServerThread, ccxt_client, path_count, sandbox_data, sandbox_stats

VENUE = "bybit"
SYMBOL = "BTC/USDT:USDT"
LAG_MS = 1_000


@pytest.fixture(scope="module")
def box() -> Iterator[ServerThread]:
    from exgate.sandbox.app import create_sandbox_app

    with ServerThread(create_sandbox_app(sandbox_data(), venues=[VENUE], history_lag_ms=LAG_MS)) as server:
        yield server


def new_account(box: ServerThread, balance: str = "10000") -> dict:
    return accounts_harness.new_account(box.url, VENUE, balance)


def client(box: ServerThread, credentials: dict, **options):
    return ccxt_client(VENUE, box.url, {**credentials, "options": options})


async def market_price(exchange) -> float:
    return (await exchange.fetch_ticker(SYMBOL))["last"]


async def by_link(exchange, link: str) -> dict | None:
    """The order with ``orderLinkId`` ``link`` as ``/v5/order/realtime`` shows it (open or closed)."""
    found = await exchange.fetch_open_orders(SYMBOL, params={"orderLinkId": link})
    return found[0] if found else None


async def test_unified_balance_orders_cancel_one_request_each(box):
    account = new_account(box, "10000")
    ex = client(box, account["credentials"])
    try:
        balance = await ex.fetch_balance()
        assert balance["USDT"]["total"] == 10000 and balance["USDT"]["free"] == 10000
        assert ex.options["enableUnifiedAccount"] is True  # query-api says uta 1
        await ex.load_markets()
        price = float(ex.price_to_precision(SYMBOL, await market_price(ex) * 0.8))
        before = path_count(sandbox_stats(box), VENUE, "/v5/order/create")
        total_before = sandbox_stats(box)["venues"][VENUE]["requests"]
        order = await ex.create_order(SYMBOL, "limit", "buy", 0.01, price)
        stats = sandbox_stats(box)
        assert path_count(stats, VENUE, "/v5/order/create") == before + 1
        assert stats["venues"][VENUE]["requests"] == total_before + 1  # no side call per order
        headers = {k.lower(): v for k, v in ex.last_response_headers.items()}
        assert headers["x-bapi-limit"] == "10" and headers["x-bapi-limit-status"] == "9"  # per-account order rate
        opened = await ex.fetch_open_orders(SYMBOL)
        assert [o["id"] for o in opened] == [order["id"]]
        assert opened[0]["price"] == price and opened[0]["amount"] == 0.01 and opened[0]["status"] == "open"
        assert [o["id"] for o in await ex.fetch_open_orders()] == [order["id"]]  # settleCoin=USDT
        balance = await ex.fetch_balance()
        assert balance["USDT"]["used"] == pytest.approx(price * 0.01 / 20)  # default leverage 20
        await ex.cancel_order(order["id"], SYMBOL)
        assert await ex.fetch_open_orders(SYMBOL) == []
        assert [(o["id"], o["status"]) for o in await ex.fetch_canceled_orders(SYMBOL)] == [(order["id"], "canceled")]
        assert (await ex.fetch_trading_fee(SYMBOL))["taker"] == 0.0005
        with pytest.raises(ccxt.OrderNotFound):  # 110001
            await ex.cancel_order(order["id"], SYMBOL)
    finally:
        await ex.close()


async def test_market_buy_fill_seen_at_once_trades_lagged(box):
    account = new_account(box, "10000")
    ex = client(box, account["credentials"])
    try:
        await ex.load_markets()
        order = await ex.create_order(SYMBOL, "market", "buy", 0.02, params={"clientOrderId": "mkt-buy-1"})
        assert order["clientOrderId"] == "mkt-buy-1"
        assert await ex.fetch_my_trades(SYMBOL) == []  # the execution history lags
        found = await by_link(ex, "mkt-buy-1")  # the confirmation read: fills at once
        assert found["id"] == order["id"] and found["status"] == "closed" and found["filled"] == 0.02
        fee = float(found["info"]["cumExecFee"])
        assert fee == pytest.approx(found["average"] * 0.02 * 0.0005)
        by_id = await ex.fetch_order(order["id"], SYMBOL, params={"acknowledged": True})
        assert by_id["filled"] == 0.02
        position = await ex.fetch_position(SYMBOL)
        assert position["side"] == "long" and position["contracts"] == 0.02
        assert position["entryPrice"] == pytest.approx(found["average"])
        assert [p["symbol"] for p in await ex.fetch_positions()] == [SYMBOL]
        state = accounts_harness.sandbox_state(box.url, VENUE, account["account_id"])
        assert float(state["wallet"]) == pytest.approx(10000 - fee)
        assert (await ex.fetch_balance())["USDT"]["total"] == pytest.approx(10000 - fee)
        await asyncio.sleep(LAG_MS / 1000 + 0.2)
        trades = await ex.fetch_my_trades(SYMBOL)
        assert {t["order"] for t in trades} == {order["id"]}
        assert sum(t["amount"] for t in trades) == pytest.approx(0.02)
        assert sum(t["fee"]["cost"] for t in trades) == pytest.approx(fee)
        await ex.create_order(SYMBOL, "market", "sell", 0.02, params={"reduceOnly": True})
        assert (await ex.fetch_position(SYMBOL))["contracts"] in (0, None)
        assert await ex.fetch_positions() == []
    finally:
        await ex.close()


async def test_cancel_all_leverage_margin_mode(box):
    account = new_account(box)
    ex = client(box, account["credentials"])
    try:
        price = round(await market_price(ex) * 0.7, 1)
        for k in range(3):
            await ex.create_order(SYMBOL, "limit", "buy", 0.001, price + k)
        assert len(await ex.fetch_open_orders(SYMBOL)) == 3
        canceled = await ex.cancel_all_orders(SYMBOL)
        assert len(canceled) == 3
        assert await ex.fetch_open_orders(SYMBOL) == []
        await ex.set_leverage(10, SYMBOL)
        with pytest.raises(ccxt.BadRequest):  # 110043 Set leverage not modified
            await ex.set_leverage(10, SYMBOL)
        with pytest.raises(ccxt.BadRequest):  # 110013 over the market's maximum
            await ex.set_leverage(500, SYMBOL)
        await ex.set_margin_mode("isolated")
        state = accounts_harness.sandbox_state(box.url, VENUE, account["account_id"])
        assert state["leverage"] == {"BTCUSDT": 10}
        await ex.create_order(SYMBOL, "market", "buy", 0.01)
        position = await ex.fetch_position(SYMBOL)
        assert position["leverage"] == 10
        assert position["info"]["tradeMode"] == 1  # isolated
    finally:
        await ex.close()


async def test_order_rejections_raise_ccxt_classes(box):
    poor = new_account(box, "50")
    ex = client(box, poor["credentials"])
    try:
        price = await market_price(ex)
        with pytest.raises(ccxt.InsufficientFunds):  # 110007 ab not enough for new order
            await ex.create_order(SYMBOL, "market", "buy", 0.1)
        await ex.create_order(SYMBOL, "limit", "buy", 0.001, round(price * 0.5, 1), params={"clientOrderId": "dup-1"})
        with pytest.raises(ccxt.InvalidOrder):  # 110072 OrderLinkedID is duplicate
            await ex.create_order(SYMBOL, "limit", "buy", 0.001, round(price * 0.5, 1), params={"clientOrderId": "dup-1"})
        with pytest.raises(ccxt.InvalidOrder):  # 110017 reduce-only
            await ex.create_order(SYMBOL, "market", "sell", 0.001, params={"reduceOnly": True})
        with pytest.raises(ccxt.InvalidOrder):  # 110094 below the minimum order value
            await ex.create_order(SYMBOL, "limit", "buy", 0.001, 1000.0)
        # a post-only order that would take: accepted, then cancelled at once (Bybit's way)
        crossing = await ex.create_order(SYMBOL, "limit", "buy", 0.001, round(price * 1.05, 1),
                                         params={"postOnly": True, "clientOrderId": "po-1"})
        found = await by_link(ex, "po-1")
        assert found["id"] == crossing["id"] and found["status"] == "canceled" and found["filled"] == 0
        assert found["info"]["rejectReason"] == "EC_PostOnlyWillTakeLiquidity"
        assert await by_link(ex, "never-sent") is None
        assert len(await ex.fetch_open_orders(SYMBOL)) == 1
    finally:
        await ex.close()


async def test_signatures_keys_and_timestamps(box):
    account = new_account(box)
    good = client(box, account["credentials"])
    wrong_secret = client(box, {**account["credentials"], "secret": "x" * 64})
    unknown_key = client(box, {"apiKey": "k" * 64, "secret": "s" * 64})
    stale = client(box, account["credentials"])
    stale.nonce = lambda: stale.milliseconds() - 60_000  # outside the 5 s recv window
    try:
        await good.load_markets()
        for ex in (wrong_secret, unknown_key, stale):
            ex.markets, ex.markets_by_id, ex.symbols = good.markets, good.markets_by_id, good.symbols
            ex.currencies = good.currencies
            ex.options.update(enableUnifiedMargin=False, enableUnifiedAccount=True, unifiedMarginStatus=6)
        with pytest.raises(ccxt.AuthenticationError, match="10004"):
            await wrong_secret.fetch_balance()
        with pytest.raises(ccxt.AuthenticationError, match="10003"):
            await unknown_key.fetch_balance()
        with pytest.raises(ccxt.InvalidNonce, match="10002"):
            await stale.fetch_balance()
        assert (await good.fetch_balance())["USDT"]["total"] == 10000
    finally:
        for ex in (good, wrong_secret, unknown_key, stale):
            await ex.close()


def arm(box: ServerThread, fault: str, delay_ms: int = 0) -> None:
    accounts_harness.arm(box.url, VENUE, fault, delay_ms=delay_ms)


async def test_injected_faults(box):
    account = new_account(box)
    ex = client(box, account["credentials"])
    ex.timeout = 1_000
    try:
        price = round(await market_price(ex) * 0.8, 1)
        await ex.fetch_balance()  # unified-account detection done before the faults
        arm(box, "429")
        with pytest.raises(ccxt.RateLimitExceeded):  # retCode 10006
            await ex.create_order(SYMBOL, "limit", "buy", 0.001, price, params={"clientOrderId": "f-429"})
        assert await ex.fetch_open_orders(SYMBOL) == []
        assert await by_link(ex, "f-429") is None

        arm(box, "timeout", delay_ms=2_500)
        started = time.monotonic()
        with pytest.raises(ccxt.RequestTimeout):
            await ex.create_order(SYMBOL, "limit", "buy", 0.001, price, params={"clientOrderId": "f-timeout"})
        assert time.monotonic() - started < 2.0
        assert (await by_link(ex, "f-timeout"))["status"] == "open"

        arm(box, "5xx")
        with pytest.raises(ccxt.ExchangeError, match="10016"):  # HTTP 503, retCode 10016
            await ex.create_order(SYMBOL, "market", "buy", 0.001, params={"clientOrderId": "f-5xx"})
        found = await by_link(ex, "f-5xx")
        assert found["status"] == "closed" and found["filled"] == 0.001
    finally:
        await ex.close()


def test_account_order_rate_on_a_frozen_clock():
    """10 creates per second per account (Bybit's linear order rate): the 11th is retCode
    10006 with ``X-Bapi-Limit-Status`` 0 and nothing placed; a second later creates go again.
    Signed by hand with the sandbox's frozen clock (ccxt would sign with the wall clock)."""
    import hashlib
    import hmac
    import json

    from exgate.sandbox.app import create_sandbox_app
    from tests.conftest import ManualClock

    clock = ManualClock(int(time.time() * 1000))
    with ServerThread(create_sandbox_app(sandbox_data(), venues=[VENUE], clock=clock)) as server:
        account = new_account(server)
        key, secret = account["credentials"]["apiKey"], account["credentials"]["secret"]

        def create(http: httpx.Client, link: str) -> httpx.Response:
            body = json.dumps({"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
                               "qty": "0.001", "price": "10000", "orderLinkId": link})
            ts = str(clock.now)
            sign = hmac.new(secret.encode(), (ts + key + "5000" + body).encode(), hashlib.sha256).hexdigest()
            return http.post(f"{server.url}/{VENUE}/v5/order/create", content=body,
                             headers={"X-BAPI-API-KEY": key, "X-BAPI-TIMESTAMP": ts, "X-BAPI-RECV-WINDOW": "5000",
                                      "X-BAPI-SIGN": sign, "Content-Type": "application/json"})

        with httpx.Client() as http:
            answers = [create(http, f"rate-{k}") for k in range(11)]
            assert [a.json()["retCode"] for a in answers] == [0] * 10 + [10006]
            assert answers[9].headers["x-bapi-limit-status"] == "0" and answers[10].headers["x-bapi-limit"] == "10"
            state = accounts_harness.sandbox_state(server.url, VENUE, account["account_id"])
            assert len(state["open_orders"]) == 10
            clock.advance(1_000)
            assert create(http, "rate-after").json()["retCode"] == 0
