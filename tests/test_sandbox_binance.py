"""The Binance USD-M sandbox as a real ``ccxt.async_support.binanceusdm`` sees it: the
connectivity, status, last-price, open-interest and mark/index/premium kline endpoints answer in
Binance's shapes with the sandbox model's values, and Binance's error answers raise the classes
ccxt maps them to (``exceptions.exact`` of ccxt's binance.py: -1102/-1120 ``BadRequest``,
-1121 ``BadSymbol``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from exgate.sandbox.app import create_sandbox_app
from exgate.sandbox.sim import InstrumentSim
from tests.conftest import ManualClock, ServerThread, ccxt_client, require_fixtures

require_fixtures()

FIXED_MS = 1_717_000_000_000  # 2024-05-29T16:26:40Z
HOUR = 3_600_000
SWAP = "BTC/USDT:USDT"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(FIXED_MS)


@pytest.fixture
def app(clock: ManualClock):
    return create_sandbox_app(venues=["binanceusdm"], clock=clock)


@pytest.fixture
def sim(app) -> InstrumentSim:
    """The served BTCUSDT perpetual's simulation (what the answers must agree with)."""
    return app.state.venues["binanceusdm"].sims["BTCUSDT"]


@pytest.fixture
def server(app) -> Iterator[ServerThread]:
    with ServerThread(app) as server:
        yield server


@pytest.fixture
async def binance(server: ServerThread) -> AsyncIterator[ccxt_async.binanceusdm]:
    exchange = ccxt_client("binanceusdm", server.url)
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


async def test_ping_time_and_status(binance: ccxt_async.binanceusdm, clock: ManualClock) -> None:
    assert await binance.fapiPublicGetPing() == {}
    assert await binance.fetch_time() == FIXED_MS
    clock.advance(1_234)
    assert await binance.fetch_time() == FIXED_MS + 1_234
    status = await binance.fetch_status()
    assert status["status"] == "ok" and status["info"] == {"status": 0, "msg": "normal"}


async def test_ticker_price_is_the_last_trade(binance: ccxt_async.binanceusdm, sim: InstrumentSim,
                                              clock: ManualClock) -> None:
    for _ in range(2):  # at two clock readings
        answer = await binance.fapiPublicGetTickerPrice({"symbol": "BTCUSDT"})
        assert set(answer) == {"symbol", "price", "time"} and answer["symbol"] == "BTCUSDT"
        (last_trade,) = await binance.fetch_trades(SWAP, limit=1)
        assert Decimal(answer["price"]) == Decimal(last_trade["info"]["p"]) == sim.price(clock())
        assert answer["time"] == clock()
        clock.advance(90_000)
    every = await binance.fapiPublicV2GetTickerPrice()
    assert {row["symbol"] for row in every} == {m["id"] for m in binance.markets.values() if m["active"]}
    last = await binance.fetch_last_prices([SWAP, "ETH/USDT:USDT"])
    assert last[SWAP]["price"] == float(sim.price(clock())) and last[SWAP]["timestamp"] == clock()


async def test_open_interest_is_the_sims_at_the_clock(binance: ccxt_async.binanceusdm, sim: InstrumentSim,
                                                      clock: ManualClock) -> None:
    seen = set()
    for _ in range(3):
        interest = await binance.fetch_open_interest(SWAP)
        assert Decimal(interest["info"]["openInterest"]) == sim.open_interest(clock()) > 0
        assert interest["timestamp"] == clock() and interest["symbol"] == SWAP
        seen.add(interest["openInterestAmount"])
        clock.advance(6 * HOUR)
    assert len(seen) > 1  # it wanders with the clock


@pytest.mark.parametrize("price, kind", [("mark", "mark"), ("index", "index"), ("premiumIndex", "premium")])
async def test_derived_klines_are_the_sims_candles(binance: ccxt_async.binanceusdm, sim: InstrumentSim,
                                                   price: str, kind: str) -> None:
    candles = await binance.fetch_ohlcv(SWAP, "1h", limit=3, params={"price": price})
    assert [c[0] for c in candles] == [FIXED_MS // HOUR * HOUR - k * HOUR for k in (2, 1, 0)]
    expected = sim.candles(HOUR, FIXED_MS, limit=3, kind=kind)
    assert [[Decimal(str(v)) for v in c[1:5]] for c in candles] == [
        [e[k] for k in ("open", "high", "low", "close")] for e in expected]
    assert all(c[5] == 0 for c in candles)  # Binance's "Ignore" volume column
    since = FIXED_MS - 10 * HOUR
    ranged = await binance.fetch_ohlcv(SWAP, "1h", since=since, limit=2, params={"price": price})
    assert [c[0] for c in ranged] == [since // HOUR * HOUR + HOUR * k for k in (1, 2)]


async def test_derived_kline_rows_have_the_klines_shape(binance: ccxt_async.binanceusdm) -> None:
    plain = await binance.fapiPublicGetKlines({"symbol": "BTCUSDT", "interval": "1m", "limit": 2})
    for call, key in ((binance.fapiPublicGetMarkPriceKlines, "symbol"),
                      (binance.fapiPublicGetIndexPriceKlines, "pair"),
                      (binance.fapiPublicGetPremiumIndexKlines, "symbol")):
        rows = await call({key: "BTCUSDT", "interval": "1m", "limit": 2})
        assert [len(r) for r in rows] == [len(r) for r in plain] == [12, 12]
        assert [(r[0], r[6]) for r in rows] == [(r[0], r[6]) for r in plain]


@pytest.mark.parametrize("method, params, code", [
    ("fapiPublicGetKlines", {"symbol": "BTCUSDT", "interval": "7m"}, -1120),
    ("fapiPublicGetMarkPriceKlines", {"symbol": "BTCUSDT", "interval": "2s"}, -1120),
    ("fapiPublicGetIndexPriceKlines", {"pair": "BTCUSDT", "interval": "1y"}, -1120),
    ("fapiPublicGetPremiumIndexKlines", {"symbol": "BTCUSDT", "interval": ""}, -1102),
    ("fapiPublicGetKlines", {"symbol": "BTCUSDT"}, -1102),
    ("fapiPublicGetKlines", {"interval": "1h"}, -1102),
    ("fapiPublicGetIndexPriceKlines", {"symbol": "BTCUSDT", "interval": "1h"}, -1102),  # the index takes pair
    ("fapiPublicGetOpenInterest", {}, -1102),
    ("fapiPublicGetDepth", {}, -1102),
    ("fapiPublicGetTrades", {}, -1102),
])
async def test_bad_parameters_raise_bad_request(binance: ccxt_async.binanceusdm, method: str, params: dict,
                                                code: int) -> None:
    with pytest.raises(ccxt.BadRequest, match=str(code)) as raised:
        await getattr(binance, method)(params)
    assert not isinstance(raised.value, ccxt.BadSymbol)
    if code == -1102:
        assert "Mandatory parameter" in str(raised.value)


@pytest.mark.parametrize("method, params", [
    ("fapiPublicGetTickerPrice", {"symbol": "NOPEUSDT"}),
    ("fapiPublicV2GetTickerPrice", {"symbol": "NOPEUSDT"}),
    ("fapiPublicGetOpenInterest", {"symbol": "NOPEUSDT"}),
    ("fapiPublicGetMarkPriceKlines", {"symbol": "NOPEUSDT", "interval": "1h"}),
    ("fapiPublicGetIndexPriceKlines", {"pair": "NOPEUSDT", "interval": "1h"}),
    ("fapiPublicGetPremiumIndexKlines", {"symbol": "NOPEUSDT", "interval": "1h"}),
    ("fapiPublicGetKlines", {"symbol": "NOPEUSDT", "interval": "1h"}),
])
async def test_unknown_symbols_raise_bad_symbol(binance: ccxt_async.binanceusdm, method: str, params: dict) -> None:
    with pytest.raises(ccxt.BadSymbol, match="Invalid symbol"):
        await getattr(binance, method)(params)


async def test_new_endpoints_cost_binances_documented_weight(binance: ccxt_async.binanceusdm) -> None:
    """USD-M weights: ticker/price 1 with a symbol, 2 without; the derived klines by ``limit`` like
    klines (1 below 100, 2 below 500, 5 up to 1000, 10 above); ping, time, openInterest 1."""

    def used() -> int:
        headers = {k.lower(): v for k, v in binance.last_response_headers.items()}
        return int(headers["x-mbx-used-weight-1m"])

    async def weight_of(call, params: dict) -> int:
        await binance.fapiPublicGetPing()
        before = used()
        await call(params)
        return used() - before

    assert await weight_of(binance.fapiPublicGetTickerPrice, {"symbol": "BTCUSDT"}) == 1
    assert await weight_of(binance.fapiPublicV2GetTickerPrice, {}) == 2
    assert await weight_of(binance.fapiPublicGetOpenInterest, {"symbol": "BTCUSDT"}) == 1
    assert await weight_of(binance.fapiPublicGetTime, {}) == 1
    for limit, weight in ((99, 1), (100, 2), (500, 5), (1001, 10)):
        assert await weight_of(binance.fapiPublicGetMarkPriceKlines,
                               {"symbol": "BTCUSDT", "interval": "1m", "limit": limit}) == weight
    assert await weight_of(binance.fapiPublicGetIndexPriceKlines, {"pair": "BTCUSDT", "interval": "1m"}) == 5


async def test_premium_index_ticker_and_funding_history_come_from_the_model(
        binance: ccxt_async.binanceusdm, sim: InstrumentSim, clock: ManualClock) -> None:
    now = clock()
    premium = await binance.fapiPublicGetPremiumIndex({"symbol": "BTCUSDT"})
    assert Decimal(premium["markPrice"]) == sim.mark_price(now) and Decimal(premium["indexPrice"]) == sim.index_price(now)
    assert premium["markPrice"] != premium["indexPrice"]
    assert Decimal(premium["lastFundingRate"]) == sim.funding_rate(now) and premium["nextFundingTime"] == sim.next_funding_ms(now)
    ticker = await binance.fapiPublicGetTicker24hr({"symbol": "BTCUSDT"})
    stats = sim.stats_24h(now)
    assert [Decimal(ticker[k]) for k in ("openPrice", "highPrice", "lowPrice", "lastPrice")] == \
        [stats[k] for k in ("open", "high", "low", "last")]
    assert all(Decimal(ticker[k]) % sim.instrument.tick == 0 for k in ("openPrice", "highPrice", "lowPrice"))
    history = await binance.fetch_funding_rate_history(SWAP, limit=6)
    rates = [h["info"]["fundingRate"] for h in history]
    assert len(rates) == 6 and len(set(rates)) > 1  # every period its own rate
    assert [h["timestamp"] for h in history] == [f["time"] for f in sim.funding_history(now, limit=6)]
    clock.advance(8 * HOUR)  # a settled period never changes
    later = await binance.fetch_funding_rate_history(SWAP, since=history[0]["timestamp"], limit=6)
    assert [h["info"]["fundingRate"] for h in later] == rates


async def test_a_delivered_quarterly_contract_is_listed_as_delivered_and_off_the_tickers(
        binance: ccxt_async.binanceusdm, app) -> None:
    quarterly = app.state.venues["binanceusdm"].instruments["BTCUSDT_220325"]
    assert quarterly.expiry_ms == quarterly.raw["deliveryDate"] < FIXED_MS
    info = await binance.fapiPublicGetExchangeInfo()
    assert {s["symbol"]: s["status"] for s in info["symbols"]}["BTCUSDT_220325"] == "DELIVERED"
    assert "BTCUSDT_220325" not in {t["symbol"] for t in await binance.fapiPublicGetTicker24hr()}
    book = await binance.fapiPublicGetDepth({"symbol": "BTCUSDT_220325"})
    assert book["bids"] == [] and book["asks"] == []


async def test_open_interest_history_samples_the_model_per_period(
        binance: ccxt_async.binanceusdm, sim: InstrumentSim, clock: ManualClock) -> None:
    history = await binance.fetch_open_interest_history(SWAP, "1h", limit=4)
    hour = clock() // HOUR * HOUR
    assert [h["timestamp"] for h in history] == [hour - k * HOUR for k in (3, 2, 1, 0)]
    assert [Decimal(h["info"]["sumOpenInterest"]) for h in history] == [sim.open_interest(h["timestamp"]) for h in history]
    with pytest.raises(ccxt.BadRequest):
        await binance.fapiDataGetOpenInterestHist({"symbol": "BTCUSDT", "period": "7m"})
    with pytest.raises(ccxt.BadSymbol):
        await binance.fapiDataGetOpenInterestHist({"symbol": "NOPEUSDT", "period": "1h"})


async def test_book_tickers_and_last_prices_list_only_trading_contracts(binance: ccxt_async.binanceusdm) -> None:
    assert "BTCUSDT_220325" not in {t["symbol"] for t in await binance.fapiPublicGetTickerBookTicker()}
    assert "BTCUSDT_220325" not in {t["symbol"] for t in await binance.fapiPublicV2GetTickerPrice()}
    with pytest.raises(ccxt.BadSymbol):
        await binance.fapiPublicGetTickerBookTicker({"symbol": "BTCUSDT_220325"})
