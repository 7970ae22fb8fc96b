"""The sandbox's private Hyperliquid, through a real ccxt client: accounts with EVM keys,
EIP-712 signed ``/exchange`` actions verified by signer recovery, account ``/info`` types."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import ccxt
import httpx
import pytest

from tests import accounts_harness
from tests.conftest import ServerThread, ccxt_client, sandbox_data, sandbox_stats

LAG_MS = 300
SYMBOL = "BTC/USDC:USDC"
QUIET = {"refSet": True, "approvedBuilderFee": True, "builderFee": False, "enableUnifiedMargin": False}
"""ccxt options that switch off hyperliquid's side calls (referrer, builder-fee approval,
userAbstraction lookup); with ``approvedBuilderFee`` set, orders carry a 0 % builder."""


@pytest.fixture(scope="module")
def sandbox():
    from exgate.sandbox.app import create_sandbox_app

    app = create_sandbox_app(sandbox_data(), venues=["hyperliquid"], history_lag_ms=LAG_MS)
    with ServerThread(app) as server:
        yield server


def new_account(sandbox, balance: str = "10000") -> dict:
    return accounts_harness.new_account(sandbox.url, "hyperliquid", balance)


def run(coro):
    return asyncio.run(coro)


async def _client(sandbox, credentials: dict, options: dict | None = None):
    ex = ccxt_client("hyperliquid", sandbox.url, {**credentials, "options": dict(QUIET if options is None else options)})
    await ex.load_markets()
    return ex


async def _mid(ex) -> Decimal:
    book = await ex.fetch_order_book(SYMBOL)
    return (Decimal(str(book["bids"][0][0])) + Decimal(str(book["asks"][0][0]))) / 2


def test_credentials_are_an_evm_key_pair(sandbox):
    from coincurve import PrivateKey

    from exgate.sandbox.accounts.keys import evm_address

    acct = new_account(sandbox)
    creds = acct["credentials"]
    key = PrivateKey(bytes.fromhex(creds["privateKey"].removeprefix("0x")))
    assert evm_address(key.public_key.format(compressed=False)) == creds["walletAddress"] == acct["account_id"]


def test_balance_orders_positions_and_lagged_fills(sandbox):
    async def go():
        acct = new_account(sandbox, "10000")
        ex = await _client(sandbox, acct["credentials"])
        try:
            balance = await ex.fetch_balance()
            assert balance["USDC"]["total"] == 10000
            mid = await _mid(ex)
            # resting limit buy far below the market: shown, then canceled
            price = float(ex.price_to_precision(SYMBOL, mid * Decimal("0.8")))
            order = await ex.create_order(SYMBOL, "limit", "buy", 0.001, price)
            assert order["id"] and order["info"] == {"resting": {"oid": int(order["id"])}}
            opened = await ex.fetch_open_orders(SYMBOL)
            assert [o["id"] for o in opened] == [order["id"]]
            assert opened[0]["price"] == price and opened[0]["amount"] == 0.001
            await ex.cancel_order(order["id"], SYMBOL)
            assert await ex.fetch_open_orders(SYMBOL) == []
            # market buy: the create answer carries the fill; the position follows
            cloid = "0x" + "1f" * 16
            filled = await ex.create_order(SYMBOL, "market", "buy", 0.01, float(mid), {"clientOrderId": cloid})
            assert filled["filled"] == 0.01 and filled["average"] > 0  # no follow-up request needed
            assert filled["clientOrderId"] == cloid
            positions = await ex.fetch_positions([SYMBOL])
            assert len(positions) == 1 and positions[0]["side"] == "long" and positions[0]["contracts"] == 0.01
            assert positions[0]["entryPrice"] == pytest.approx(filled["average"], rel=1e-6)
            # the order is found by its client order id at once; its fill only after the lag
            found = await ex.fetch_order(None, SYMBOL, {"clientOrderId": cloid})
            assert found["id"] == filled["id"] and found["status"] == "closed" and found["filled"] == 0.01
            assert await ex.fetch_my_trades(SYMBOL) == []
            await asyncio.sleep(LAG_MS / 1000 + 0.2)
            trades = await ex.fetch_my_trades(SYMBOL)
            assert {t["order"] for t in trades} == {filled["id"]} and sum(t["amount"] for t in trades) == pytest.approx(0.01)
            assert all(t["side"] == "buy" and t["takerOrMaker"] == "taker" and t["fee"]["cost"] > 0 for t in trades)
            vwap = sum(t["price"] * t["amount"] for t in trades) / sum(t["amount"] for t in trades)
            assert vwap == pytest.approx(filled["average"], rel=1e-6)
            balance = await ex.fetch_balance()
            assert balance["USDC"]["used"] > 0
        finally:
            await ex.close()

    run(go())


def test_cancel_all_is_emulated_and_leverage_is_set(sandbox):
    async def go():
        acct = new_account(sandbox)
        ex = await _client(sandbox, acct["credentials"])
        try:
            assert ex.has["cancelAllOrders"] is False  # ccxt does not emulate it: the gateway does
            mid = await _mid(ex)
            ids = []
            for factor in ("0.7", "0.75"):
                price = float(ex.price_to_precision(SYMBOL, mid * Decimal(factor)))
                ids.append((await ex.create_order(SYMBOL, "limit", "buy", 0.001, price))["id"])
            canceled = await ex.cancel_orders(ids, SYMBOL)
            assert [c["status"] for c in canceled] == ["success", "success"]
            assert await ex.fetch_open_orders() == []
            await ex.set_leverage(5, SYMBOL)
            await ex.set_margin_mode("isolated", SYMBOL, {"leverage": 5})
            await ex.create_order(SYMBOL, "market", "buy", 0.001, float(mid))
            (position,) = await ex.fetch_positions([SYMBOL])
            assert position["leverage"] == 5 and position["marginMode"] == "isolated"
            with pytest.raises(ccxt.ExchangeError, match="Cannot switch leverage type with open position"):
                await ex.set_leverage(5, SYMBOL, {"marginMode": "cross"})
            with pytest.raises(ccxt.ExchangeError, match="Invalid leverage"):
                await ex.set_leverage(1000, SYMBOL, {"marginMode": "isolated"})
        finally:
            await ex.close()

    run(go())


def test_refusals_raise_in_ccxt(sandbox):
    async def go():
        acct = new_account(sandbox, "100")
        ex = await _client(sandbox, acct["credentials"])
        try:
            mid = await _mid(ex)
            with pytest.raises(ccxt.InsufficientFunds, match="Insufficient margin to place order"):
                await ex.create_order(SYMBOL, "limit", "buy", 1, float(ex.price_to_precision(SYMBOL, mid * Decimal("0.9"))))
            with pytest.raises(ccxt.InvalidOrder, match=r"minimum value of \$10"):
                await ex.create_order(SYMBOL, "limit", "buy", 0.00001, float(ex.price_to_precision(SYMBOL, mid * Decimal("0.9"))))
            with pytest.raises(ccxt.InvalidOrder, match="Reduce only order would increase position"):
                await ex.create_order(SYMBOL, "market", "sell", 0.001, float(mid), {"reduceOnly": True})
            with pytest.raises(ccxt.InvalidOrder, match="Post only order would have immediately matched, bbo was"):
                await ex.create_order(SYMBOL, "limit", "buy", 0.001, float(ex.price_to_precision(SYMBOL, mid * Decimal("1.01"))),
                                      {"postOnly": True})
            cloid = "0x" + "2e" * 16
            price = float(ex.price_to_precision(SYMBOL, mid * Decimal("0.9")))
            await ex.create_order(SYMBOL, "limit", "buy", 0.0002, price, {"clientOrderId": cloid})
            with pytest.raises(ccxt.ExchangeError, match="duplicate cloid"):
                await ex.create_order(SYMBOL, "limit", "buy", 0.0002, price, {"clientOrderId": cloid})
            with pytest.raises(ccxt.OrderNotFound):
                await ex.cancel_order("987654321", SYMBOL)
        finally:
            await ex.close()

    run(go())


def test_a_wrong_signer_and_replayed_nonces_are_refused(sandbox):
    from exgate.sandbox.accounts.keys import evm_credentials

    async def go():
        acct = new_account(sandbox)
        _, stranger = evm_credentials()
        ex = await _client(sandbox, {"walletAddress": acct["account_id"], "privateKey": stranger["privateKey"]})
        try:
            mid = await _mid(ex)
            price = float(ex.price_to_precision(SYMBOL, mid * Decimal("0.8")))
            with pytest.raises(ccxt.InvalidOrder, match=f"User or API Wallet {stranger['walletAddress']} does not exist"):
                await ex.create_order(SYMBOL, "limit", "buy", 0.001, price)
        finally:
            await ex.close()
        # a signed request sent twice: the second is refused for its nonce, nothing placed twice
        ex = await _client(sandbox, acct["credentials"])
        try:
            request = ex.create_orders_request([{"symbol": SYMBOL, "type": "limit", "side": "buy", "amount": 0.001,
                                                 "price": price}])
            first = httpx.post(f"{sandbox.url}/hyperliquid/exchange", json=request).json()
            second = httpx.post(f"{sandbox.url}/hyperliquid/exchange", json=request).json()
            assert "resting" in first["response"]["data"]["statuses"][0]
            assert second == {"status": "err", "response": "Invalid nonce: duplicate nonce"}
            stale = ex.create_orders_request([{"symbol": SYMBOL, "type": "limit", "side": "buy", "amount": 0.001,
                                               "price": price}])
            old = dict(stale, nonce=int(time.time() * 1000) - 3 * 86_400_000)
            old["signature"] = ex.sign_l1_action(old["action"], old["nonce"])
            answer = httpx.post(f"{sandbox.url}/hyperliquid/exchange", json=old).json()
            assert answer["status"] == "err" and "Invalid nonce" in answer["response"]
            assert len(await ex.fetch_open_orders()) == 1
        finally:
            await ex.close()

    run(go())


def test_side_calls_arrive_by_default_and_none_with_the_options(sandbox):
    async def go():
        acct = new_account(sandbox)
        noisy = await _client(sandbox, acct["credentials"], options={})
        try:
            actions = sandbox_stats(sandbox)["venues"]["hyperliquid"]["by_action"]
            assert actions.get("approveBuilderFee", 0) >= 1 and actions.get("setReferrer", 0) >= 1
        finally:
            await noisy.close()
        quiet = await _client(sandbox, new_account(sandbox)["credentials"])
        try:
            mid = await _mid(quiet)
            price = float(quiet.price_to_precision(SYMBOL, mid * Decimal("0.8")))
            httpx.post(f"{sandbox.url}/__sandbox/reset")
            await quiet.create_order(SYMBOL, "limit", "buy", 0.001, price)
            venue = sandbox_stats(sandbox)["venues"]["hyperliquid"]
            assert venue["requests"] == 1 and venue["by_path"] == {"/exchange": 1}
            assert venue["by_action"] == {"order": 1}
        finally:
            await quiet.close()

    run(go())


def test_injected_faults(sandbox):
    async def go():
        acct = new_account(sandbox)
        ex = await _client(sandbox, acct["credentials"])
        ex.timeout = 1000
        try:
            mid = await _mid(ex)
            price = float(ex.price_to_precision(SYMBOL, mid * Decimal("0.8")))

            def arm(fault: str, **extra) -> None:
                accounts_harness.arm(sandbox.url, "hyperliquid", fault, **extra)

            arm("429")
            with pytest.raises(ccxt.RateLimitExceeded):
                await ex.create_order(SYMBOL, "limit", "buy", 0.001, price, {"clientOrderId": "0x" + "01" * 16})
            assert await ex.fetch_open_orders() == []
            arm("5xx")
            with pytest.raises(ccxt.ExchangeNotAvailable):
                await ex.create_order(SYMBOL, "limit", "buy", 0.001, price, {"clientOrderId": "0x" + "02" * 16})
            arm("timeout", delay_ms=2000)
            with pytest.raises(ccxt.RequestTimeout):
                await ex.create_order(SYMBOL, "limit", "buy", 0.001, price, {"clientOrderId": "0x" + "03" * 16})
            placed = {o["clientOrderId"] for o in await ex.fetch_open_orders()}
            assert placed == {"0x" + "02" * 16, "0x" + "03" * 16}
        finally:
            await ex.close()

    run(go())


def test_an_approved_agent_trades_for_the_account(sandbox):
    from exgate.sandbox.accounts.keys import evm_credentials

    async def go():
        acct = new_account(sandbox)
        agent_address, agent = evm_credentials()
        owner = await _client(sandbox, acct["credentials"])
        try:
            nonce = owner.incrementing_nonce()
            message = {"hyperliquidChain": "Mainnet", "agentAddress": agent_address, "agentName": "gateway", "nonce": nonce}
            types = {"HyperliquidTransaction:ApproveAgent": [
                {"name": "hyperliquidChain", "type": "string"}, {"name": "agentAddress", "type": "address"},
                {"name": "agentName", "type": "string"}, {"name": "nonce", "type": "uint64"}]}
            action = {"type": "approveAgent", "signatureChainId": "0x66eee", **message}
            request = {"action": action, "nonce": nonce, "signature": owner.sign_user_signed_action(types, message)}
            assert httpx.post(f"{sandbox.url}/hyperliquid/exchange", json=request).json()["status"] == "ok"
            role = httpx.post(f"{sandbox.url}/hyperliquid/info", json={"type": "userRole", "user": agent_address}).json()
            assert role == {"role": "agent", "data": {"user": acct["account_id"]}}
            mid = await _mid(owner)
        finally:
            await owner.close()
        ex = await _client(sandbox, {"walletAddress": acct["account_id"], "privateKey": agent["privateKey"]})
        try:
            order = await ex.create_order(SYMBOL, "limit", "buy", 0.001, float(ex.price_to_precision(SYMBOL, mid * Decimal("0.8"))))
            assert [o["id"] for o in await ex.fetch_open_orders()] == [order["id"]]
        finally:
            await ex.close()

    run(go())
