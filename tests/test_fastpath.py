"""The raw-ASGI fast path for L1 hits: the same answer and metrics as FastAPI's, or no answer.

Two gateways on the session sandbox share one manual clock: ``fast`` (the default app) and
``slow`` (``create_app(..., fast_path=False)``). A read is filled on ``slow`` (FastAPI, a miss),
its L1 entry copied into ``fast`` under the key computed here independently, then both answer
it from L1: ``slow`` through FastAPI, ``fast`` through the fast path (``answered`` counts it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exgate.cache import DataType, market_key
from exgate.cache.entry import Entry, Freshness
from exgate.http.app import create_app
from exgate.readkeys import Read
from exgate.sandbox.app import create_sandbox_app
from exgate.venues.registry import DEFAULT_VENUES, build_adapters
from tests.conftest import ManualClock, ServerThread, require_fixtures

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
BOOK = "/v1/{exchange}/markets/{symbol:path}/orderbook"

# (request path, key its answer is cached under, route label the slow path records)
HITS = [
    ("/v1/bybit/markets", market_key("bybit", DataType.MARKETS), "/v1/{exchange}/markets"),
    ("/v1/bybit/prices", market_key("bybit", DataType.PRICES), "/v1/{exchange}/prices"),
    ("/v1/bybit/prices?symbols=BTC", market_key("bybit", DataType.PRICES, BTC), "/v1/{exchange}/prices"),
    ("/v1/bybit/prices?symbols=ETH,BTC-USDT-PERP,eth", market_key("bybit", DataType.PRICES, f"{ETH},{BTC}"),
     "/v1/{exchange}/prices"),
    ("/v1/bybit/prices?symbols=BTC%2FUSDT%3AUSDT", market_key("bybit", DataType.PRICES, BTC), "/v1/{exchange}/prices"),
    ("/v1/bybit/markets/BTC/orderbook", market_key("bybit", DataType.ORDER_BOOK, BTC, depth=20), BOOK),
    ("/v1/BYBIT/markets/BTCUSDT/orderbook?depth=5", market_key("bybit", DataType.ORDER_BOOK, BTC, depth=5), BOOK),
    ("/v1/bybit/markets/BTC%2FUSDT%3AUSDT/orderbook?depth=20",
     market_key("bybit", DataType.ORDER_BOOK, BTC, depth=20), BOOK),
    ("/v1/bybit/markets/BTC-USDT-PERP/trades?limit=10", market_key("bybit", DataType.TRADES, BTC, limit=10),
     "/v1/{exchange}/markets/{symbol:path}/trades"),
    ("/v1/bybit/markets/BTC/klines?interval=1h&limit=3",
     market_key("bybit", DataType.CANDLES, BTC, interval="1h", limit=3), "/v1/{exchange}/markets/{symbol:path}/klines"),
    ("/v1/bybit/markets/BTC/klines?limit=2&end=1700000000000&interval=1d&start=1690000000000",
     market_key("bybit", DataType.CANDLES, BTC, interval="1d", start=1690000000000, end=1700000000000, limit=2),
     "/v1/{exchange}/markets/{symbol:path}/klines"),
    ("/v1/binanceusdm/markets/BTC/funding", market_key("binanceusdm", DataType.FUNDING, BTC),
     "/v1/{exchange}/markets/{symbol:path}/funding"),
]


@dataclass
class Pair:
    fast: ServerThread
    slow: ServerThread
    clock: ManualClock

    def state(self, which: str):
        return getattr(self, which).server.config.app.state

    def answered(self) -> int:
        return self.state("fast").fast_path.answered

    def copy(self, key: str) -> None:
        """Give ``fast`` the L1 entry ``slow`` holds under ``key``."""
        source, target = self.state("slow").market_data.cache.l1, self.state("fast").market_data.cache.l1
        slot = source.get(key, self.clock())
        assert slot is not None, f"slow has no L1 entry {key}"
        target.put(key, slot.entry, slot.local_until_ms, slot.tags)


@pytest.fixture(scope="module")
def pair(sandbox: ServerThread):
    clock = ManualClock(time.time_ns() // 1_000_000)
    upstreams = {venue: f"{sandbox.url}/{venue}" for venue in DEFAULT_VENUES}
    fast = create_app(build_adapters(DEFAULT_VENUES, upstreams), clock=clock)
    slow = create_app(build_adapters(DEFAULT_VENUES, upstreams), clock=clock, fast_path=False)
    with ServerThread(fast) as f, ServerThread(slow) as s:
        for server in (f, s):  # every venue's markets loaded: symbols resolve locally
            for _ in range(300):
                statuses = httpx.get(server.url + "/healthz").json()["exchanges"]
                if set(statuses.values()) == {"ready"}:
                    break
                time.sleep(0.05)
        yield Pair(f, s, clock)


def _get(base: str, path: str, **kw) -> httpx.Response:
    return httpx.request(kw.pop("method", "GET"), base + path, timeout=30, **kw)


def _headers(response: httpx.Response) -> list[tuple[str, str]]:
    """Every header as sent, in order, but the date (it may turn a second between answers);
    the server's own address (a redirect's ``location``) written as ``BASE``."""
    base = f"{response.request.url.scheme}://{response.request.url.netloc.decode()}"
    return [(k.decode().lower(), v.decode().replace(base, "BASE")) for k, v in response.headers.raw
            if k.lower() != b"date"]


def _samples(base: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(httpx.get(base + "/metrics").text):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _moved(before: dict, after: dict) -> dict:
    """The request-count and cache-lookup samples that changed, by how much."""
    wanted = ("exgate_request_duration_seconds_count", "exgate_cache_lookups_total")
    return {k: after[k] - before.get(k, 0.0) for k in after
            if k[0] in wanted and after[k] != before.get(k, 0.0) and ("route", "/metrics") not in k[1]}


@pytest.mark.parametrize(("path", "key", "route"), HITS, ids=[h[0] for h in HITS])
def test_a_fast_path_hit_is_the_slow_paths_hit_byte_for_byte(pair: Pair, path: str, key: str, route: str):
    filled = _get(pair.slow.url, path)
    assert filled.status_code == 200, filled.text
    pair.copy(key)
    slow_before, fast_before = _samples(pair.slow.url), _samples(pair.fast.url)
    answered = pair.answered()
    slow = _get(pair.slow.url, path)
    fast = _get(pair.fast.url, path)
    assert pair.answered() == answered + 1, "the fast path did not answer"
    assert (slow.headers["x-cache"], slow.headers["x-cache-tier"]) == ("hit", "l1")
    assert fast.status_code == slow.status_code == 200
    assert fast.content == slow.content == filled.content
    assert _headers(fast) == _headers(slow)
    moved = _moved(fast_before, _samples(pair.fast.url))
    assert moved == _moved(slow_before, _samples(pair.slow.url))
    assert moved == {
        ("exgate_cache_lookups_total", (("result", "hit"), ("tier", "l1"))): 1.0,
        ("exgate_request_duration_seconds_count", (("method", "GET"), ("route", route), ("status", "200"))): 1.0,
    }


DECLINED = [
    ("/v1/bybit/markets/BTC/orderbook?depth=5&depth=5", {}),  # repeated parameter
    ("/v1/bybit/markets/BTC/orderbook?depth=0", {}),  # out of range
    ("/v1/bybit/markets/BTC/orderbook?depth=abc", {}),  # not an integer
    ("/v1/bybit/markets/BTC/orderbook?depth=05", {}),  # not written as the key would be: FastAPI parses it
    ("/v1/bybit/markets/BTC/orderbook?depth=", {}),
    ("/v1/bybit/markets/BTC/orderbook?levels=5", {}),  # a parameter the route does not take
    ("/v1/bybit/markets/NOPE/orderbook", {}),  # unknown symbol: suggestions come from the slow path
    ("/v1/nope/markets/BTC/orderbook", {}),  # unknown exchange
    ("/v1/bybit/markets/BTC/klines?limit=3", {}),  # interval missing
    ("/v1/bybit/markets/BTC/klines?interval=7m", {}),
    ("/v1/bybit/markets/BTC/klines?interval=1h&start=-1", {}),
    ("/v1/bybit/prices?symbols=BTC,NOPE", {}),
    ("/v1/bybit/prices?symbols=BTC&symbols=ETH", {}),
    ("/v1/bybit/markets/BTC/orderbook", {"headers": {"Origin": "https://app.example"}}),  # CORS is FastAPI's
    ("/v1/bybit/markets/BTC/orderbook", {"method": "POST"}),
    ("/v1/bybit/markets/BTC/orderbook/", {}),
    ("/v1/cache", {}),  # another route: 405
]


PRIMED = [("/v1/bybit/prices", market_key("bybit", DataType.PRICES)),
          ("/v1/bybit/markets/BTC/orderbook?depth=5", market_key("bybit", DataType.ORDER_BOOK, BTC, depth=5)),
          ("/v1/bybit/markets/BTC/orderbook", market_key("bybit", DataType.ORDER_BOOK, BTC, depth=20))]
"""Entries both gateways hold before each declined request, so what FastAPI answers from
them (a hit, or a subset cut from the same tickers) is the same on both."""


@pytest.mark.parametrize(("path", "kw"), DECLINED, ids=[f"{d[1].get('method', 'GET')} {d[0]} {d[1].get('headers', '')}"
                                                        for d in DECLINED])
def test_what_the_fast_path_declines_gets_the_slow_paths_answer(pair: Pair, path: str, kw: dict):
    for filler, key in PRIMED:
        assert _get(pair.slow.url, filler).status_code == 200
        pair.copy(key)
    answered = pair.answered()
    slow = _get(pair.slow.url, path, **dict(kw))
    fast = _get(pair.fast.url, path, **dict(kw))
    assert pair.answered() == answered, "the fast path answered a request it must leave to FastAPI"
    assert (fast.status_code, fast.content) == (slow.status_code, slow.content)
    assert _headers(fast) == _headers(slow)


def test_head_of_a_hit_is_the_gets_status_and_headers_without_a_body(pair: Pair):
    """HEAD runs as GET inside the HEAD middleware, so a hit is answered by the fast path too."""
    path, key = PRIMED[2]
    assert _get(pair.slow.url, path).status_code == 200
    pair.copy(key)
    answered = pair.answered()
    get = _get(pair.fast.url, path)
    slow, fast = _get(pair.slow.url, path, method="HEAD"), _get(pair.fast.url, path, method="HEAD")
    assert pair.answered() == answered + 2
    assert slow.status_code == fast.status_code == 200 and slow.content == fast.content == b""
    assert _headers(fast) == _headers(slow)
    assert fast.headers["content-length"] == str(len(get.content))


def _alone(sandbox: ServerThread, clock: ManualClock, **kw) -> ServerThread:
    return ServerThread(create_app(build_adapters(["bybit"], {"bybit": f"{sandbox.url}/bybit"}), clock=clock, **kw))


def test_a_stale_copy_goes_to_the_slow_path(sandbox: ServerThread):
    clock = ManualClock(time.time_ns() // 1_000_000)
    with _alone(sandbox, clock) as server:
        app = server.server.config.app
        path = "/v1/bybit/markets/BTC/orderbook?depth=7"
        assert _get(server.url, path).headers["x-cache"] == "miss"
        assert _get(server.url, path).headers["x-cache"] == "hit"
        assert app.state.fast_path.answered == 1
        slot = app.state.market_data.cache.l1.get(market_key("bybit", DataType.ORDER_BOOK, BTC, depth=7), clock())
        clock.advance(slot.entry.expires_ms - clock())  # expired now, within its grace window
        stale = _get(server.url, path)
        assert stale.status_code == 200 and stale.headers["x-cache"] == "stale"
        assert app.state.fast_path.answered == 1


def test_symbols_resolve_only_among_loaded_markets(sandbox: ServerThread):
    """While a venue's markets are not loaded the fast path cannot know a key, even with the
    entry in L1: FastAPI answers (loading the markets); from then on the fast path does."""
    clock = ManualClock(time.time_ns() // 1_000_000)
    with _alone(sandbox, clock, preload=False) as server:
        app = server.server.config.app
        key = market_key("bybit", DataType.ORDER_BOOK, BTC, depth=20)
        app.state.market_data.cache.l1.put(key, Entry.new(b'{"planted":1}', Freshness(ttl_ms=60_000), clock()),
                                           clock() + 60_000)
        assert app.state.market_data.adapters["bybit"].status != "ready"
        first = _get(server.url, "/v1/bybit/markets/BTC/orderbook")
        assert (first.status_code, first.content, first.headers["x-cache"]) == (200, b'{"planted":1}', "hit")
        assert app.state.fast_path.answered == 0 and app.state.market_data.adapters["bybit"].status == "ready"
        second = _get(server.url, "/v1/bybit/markets/BTC/orderbook")
        assert second.content == first.content and _headers(second) == _headers(first)
        assert app.state.fast_path.answered == 1


def test_a_markets_reload_is_seen_by_the_fast_path():
    """The fast path remembers which key a symbol list resolves to, but only for the markets
    it was resolved against: once a reload delists a symbol, its subset still in L1 is no
    longer answered (FastAPI says the symbol is unknown), and a listed one resolves afresh."""
    clock = ManualClock(time.time_ns() // 1_000_000)
    with ServerThread(create_sandbox_app(require_fixtures(), venues=["bybit"])) as own, \
            _alone(own, clock, preload=False) as server:
        app = server.server.config.app
        for path in ("/v1/bybit/prices?symbols=ETHUSDT", "/v1/bybit/prices?symbols=BTC"):
            assert _get(server.url, path).headers["x-cache"] == "miss"  # loads the markets, fills L1
            hit = _get(server.url, path)
            assert hit.status_code == 200 and hit.headers["x-cache"] == "hit"
        assert app.state.fast_path.answered == 2
        venue = own.server.config.app.state.venues["bybit"]
        venue.instruments.pop("ETHUSDT"), venue.sims.pop("ETHUSDT")  # delisted upstream
        listed = _get(server.url, "/v1/bybit/markets")  # a miss: the markets reload
        assert ETH not in {m["symbol"] for m in listed.json()["markets"]}
        gone = _get(server.url, "/v1/bybit/prices?symbols=ETHUSDT")
        assert gone.status_code == 404 and gone.headers["content-type"] == "application/problem+json"
        assert app.state.fast_path.answered == 2
        still = _get(server.url, "/v1/bybit/prices?symbols=BTC")
        assert still.headers["x-cache"] == "hit" and BTC in still.text
        assert app.state.fast_path.answered == 3


def test_remembered_keys_are_bounded(pair: Pair):
    """Endless distinct symbols cannot grow the fast path's memory of keys: unknown ones are
    never kept, and valid spellings (there are endless ones too) at most ``size`` of them."""
    service = pair.state("fast").market_data
    kept = len(service._keys)
    for i in range(3000):
        assert service.cached_key(Read.PRICES, "bybit", symbols=f"NOPE{i}") is None
        assert service.cached_key(Read.ORDER_BOOK, "bybit", f"NOPE{i}") is None
    assert len(service._keys) == kept
    spellings = [f"{' ' * (i % 200)}BTC{',' * (i // 200)}" for i in range(3 * service._keys.size)]
    keys = {service.cached_key(Read.PRICES, "bybit", symbols=s) for s in spellings}
    assert keys == {market_key("bybit", DataType.PRICES, BTC)}
    assert len(service._keys) <= service._keys.size


def test_exgate_serve_runs_on_the_loop_uvicorn_would_choose(monkeypatch):
    """``exgate serve`` starts uvicorn inside its own runner: that runner must use uvloop (as
    ``uvicorn.run`` does when it is installed), not the stdlib loop of ``asyncio.run``."""
    import asyncio

    from typer.testing import CliRunner

    from exgate import cli

    loops: list[str] = []

    async def fake_serve(*args) -> None:
        loops.append(type(asyncio.get_running_loop()).__module__)

    monkeypatch.setattr(cli, "_serve", fake_serve)
    result = CliRunner().invoke(cli.app, ["serve", "--port", "0"])
    assert result.exit_code == 0, result.output
    assert loops and loops[0].startswith("uvloop")
