"""The Bybit v5 linear sandbox venue: recorded values at t0, a moving but sane market after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from exgate.sandbox.app import create_sandbox_app
from exgate.sandbox.data import Recordings
from tests.conftest import ManualClock, ServerThread, require_fixtures

DATA = require_fixtures()

FIXED_MS = 1_717_000_000_000  # 2024-05-29T16:26:40Z
HOUR = 3_600_000
BTC = "category=linear&symbol=BTCUSDT"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(FIXED_MS)


@contextlib.contextmanager
def served(app) -> Iterator[httpx.Client]:
    """A client of ``app`` served on loopback (Starlette's TestClient is deprecated over httpx)."""
    with ServerThread(app) as server, httpx.Client(base_url=server.url) as client:
        yield client


@pytest.fixture
def client(clock: ManualClock) -> Iterator[httpx.Client]:
    with served(create_sandbox_app(venues=["bybit"], clock=clock)) as client:
        yield client


def result(client: httpx.Client, path: str) -> dict:
    """GET ``/bybit{path}``, check Bybit's success envelope and return its ``result``."""
    response = client.get("/bybit" + path)
    assert response.status_code == 200
    body = response.json()
    assert (body["retCode"], body["retMsg"], body["retExtInfo"]) == (0, "OK", {})
    assert isinstance(body["time"], int)
    return body["result"]


def recorded(method: str, description: str) -> dict:
    return Recordings(DATA).ccxt_response("bybit", method, description)["result"]


def test_instruments_echo_the_recorded_linear_perpetuals(client: httpx.Client) -> None:
    recorded_list = Recordings(DATA).json(
        "nautilus_trader/crates/adapters/bybit/test_data/http_get_instruments_linear.json")["result"]["list"]
    res = result(client, "/v5/market/instruments-info?category=linear&limit=1000")
    assert res["category"] == "linear" and res["nextPageCursor"] == ""
    assert [i["symbol"] for i in res["list"]] == [i["symbol"] for i in recorded_list]
    assert res["list"][0]["priceFilter"] == recorded_list[0]["priceFilter"]
    assert result(client, "/v5/market/instruments-info?category=linear&status=PreLaunch")["list"] == []
    assert result(client, "/v5/market/instruments-info?category=spot")["list"] == []
    page = result(client, "/v5/market/instruments-info?category=linear&limit=1")
    assert len(page["list"]) == 1 and page["nextPageCursor"]


def test_book_and_ticker_at_t0_equal_the_recordings(client: httpx.Client) -> None:
    book = recorded("fetchOrderBook", "swap orderbook")
    ticker = recorded("fetchTicker", "swap ticker")["list"][0]
    served = result(client, f"/v5/market/orderbook?{BTC}&limit={len(book['b'])}")
    assert (served["s"], served["b"], served["a"], served["ts"]) == ("BTCUSDT", book["b"], book["a"], FIXED_MS)
    deep = result(client, f"/v5/market/orderbook?{BTC}")  # Bybit's default depth is 25
    assert len(deep["b"]) == len(deep["a"]) == 25 and deep["b"][:2] == book["b"]

    (tick,) = result(client, f"/v5/market/tickers?{BTC}")["list"]
    assert Decimal(tick["bid1Price"]) == Decimal(book["b"][0][0]) and tick["bid1Size"] == book["b"][0][1]
    assert Decimal(tick["ask1Price"]) == Decimal(book["a"][0][0]) and tick["ask1Size"] == book["a"][0][1]
    assert tick["lastPrice"] == tick["bid1Price"] == "42544.70"  # priceScale 2, as Bybit prints
    for key in ("fundingRate", "volume24h", "openInterest"):
        assert tick[key] == ticker[key]
    assert abs(Decimal(tick["price24hPcnt"]) - Decimal(ticker["price24hPcnt"])) < Decimal("0.00001")


def test_prices_move_on_the_tick_grid_without_crossing(client: httpx.Client, clock: ManualClock) -> None:
    tick = Decimal(result(client, "/v5/market/instruments-info?category=linear&symbol=BTCUSDT")
                   ["list"][0]["priceFilter"]["tickSize"])
    before = result(client, f"/v5/market/tickers?{BTC}")["list"][0]["lastPrice"]
    clock.now = FIXED_MS + 2 * HOUR
    book = result(client, f"/v5/market/orderbook?{BTC}&limit=50")
    bids = [Decimal(p) for p, _ in book["b"]]
    asks = [Decimal(p) for p, _ in book["a"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
    assert all(p % tick == 0 for p in bids + asks)
    last = result(client, f"/v5/market/tickers?{BTC}")["list"][0]["lastPrice"]
    assert last != before and Decimal(last) % tick == 0

    trades = result(client, f"/v5/market/recent-trade?{BTC}&limit=3")["list"]
    assert [int(t["time"]) for t in trades] == [clock.now, clock.now - 1000, clock.now - 2000]  # newest first
    assert trades[0]["price"] == last and {t["side"] for t in trades} <= {"Buy", "Sell"}


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


def test_errors_use_bybit_envelope_with_http_200(client: httpx.Client) -> None:
    for path in ("/v5/market/tickers?category=linear&symbol=NOPEUSDT",
                 "/v5/market/orderbook?category=linear&symbol=NOPEUSDT",
                 "/v5/market/recent-trade?category=spot&symbol=BTCUSDT"):
        response = client.get("/bybit" + path)
        assert response.status_code == 200
        assert response.json() == {"retCode": 10001, "retMsg": "Not supported symbols", "result": {},
                                   "retExtInfo": {}, "time": FIXED_MS}
    body = client.get(f"/bybit/v5/market/kline?{BTC}&interval=7").json()
    assert (body["retCode"], body["retMsg"]) == (10001, "Invalid period!")


def test_stats_count_requests_by_path_and_status(client: httpx.Client) -> None:
    client.get(f"/bybit/v5/market/tickers?{BTC}")
    client.get("/bybit/v5/market/tickers?category=linear&symbol=NOPEUSDT")
    client.get("/bybit/v5/nowhere")
    stats = client.get("/__sandbox/stats").json()["venues"]["bybit"]
    assert stats["requests"] == 3
    assert stats["by_path"] == {"/v5/market/tickers": 2, "/v5/nowhere": 1}
    assert stats["by_status"] == {"200": 2, "404": 1}
    assert stats["synthetic"] is False


def test_synthetic_instruments_without_recordings(tmp_path) -> None:
    with served(create_sandbox_app(tmp_path, venues=["bybit"], clock=lambda: FIXED_MS)) as client:
        symbols = [i["symbol"] for i in result(client, "/v5/market/instruments-info?category=linear")["list"]]
        assert symbols == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
        (tick,) = result(client, f"/v5/market/tickers?{BTC}")["list"]
        assert Decimal(tick["bid1Price"]) < Decimal(tick["ask1Price"])
        assert client.get("/__sandbox/stats").json()["venues"]["bybit"]["synthetic"] is True
