"""The Bybit v5 linear sandbox venue on the wire: recorded instruments and formats, every value
from the market model (on the tick and lot grid, consistent with :class:`InstrumentSim`),
dated futures that stop at delivery, and Bybit's own error answers.

ccxt's view of the same venue (and the exception classes it raises) is in
``test_sandbox_bybit_ccxt.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from exgate.sandbox.app import create_sandbox_app
from exgate.sandbox.data import Recordings
from exgate.sandbox.sim import InstrumentSim
from tests.conftest import ManualClock, ServerThread, require_fixtures

DATA = require_fixtures()

FIXED_MS = 1_717_000_000_000  # 2024-05-29T16:26:40Z
HOUR = 3_600_000
BTC = "category=linear&symbol=BTCUSDT"
NAUTILUS = "nautilus_trader/crates/adapters/bybit/test_data/"
# Bybit's quarterly deliveries (08:00 UTC, last Friday of the quarter's month) around FIXED_MS
DELIVERED, NEXT, AFTER = "BTCUSDT-29MAR24", "BTCUSDT-28JUN24", "BTCUSDT-27SEP24"
NEXT_MS = 1_719_561_600_000  # 2024-06-28T08:00:00Z
INVALID = (10001, "params error: symbol invalid")  # real Bybit's answer for an unknown linear symbol


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(FIXED_MS)


@contextlib.contextmanager
def served(app) -> Iterator[httpx.Client]:
    """A client of ``app`` served on loopback (Starlette's TestClient is deprecated over httpx)."""
    with ServerThread(app) as server, httpx.Client(base_url=server.url) as client:
        yield client


@pytest.fixture
def app(clock: ManualClock):
    return create_sandbox_app(venues=["bybit"], clock=clock)


@pytest.fixture
def client(app) -> Iterator[httpx.Client]:
    with served(app) as client:
        yield client


def sim(app, symbol: str = "BTCUSDT") -> InstrumentSim:
    return app.state.venues["bybit"].sims[symbol]


def result(client: httpx.Client, path: str) -> dict:
    """GET ``/bybit{path}``, check Bybit's success envelope and return its ``result``."""
    response = client.get("/bybit" + path)
    assert response.status_code == 200
    body = response.json()
    assert (body["retCode"], body["retMsg"], body["retExtInfo"]) == (0, "OK", {}), body
    assert isinstance(body["time"], int)
    return body["result"]


def error(client: httpx.Client, path: str) -> tuple[int, str]:
    """GET ``/bybit{path}`` expecting Bybit's error envelope (HTTP 200); ``(retCode, retMsg)``."""
    response = client.get("/bybit" + path)
    assert response.status_code == 200
    body = response.json()
    assert body["result"] == {} and body["retExtInfo"] == {} and isinstance(body["time"], int)
    return body["retCode"], body["retMsg"]


def test_instruments_echo_the_recorded_perpetuals_and_list_quarterly_futures(client: httpx.Client) -> None:
    recorded_list = Recordings(DATA).json(NAUTILUS + "http_get_instruments_linear.json")["result"]["list"]
    res = result(client, "/v5/market/instruments-info?category=linear&limit=1000")
    assert res["category"] == "linear" and res["nextPageCursor"] == ""
    perps = [i for i in res["list"] if i["contractType"] == "LinearPerpetual"]
    assert [i["symbol"] for i in perps] == [i["symbol"] for i in recorded_list]
    assert perps[0]["priceFilter"] == recorded_list[0]["priceFilter"]
    assert perps[0]["fundingInterval"] == 480  # minutes, as Bybit sends (the recording says 8)
    futures = {i["symbol"]: i for i in res["list"] if i["contractType"] == "LinearFutures"}
    assert {NEXT, AFTER, "ETHUSDT-28JUN24"} <= set(futures) and DELIVERED not in futures
    assert futures[NEXT]["deliveryTime"] == str(NEXT_MS) and futures[NEXT]["status"] == "Trading"
    assert futures[NEXT]["priceFilter"] == perps[0]["priceFilter"]
    assert int(futures[NEXT]["launchTime"]) < FIXED_MS
    closed = result(client, "/v5/market/instruments-info?category=linear&status=Closed")["list"]
    assert [(i["symbol"], i["status"]) for i in closed if i["baseCoin"] == "BTC"] == [(DELIVERED, "Closed")]
    assert result(client, "/v5/market/instruments-info?category=linear&status=PreLaunch")["list"] == []
    assert result(client, "/v5/market/instruments-info?category=spot")["list"] == []
    unknown = client.get("/bybit/v5/market/instruments-info?category=linear&symbol=NOPEUSDT").json()
    assert (unknown["retCode"], unknown["retMsg"], unknown["result"]) == (*INVALID, {"category": "", "list": [],
                                                                                      "nextPageCursor": ""})
    page = result(client, "/v5/market/instruments-info?category=linear&limit=1")
    assert len(page["list"]) == 1 and page["nextPageCursor"]


def test_book_is_the_models_on_the_grid_to_bybits_depth(app, client: httpx.Client) -> None:
    info = result(client, f"/v5/market/instruments-info?{BTC}")["list"][0]
    tick, lot = Decimal(info["priceFilter"]["tickSize"]), Decimal(info["lotSizeFilter"]["qtyStep"])
    book = result(client, f"/v5/market/orderbook?{BTC}")  # Bybit's default depth is 25
    assert book["s"] == "BTCUSDT" and book["ts"] == FIXED_MS and len(book["b"]) == len(book["a"]) == 25
    bids, asks = sim(app).book(FIXED_MS, 25)
    assert [[Decimal(p), Decimal(s)] for p, s in book["b"]] == [[p, s] for p, s in bids]
    assert [[Decimal(p), Decimal(s)] for p, s in book["a"]] == [[p, s] for p, s in asks]
    for depth, served_depth in ((1, 1), (200, 200), (500, 500), (1000, 500)):
        deep = result(client, f"/v5/market/orderbook?{BTC}&limit={depth}")
        assert len(deep["b"]) == len(deep["a"]) == served_depth
    prices_b = [Decimal(p) for p, _ in deep["b"]]
    prices_a = [Decimal(p) for p, _ in deep["a"]]
    assert prices_b == sorted(prices_b, reverse=True) and prices_a == sorted(prices_a) and prices_b[0] < prices_a[0]
    assert all(p % tick == 0 for p in prices_b + prices_a)
    assert all(Decimal(s) % lot == 0 and Decimal(s) > 0 for _, s in deep["b"] + deep["a"])


def test_ticker_agrees_with_the_model_and_the_book(app, client: httpx.Client) -> None:
    (tick,) = result(client, f"/v5/market/tickers?{BTC}")["list"]
    market = sim(app)
    book = result(client, f"/v5/market/orderbook?{BTC}&limit=1")
    assert Decimal(tick["bid1Price"]) == Decimal(book["b"][0][0]) and Decimal(tick["bid1Size"]) == Decimal(book["b"][0][1])
    assert Decimal(tick["ask1Price"]) == Decimal(book["a"][0][0])
    assert Decimal(tick["lastPrice"]) == market.price(FIXED_MS) and len(tick["lastPrice"].split(".")[1]) == 2
    assert Decimal(tick["markPrice"]) == market.mark_price(FIXED_MS) != Decimal(tick["indexPrice"])
    assert Decimal(tick["indexPrice"]) == market.index_price(FIXED_MS)
    stats = market.stats_24h(FIXED_MS)
    assert Decimal(tick["highPrice24h"]) == stats["high"] and Decimal(tick["lowPrice24h"]) == stats["low"]
    assert Decimal(tick["prevPrice24h"]) == stats["open"] and Decimal(tick["volume24h"]) == stats["volume"]
    assert Decimal(tick["fundingRate"]) == market.funding_rate(FIXED_MS)
    assert int(tick["nextFundingTime"]) == market.next_funding_ms(FIXED_MS) and int(tick["nextFundingTime"]) % (8 * HOUR) == 0
    assert Decimal(tick["openInterest"]) == market.open_interest(FIXED_MS)
    all_ = [t["symbol"] for t in result(client, "/v5/market/tickers?category=linear")["list"]]
    assert "BTCUSDT" in all_ and NEXT in all_ and DELIVERED not in all_
    (future,) = result(client, f"/v5/market/tickers?category=linear&symbol={NEXT}")["list"]
    assert future["deliveryTime"] == str(NEXT_MS) and future["fundingRate"] == "" and future["basis"]


def test_prices_move_and_trades_are_the_models_fills(app, client: httpx.Client, clock: ManualClock) -> None:
    tick = Decimal(result(client, f"/v5/market/instruments-info?{BTC}")["list"][0]["priceFilter"]["tickSize"])
    before = result(client, f"/v5/market/tickers?{BTC}")["list"][0]["lastPrice"]
    clock.now = FIXED_MS + 2 * HOUR
    last = result(client, f"/v5/market/tickers?{BTC}")["list"][0]["lastPrice"]
    assert last != before and Decimal(last) % tick == 0
    trades = result(client, f"/v5/market/recent-trade?{BTC}&limit=30")["list"]
    times = [int(t["time"]) for t in trades]
    assert len(trades) == 30 and times == sorted(times, reverse=True) and times[0] <= clock.now  # newest first
    assert Decimal(trades[0]["price"]) == Decimal(last) and {t["side"] for t in trades} == {"Buy", "Sell"}
    assert all(Decimal(t["price"]) % tick == 0 for t in trades)
    model = sim(app).trades(clock.now, 30)[::-1]
    assert [(Decimal(t["price"]), Decimal(t["size"]), t["side"] == "Sell") for t in trades] == \
        [(m["price"], m["size"], m["buyer_maker"]) for m in model]
    assert len(result(client, f"/v5/market/recent-trade?{BTC}")["list"]) == 500  # Bybit's default
    assert len(result(client, f"/v5/market/recent-trade?{BTC}&limit=5000")["list"]) == 1000  # and maximum


def test_klines_are_newest_first_and_respect_interval_start_and_limit(client: httpx.Client) -> None:
    rows = result(client, f"/v5/market/kline?{BTC}&interval=60&limit=3")["list"]
    assert [int(r[0]) for r in rows] == [FIXED_MS // HOUR * HOUR - k * HOUR for k in range(3)]
    start = FIXED_MS - 10 * HOUR + 1
    rows = result(client, f"/v5/market/kline?{BTC}&interval=60&limit=3&start={start}")["list"]
    first = -(-start // HOUR) * HOUR
    assert [int(r[0]) for r in rows] == [first + 2 * HOUR, first + HOUR, first]
    assert all(Decimal(r[3]) <= min(Decimal(r[1]), Decimal(r[4])) <= Decimal(r[2]) for r in rows)
    weeks = result(client, "/v5/market/kline?symbol=BTCUSDT&interval=W&limit=2")["list"]  # category defaults to linear
    assert [int(r[0]) for r in weeks] == [1716768000000, 1716163200000]  # Mondays 2024-05-27 and 05-20


@pytest.mark.parametrize("path, kind", [("mark-price-kline", "mark"), ("index-price-kline", "index"),
                                        ("premium-index-price-kline", "premium")])
def test_mark_index_and_premium_klines_are_the_models(app, client: httpx.Client, path: str, kind: str) -> None:
    res = result(client, f"/v5/market/{path}?{BTC}&interval=60&limit=4")
    assert res["symbol"] == "BTCUSDT" and res["category"] == "linear"
    model = sim(app).candles(HOUR, FIXED_MS, limit=4, kind=kind)[::-1]
    assert [len(r) for r in res["list"]] == [5] * 4  # [startTime, open, high, low, close]
    assert [[int(r[0]), *map(Decimal, r[1:])] for r in res["list"]] == \
        [[c["open_time"], c["open"], c["high"], c["low"], c["close"]] for c in model]
    if kind == "premium":
        assert all(abs(Decimal(v)) < Decimal("0.01") for r in res["list"] for v in r[1:])
    assert error(client, f"/v5/market/{path}?category=spot&symbol=BTCUSDT&interval=60") == (10001, "Illegal category")


def test_funding_history_settles_a_rate_per_period(app, client: httpx.Client) -> None:
    rows = result(client, f"/v5/market/funding/history?{BTC}&limit=6")["list"]
    stamps = [int(r["fundingRateTimestamp"]) for r in rows]
    assert stamps == [FIXED_MS // (8 * HOUR) * 8 * HOUR - k * 8 * HOUR for k in range(6)]  # newest first
    rates = [Decimal(r["fundingRate"]) for r in rows]
    assert len(set(rates)) > 1
    model = sim(app).funding_history(FIXED_MS, limit=6)[::-1]
    assert rates == [p["rate"] for p in model]
    end = stamps[2]
    ranged = result(client, f"/v5/market/funding/history?{BTC}&startTime={stamps[4]}&endTime={end}")["list"]
    assert [int(r["fundingRateTimestamp"]) for r in ranged] == stamps[2:5]
    assert len(result(client, f"/v5/market/funding/history?{BTC}")["list"]) == 200
    assert error(client, f"/v5/market/funding/history?{BTC}&startTime={stamps[4]}")[0] == 10001
    assert result(client, f"/v5/market/funding/history?category=linear&symbol={NEXT}")["list"] == []


def test_open_interest_per_interval_with_cursor_paging(app, client: httpx.Client) -> None:
    res = result(client, f"/v5/market/open-interest?{BTC}&intervalTime=5min&limit=3")
    assert res["symbol"] == "BTCUSDT" and res["category"] == "linear"
    stamps = [int(r["timestamp"]) for r in res["list"]]
    assert stamps == [FIXED_MS // 300_000 * 300_000 - k * 300_000 for k in range(3)]
    assert [Decimal(r["openInterest"]) for r in res["list"]] == [sim(app).open_interest(t) for t in stamps]
    assert all(len(r["openInterest"].split(".")[1]) == 8 for r in res["list"])
    older = result(client, f"/v5/market/open-interest?{BTC}&intervalTime=5min&limit=3&cursor={res['nextPageCursor']}")
    assert [int(r["timestamp"]) for r in older["list"]] == [stamps[-1] - k * 300_000 for k in range(1, 4)]
    for interval, step in (("15min", 900_000), ("30min", 1_800_000), ("1h", HOUR), ("4h", 4 * HOUR), ("1d", 24 * HOUR)):
        rows = result(client, f"/v5/market/open-interest?{BTC}&intervalTime={interval}")["list"]
        assert len(rows) == 50 and all(int(r["timestamp"]) % step == 0 for r in rows)  # default limit 50
    assert len(result(client, f"/v5/market/open-interest?{BTC}&intervalTime=1h&limit=500")["list"]) == 200
    assert error(client, f"/v5/market/open-interest?{BTC}&intervalTime=1m")[0] == 10001
    assert error(client, f"/v5/market/open-interest?{BTC}")[0] == 10001


def test_risk_limits_delivery_prices_and_long_short_ratio(app, client: httpx.Client) -> None:
    tiers = result(client, f"/v5/market/risk-limit?{BTC}")["list"]
    assert [t["id"] for t in tiers] == list(range(1, 11)) and tiers[0]["maxLeverage"] == "100.00"
    caps = [Decimal(t["riskLimitValue"]) for t in tiers]
    leverage = [Decimal(t["maxLeverage"]) for t in tiers]
    assert caps == sorted(caps) and leverage == sorted(leverage, reverse=True)
    assert all(Decimal(t["maintenanceMargin"]) < Decimal(t["initialMargin"]) for t in tiers)
    every = {t["symbol"] for t in result(client, "/v5/market/risk-limit?category=linear")["list"]}
    assert {"BTCUSDT", "ETHUSDT", NEXT} <= every
    delivered = result(client, "/v5/market/delivery-price?category=linear&baseCoin=BTC")["list"]
    expiry = sim(app, DELIVERED).instrument.expiry_ms
    assert delivered == [{"symbol": DELIVERED, "deliveryTime": str(expiry),
                          "deliveryPrice": f"{sim(app, DELIVERED).index_price(expiry - 1):.2f}"}]
    assert result(client, f"/v5/market/delivery-price?category=linear&symbol={NEXT}")["list"] == []  # not yet
    assert error(client, f"/v5/market/delivery-price?{BTC}") == INVALID  # a perpetual is never delivered
    ratios = result(client, f"/v5/market/account-ratio?{BTC}&period=1h&limit=3")["list"]
    assert [int(r["timestamp"]) for r in ratios] == [FIXED_MS // HOUR * HOUR - k * HOUR for k in range(3)]
    assert all(Decimal(r["buyRatio"]) + Decimal(r["sellRatio"]) == 1 for r in ratios)
    assert error(client, f"/v5/market/account-ratio?{BTC}&period=2h")[0] == 10001


def test_system_status_and_time(client: httpx.Client) -> None:
    assert result(client, "/v5/system/status") == {"list": []}
    assert result(client, "/v5/market/time") == {"timeSecond": str(FIXED_MS // 1000), "timeNano": str(FIXED_MS * 10**6)}


def test_futures_stop_trading_at_delivery(app, client: httpx.Client, clock: ManualClock) -> None:
    assert error(client, f"/v5/market/orderbook?category=linear&symbol={DELIVERED}") == INVALID
    assert error(client, f"/v5/market/recent-trade?category=linear&symbol={DELIVERED}") == INVALID
    history = result(client, f"/v5/market/kline?category=linear&symbol={DELIVERED}&interval=D&limit=3")["list"]
    assert history and int(history[0][0]) < int(sim(app, DELIVERED).instrument.expiry_ms)  # history stays
    assert len(result(client, f"/v5/market/orderbook?category=linear&symbol={NEXT}&limit=5")["b"]) == 5
    clock.now = NEXT_MS + HOUR
    assert error(client, f"/v5/market/orderbook?category=linear&symbol={NEXT}") == INVALID
    assert error(client, f"/v5/market/tickers?category=linear&symbol={NEXT}") == INVALID
    closed = {i["symbol"]: i for i in result(client, "/v5/market/instruments-info?category=linear&status=Closed")["list"]}
    assert closed[NEXT]["status"] == "Closed"
    listed = [i["symbol"] for i in result(client, "/v5/market/instruments-info?category=linear")["list"]]
    assert NEXT not in listed and AFTER in listed
    last = result(client, f"/v5/market/kline?category=linear&symbol={NEXT}&interval=60&limit=2")["list"]
    assert int(last[0][0]) < NEXT_MS  # no candle after delivery


@pytest.mark.parametrize("path, expected", [
    ("/v5/market/tickers?category=linear&symbol=NOPEUSDT", INVALID),
    ("/v5/market/orderbook?category=linear&symbol=NOPEUSDT", INVALID),
    ("/v5/market/kline?category=linear&symbol=NOPEUSDT&interval=60", INVALID),
    ("/v5/market/open-interest?category=linear&symbol=NOPEUSDT&intervalTime=1h", INVALID),
    ("/v5/market/recent-trade?category=spot&symbol=BTCUSDT", (10001, "Not supported symbols")),
    ("/v5/market/tickers?category=spot&symbol=BTCUSDT", (10001, "Not supported symbols")),
    ("/v5/market/orderbook?symbol=BTCUSDT", (10001, "Illegal category")),
    ("/v5/market/tickers?category=futures", (10001, "Illegal category")),
    ("/v5/market/instruments-info", (10001, "Illegal category")),
    ("/v5/market/orderbook?category=linear", INVALID),
    ("/v5/market/kline?category=linear&symbol=BTCUSDT&interval=7", (10001, "Invalid period!")),
    ("/v5/market/kline?category=linear&symbol=BTCUSDT", (10001, "params error: interval invalid")),
    ("/v5/market/orderbook?category=linear&symbol=BTCUSDT&limit=0", (10001, "params error: limit invalid")),
    ("/v5/market/kline?category=linear&symbol=BTCUSDT&interval=60&start=soon", (10001, "params error: start invalid")),
])
def test_errors_use_bybit_envelope_with_http_200(client: httpx.Client, path: str, expected: tuple[int, str]) -> None:
    assert error(client, path) == expected


def test_rate_limit_answers_10006_then_403_once_banned(clock: ManualClock) -> None:
    with served(create_sandbox_app(venues=["bybit"], clock=clock, limits={"bybit": (2, 5_000)}, ban_after=1)) as client:
        assert client.get(f"/bybit/v5/market/tickers?{BTC}").status_code == 200
        client.get(f"/bybit/v5/market/tickers?{BTC}")
        over = client.get(f"/bybit/v5/market/tickers?{BTC}")
        assert over.status_code == 200 and over.headers["x-bapi-limit"] == "2"
        assert (over.json()["retCode"], over.json()["retMsg"]) == (10006, "Too many visits!")
        banned = client.get(f"/bybit/v5/market/tickers?{BTC}")
        assert banned.status_code == 403 and banned.text == "access too frequent"


def test_stats_count_requests_by_path_and_status(client: httpx.Client) -> None:
    client.get(f"/bybit/v5/market/tickers?{BTC}")
    client.get("/bybit/v5/market/tickers?category=linear&symbol=NOPEUSDT")
    client.get("/bybit/v5/nowhere")
    stats = client.get("/__sandbox/stats").json()["venues"]["bybit"]
    assert stats["requests"] == 3
    assert stats["by_path"] == {"/v5/market/tickers": 2, "/v5/nowhere": 1}
    assert stats["by_status"] == {"200": 2, "404": 1}
    assert stats["by_operation"] == {"GET /v5/market/tickers": 2, "GET /v5/nowhere": 1}
    assert stats["synthetic"] is False


def test_synthetic_instruments_without_recordings(tmp_path) -> None:
    with served(create_sandbox_app(tmp_path, venues=["bybit"], clock=lambda: FIXED_MS)) as client:
        symbols = [i["symbol"] for i in result(client, "/v5/market/instruments-info?category=linear")["list"]]
        assert symbols == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
        (tick,) = result(client, f"/v5/market/tickers?{BTC}")["list"]
        assert Decimal(tick["bid1Price"]) < Decimal(tick["ask1Price"])
        assert client.get("/__sandbox/stats").json()["venues"]["bybit"]["synthetic"] is True
