"""The Bybit sandbox as a real ``ccxt.async_support.bybit`` sees it: every public unified method
bybit ``has`` for linear contracts answers, and the venue's errors raise the exception classes
ccxt maps Bybit's answers to (``exceptions.exact``/``broad`` and ``httpExceptions`` of
ccxt's bybit.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from exgate.sandbox.app import create_sandbox_app
from tests.conftest import ManualClock, ServerThread, ccxt_client, require_fixtures

require_fixtures()

FIXED_MS = 1_717_000_000_000  # 2024-05-29T16:26:40Z
HOUR = 3_600_000
SWAP = "BTC/USDT:USDT"
FUTURE = "BTC/USDT:USDT-240628"


def client_of(url: str) -> ccxt_async.bybit:
    """A real ccxt bybit client whose every API URL points at the sandbox's ``/bybit``."""
    return ccxt_client("bybit", url, {"options": {"fetchMarkets": {"types": ["spot", "linear", "inverse"]}}})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(FIXED_MS)


@pytest.fixture
def server(clock: ManualClock) -> Iterator[ServerThread]:
    with ServerThread(create_sandbox_app(venues=["bybit"], clock=clock)) as server:
        yield server


@pytest.fixture
async def bybit(server: ServerThread) -> AsyncIterator[ccxt_async.bybit]:
    exchange = client_of(server.url)
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


async def test_markets_hold_the_perpetuals_and_the_trading_futures(bybit: ccxt_async.bybit) -> None:
    assert {SWAP, "ETH/USDT:USDT", FUTURE, "BTC/USDT:USDT-240927"} <= set(bybit.markets)
    future = bybit.markets[FUTURE]
    assert (future["type"], future["future"], future["linear"], future["active"]) == ("future", True, True, True)
    assert future["expiry"] == 1_719_561_600_000 and bybit.markets[SWAP]["swap"] is True
    assert "BTC/USDT:USDT-240329" not in bybit.markets  # delivered before the start


async def test_every_public_linear_method_answers(bybit: ccxt_async.bybit) -> None:
    assert (await bybit.fetch_status())["status"] == "ok"
    assert await bybit.fetch_time() == FIXED_MS
    ticker = await bybit.fetch_ticker(SWAP)
    assert ticker["bid"] < ticker["ask"] and ticker["low"] <= ticker["last"] <= ticker["high"]
    assert {SWAP, FUTURE} <= set(await bybit.fetch_tickers())
    book = await bybit.fetch_order_book(SWAP, 500)
    assert len(book["bids"]) == len(book["asks"]) == 500
    trades = await bybit.fetch_trades(SWAP, limit=10)
    assert len(trades) == 10 and all(t["timestamp"] <= FIXED_MS for t in trades)
    for price in (None, "mark", "index", "premiumIndex"):
        candles = await bybit.fetch_ohlcv(SWAP, "1h", limit=3, params={"price": price} if price else {})
        assert [c[0] for c in candles] == [FIXED_MS // HOUR * HOUR - k * HOUR for k in (2, 1, 0)]
    funding = await bybit.fetch_funding_rate(SWAP)
    assert funding["fundingRate"] is not None and funding["fundingTimestamp"] % (8 * HOUR) == 0
    history = await bybit.fetch_funding_rate_history(SWAP, since=FIXED_MS - 10 * 8 * HOUR, limit=5)
    assert len(history) == 5 and len({h["fundingRate"] for h in history}) > 1
    interest = await bybit.fetch_open_interest(SWAP)
    assert interest["openInterestAmount"] > 0 and interest["timestamp"] == FIXED_MS // HOUR * HOUR
    series = await bybit.fetch_open_interest_history(SWAP, "5m", limit=4)
    assert [s["timestamp"] for s in series] == [FIXED_MS // 300_000 * 300_000 - k * 300_000 for k in (3, 2, 1, 0)]


async def test_contract_methods_answer(bybit: ccxt_async.bybit) -> None:
    tiers = await bybit.fetch_market_leverage_tiers(SWAP)
    assert tiers[0]["maxLeverage"] == 100 and tiers[0]["minNotional"] == 0
    assert all(a["maxNotional"] == b["minNotional"] for a, b in zip(tiers, tiers[1:]))
    assert SWAP in await bybit.fetch_leverage_tiers()
    settled = await bybit.fetch_settlement_history(params={"subType": "linear"})
    assert {s["info"]["symbol"] for s in settled} == {"BTCUSDT-29MAR24", "ETHUSDT-29MAR24"}
    ratios = await bybit.fetch_long_short_ratio_history(SWAP, "1h", limit=3)
    assert len(ratios) == 3 and all(r["longShortRatio"] > 0 for r in ratios)


async def test_unknown_symbols_raise_what_ccxt_raises_for_bybits_answers(bybit: ccxt_async.bybit) -> None:
    # linear: "params error: symbol invalid" (retCode 10001), a BadRequest in ccxt's exact map
    for call, params in ((bybit.public_get_v5_market_tickers, {"category": "linear", "symbol": "NOPEUSDT"}),
                         (bybit.public_get_v5_market_orderbook, {"category": "linear", "symbol": "BTCUSDT-29MAR24"})):
        with pytest.raises(ccxt.BadRequest, match="symbol invalid") as raised:  # the second: delivered
            await call(params)
        assert not isinstance(raised.value, ccxt.BadSymbol)
    # spot: "Not supported symbols", BadSymbol by ccxt's broad map
    with pytest.raises(ccxt.BadSymbol):
        await bybit.public_get_v5_market_tickers({"category": "spot", "symbol": "NOPEUSDT"})


@pytest.mark.parametrize("path, params", [
    ("public_get_v5_market_kline", {"category": "linear", "symbol": "BTCUSDT", "interval": "7"}),
    ("public_get_v5_market_kline", {"category": "linear", "symbol": "BTCUSDT"}),
    ("public_get_v5_market_orderbook", {"symbol": "BTCUSDT"}),
    ("public_get_v5_market_orderbook", {"category": "linear"}),
    ("public_get_v5_market_recent_trade", {"category": "linear", "symbol": "BTCUSDT", "limit": "-1"}),
    ("public_get_v5_market_open_interest", {"category": "linear", "symbol": "BTCUSDT", "intervalTime": "2h"}),
])
async def test_bad_parameters_raise_bad_request(bybit: ccxt_async.bybit, path: str, params: dict) -> None:
    with pytest.raises(ccxt.BadRequest) as raised:
        await getattr(bybit, path)(params)
    assert not isinstance(raised.value, ccxt.BadSymbol)


async def test_rate_limits_raise_rate_limit_exceeded(clock: ManualClock) -> None:
    app = create_sandbox_app(venues=["bybit"], clock=clock, limits={"bybit": (3, 5_000)}, ban_after=1)
    with ServerThread(app) as server:
        exchange = client_of(server.url)
        try:
            for _ in range(3):
                await exchange.public_get_v5_market_time()
            with pytest.raises(ccxt.RateLimitExceeded, match="Too many visits"):  # retCode 10006
                await exchange.public_get_v5_market_time()
            with pytest.raises(ccxt.RateLimitExceeded, match="access too frequent"):  # HTTP 403, banned
                await exchange.public_get_v5_market_time()
        finally:
            await exchange.close()
