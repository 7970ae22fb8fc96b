"""The sandbox's private Pacifica, through a real ccxt client: accounts with ed25519 (Solana)
keys, signed operations verified over Pacifica's canonical JSON, unsigned account reads."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

import ccxt
import httpx
import pytest

from tests import accounts_harness
from tests.conftest import ServerThread, ccxt_client, sandbox_data, sandbox_stats

LAG_MS = 300
SYMBOL = "BTC/USDC:USDC"
QUIET = {"builderFee": False}
"""The ccxt option that switches off pacifica's builder-code approval call and the
``builder_code`` it adds to orders."""


@pytest.fixture(scope="module")
def sandbox():
    from exgate.sandbox.app import create_sandbox_app

    app = create_sandbox_app(sandbox_data(), venues=["pacifica"], history_lag_ms=LAG_MS)
    with ServerThread(app) as server:
        yield server


def new_account(sandbox, balance: str = "10000") -> dict:
    return accounts_harness.new_account(sandbox.url, "pacifica", balance)


async def _client(sandbox, credentials: dict, options: dict | None = None):
    ex = ccxt_client("pacifica", sandbox.url, {**credentials, "enableRateLimit": False,  # ccxt spaces calls 600 ms
                                               "options": dict(QUIET if options is None else options)})
    await ex.load_markets()
    return ex


async def _mid(ex) -> Decimal:
    book = await ex.fetch_order_book(SYMBOL)
    return (Decimal(str(book["bids"][0][0])) + Decimal(str(book["asks"][0][0]))) / 2


def _price(ex, mid: Decimal, factor: str) -> float:
    return float(ex.price_to_precision(SYMBOL, mid * Decimal(factor)))


def test_credentials_are_a_solana_key_pair(sandbox):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from exgate.sandbox.accounts.keys import b58decode, b58encode

    acct = new_account(sandbox)
    creds = acct["credentials"]
    secret = b58decode(creds["privateKey"])
    assert len(secret) == 64
    public = Ed25519PrivateKey.from_private_bytes(secret[:32]).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert secret[32:] == public and b58encode(public) == creds["walletAddress"] == acct["account_id"]


def test_balance_orders_positions_and_lagged_fills(sandbox):
    async def go():
        ex = await _client(sandbox, new_account(sandbox, "10000")["credentials"])
        try:
            assert (await ex.fetch_balance())["USDC"]["total"] == 10000
            mid = await _mid(ex)
            order = await ex.create_order(SYMBOL, "limit", "buy", 0.001, _price(ex, mid, "0.8"))
            assert order["id"]
            opened = await ex.fetch_open_orders(SYMBOL)
            assert [o["id"] for o in opened] == [order["id"]] and opened[0]["amount"] == 0.001
            await ex.cancel_order(order["id"], SYMBOL)
            assert await ex.fetch_open_orders(SYMBOL) == []
            assert (await ex.fetch_order(order["id"]))["status"] == "canceled"
            cid = str(uuid.uuid4())
            market = await ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": cid})
            (position,) = await ex.fetch_positions([SYMBOL])
            assert position["side"] == "long" and position["contracts"] == 0.01
            # one follow-up finds the fill: the order's last event
            fetched = await ex.fetch_order(market["id"])
            assert fetched["status"] == "closed" and fetched["filled"] == 0.01
            # found by client order id at once in the order history, with its average price
            history = await ex.fetch_orders(SYMBOL)
            (found,) = [o for o in history if o["clientOrderId"] == cid]
            assert found["id"] == market["id"] and found["status"] == "closed" and found["filled"] == 0.01
            assert position["entryPrice"] == pytest.approx(found["average"], rel=1e-6)
            # the fills only after the lag
            assert await ex.fetch_my_trades(SYMBOL) == []
            await asyncio.sleep(LAG_MS / 1000 + 0.2)
            trades = await ex.fetch_my_trades(SYMBOL)
            assert {t["order"] for t in trades} == {market["id"]} and sum(t["amount"] for t in trades) == pytest.approx(0.01)
            assert all(t["side"] == "buy" and t["takerOrMaker"] == "taker" and t["fee"]["cost"] > 0 for t in trades)
            vwap = sum(t["price"] * t["amount"] for t in trades) / sum(t["amount"] for t in trades)
            assert vwap == pytest.approx(found["average"], rel=1e-9)
            # margined at the market's maximum leverage, Pacifica's default for a new account
            top = ex.market(SYMBOL)["limits"]["leverage"]["max"]
            used = (await ex.fetch_balance())["USDC"]["used"]
            assert used == pytest.approx(0.01 * found["average"] / top, rel=0.01)
        finally:
            await ex.close()

    asyncio.run(go())


def test_cancel_all_leverage_and_margin_mode(sandbox):
    async def go():
        ex = await _client(sandbox, new_account(sandbox)["credentials"])
        try:
            mid = await _mid(ex)
            for factor in ("0.7", "0.75"):
                await ex.create_order(SYMBOL, "limit", "buy", 0.001, _price(ex, mid, factor))
            (answer,) = await ex.cancel_all_orders(SYMBOL)
            assert answer["info"]["data"] == {"cancelled_count": 2}
            assert await ex.fetch_open_orders() == []
            await ex.set_leverage(5, SYMBOL)
            await ex.set_margin_mode("isolated", SYMBOL)
            leverage = await ex.fetch_leverage(SYMBOL)
            assert leverage["longLeverage"] == 5 and leverage["marginMode"] == "isolated"
            with pytest.raises(ccxt.ExchangeError, match="INVALID_LEVERAGE"):
                await ex.set_leverage(1000, SYMBOL)
        finally:
            await ex.close()

    asyncio.run(go())


def test_refusals_raise_in_ccxt(sandbox):
    async def go():
        ex = await _client(sandbox, new_account(sandbox, "100")["credentials"])
        try:
            mid = await _mid(ex)
            with pytest.raises(ccxt.InsufficientFunds, match="Insufficient balance"):
                await ex.create_order(SYMBOL, "limit", "buy", 1, _price(ex, mid, "0.9"))
            with pytest.raises(ccxt.InvalidOrder, match="Order amount too low"):
                await ex.create_order(SYMBOL, "limit", "buy", 0.00001, _price(ex, mid, "0.9"))
            cid = str(uuid.uuid4())
            await ex.create_order(SYMBOL, "limit", "buy", 0.0002, _price(ex, mid, "0.9"), {"clientOrderId": cid})
            with pytest.raises(ccxt.InvalidOrder, match="Duplicate client order id"):
                await ex.create_order(SYMBOL, "limit", "buy", 0.0002, _price(ex, mid, "0.9"), {"clientOrderId": cid})
            with pytest.raises(ccxt.OrderNotFound):
                await ex.cancel_order("987654321", SYMBOL)
            with pytest.raises(ccxt.InvalidOrder):
                await ex.create_order(SYMBOL, "market", "sell", 0.001, None, {"reduceOnly": True})
        finally:
            await ex.close()

    asyncio.run(go())


def test_bad_signatures_unknown_accounts_and_expired_messages_are_refused(sandbox):
    from exgate.sandbox.accounts.keys import solana_credentials

    async def go():
        acct = new_account(sandbox)
        _, stranger = solana_credentials()
        forged = await _client(sandbox, {"walletAddress": acct["account_id"], "privateKey": stranger["privateKey"]})
        unknown = await _client(sandbox, stranger)
        ex = await _client(sandbox, acct["credentials"])
        try:
            mid = await _mid(ex)
            with pytest.raises(ccxt.AuthenticationError, match="Verification failed"):
                await forged.create_order(SYMBOL, "limit", "buy", 0.001, _price(ex, mid, "0.8"))
            with pytest.raises(ccxt.ExchangeError, match="ACCOUNT_NOT_FOUND"):
                await unknown.create_order(SYMBOL, "limit", "buy", 0.001, _price(ex, mid, "0.8"))
            stale = int(time.time() * 1000) - 60_000
            with pytest.raises(ccxt.BadRequest, match="Invalid message: expired"):
                await ex.create_order(SYMBOL, "limit", "buy", 0.001, _price(ex, mid, "0.8"), {"timestamp": stale})
            # a tampered body: the signature no longer covers the payload
            request, _ = ex.create_order_request(SYMBOL, "limit", "buy", 0.001, _price(ex, mid, "0.8"))
            r = httpx.post(f"{sandbox.url}/pacifica/api/v1/orders/create", json={**request, "amount": "1"})
            assert r.status_code == 400 and r.json()["error_id"] == "signature_verification_failed"
            assert await ex.fetch_open_orders() == []
        finally:
            for client in (forged, unknown, ex):
                await client.close()

    asyncio.run(go())


def test_builder_code_approval_arrives_by_default_and_not_with_the_option(sandbox):
    async def go():
        acct = new_account(sandbox)
        noisy = await _client(sandbox, acct["credentials"], options={})
        try:
            mid = await _mid(noisy)
            await noisy.create_order(SYMBOL, "limit", "buy", 0.001, _price(noisy, mid, "0.8"))
            actions = sandbox_stats(sandbox)["venues"]["pacifica"]["by_action"]
            assert actions.get("approve_builder_code") == 1
            approvals = httpx.get(f"{sandbox.url}/pacifica/api/v1/account/builder_codes/approvals",
                                  params={"account": acct["account_id"]}).json()["data"]
            assert [a["builder_code"] for a in approvals] == ["CCXT"]
        finally:
            await noisy.close()
        quiet = await _client(sandbox, new_account(sandbox)["credentials"])
        try:
            price = _price(quiet, await _mid(quiet), "0.8")
            httpx.post(f"{sandbox.url}/__sandbox/reset")
            await quiet.create_order(SYMBOL, "limit", "buy", 0.001, price)
            venue = sandbox_stats(sandbox)["venues"]["pacifica"]
            assert venue["requests"] == 1 and venue["by_path"] == {"/api/v1/orders/create": 1}
            assert venue["by_action"] == {"create_order": 1}
        finally:
            await quiet.close()

    asyncio.run(go())


def test_injected_faults(sandbox):
    async def go():
        ex = await _client(sandbox, new_account(sandbox)["credentials"])
        ex.timeout = 1000
        try:
            price = _price(ex, await _mid(ex), "0.8")

            def arm(fault: str, **extra) -> None:
                accounts_harness.arm(sandbox.url, "pacifica", fault, **extra)

            ids = [str(uuid.uuid4()) for _ in range(3)]
            arm("429")
            with pytest.raises(ccxt.RateLimitExceeded):
                await ex.create_order(SYMBOL, "limit", "buy", 0.001, price, {"clientOrderId": ids[0]})
            assert await ex.fetch_open_orders() == []
            arm("5xx")
            with pytest.raises(ccxt.ExchangeNotAvailable):
                await ex.create_order(SYMBOL, "limit", "buy", 0.001, price, {"clientOrderId": ids[1]})
            arm("timeout", delay_ms=2000)
            with pytest.raises(ccxt.RequestTimeout):
                await ex.create_order(SYMBOL, "limit", "buy", 0.001, price, {"clientOrderId": ids[2]})
            assert {o["clientOrderId"] for o in await ex.fetch_open_orders()} == set(ids[1:])
        finally:
            await ex.close()

    asyncio.run(go())


def test_a_bound_agent_wallet_trades_for_the_account(sandbox):
    from exgate.sandbox.accounts.keys import solana_credentials

    async def go():
        acct = new_account(sandbox)
        agent_address, agent = solana_credentials()
        owner = await _client(sandbox, acct["credentials"])
        try:
            await owner.bind_agent_wallet(agent_address)
            price = _price(owner, await _mid(owner), "0.8")
        finally:
            await owner.close()
        ex = await _client(sandbox, {"walletAddress": acct["account_id"], "privateKey": agent["privateKey"]},
                           options={**QUIET, "agentAddress": agent_address})
        stranger_address, stranger = solana_credentials()
        rogue = await _client(sandbox, {"walletAddress": acct["account_id"], "privateKey": stranger["privateKey"]},
                              options={**QUIET, "agentAddress": stranger_address})
        try:
            order = await ex.create_order(SYMBOL, "limit", "buy", 0.001, price)
            assert [o["id"] for o in await ex.fetch_open_orders()] == [order["id"]]
            with pytest.raises(ccxt.ExchangeError, match="Agent not authorized for account"):
                await rogue.create_order(SYMBOL, "limit", "buy", 0.001, price)
        finally:
            await ex.close()
            await rogue.close()

    asyncio.run(go())
