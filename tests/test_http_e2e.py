"""End to end: HTTP API → cache → ccxt adapters → the sandbox, for all four venues."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest

from exgate.venues.registry import DEFAULT_VENUES
from tests.conftest import ServerThread, path_count, require_fixtures, sandbox_stats

PERP = {  # the bare base each venue resolves, and the unified symbol it must resolve to
    "binanceusdm": "BTC/USDT:USDT",
    "bybit": "BTC/USDT:USDT",
    "hyperliquid": "BTC/USDC:USDC",
    "pacifica": "BTC/USDC:USDC",
}


@pytest.fixture
async def client(gateway: ServerThread):
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as c:
        yield c


def _problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["detail"]
    return body


@pytest.mark.parametrize("venue", DEFAULT_VENUES)
async def test_markets_are_normalized_and_listed_as_ready(client, venue):
    r = await client.get(f"/v1/{venue}/markets")
    assert r.status_code == 200, r.text
    markets = {m["symbol"]: m for m in r.json()["markets"]}
    btc = markets[PERP[venue]]
    assert btc["type"] == "perpetual" and btc["base"] == "BTC" and btc["settle"] == btc["quote"]
    assert Decimal(btc["tick_size"]) > 0 and Decimal(btc["lot_size"]) > 0
    info = {e["id"]: e for e in (await client.get("/v1/exchanges")).json()["exchanges"]}
    assert info[venue]["status"] == "ready" and info[venue]["markets"] == len(markets)


async def test_market_metadata_traces_back_to_the_recordings(client):
    """Instrument metadata does not walk: it is exactly what the venue's recorded listing says."""
    require_fixtures()
    binance = {m["id"]: m for m in (await client.get("/v1/binanceusdm/markets")).json()["markets"]}
    assert (binance["BTCUSDT"]["tick_size"], binance["BTCUSDT"]["lot_size"]) == ("0.1", "0.001")
    bybit = {m["id"]: m for m in (await client.get("/v1/bybit/markets")).json()["markets"]}
    assert (bybit["BTCUSDT"]["tick_size"], bybit["BTCUSDT"]["max_leverage"]) == ("0.5", "100")
    pacifica = {m["id"]: m for m in (await client.get("/v1/pacifica/markets")).json()["markets"]}
    assert (pacifica["BTC"]["tick_size"], pacifica["BTC"]["lot_size"], pacifica["BTC"]["max_leverage"]) == \
        ("1", "0.00001", "50")


@pytest.mark.parametrize("venue", DEFAULT_VENUES)
async def test_prices_all_and_by_symbol(client, venue):
    everything = (await client.get(f"/v1/{venue}/prices")).json()["prices"]
    assert PERP[venue] in {t["symbol"] for t in everything}
    r = await client.get(f"/v1/{venue}/prices", params={"symbols": "BTC"})
    assert r.status_code == 200, r.text
    [ticker] = r.json()["prices"]
    assert ticker["symbol"] == PERP[venue] and Decimal(ticker["last"] or ticker["mark"]) > 0
    assert ticker["funding_rate"] is not None


@pytest.mark.parametrize("venue", DEFAULT_VENUES)
async def test_order_book_sorted_uncrossed_and_depth_limited(client, venue):
    r = await client.get(f"/v1/{venue}/markets/BTC/orderbook", params={"depth": 5})
    assert r.status_code == 200, r.text
    book = r.json()
    assert book["symbol"] == PERP[venue]
    bids = [(Decimal(p), Decimal(s)) for p, s in book["bids"]]
    asks = [(Decimal(p), Decimal(s)) for p, s in book["asks"]]
    assert 0 < len(bids) <= 5 and 0 < len(asks) <= 5
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert bids[0][0] < asks[0][0]
    assert isinstance(book["timestamp"], int)


@pytest.mark.parametrize("venue", ["binanceusdm", "bybit", "pacifica"])
async def test_recent_trades(client, venue):
    r = await client.get(f"/v1/{venue}/markets/{PERP[venue].replace('/', '%2F').replace(':', '%3A')}/trades",
                         params={"limit": 10})
    assert r.status_code == 200, r.text
    trades = r.json()["trades"]
    assert 0 < len(trades) <= 10
    assert all(t["side"] in ("buy", "sell") and Decimal(t["price"]) > 0 for t in trades)
    assert [t["timestamp"] for t in trades] == sorted(t["timestamp"] for t in trades)


async def test_trades_where_the_venue_has_no_public_rest_trades(client):
    body = _problem(await client.get("/v1/hyperliquid/markets/BTC/trades"), 404)
    assert "hyperliquid" in body["detail"]


@pytest.mark.parametrize("venue", DEFAULT_VENUES)
async def test_klines_dashed_symbol(client, venue):
    dashed = PERP[venue].split(":")[0].replace("/", "-") + "-PERP"
    r = await client.get(f"/v1/{venue}/markets/{dashed}/klines", params={"interval": "1h", "limit": 3})
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["interval"] == "1h" and page["symbol"] == PERP[venue]
    candles = page["candles"]
    assert 1 <= len(candles) <= 3
    opens = [c["open_time"] for c in candles]
    assert opens == sorted(opens) and all(o % 3_600_000 == 0 for o in opens)
    for c in candles:
        assert c["close_time"] == c["open_time"] + 3_600_000 - 1
        assert Decimal(c["low"]) <= min(Decimal(c["open"]), Decimal(c["close"]))
        assert Decimal(c["high"]) >= max(Decimal(c["open"]), Decimal(c["close"]))


@pytest.mark.parametrize("venue", DEFAULT_VENUES)
async def test_funding(client, venue):
    r = await client.get(f"/v1/{venue}/markets/BTC/funding")
    assert r.status_code == 200, r.text
    funding = r.json()
    assert funding["symbol"] == PERP[venue] and funding["rate"] is not None


async def test_cache_headers_miss_then_hit(client):
    first = await client.get("/v1/bybit/markets/BTC/klines", params={"interval": "1d", "limit": 7})
    second = await client.get("/v1/bybit/markets/BTC/klines", params={"interval": "1d", "limit": 7})
    assert first.headers["x-cache"] == "miss" and second.headers["x-cache"] == "hit"
    assert second.headers["age"] == "0"  # the gateway's clock is frozen in this session
    assert first.content == second.content


async def test_hundred_concurrent_identical_reads_make_one_upstream_request(client, sandbox):
    url = "/v1/binanceusdm/markets/ETH/orderbook"
    params = {"depth": 17}  # a key nothing else reads: cold
    before = path_count(sandbox_stats(sandbox), "binanceusdm", "/fapi/v1/depth")
    first = await asyncio.gather(*(client.get(url, params=params) for _ in range(100)))
    middle = path_count(sandbox_stats(sandbox), "binanceusdm", "/fapi/v1/depth")
    second = await asyncio.gather(*(client.get(url, params=params) for _ in range(100)))
    after = path_count(sandbox_stats(sandbox), "binanceusdm", "/fapi/v1/depth")
    assert all(r.status_code == 200 for r in first + second)
    assert middle - before == 1
    assert after - middle == 0
    assert {r.headers["x-cache"] for r in second} == {"hit"}
    assert len({r.content for r in first + second}) == 1


# -- errors --------------------------------------------------------------------------------
async def test_unknown_exchange_lists_the_served_ones(client):
    body = _problem(await client.get("/v1/kraken2/markets"), 404)
    assert body["available"] == sorted(DEFAULT_VENUES)


@pytest.mark.parametrize("venue", DEFAULT_VENUES)
async def test_unknown_symbol_suggests_close_matches(client, venue):
    body = _problem(await client.get(f"/v1/{venue}/markets/BTC-USDX-PERP/orderbook"), 404)
    assert body["field"] == "symbol" and PERP[venue] in body["suggestions"]


async def test_unknown_symbol_in_a_price_list(client):
    body = _problem(await client.get("/v1/pacifica/prices", params={"symbols": "BTC,NOPE"}), 404)
    assert "NOPE" in body["detail"]


@pytest.mark.parametrize("path, params, field", [
    ("/v1/bybit/markets/BTC/klines", {"interval": "7m"}, "interval"),
    ("/v1/bybit/markets/BTC/klines", {}, "interval"),
    ("/v1/bybit/markets/BTC/klines", {"interval": "1h", "limit": 0}, "limit"),
    ("/v1/bybit/markets/BTC/klines", {"interval": "1h", "start": 5, "end": 4}, "start"),
    ("/v1/binanceusdm/markets/BTC/orderbook", {"depth": 0}, "depth"),
    ("/v1/binanceusdm/markets/BTC/orderbook", {"depth": 5000}, "depth"),
    ("/v1/binanceusdm/markets/BTC/orderbook", {"depth": "ten"}, "depth"),
    ("/v1/pacifica/markets/BTC/trades", {"limit": 100000}, "limit"),
])
async def test_bad_parameters_are_422_naming_the_field(client, path, params, field):
    body = _problem(await client.get(path, params=params), 422)
    assert body["field"] == field and field in body["detail"]


async def test_bad_interval_names_the_allowed_values(client):
    body = _problem(await client.get("/v1/hyperliquid/markets/BTC/klines", params={"interval": "2m"}), 422)
    assert "1h" in body["allowed"] and "1m" in body["allowed"]


async def test_an_interval_the_venue_lacks_is_refused_before_any_upstream_call(client):
    # ccxt's binanceusdm lists binance's 1s timeframe, but fapi's klines have no 1s (-1120 upstream)
    body = _problem(await client.get("/v1/binanceusdm/markets/BTC/klines", params={"interval": "1s"}), 422)
    assert "1s" not in body["allowed"] and "1m" in body["allowed"]


async def test_funding_on_a_spot_market_is_not_supported(client):
    require_fixtures()  # the synthetic Pacifica lists no spot market
    body = _problem(await client.get("/v1/pacifica/markets/SOL-USDC/funding"), 404)
    assert "spot" in body["detail"]


async def test_unknown_route_is_a_problem_not_a_stack_trace(client):
    _problem(await client.get("/v1/bybit/markets/BTC/nonsense"), 404)


async def test_unreachable_venue_is_503_with_retry_after_and_others_still_serve(sandbox):
    from exgate.http.app import create_app
    from exgate.venues.registry import build_adapters

    upstreams = {"binanceusdm": f"{sandbox.url}/binanceusdm", "bybit": "http://127.0.0.1:9/bybit"}
    app = create_app(build_adapters(["binanceusdm", "bybit"], upstreams, timeout_ms=2_000))
    with ServerThread(app) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as c:
            down = await c.get("/v1/bybit/markets/BTC/orderbook")
            up = await c.get("/v1/binanceusdm/markets/BTC/orderbook")
            status = {e["id"]: e["status"] for e in (await c.get("/v1/exchanges")).json()["exchanges"]}
    body = _problem(down, 503)
    assert int(down.headers["retry-after"]) >= 1 and "bybit" in body["detail"]
    assert up.status_code == 200
    assert status == {"binanceusdm": "ready", "bybit": "unavailable"}


async def test_openapi_docs_are_served(client):
    r = await client.get("/openapi.json")
    assert r.status_code == 200 and "/v1/{exchange}/markets/{symbol}/orderbook" in r.json()["paths"]
    assert (await client.get("/docs")).status_code == 200
