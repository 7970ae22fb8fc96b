"""The sandbox's Pacifica venue: the market model's prices from t0 on, in Pacifica's recorded wire format."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import ccxt
import pytest
from starlette.testclient import TestClient

from exgate.sandbox.app import create_sandbox_app
from exgate.sandbox.data import Recordings
from tests.conftest import ManualClock, ServerThread, ccxt_client, require_fixtures

_DATA = require_fixtures()
_RECORDINGS = Recordings(_DATA)
_MARKETS = _RECORDINGS.ccxt_response("pacifica", "fetchMarkets")
_BOOK = _RECORDINGS.ccxt_response("pacifica", "fetchOrderBook")

FIXED_MS = 1_769_553_881_390  # the recorded book's time, a fixed t0
HOUR_MS = 3_600_000
BASE = "/pacifica/api/v1"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(FIXED_MS)


@pytest.fixture
def client(clock: ManualClock) -> TestClient:
    return TestClient(create_sandbox_app(venues=["pacifica"], clock=clock))


def _data(client: TestClient, path: str) -> object:
    response = client.get(BASE + path)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["error"] is None and body["code"] is None
    return body["data"]


def _on_grid(value: str, tick: str) -> bool:
    return Decimal(value) % Decimal(tick) == 0


def test_info_echoes_the_recorded_markets(client: TestClient) -> None:
    assert _data(client, "/info") == _MARKETS["data"]


def _sim(client: TestClient, symbol: str):
    return client.app.state.venues["pacifica"].sims[symbol]


def test_book_at_t0_is_the_market_models_book_in_the_recorded_format(client: TestClient) -> None:
    book = _data(client, "/book?symbol=BTC&agg_level=1")
    assert set(book) == set(_BOOK["data"]) and book["s"] == "BTC" and book["t"] == str(FIXED_MS)
    tick = next(m["tick_size"] for m in _MARKETS["data"] if m["symbol"] == "BTC")
    recorded_level = _BOOK["data"]["l"][0][0]
    bids, asks = book["l"]
    assert 0 < len(bids) <= 10 and 0 < len(asks) <= 10
    for level in bids + asks:
        assert set(level) == set(recorded_level) and all(isinstance(v, str) for v in level.values())
        assert _on_grid(level["p"], tick) and Decimal(level["a"]) > 0 and int(level["n"]) >= 1
    sim_bids, sim_asks = _sim(client, "BTC").book(FIXED_MS, 10)
    assert [(Decimal(lv["p"]), Decimal(lv["a"])) for lv in bids] == sim_bids
    assert [(Decimal(lv["p"]), Decimal(lv["a"])) for lv in asks] == sim_asks
    assert Decimal(bids[0]["p"]) < Decimal(asks[0]["p"])


def test_prices_at_t0_derive_from_the_book_and_the_model(client: TestClient) -> None:
    prices = {p["symbol"]: p for p in _data(client, "/info/prices")}
    assert set(prices) == {"BTC", "SOL-USDC"}
    btc = prices["BTC"]
    book = _data(client, "/book?symbol=BTC")
    best_bid, best_ask = Decimal(book["l"][0][0]["p"]), Decimal(book["l"][1][0]["p"])
    assert Decimal(btc["mid"]) == (best_bid + best_ask) / 2
    sim = _sim(client, "BTC")
    assert Decimal(btc["mark"]) == sim.mark_price(FIXED_MS) and Decimal(btc["oracle"]) == sim.index_price(FIXED_MS)
    assert btc["oracle"] != btc["mark"] and _on_grid(btc["mark"], "1")
    assert abs(Decimal(btc["mark"]) - Decimal(btc["mid"])) <= Decimal(btc["mid"]) * Decimal("0.002")
    assert Decimal(btc["funding"]) == sim.funding_rate(FIXED_MS) and Decimal(btc["open_interest"]) == sim.open_interest(FIXED_MS)
    assert btc["timestamp"] == FIXED_MS


def test_advancing_the_clock_moves_prices_on_the_tick_grid(client: TestClient, clock: ManualClock) -> None:
    before = {p["symbol"]: p for p in _data(client, "/info/prices")}
    clock.now += HOUR_MS
    after = {p["symbol"]: p for p in _data(client, "/info/prices")}
    ticks = {m["symbol"]: m["tick_size"] for m in _MARKETS["data"]}
    for symbol, tick in ticks.items():
        assert after[symbol]["mark"] != before[symbol]["mark"]
        sim = client.app.state.venues["pacifica"].sims[symbol]
        assert _on_grid(after[symbol]["mark"], tick) and _on_grid(after[symbol]["oracle"], tick)
        # the oracle is the model's index (the fair price), the mark the index times its premium
        assert Decimal(after[symbol]["oracle"]) == sim.index_price(clock.now)
        assert Decimal(after[symbol]["mark"]) == sim.mark_price(clock.now)
        book = _data(client, f"/book?symbol={symbol}")
        bids, asks = ([Decimal(lv["p"]) for lv in side] for side in book["l"])
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
        assert bids[0] < asks[0], "book crossed"
        assert all(p % Decimal(tick) == 0 for p in bids + asks)
        assert Decimal(after[symbol]["mid"]) == (bids[0] + asks[0]) / 2
    assert _data(client, "/book?symbol=BTC")["l"] != _BOOK["data"]["l"]


def test_trades_and_candles_follow_pacifica_shapes(client: TestClient, clock: ManualClock) -> None:
    clock.now += HOUR_MS
    trades = _data(client, "/trades?symbol=BTC")
    times = [t["created_at"] for t in trades]
    assert times == sorted(times, reverse=True) and times[0] <= clock.now
    for trade in trades:
        assert trade["event_type"] == "fulfill_taker" and trade["cause"] == "normal"
        assert trade["side"] in {"open_long", "open_short", "close_long", "close_short"}
        assert _on_grid(trade["price"], "1") and _on_grid(trade["amount"], "0.00001")
    start = clock.now - 3 * HOUR_MS
    candles = _data(client, f"/kline?symbol=BTC&interval=1h&start_time={start}&end_time={clock.now}")
    assert [c["t"] for c in candles] == [(start // HOUR_MS + k) * HOUR_MS for k in range(1, 4)]
    for candle in candles:
        assert candle["T"] == candle["t"] + HOUR_MS and candle["s"] == "BTC" and candle["i"] == "1h"
        o, h, low, c = (Decimal(candle[k]) for k in "ohlc")
        assert low <= min(o, c) <= max(o, c) <= h
        assert all(_on_grid(candle[k], "1") for k in "ohlc")
    assert Decimal(candles[-1]["c"]) == Decimal(_data(client, "/trades?symbol=BTC")[0]["price"])  # the last trade
    assert all(c["n"] > 0 for c in candles)


@pytest.mark.parametrize("path", [
    "/book?symbol=NOPE", "/book", "/trades?symbol=NOPE",
    f"/kline?symbol=NOPE&interval=1h&start_time={FIXED_MS}", "/book?symbol=BTC&agg_level=7",
    "/kline?symbol=BTC&interval=7h&start_time=0", "/kline?symbol=BTC&interval=1h",
])
def test_bad_requests_get_pacificas_error_envelope(client: TestClient, path: str) -> None:
    response = client.get(BASE + path)
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["data"] is None and body["code"] == 400
    assert isinstance(body["error"], str) and body["error"]


def test_without_recordings_btc_eth_sol_perps_are_synthesized(tmp_path) -> None:
    app = create_sandbox_app(tmp_path, venues=["pacifica"], clock=lambda: FIXED_MS)
    client = TestClient(app)
    markets = _data(client, "/info")
    assert [m["symbol"] for m in markets] == ["BTC", "ETH", "SOL"]
    assert {m["instrument_type"] for m in markets} == {"perpetual"}
    for market in markets:
        book = _data(client, f"/book?symbol={market['symbol']}")
        bids, asks = book["l"]
        assert len(bids) == len(asks) == 10 and Decimal(bids[0]["p"]) < Decimal(asks[0]["p"])
    assert client.get("/__sandbox/stats").json()["venues"]["pacifica"]["synthetic"] is True


def test_funding_history_settles_each_hour_at_its_own_rate_and_never_changes(client: TestClient,
                                                                             clock: ManualClock) -> None:
    sim = client.app.state.venues["pacifica"].sims["BTC"]
    first = _data(client, "/funding_rate/history?symbol=BTC&limit=6")
    times = [r["created_at"] for r in first]
    assert times == [clock.now // HOUR_MS * HOUR_MS - k * HOUR_MS for k in range(6)]  # newest first
    rates = [r["funding_rate"] for r in first]
    assert len(set(rates)) > 1
    assert [Decimal(r) for r in rates] == [sim.core.funding_rate(t - HOUR_MS, t) for t in times]
    clock.now += 2 * HOUR_MS
    later = {r["created_at"]: r["funding_rate"] for r in _data(client, "/funding_rate/history?symbol=BTC&limit=10")}
    assert [later[t] for t in times] == rates


async def test_out_of_credits_pacifica_answers_429_in_its_envelope_and_ccxt_raises_rate_limit_exceeded(
        clock: ManualClock) -> None:
    app = create_sandbox_app(venues=["pacifica"], clock=clock, limits={"pacifica": (1, 60_000)}, ban_after=1)
    with ServerThread(app) as server:
        exchange = ccxt_client("pacifica", server.url, {"enableRateLimit": False})
        try:
            await exchange.publicGetInfoPrices()  # the one credit
            for _ in range(3):  # no ban on Pacifica: 429 every time
                with pytest.raises(ccxt.RateLimitExceeded):
                    await exchange.publicGetInfoPrices()
        finally:
            await exchange.close()
    rejected = TestClient(app).get("/pacifica/api/v1/info/prices")
    assert rejected.status_code == 429
    assert rejected.json() == {"success": False, "data": None, "error": "Rate limit exceeded", "code": 429}


@pytest.mark.parametrize("agg", [10, 100])
def test_grouped_books_keep_ten_levels_each_at_its_best_price(client: TestClient, clock: ManualClock, agg: int) -> None:
    clock.now += 60_000
    fine = _data(client, "/book?symbol=BTC&agg_level=1")
    grouped = _data(client, f"/book?symbol=BTC&agg_level={agg}")
    tick = Decimal(next(m["tick_size"] for m in _MARKETS["data"] if m["symbol"] == "BTC"))
    bucket = tick * agg
    (fine_bids, fine_asks), (bids, asks) = fine["l"], grouped["l"]
    assert len(bids) == len(asks) == 10
    # "in bids, the highest price in the aggregation level; in asks, the lowest": the touch is unchanged
    assert bids[0]["p"] == fine_bids[0]["p"] and asks[0]["p"] == fine_asks[0]["p"]
    for side, rounding in ((bids, ROUND_FLOOR), (asks, ROUND_CEILING)):  # a bucket: (k-1, k] ticks for asks
        keys = [(Decimal(lv["p"]) / bucket).to_integral_value(rounding=rounding) for lv in side]
        assert len(set(keys)) == 10 and all(int(lv["n"]) >= 1 for lv in side)  # one level per bucket
    assert keys == sorted(keys)  # asks ascend bucket by bucket
    first_bucket = [lv for lv in fine_bids if (Decimal(lv["p"]) / bucket).to_integral_value(rounding=ROUND_FLOOR)
                    == (Decimal(bids[0]["p"]) / bucket).to_integral_value(rounding=ROUND_FLOOR)]
    assert Decimal(bids[0]["a"]) >= sum(Decimal(lv["a"]) for lv in first_bucket)  # sizes add up (deeper levels too)


def test_takers_trade_at_the_touch_and_walk_the_book(client: TestClient, clock: ManualClock) -> None:
    clock.now += 10 * 60_000
    trades = _data(client, "/trades?symbol=BTC")
    takers: dict[int, list[dict]] = {}
    for trade in trades:
        takers.setdefault(trade["created_at"], []).append(trade)
    checked = 0
    now = clock.now
    for at, fills in list(takers.items())[1:-1]:  # the oldest taker may be cut by the page
        clock.now = at - 1  # the book the taker met
        book = _data(client, "/book?symbol=BTC")
        best_bid, best_ask = Decimal(book["l"][0][0]["p"]), Decimal(book["l"][1][0]["p"])
        prices = [Decimal(f["price"]) for f in fills]
        if fills[0]["side"] in ("open_long", "close_short"):  # a buy: at the ask and above
            assert min(prices) == best_ask, (at, prices, best_bid, best_ask)
        else:  # a sell: at the bid and below
            assert max(prices) == best_bid, (at, prices, best_bid, best_ask)
        checked += 1
    clock.now = now
    assert checked >= 20


def test_mark_candles_and_calendar_months(client: TestClient, clock: ManualClock) -> None:
    start = clock.now - 3 * HOUR_MS
    mark = _data(client, f"/kline/mark?symbol=BTC&interval=1h&start_time={start}")
    last = _data(client, f"/kline?symbol=BTC&interval=1h&start_time={start}")
    assert [c["t"] for c in mark] == [c["t"] for c in last] and len(mark) == 3
    sim = _sim(client, "BTC")
    model = sim.candles(HOUR_MS, clock.now, start_ms=start, kind="mark")
    assert [Decimal(c["c"]) for c in mark] == [m["close"] for m in model]
    assert all(c["v"] == "0" and _on_grid(c["o"], "1") for c in mark) and [c["o"] for c in mark] != [c["o"] for c in last]
    from datetime import datetime, timezone
    months = _data(client, f"/kline?symbol=BTC&interval=1M&start_time={clock.now - 200 * 86_400_000}")
    opens = [datetime.fromtimestamp(c["t"] / 1000, tz=timezone.utc) for c in months]
    assert len(months) >= 6 and all(o.day == 1 and o.hour == 0 for o in opens)
    assert all(a["T"] == b["t"] for a, b in zip(months, months[1:])) and months[-1]["t"] <= clock.now < months[-1]["T"]


@pytest.fixture
async def exchange(clock: ManualClock):
    with ServerThread(create_sandbox_app(venues=["pacifica"], clock=clock)) as server:
        client = ccxt_client("pacifica", server.url, {"enableRateLimit": False})
        try:
            yield client
        finally:
            await client.close()


async def test_ccxt_reads_the_public_market_data(exchange, clock: ManualClock) -> None:
    markets = await exchange.load_markets()
    assert "BTC/USDC:USDC" in markets
    book = await exchange.fetch_order_book("BTC/USDC:USDC")
    assert len(book["bids"]) == len(book["asks"]) == 10 and book["bids"][0][0] < book["asks"][0][0]
    trades = await exchange.fetch_trades("BTC/USDC:USDC")
    assert trades and all(t["timestamp"] <= clock.now and t["side"] in ("buy", "sell") for t in trades)
    ohlcv = await exchange.fetch_ohlcv("BTC/USDC:USDC", "1m", since=clock.now - 10 * 60_000)
    assert len(ohlcv) == 10 and ohlcv[-1][0] == clock.now // 60_000 * 60_000
    rates = await exchange.fetch_funding_rate_history("BTC/USDC:USDC", limit=5)
    assert len(rates) == 5 and len({r["fundingRate"] for r in rates}) > 1
    tickers = await exchange.fetch_tickers()
    assert tickers["BTC/USDC:USDC"]["last"] is not None


@pytest.mark.parametrize("call, params", [
    ("publicGetBook", {"symbol": "NOPE"}),
    ("publicGetBook", {}),
    ("publicGetBook", {"symbol": "BTC", "agg_level": 7}),
    ("publicGetKline", {"symbol": "BTC", "interval": "7h", "start_time": 0}),
    ("publicGetKline", {"symbol": "BTC", "interval": "1h"}),
    ("publicGetTrades", {"symbol": "NOPE"}),
    ("publicGetFundingRateHistory", {"symbol": "NOPE"}),
])
async def test_bad_parameters_raise_ccxts_bad_request(exchange, call: str, params: dict) -> None:
    with pytest.raises(ccxt.BadRequest):
        await getattr(exchange, call)(params)
