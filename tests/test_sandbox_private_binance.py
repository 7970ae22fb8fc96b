"""The sandbox's Binance USD-M private REST through a real ccxt binanceusdm client: signed
requests verified as Binance does, orders on the matching engine, positions, lagged fills,
Binance's error codes raising ccxt's exception classes, injected order faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import ccxt
import httpx
import pytest

from tests import accounts_harness
from tests.conftest import ServerThread, ccxt_client, path_count, sandbox_data, sandbox_stats

VENUE = "binanceusdm"
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
    """A ccxt binanceusdm on the sandbox. ccxt picks its fapi-only error table (-2019
    InsufficientFunds, -4116 InvalidOrder, ...) by the URL's ``https://fapi.binance.com``
    prefix; on the sandbox's URL it is pinned to that table, as a gateway pointing ccxt
    elsewhere must do."""
    exchange = ccxt_client(VENUE, box.url, {**credentials, "options": {"warnOnFetchOpenOrdersWithoutSymbol": False,
                                                                       **options}})
    exchange.get_exceptions_by_url = lambda url, kind: exchange.exceptions["linear"].get(kind, {})
    return exchange


async def market_price(exchange) -> float:
    return (await exchange.fetch_ticker(SYMBOL))["last"]


async def test_balance_orders_cancel_one_request_each(box):
    account = new_account(box, "10000")
    ex = client(box, account["credentials"])
    try:
        balance = await ex.fetch_balance()
        assert balance["USDT"]["total"] == 10000 and balance["USDT"]["free"] == 10000
        price = round(await market_price(ex) * 0.8, 1)
        before = path_count(sandbox_stats(box), VENUE, "/fapi/v1/order")
        total_before = sandbox_stats(box)["venues"][VENUE]["requests"]
        order = await ex.create_order(SYMBOL, "limit", "buy", 0.01, price)
        stats = sandbox_stats(box)
        assert path_count(stats, VENUE, "/fapi/v1/order") == before + 1
        assert stats["venues"][VENUE]["requests"] == total_before + 1  # no side call per order
        assert order["status"] == "open" and order["price"] == price and order["amount"] == 0.01
        headers = {k.lower(): v for k, v in ex.last_response_headers.items()}
        assert headers["x-mbx-order-count-10s"] == "1" and headers["x-mbx-order-count-1m"] == "1"
        assert [o["id"] for o in await ex.fetch_open_orders(SYMBOL)] == [order["id"]]
        assert [o["id"] for o in await ex.fetch_open_orders()] == [order["id"]]
        balance = await ex.fetch_balance()
        assert balance["USDT"]["used"] == pytest.approx(price * 0.01 / 20)  # default leverage 20
        canceled = await ex.cancel_order(order["id"], SYMBOL)
        assert canceled["status"] == "canceled"
        assert await ex.fetch_open_orders(SYMBOL) == []
        assert [(o["id"], o["status"]) for o in await ex.fetch_orders(SYMBOL)] == [(order["id"], "canceled")]
        assert (await ex.fetch_leverage(SYMBOL))["longLeverage"] == 20  # symbolConfig
        with pytest.raises(ccxt.OrderNotFound):  # -2011 Unknown order sent.
            await ex.cancel_order(order["id"], SYMBOL)
    finally:
        await ex.close()


async def test_market_buy_position_fill_and_lagged_trades(box):
    account = new_account(box, "10000")
    ex = client(box, account["credentials"])
    try:
        await ex.load_markets()
        order = await ex.create_order(SYMBOL, "market", "buy", 0.02, params={"clientOrderId": "mkt-buy-1"})
        assert order["status"] == "closed" and order["filled"] == 0.02 and order["average"] > 0
        trades_now = await ex.fetch_my_trades(SYMBOL)
        assert trades_now == []  # the history lags
        found = await ex.fetch_order(None, SYMBOL, params={"origClientOrderId": "mkt-buy-1"})
        assert found["id"] == order["id"] and found["filled"] == 0.02 and found["status"] == "closed"
        positions = await ex.fetch_positions([SYMBOL])
        assert len(positions) == 1
        position = positions[0]
        assert position["side"] == "long" and position["contracts"] == 0.02
        assert position["entryPrice"] == pytest.approx(order["average"])
        # one v2 account call holds balances and positions with entry price and leverage
        (from_account,) = await ex.fetch_positions([SYMBOL], params={"method": "account", "useV2": True})
        assert from_account["entryPrice"] == pytest.approx(order["average"]) and from_account["leverage"] == 20
        balance = await ex.fetch_balance()
        fee = order["average"] * 0.02 * 0.0005
        state = accounts_harness.sandbox_state(box.url, VENUE, account["account_id"])
        assert float(state["wallet"]) == pytest.approx(10000 - fee)
        assert float(balance["info"]["totalWalletBalance"]) == pytest.approx(10000 - fee)
        assert balance["USDT"]["used"] == pytest.approx(float(balance["info"]["totalInitialMargin"]))
        await asyncio.sleep(LAG_MS / 1000 + 0.2)
        trades = await ex.fetch_my_trades(SYMBOL)
        assert {t["order"] for t in trades} == {order["id"]}  # one fill per book level it took
        assert sum(t["amount"] for t in trades) == pytest.approx(0.02)
        assert sum(t["fee"]["cost"] for t in trades) == pytest.approx(fee)
        assert {t["takerOrMaker"] for t in trades} == {"taker"}
        closing = await ex.create_order(SYMBOL, "market", "sell", 0.02, params={"reduceOnly": True})
        assert closing["filled"] == 0.02
        assert await ex.fetch_positions([SYMBOL]) == []
    finally:
        await ex.close()


async def test_cancel_all_leverage_and_margin_mode(box):
    account = new_account(box)
    ex = client(box, account["credentials"])
    try:
        price = round(await market_price(ex) * 0.7, 1)
        for k in range(3):
            await ex.create_order(SYMBOL, "limit", "buy", 0.001, price + k)
        assert len(await ex.fetch_open_orders(SYMBOL)) == 3
        await ex.cancel_all_orders(SYMBOL)
        assert await ex.fetch_open_orders(SYMBOL) == []
        answer = await ex.set_leverage(10, SYMBOL)
        assert answer["leverage"] == 10
        with pytest.raises(ccxt.BadRequest):  # -4028 Leverage 500 is not valid
            await ex.set_leverage(500, SYMBOL)
        await ex.set_margin_mode("isolated", SYMBOL)
        state = accounts_harness.sandbox_state(box.url, VENUE, account["account_id"])
        assert state["leverage"] == {"BTCUSDT": 10}
        await ex.create_order(SYMBOL, "market", "buy", 0.01)
        (position,) = await ex.fetch_positions([SYMBOL], params={"useV2": True})
        assert position["leverage"] == 10 and position["marginMode"] == "isolated"
    finally:
        await ex.close()


async def test_order_rejections_raise_ccxt_classes(box):
    poor = new_account(box, "50")
    ex = client(box, poor["credentials"])
    try:
        price = await market_price(ex)
        with pytest.raises(ccxt.InsufficientFunds):  # -2019 Margin is insufficient.
            await ex.create_order(SYMBOL, "market", "buy", 0.1)
        await ex.create_order(SYMBOL, "limit", "buy", 0.001, round(price * 0.5, 1), params={"clientOrderId": "dup-1"})
        with pytest.raises(ccxt.InvalidOrder):  # -4116 ClientOrderId is duplicated.
            await ex.create_order(SYMBOL, "limit", "buy", 0.001, round(price * 0.5, 1), params={"clientOrderId": "dup-1"})
        with pytest.raises(ccxt.InvalidOrder):  # -2022 ReduceOnly Order is rejected.
            await ex.create_order(SYMBOL, "market", "sell", 0.001, params={"reduceOnly": True})
        with pytest.raises(ccxt.InvalidOrder):  # -5022 post-only (GTX) would take
            await ex.create_order(SYMBOL, "limit", "buy", 0.001, round(price * 1.05, 1), params={"postOnly": True})
        with pytest.raises(ccxt.InvalidOrder):  # -4164 notional below 5 (Binance's MIN_NOTIONAL)
            await ex.create_order(SYMBOL, "limit", "buy", 0.001, 1000.0)
        with pytest.raises(ccxt.OrderNotFound):  # -2013 Order does not exist.
            await ex.fetch_order(None, SYMBOL, params={"origClientOrderId": "never-sent"})
        assert len(await ex.fetch_open_orders()) == 1
    finally:
        await ex.close()


async def test_signatures_keys_and_timestamps(box):
    account = new_account(box)
    good = client(box, account["credentials"])
    wrong_secret = client(box, {**account["credentials"], "secret": "x" * 64})
    unknown_key = client(box, {"apiKey": "k" * 64, "secret": "s" * 64})
    stale = client(box, account["credentials"], timeDifference=60_000)  # signs "now - 60 s"
    try:
        await good.load_markets()
        for ex in (wrong_secret, unknown_key, stale):
            ex.markets, ex.markets_by_id, ex.symbols = good.markets, good.markets_by_id, good.symbols
            ex.currencies, ex.options["leverageBrackets"] = good.currencies, {}
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await wrong_secret.fetch_balance()
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await unknown_key.fetch_balance()
        with pytest.raises(ccxt.InvalidNonce, match="-1021"):
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
        arm(box, "429")
        with pytest.raises(ccxt.DDoSProtection):  # ccxt's binance raises its 429 class (RateLimitExceeded's base)
            await ex.create_order(SYMBOL, "limit", "buy", 0.001, price, params={"clientOrderId": "f-429"})
        assert await ex.fetch_open_orders(SYMBOL) == []
        with pytest.raises(ccxt.OrderNotFound):
            await ex.fetch_order(None, SYMBOL, params={"origClientOrderId": "f-429"})

        arm(box, "timeout", delay_ms=2_500)
        started = time.monotonic()
        with pytest.raises(ccxt.RequestTimeout):
            await ex.create_order(SYMBOL, "limit", "buy", 0.001, price, params={"clientOrderId": "f-timeout"})
        assert time.monotonic() - started < 2.0
        found = await ex.fetch_order(None, SYMBOL, params={"origClientOrderId": "f-timeout"})
        assert found["status"] == "open"

        arm(box, "5xx")
        with pytest.raises(ccxt.OperationFailed):  # HTTP 503 -1001
            await ex.create_order(SYMBOL, "market", "buy", 0.001, params={"clientOrderId": "f-5xx"})
        found = await ex.fetch_order(None, SYMBOL, params={"origClientOrderId": "f-5xx"})
        assert found["status"] == "closed" and found["filled"] == 0.001
    finally:
        await ex.close()


async def test_account_order_rate_limits_on_a_frozen_clock():
    """300 new orders per 10 s per account (Binance's ORDERS limit): the 301st is HTTP 429
    -1015 whatever its fate would be; 10 s later orders go again. Signed by hand with the
    sandbox's frozen clock (ccxt would sign with the wall clock)."""
    import hashlib
    import hmac
    from urllib.parse import urlencode

    from exgate.sandbox.app import create_sandbox_app
    from tests.conftest import ManualClock

    clock = ManualClock(int(time.time() * 1000))
    with ServerThread(create_sandbox_app(sandbox_data(), venues=[VENUE], clock=clock)) as server:
        account = new_account(server)
        key, secret = account["credentials"]["apiKey"], account["credentials"]["secret"]

        async def order(http: httpx.AsyncClient) -> httpx.Response:
            query = urlencode({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                               "quantity": "0.001", "price": "100", "timestamp": clock.now})  # notional 0.1: -4164
            signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
            return await http.post(f"{server.url}/{VENUE}/fapi/v1/order", content=f"{query}&signature={signature}",
                             headers={"X-MBX-APIKEY": key, "Content-Type": "application/x-www-form-urlencoded"})

        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=30)) as http:
            answers = await asyncio.gather(*(order(http) for _ in range(301)))  # concurrent: one frozen instant
            codes = sorted(a.json()["code"] for a in answers)
            assert codes == [-4164] * 300 + [-1015]
            assert [a.status_code for a in answers if a.json()["code"] == -1015] == [429]
            clock.advance(10_001)
            assert (await order(http)).json()["code"] == -4164
