"""Fields the venues publish reach the API: gateway → ccxt adapters → sandbox, end to end.

The sandbox runs on a frozen clock, so what the gateway serves can be compared digit for digit
with what the sandbox's wire answer says at that moment (read here straight from the sandbox).
"""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from exgate.venues.registry import DEFAULT_VENUES, build_adapters
from tests.conftest import ManualClock, ServerThread, path_count, require_fixtures, sandbox_stats

T0 = 1_790_000_080_000
EIGHT_HOURS_MS = 8 * 3_600_000


@pytest.fixture(scope="module")
def frozen():
    """A sandbox and a gateway over it, both at ``T0`` (nothing moves between two reads)."""
    from exgate.http.app import create_app
    from exgate.sandbox.app import create_sandbox_app

    with ServerThread(create_sandbox_app(require_fixtures(), clock=ManualClock(T0))) as sandbox:
        upstreams = {venue: f"{sandbox.url}/{venue}" for venue in DEFAULT_VENUES}
        app = create_app(build_adapters(DEFAULT_VENUES, upstreams), clock=ManualClock(T0))
        with ServerThread(app) as gateway:
            yield sandbox, gateway


def _prices(gateway: ServerThread, venue: str) -> dict[str, dict]:
    r = httpx.get(f"{gateway.url}/v1/{venue}/prices", timeout=30)
    assert r.status_code == 200, r.text
    return {t["symbol"]: t for t in r.json()["prices"]}


def _derived_pct(last: str, previous: str) -> Decimal:
    now, before = Decimal(last), Decimal(previous)
    return (now - before) / before * 100


def test_binance_prices_have_the_book_tickers_bid_and_ask(frozen):
    sandbox, gateway = frozen
    before = path_count(sandbox_stats(sandbox), "binanceusdm", "/fapi/v1/ticker/bookTicker")
    prices = _prices(gateway, "binanceusdm")
    # one all-symbols bookTicker read (weight 5) per prices read, not one per symbol
    assert path_count(sandbox_stats(sandbox), "binanceusdm", "/fapi/v1/ticker/bookTicker") == before + 1
    book = {x["symbol"]: x for x in httpx.get(f"{sandbox.url}/binanceusdm/fapi/v1/ticker/bookTicker").json()}
    daily = {x["symbol"]: x for x in httpx.get(f"{sandbox.url}/binanceusdm/fapi/v1/ticker/24hr").json()}
    btc = prices["BTC/USDT:USDT"]
    assert btc["bid"] is not None and btc["ask"] is not None
    assert (Decimal(btc["bid"]), Decimal(btc["ask"])) == (Decimal(book["BTCUSDT"]["bidPrice"]),
                                                          Decimal(book["BTCUSDT"]["askPrice"]))
    assert Decimal(btc["bid"]) < Decimal(btc["ask"])
    assert btc["timestamp"] == daily["BTCUSDT"]["closeTime"] == T0
    assert all(t["bid"] is not None and Decimal(t["bid"]) < Decimal(t["ask"]) for t in prices.values())


def test_binance_funding_has_its_interval_from_funding_info(frozen):
    sandbox, gateway = frozen
    for base, symbol in (("BTC", "BTCUSDT"), ("ETH", "ETHUSDT")):
        r = httpx.get(f"{gateway.url}/v1/binanceusdm/markets/{base}/funding", timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["interval_ms"] == EIGHT_HOURS_MS, symbol
    # fundingInfo is read with the markets (once here), not with each funding read
    assert path_count(sandbox_stats(sandbox), "binanceusdm", "/fapi/v1/fundingInfo") == 1
    listed = httpx.get(f"{sandbox.url}/binanceusdm/fapi/v1/fundingInfo").json()
    assert [x["symbol"] for x in listed] == ["BTCUSDT"]  # ETHUSDT is not listed: Binance's 8 h default


def test_hyperliquid_prices_have_base_volume_and_change_from_prev_day_price(frozen):
    sandbox, gateway = frozen
    btc = _prices(gateway, "hyperliquid")["BTC/USDC:USDC"]
    meta, ctxs = httpx.post(f"{sandbox.url}/hyperliquid/info", json={"type": "metaAndAssetCtxs"}).json()
    ctx = ctxs[[u["name"] for u in meta["universe"]].index("BTC")]
    assert Decimal(btc["volume_24h"]) == Decimal(ctx["dayBaseVlm"])
    assert Decimal(btc["quote_volume_24h"]) == Decimal(ctx["dayNtlVlm"])
    assert Decimal(btc["change_24h_pct"]) == _derived_pct(ctx["midPx"], ctx["prevDayPx"])


def test_pacifica_prices_have_change_from_yesterday_price_and_the_venues_time(frozen):
    sandbox, gateway = frozen
    btc = _prices(gateway, "pacifica")["BTC/USDC:USDC"]
    wire = {x["symbol"]: x for x in httpx.get(f"{sandbox.url}/pacifica/api/v1/info/prices").json()["data"]}
    assert Decimal(btc["change_24h_pct"]) == _derived_pct(wire["BTC"]["mid"], wire["BTC"]["yesterday_price"])
    assert btc["timestamp"] == wire["BTC"]["timestamp"] == T0


def test_bybit_prices_carry_the_responses_time(frozen):
    sandbox, gateway = frozen
    btc = _prices(gateway, "bybit")["BTC/USDT:USDT"]
    wire = httpx.get(f"{sandbox.url}/bybit/v5/market/tickers", params={"category": "linear"}).json()
    assert btc["timestamp"] == int(wire["time"]) == T0
