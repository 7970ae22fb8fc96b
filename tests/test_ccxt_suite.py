"""ccxt's own exchange tests against the sandbox: each venue judged by the validators ccxt ships.

ccxt's package carries its exchange test functions (``ccxt/test/exchange/async/test_*.py``:
``test_fetch_ticker(exchange, skipped_properties, symbol)`` and the like) and the base
validators they call (``ccxt/test/exchange/base``: types, decimal precision against the
market's tick, timestamps against the clock, sorted sides, ...). This runs them the way ccxt's
own runner (``ccxt/test/tests_async.py``) does, per venue and per public method the venue's
ccxt class ``has``, against a real ccxt client pointed at the served sandbox. The sandbox runs
on the wall clock, since ccxt's validators compare timestamps with ``exchange.milliseconds()``.

ccxt ships no test function for ``fetchTime``: that one is checked here (an integer ms within
a few seconds of the clock). A check that fails through a bug of ccxt's own would be skipped by
name in :data:`CCXT_SKIPS`, with the reason; a sandbox bug still open is a strict xfail in
:data:`SANDBOX_BUGS` (it fails the suite once it is fixed, so the entry goes).
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import AsyncIterator, Iterator

import ccxt.async_support as ccxt_async
import pytest

from exgate.sandbox.app import create_sandbox_app
from exgate.venues.profiles import PROFILES
from tests.conftest import ServerThread, ccxt_client, require_fixtures

DATA = require_fixtures()

SYMBOLS = {"binanceusdm": "BTC/USDT:USDT", "bybit": "BTC/USDT:USDT", "hyperliquid": "BTC/USDC:USDC",
           "pacifica": "BTC/USDC:USDC"}
"""The symbol each venue's tests run on (ccxt's runner takes a liquid swap the same way)."""

METHODS = ("loadMarkets", "fetchCurrencies", "fetchTicker", "fetchTickers", "fetchLastPrices", "fetchOrderBook",
           "fetchL2OrderBook", "fetchTrades", "fetchOHLCV", "fetchFundingRateHistory", "fetchOpenInterestHistory",
           "fetchStatus", "fetchTime")
"""The public unified methods judged: markets, currencies, ticker(s), order book, trades, OHLCV,
funding rate history, open interest history, time and status."""

TAKES_SYMBOL = {"fetchTicker", "fetchTickers", "fetchLastPrices", "fetchOrderBook", "fetchL2OrderBook",
                "fetchTrades", "fetchOHLCV", "fetchFundingRateHistory", "fetchOpenInterestHistory"}

SERVED_TYPES = {"binanceusdm": {"swap", "future"}, "bybit": {"swap", "future"}, "hyperliquid": {"swap"},
                "pacifica": {"spot", "swap"}}
"""Market types the sandbox serves per venue (what exgate's venue profile loads: linear contracts
on Binance USD-M and Bybit, perpetuals on Hyperliquid, all of Pacifica's markets). ccxt's ``loadMarkets`` test
wants a market of every type the class ``has``; the client is told the others are absent."""

NOT_PUBLIC = {("hyperliquid", "fetchTrades"): "ccxt's hyperliquid fetchTrades reads one user's fills "
                                              "(userFillsByTime, needs a wallet address): not public data"}
"""(venue, method) -> why a method the class ``has`` is not a public read (not run here)."""

CCXT_SKIPS: dict[tuple[str, str], dict] = {
    ("hyperliquid", "loadMarkets"): {"currencyIdAndCode": "ccxt's hyperliquid takes currencies from spotMeta's "
                                     "tokens, where perpetuals' bases (BTC, ETH, ...) are not listed (the real API "
                                     "lists UBTC, UETH), so exchange.currency('BTC') raises for every perpetual"},
    ("hyperliquid", "fetchCurrencies"): dict.fromkeys(
        ("activeMajorCurrencies", "withdraw", "deposit", "networks"),
        "ccxt's hyperliquid parse_currency leaves active/withdraw/deposit/networks empty whatever spotMeta says"),
    ("bybit", "fetchTrades"): {"sideSequence": "Bybit lists recent trades newest first and ccxt's bybit sorts them "
                               "by timestamp only, so one taker's fills in one ms stay newest first: a buy walking "
                               "the book reads as a falling price (the real API answers the same order)"},
}
"""(venue, method) -> ccxt's ``skipped_properties`` (name -> reason) for checks that fail through
ccxt's own handling of the venue, not the sandbox's answers."""

SANDBOX_BUGS: dict[tuple[str, str], str] = {
}
"""(venue, method) -> why the sandbox still fails ccxt's test (strict xfail)."""


def ccxt_test(method: str):
    """ccxt's own test function for ``method``: ``fetchL2OrderBook`` -> ``test_fetch_l2_order_book``."""
    name = "test_" + re.sub(r"(?<!^)(?=[A-Z])", "_", method.replace("OHLCV", "Ohlcv")).lower()
    return getattr(importlib.import_module(f"ccxt.test.exchange.async.{name}"), name)


def client_of(venue: str, url: str):
    """A real ccxt client of ``venue`` with exgate's options, every API URL at the sandbox."""
    profile = PROFILES[venue]
    exchange = ccxt_client(venue, url, {"enableRateLimit": False})
    exchange.options = exchange.deep_extend(exchange.options, dict(profile.ccxt_options))
    for kind in ("spot", "swap", "future", "option", "index"):
        if exchange.has.get(kind) and kind not in SERVED_TYPES[venue]:
            exchange.has[kind] = False
    return exchange


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(create_sandbox_app(DATA)) as server:  # the wall clock: ccxt compares with it
        yield server


@pytest.fixture
async def exchange(request, server: ServerThread) -> AsyncIterator:
    client = client_of(request.param, server.url)
    try:
        yield client
    finally:
        await client.close()


def cases() -> list:
    params = []
    for venue in SYMBOLS:
        has = getattr(ccxt_async, venue)().has
        for method in METHODS:
            if (method != "loadMarkets" and not has.get(method)) or (venue, method) in NOT_PUBLIC:
                continue
            marks = [pytest.mark.xfail(strict=True, reason=SANDBOX_BUGS[(venue, method)])] \
                if (venue, method) in SANDBOX_BUGS else []
            params.append(pytest.param(venue, method, id=f"{venue}-{method}", marks=marks))
    return params


@pytest.mark.parametrize(("exchange", "method"), [pytest.param(*c.values, id=c.id, marks=c.marks) for c in cases()],
                         indirect=["exchange"])
async def test_ccxt_own_exchange_test(exchange, method: str) -> None:
    venue = exchange.id
    skips = CCXT_SKIPS.get((venue, method), {})
    if method == "loadMarkets":
        await ccxt_test(method)(exchange, skips)
        return
    await exchange.load_markets()
    if method == "fetchTime":
        served = await exchange.fetch_time()
        assert isinstance(served, int) and abs(served - time.time_ns() // 1_000_000) < 5_000
        return
    args = [SYMBOLS[venue]] if method in TAKES_SYMBOL else []
    await ccxt_test(method)(exchange, skips, *args)  # raises (AssertionError, ccxt's errors) on a failure
