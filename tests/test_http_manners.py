"""HTTP manners and the OpenAPI document: HEAD, CORS, offline /docs, repeated query
parameters, capped echo of input, and a document that says what the API sends."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ServerThread

ORIGIN = "https://app.example"
TOKEN = "manners-operator-token"


@pytest.fixture
async def client(gateway: ServerThread):
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def configured(sandbox: ServerThread) -> Iterator[ServerThread]:
    """A gateway with ``EXGATE_CORS_ORIGINS`` and an operator token set."""
    from exgate.config import Settings
    from exgate.http.app import create_app
    from exgate.venues.registry import DEFAULT_VENUES, build_adapters

    upstreams = {venue: f"{sandbox.url}/{venue}" for venue in DEFAULT_VENUES}
    settings = Settings(cors_origins=f"{ORIGIN}, https://other.example", admin_token=TOKEN)
    with ServerThread(create_app(build_adapters(DEFAULT_VENUES, upstreams), settings=settings)) as server:
        yield server


def _problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


# -- HEAD -----------------------------------------------------------------------------------
def _get_urls(schema: dict) -> list[str]:
    concrete = {"{exchange}": "bybit", "{symbol}": "BTC"}
    urls = []
    for path, operations in schema["paths"].items():
        # an event stream needs channels and never ends (its HEAD: tests/test_client_stream.py)
        if "get" in operations and "text/event-stream" not in operations["get"]["responses"].get("200", {}).get(
                "content", {}):
            for name, value in concrete.items():
                path = path.replace(name, value)
            urls.append(path + ("?interval=1h" if path.endswith("/klines") else ""))
    return urls + ["/docs", "/openapi.json", "/static-offline-docs/swagger-ui.css"]


async def test_head_answers_like_get_without_a_body_on_every_get_route(client):
    for _ in range(300):  # the session gateway may still be loading markets (/healthz 503 starting)
        if (await client.get("/healthz")).status_code == 200:
            break
        await asyncio.sleep(0.1)
    urls = _get_urls((await client.get("/openapi.json")).json())
    assert "/healthz" in urls and len(urls) >= 12
    for url in urls:
        get, head = await client.get(url), await client.head(url)
        # private routes: this gateway has no store, so both answer the same 503 problem
        expected = 503 if url.startswith(("/v1/connections", "/v1/account")) else 200
        assert head.status_code == get.status_code == expected, (url, head.status_code, get.text[:200])
        assert head.content == b""
        if url in ("/metrics", "/v1/exchanges"):  # counters and budgets move between two requests
            assert int(head.headers["content-length"]) > 0
        else:
            assert int(head.headers["content-length"]) == len(get.content), url
        assert head.headers["content-type"] == get.headers["content-type"], url


async def test_head_is_counted_as_head_in_the_request_metrics(client):
    await client.head("/v1/bybit/markets")
    metrics = (await client.get("/metrics")).text
    assert 'method="HEAD",route="/v1/{exchange}/markets",status="200"' in metrics


async def test_head_where_there_is_no_get_is_still_405(client):
    r = await client.head("/v1/cache")
    assert r.status_code == 405 and r.content == b""
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"DELETE"}


async def test_a_405_on_a_get_route_lists_head_in_allow(client):
    r = await client.post("/healthz")
    _problem(r, 405)
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}


# -- CORS -----------------------------------------------------------------------------------
async def test_cors_preflight_and_exposed_headers_for_a_configured_origin(configured):
    async with httpx.AsyncClient(base_url=configured.url, timeout=30) as c:
        pre = await c.options("/v1/bybit/prices", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == ORIGIN
        assert "GET" in pre.headers["access-control-allow-methods"]
        got = await c.get("/v1/bybit/prices", headers={"Origin": ORIGIN})
        assert got.status_code == 200 and got.headers["access-control-allow-origin"] == ORIGIN
        exposed = {h.strip().lower() for h in got.headers["access-control-expose-headers"].split(",")}
        assert {"x-cache", "x-cache-tier", "age", "retry-after"} <= exposed
        stranger = await c.get("/v1/bybit/prices", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in stranger.headers


async def test_no_cors_by_default(client):
    got = await client.get("/healthz", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in got.headers
    pre = await client.options("/healthz", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert pre.status_code == 405 and "access-control-allow-origin" not in pre.headers


# -- offline /docs --------------------------------------------------------------------------
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_load_their_assets_from_this_server(client, page):
    r = await client.get(page)
    assert r.status_code == 200
    assert not re.search(r"https?://", r.text), "the page references another host"
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert any(a.endswith(".js") for a in assets)
    for asset in assets:
        loaded = await client.get(asset)
        assert loaded.status_code == 200 and loaded.content, asset


# -- repeated query parameters --------------------------------------------------------------
async def test_repeated_and_comma_separated_symbols_merge(client):
    r = await client.get("/v1/binanceusdm/prices", params=[("symbols", "BTC"), ("symbols", "ETH")])
    assert r.status_code == 200, r.text
    assert [t["symbol"] for t in r.json()["prices"]] == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    r = await client.get("/v1/hyperliquid/prices", params=[("symbols", "BTC,ETH"), ("symbols", "ATOM")])
    assert [t["symbol"] for t in r.json()["prices"]] == ["BTC/USDC:USDC", "ETH/USDC:USDC", "ATOM/USDC:USDC"]


@pytest.mark.parametrize("path, params, field", [
    ("/v1/bybit/markets/BTC/orderbook", [("depth", "5"), ("depth", "10")], "depth"),
    ("/v1/bybit/markets/BTC/trades", [("limit", "5"), ("limit", "5")], "limit"),
    ("/v1/bybit/markets/BTC/klines", [("interval", "1h"), ("interval", "1d")], "interval"),
    ("/v1/bybit/markets/BTC/klines", [("interval", "1h"), ("start", "1"), ("start", "2")], "start"),
    ("/v1/bybit/markets/BTC/klines", [("interval", "1h"), ("end", "1"), ("end", "2")], "end"),
])
async def test_a_repeated_scalar_is_a_422_naming_it(client, path, params, field):
    body = _problem(await client.get(path, params=params), 422)
    assert body["field"] == field and field in body["detail"]


async def test_repeated_and_comma_separated_cache_keys_and_tags_merge(configured):
    from exgate.cache import DataType
    from exgate.cache.keys import market_key

    keys = [market_key("bybit", DataType.MARKETS), market_key("bybit", DataType.PRICES),
            market_key("pacifica", DataType.MARKETS)]
    async with httpx.AsyncClient(base_url=configured.url, timeout=30,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        for venue in ("bybit", "pacifica"):
            assert (await c.get(f"/v1/{venue}/markets")).status_code == 200
        assert (await c.get("/v1/bybit/prices")).status_code == 200
        r = await c.delete("/v1/cache", params=[("key", f"{keys[0]},{keys[1]}"), ("key", keys[2])])
        assert r.status_code == 200, r.text
        assert sorted(r.json()["invalidated"]) == sorted(keys)
        bad = _problem(await c.delete("/v1/cache", params=[("tag", "exchange:bybit,nonsense")]), 422)
        assert bad["field"] == "tag"


# -- capped echo ----------------------------------------------------------------------------
async def test_a_huge_symbol_is_not_echoed_back(client):
    symbol = "X" * 60_000
    r = await client.get(f"/v1/bybit/markets/{symbol}/orderbook")
    body = _problem(r, 404)
    assert len(r.content) < 2_000
    assert "X" * 100 + "'…" in body["detail"] and "X" * 101 not in body["detail"]
    assert len(body["instance"]) <= 101


async def test_a_huge_exchange_or_interval_is_not_echoed_back(client):
    r = await client.get(f"/v1/{'y' * 60_000}/markets")
    assert _problem(r, 404)["field"] == "exchange" and len(r.content) < 2_000
    r = await client.get("/v1/bybit/markets/BTC/klines", params={"interval": "z" * 60_000})
    assert _problem(r, 422)["field"] == "interval" and len(r.content) < 2_000


# -- the document ---------------------------------------------------------------------------
async def test_the_document_describes_bodies_statuses_and_parameters(client):
    doc = (await client.get("/openapi.json")).json()
    paths, schemas = doc["paths"], doc["components"]["schemas"]
    exchanges = paths["/v1/exchanges"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert schemas[exchanges["$ref"].rsplit("/", 1)[1]]["properties"]["exchanges"]["type"] == "array"
    assert "prefixItems" not in str(doc) and "HTTPValidationError" not in str(doc)
    book = paths["/v1/{exchange}/markets/{symbol}/orderbook"]["get"]
    for status in ("404", "422", "502", "503"):
        content = book["responses"][status]["content"]
        assert list(content) == ["application/problem+json"]
        assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert book["responses"]["503"]["headers"]["Retry-After"]["required"] is True
    depth = next(p for p in book["parameters"] if p["name"] == "depth")["schema"]["anyOf"][0]
    assert (depth["minimum"], depth["maximum"]) == (1, 1000)
    klines = {p["name"]: p for p in paths["/v1/{exchange}/markets/{symbol}/klines"]["get"]["parameters"]}
    assert klines["interval"]["required"] is True and "1h" in klines["interval"]["schema"]["enum"]
    assert klines["limit"]["schema"]["anyOf"][0]["maximum"] == 5000
    assert klines["exchange"]["schema"]["enum"] == ["binanceusdm", "bybit", "hyperliquid", "pacifica"]
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain; version=0.0.4"]
    symbols = next(p for p in paths["/v1/{exchange}/prices"]["get"]["parameters"] if p["name"] == "symbols")
    assert symbols["schema"]["type"] == "array"


async def test_a_bound_violation_gives_the_bounds(client):
    body = _problem(await client.get("/v1/binanceusdm/markets/BTC/orderbook", params={"depth": 5000}), 422)
    assert body["field"] == "depth" and body["allowed"] == {"min": 1, "max": 1000}
    body = _problem(await client.get("/v1/hyperliquid/markets/BTC/orderbook", params={"depth": 500}), 422)
    assert body["field"] == "depth" and body["allowed"] == {"min": 1, "max": 20}
    body = _problem(await client.get("/v1/bybit/markets/BTC/klines"), 422)
    assert body["field"] == "interval" and "1h" in body["allowed"]
