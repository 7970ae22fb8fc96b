"""The Hyperliquid sandbox: the market model in the recorded formats, spot tokens, errors as Hyperliquid answers."""

from __future__ import annotations

import importlib
import json
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import ccxt
import pytest
from ccxt.base.errors import ExchangeError
from starlette.testclient import TestClient

from exgate.sandbox.app import create_sandbox_app
from exgate.sandbox.venues.hyperliquid import hl_price
from tests.conftest import ManualClock, ServerThread, ccxt_client, require_fixtures

DATA = require_fixtures()

NAUTILUS = DATA / "nautilus_trader/crates/adapters/hyperliquid/test_data"
T0 = 1_770_000_000_000
HOUR = 3_600_000


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def client(clock: ManualClock) -> TestClient:
    return TestClient(create_sandbox_app(venues=["hyperliquid"], clock=clock))


def info(client: TestClient, body: dict):
    response = client.post("/hyperliquid/info", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def sz_decimals(client: TestClient) -> dict[str, int]:
    return {u["name"]: u["szDecimals"] for u in info(client, {"type": "meta"})["universe"]}


def assert_valid_price(text: str, sz: int) -> None:
    """Hyperliquid perp price rule: <= 5 significant figures (integers always ok), <= 6 - szDecimals decimals."""
    value = Decimal(text)
    assert value > 0
    decimals = max(0, -value.normalize().as_tuple().exponent)
    assert decimals <= 6 - sz, text
    if decimals:
        digits = len(value.normalize().as_tuple().digits)
        assert digits <= 5, text


def venue(client: TestClient):
    return client.app.state.venues["hyperliquid"]


def grid_book(sim, now: int, sz: int) -> list[list[tuple[Decimal, Decimal]]]:
    """The sim's book as Hyperliquid would list it: bids rounded down, asks up, equal prices merged."""
    sides = []
    for levels, rounding in zip(sim.book(now, 20), (ROUND_FLOOR, ROUND_CEILING)):
        merged: dict[Decimal, Decimal] = {}
        for px, size in levels:
            px = hl_price(px, sz, rounding)
            merged[px] = merged.get(px, Decimal(0)) + size
        sides.append(list(merged.items()))
    return sides


def test_l2_book_at_t0_is_the_market_models_book_in_the_recorded_format(client: TestClient) -> None:
    recorded = json.loads((NAUTILUS / "http_l2_book_btc.json").read_text())
    book = info(client, {"type": "l2Book", "coin": "BTC"})
    assert set(book) == set(recorded) and book["coin"] == "BTC" and book["time"] == T0
    for served, rec in zip(book["levels"], recorded["levels"]):
        # Hyperliquid's {px, sz, n}; the recording keeps px and sz only
        assert 0 < len(served) <= 20 and set(served[0]) == {"px", "sz", "n"} >= set(rec[0])
        assert all(isinstance(lv["px"], str) and isinstance(lv["sz"], str) for lv in served)
        assert all(isinstance(lv["n"], int) and lv["n"] >= 1 for lv in served)
        for lv in served:
            assert_valid_price(lv["px"], 5)
    sim = venue(client).sims["BTC"]
    served = [[(Decimal(lv["px"]), Decimal(lv["sz"])) for lv in side] for side in book["levels"]]
    assert served == grid_book(sim, T0, 5)
    (best_bid, _), (best_ask, _) = served[0][0], served[1][0]
    assert best_bid < best_ask and best_ask - best_bid <= best_bid * Decimal("0.001")
    assert best_bid * Decimal("0.99") < sim.mark_price(T0) < best_ask * Decimal("1.01")


def test_asset_contexts_at_t0_keep_the_recorded_fields_and_follow_the_books(client: TestClient) -> None:
    meta, ctxs = info(client, {"type": "metaAndAssetCtxs"})
    names = [u["name"] for u in meta["universe"]]
    assert names == ["BTC", "ETH", "ATOM"] and len(ctxs) == len(names)
    feed = json.loads((NAUTILUS / "ws_all_dexs_asset_ctxs.json").read_text())
    main = next(c for dex, c in feed["data"]["ctxs"] if dex == "")
    mids = info(client, {"type": "allMids"})
    assert set(mids) == set(names)
    for name, ctx, rec in zip(names, ctxs, main):
        assert set(ctx) == set(rec)  # the recorded field set, in the recorded (string) formats
        sim = client.app.state.venues["hyperliquid"].sims[name]
        assert Decimal(ctx["funding"]) == sim.funding_rate(T0) and Decimal(ctx["openInterest"]) == sim.open_interest(T0)
        assert Decimal(ctx["dayBaseVlm"]) == sim.stats_24h(T0)["volume"]
        book = info(client, {"type": "l2Book", "coin": name})
        best_bid, best_ask = (Decimal(side[0]["px"]) for side in book["levels"])
        assert Decimal(ctx["midPx"]) == (best_bid + best_ask) / 2 and mids[name] == ctx["midPx"]
        sz = dict(zip(names, (u["szDecimals"] for u in meta["universe"])))[name]
        for key in ("markPx", "oraclePx", "prevDayPx"):
            assert_valid_price(ctx[key], sz)
        # oracle: the model's index; mark: the index times its premium, both near the mid
        assert ctx["markPx"] != ctx["oraclePx"]
        assert abs(Decimal(ctx["markPx"]) / Decimal(ctx["midPx"]) - 1) < Decimal("0.002")
        premium = (Decimal(ctx["markPx"]) - Decimal(ctx["oraclePx"])) / Decimal(ctx["oraclePx"])
        assert abs(Decimal(ctx["premium"]) - premium) < Decimal("0.0002")
    assert Decimal("50000") < Decimal(mids["BTC"]) < Decimal("150000")


def test_market_moves_on_a_valid_grid_and_never_crosses(client: TestClient, clock: ManualClock) -> None:
    sz = sz_decimals(client)
    before = info(client, {"type": "l2Book", "coin": "BTC"})
    clock.now = T0 + 6 * HOUR
    for coin, decimals in sz.items():
        book = info(client, {"type": "l2Book", "coin": coin})
        bids, asks = ([Decimal(lv["px"]) for lv in side] for side in book["levels"])
        assert 0 < len(bids) <= 20 and 0 < len(asks) <= 20
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
        for lv in book["levels"][0] + book["levels"][1]:
            assert_valid_price(lv["px"], decimals)
            assert -Decimal(lv["sz"]).as_tuple().exponent <= decimals
    assert info(client, {"type": "l2Book", "coin": "BTC"})["levels"] != before["levels"]
    _, ctxs = info(client, {"type": "metaAndAssetCtxs"})
    for coin, ctx in zip(sz, ctxs):
        for key in ("markPx", "oraclePx"):
            assert_valid_price(ctx[key], sz[coin])
    assert info(client, {"type": "l2Book", "coin": "BTC"}) == info(client, {"type": "l2Book", "coin": "BTC"})


def test_candle_snapshot_covers_the_requested_window(client: TestClient, clock: ManualClock) -> None:
    clock.now = T0 + 30 * 60_000
    start, end = T0 - 5 * HOUR + 123, T0 - HOUR
    candles = info(client, {"type": "candleSnapshot",
                            "req": {"coin": "BTC", "interval": "1h", "startTime": start, "endTime": end}})
    assert [c["t"] for c in candles] == [(start // HOUR + k) * HOUR for k in range(5)]
    for c in candles:
        assert c["s"] == "BTC" and c["i"] == "1h" and c["T"] == c["t"] + HOUR - 1
        assert c["t"] <= end and c["T"] >= start
        o, h, low, close = (Decimal(c[k]) for k in "ohlc")
        assert low <= min(o, close) <= max(o, close) <= h
        for k in "ohlc":
            assert_valid_price(c[k], 5)
        assert isinstance(c["n"], int) and Decimal(c["v"]) > 0
    forming = info(client, {"type": "candleSnapshot",
                            "req": {"coin": "BTC", "interval": "15m", "startTime": T0, "endTime": T0 + 10 * HOUR}})
    assert forming[-1]["t"] <= clock.now <= forming[-1]["T"]  # nothing from the future


def test_recent_trades_have_hyperliquid_shape(client: TestClient, clock: ManualClock) -> None:
    clock.now = T0 + 60_000
    trades = info(client, {"type": "recentTrades", "coin": "ETH"})
    assert trades and [t["time"] for t in trades] == sorted((t["time"] for t in trades), reverse=True)
    for t in trades:
        assert set(t) == {"coin", "side", "px", "sz", "hash", "time", "tid", "users"}
        assert t["coin"] == "ETH" and t["side"] in ("A", "B") and t["time"] <= clock.now
        assert len(t["hash"]) == 66 and len(t["users"]) == 2
        assert_valid_price(t["px"], 4)


def test_unknown_coin_and_type_are_answered_like_hyperliquid(client: TestClient) -> None:
    assert info(client, {"type": "l2Book", "coin": "NOPE"}) is None
    assert info(client, {"type": "candleSnapshot",
                         "req": {"coin": "NOPE", "interval": "1h", "startTime": 0, "endTime": T0}}) == []
    bad_type = client.post("/hyperliquid/info", json={"type": "noSuchThing"})
    assert bad_type.status_code == 422 and bad_type.text == "Failed to deserialize the JSON body into the target type"
    no_coin = client.post("/hyperliquid/info", json={"type": "l2Book"})
    assert no_coin.status_code == 422 and no_coin.text == bad_type.text
    bad_interval = client.post("/hyperliquid/info", json={
        "type": "candleSnapshot", "req": {"coin": "BTC", "interval": "7m", "startTime": 0}})
    assert bad_interval.status_code == 422
    not_json = client.post("/hyperliquid/info", content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 400


def test_synthetic_fallback_without_recordings(tmp_path) -> None:
    app = create_sandbox_app(tmp_path, venues=["hyperliquid"], clock=lambda: T0 + HOUR)
    client = TestClient(app)
    assert app.state.venues["hyperliquid"].synthetic
    meta, ctxs = info(client, {"type": "metaAndAssetCtxs"})
    assert [u["name"] for u in meta["universe"]] == ["BTC", "ETH", "SOL"] and len(ctxs) == 3
    book = info(client, {"type": "l2Book", "coin": "SOL"})
    assert Decimal(book["levels"][0][0]["px"]) < Decimal(book["levels"][1][0]["px"])
    assert info(client, {"type": "spotMeta"})["tokens"][0]["name"] == "USDC"
    assert client.get("/__sandbox/stats").json()["venues"]["hyperliquid"]["synthetic"] is True


def test_spot_meta_lists_real_tokens_with_hyperliquids_fields(client: TestClient) -> None:
    spot = info(client, {"type": "spotMeta"})
    tokens, universe = spot["tokens"], spot["universe"]
    names = [t["name"] for t in tokens]
    assert names[0] == "USDC" and {"PURR", "HYPE", "UBTC", "UETH"} <= set(names) and len(names) >= 12
    for position, token in enumerate(tokens):
        assert set(token) == {"name", "szDecimals", "weiDecimals", "index", "tokenId", "isCanonical",
                              "evmContract", "fullName", "deployerTradingFeeShare"}
        assert token["index"] == position  # ccxt looks tokens up by position
        evm = token["evmContract"]
        if evm is not None:  # {"address": 0x + 40 hex, "evm_extra_wei_decimals": int}
            assert set(evm) == {"address", "evm_extra_wei_decimals"} and len(evm["address"]) == 42
            int(evm["address"], 16)
            assert isinstance(evm["evm_extra_wei_decimals"], int)
        Decimal(token["deployerTradingFeeShare"])
        assert token["tokenId"].startswith("0x") and len(token["tokenId"]) == 34
        int(token["tokenId"], 16)
        assert 0 <= token["szDecimals"] <= token["weiDecimals"]
    assert len({t["tokenId"] for t in tokens}) == len(tokens)
    assert tokens[names.index("HYPE")]["evmContract"]["address"] == "0x" + "22" * 20  # HYPE's system address
    assert sum(t["evmContract"] is not None for t in tokens) >= 5
    assert universe[0] == {"name": "PURR/USDC", "tokens": [names.index("PURR"), 0], "index": 0, "isCanonical": True}
    for position, pair in enumerate(universe[1:], start=1):
        assert pair["index"] == position and pair["name"] == f"@{position}" and pair["isCanonical"] is False
        assert all(0 <= i < len(tokens) for i in pair["tokens"])
    again = TestClient(create_sandbox_app(venues=["hyperliquid"], clock=ManualClock(T0 + HOUR)))
    assert info(again, {"type": "spotMeta"}) == spot  # deterministic


def test_spot_contexts_are_aligned_and_wrapped_btc_follows_the_perpetual(client: TestClient) -> None:
    meta, ctxs = info(client, {"type": "spotMetaAndAssetCtxs"})
    assert meta == info(client, {"type": "spotMeta"}) and len(ctxs) == len(meta["universe"])
    for pair, ctx in zip(meta["universe"], ctxs):
        assert ctx["coin"] == pair["name"] and Decimal(ctx["midPx"]) > 0
    tokens = [t["name"] for t in meta["tokens"]]
    ubtc = next(c for p, c in zip(meta["universe"], ctxs) if p["tokens"] == [tokens.index("UBTC"), 0])
    btc_mid = Decimal(info(client, {"type": "allMids"})["BTC"])
    assert abs(Decimal(ubtc["midPx"]) - btc_mid) <= btc_mid * Decimal("0.0001")


@pytest.fixture
def served(clock: ManualClock):
    with ServerThread(create_sandbox_app(venues=["hyperliquid"], clock=clock)) as server:
        yield server


@pytest.fixture
async def exchange(served: ServerThread):
    client = ccxt_client("hyperliquid", served.url, {"enableRateLimit": False})
    try:
        yield client
    finally:
        await client.close()


async def test_ccxt_fetch_currencies_parses_the_spot_tokens(exchange) -> None:
    currencies = await exchange.fetch_currencies()
    assert {"USDC", "PURR", "HYPE", "UBTC"} <= set(currencies) and len(currencies) >= 12
    assert currencies["USDC"]["id"] == "0" and Decimal(str(currencies["USDC"]["precision"])) == Decimal("1e-8")
    assert Decimal(str(currencies["PURR"]["precision"])) == Decimal("1e-5")  # weiDecimals 5
    assert exchange.options["spotCurrencyMapping"]["UBTC"] == "BTC"  # read from fullName "Unit Bitcoin"


async def test_ccxts_own_fetch_currencies_test_passes(exchange) -> None:
    own = importlib.import_module("ccxt.test.exchange.async.test_fetch_currencies").test_fetch_currencies
    markets = await exchange.load_markets()  # as ccxt's runner does first; spot pairs come from spotMetaAndAssetCtxs
    assert "PURR/USDC" in markets and "BTC/USDC" in markets and "BTC/USDC:USDC" in markets
    # ccxt's hyperliquid leaves deposit/withdraw unset (spotMeta has no such flags), so its test's
    # "USDC must have deposit and withdraw enabled" and "withdraw/deposit/networks have a value" checks
    # cannot hold for any answer; everything else (count, codes, ids, precision, conflicts) is checked
    skips = {"activeMajorCurrencies": True, "withdraw": True, "deposit": True, "networks": True}
    assert await own(exchange, skips) is True


async def test_an_unknown_info_type_raises_ccxts_exchange_error(exchange) -> None:
    with pytest.raises(ExchangeError, match="422 Unprocessable.*Failed to deserialize the JSON body"):
        await exchange.publicPostInfo({"type": "noSuchThing"})
    with pytest.raises(ExchangeError, match="Failed to deserialize the JSON body into the target type"):
        await exchange.publicPostInfo({"type": "l2Book"})  # no coin


def test_funding_history_settles_each_hour_at_its_own_rate(client: TestClient, clock: ManualClock) -> None:
    body = {"type": "fundingHistory", "coin": "BTC", "startTime": clock() - 6 * 3_600_000}
    rows = info(client, body)
    assert [r["time"] for r in rows] == [(clock() // 3_600_000 - k) * 3_600_000 for k in range(5, -1, -1)]
    assert len({r["fundingRate"] for r in rows}) > 1
    model = venue(client).sims["BTC"].funding_history(clock(), start_ms=body["startTime"])
    assert [(r["time"], Decimal(r["fundingRate"])) for r in rows] == [(m["time"], m["rate"]) for m in model]
    clock.advance(3 * 3_600_000)
    assert info(client, body)[:6] == rows  # settled hours never change


async def test_past_the_budget_hyperliquid_answers_429_and_ccxt_raises_rate_limit_exceeded(clock: ManualClock) -> None:
    app = create_sandbox_app(venues=["hyperliquid"], clock=clock, limits={"hyperliquid": (2, 60_000)}, ban_after=1)
    with ServerThread(app) as server:
        client = ccxt_client("hyperliquid", server.url, {"enableRateLimit": False})
        try:
            await client.publicPostInfo({"type": "allMids"})  # weight 2: the whole budget
            for _ in range(3):  # over it, then past the point a Binance-like venue would ban: still 429
                with pytest.raises(ccxt.RateLimitExceeded):
                    await client.publicPostInfo({"type": "allMids"})
        finally:
            await client.close()
    counted = app.state.stats.snapshot(["hyperliquid"])["venues"]["hyperliquid"]
    assert counted["by_status"] == {"200": 1, "429": 3}
    # one path, told apart by the request's type (a load test reports reads by operation)
    assert counted["by_operation"] == {"POST /info allMids": 4}


def test_l2_book_groups_by_significant_figures_and_mantissa(client: TestClient, clock: ManualClock) -> None:
    clock.now = T0 + 90_000
    full = info(client, {"type": "l2Book", "coin": "BTC"})
    assert [len(side) for side in full["levels"]] == [20, 20]
    best_bid, best_ask = (Decimal(side[0]["px"]) for side in full["levels"])
    assert info(client, {"type": "l2Book", "coin": "BTC", "nSigFigs": None, "mantissa": None}) == full
    for sig, mantissa in ((5, None), (5, 2), (5, 5), (4, None), (3, None), (2, None)):
        body = {"type": "l2Book", "coin": "BTC", "nSigFigs": sig}
        if mantissa:
            body["mantissa"] = mantissa
        grouped = info(client, body)
        assert grouped["coin"] == "BTC" and grouped["time"] == clock.now
        bids, asks = ([(Decimal(lv["px"]), Decimal(lv["sz"]), lv["n"]) for lv in side] for side in grouped["levels"])
        assert 0 < len(bids) <= 20 and 0 < len(asks) <= 20
        for side, better in ((bids, Decimal.__gt__), (asks, Decimal.__lt__)):
            assert all(better(a[0], b[0]) for a, b in zip(side, side[1:]))  # best first, one level a price
            for px, _, n in side:  # on the grid of `sig` figures (times the mantissa)
                step = Decimal(mantissa or 1).scaleb(px.adjusted() - sig + 1)
                assert px % step == 0 and n >= 1
        # the touch rounds outward onto the coarser grid, sizes only add up
        assert bids[0][0] <= best_bid and asks[0][0] >= best_ask and bids[0][0] < asks[0][0]
        assert bids[0][1] >= Decimal(full["levels"][0][0]["sz"]) and asks[0][1] >= Decimal(full["levels"][1][0]["sz"])
    coarse = info(client, {"type": "l2Book", "coin": "BTC", "nSigFigs": 2})
    assert Decimal(coarse["levels"][0][0]["px"]) % 1000 == 0  # BTC ~77k at 2 figures: thousands


@pytest.mark.parametrize("body", [
    {"type": "l2Book", "coin": "BTC", "nSigFigs": 6},
    {"type": "l2Book", "coin": "BTC", "nSigFigs": 1},
    {"type": "l2Book", "coin": "BTC", "nSigFigs": "5"},
    {"type": "l2Book", "coin": "BTC", "nSigFigs": 4, "mantissa": 2},
    {"type": "l2Book", "coin": "BTC", "nSigFigs": 5, "mantissa": 3},
])
def test_l2_book_refuses_grouping_hyperliquid_does_not_offer(client: TestClient, body: dict) -> None:
    response = client.post("/hyperliquid/info", json=body)
    assert response.status_code == 422 and response.text == "Failed to deserialize the JSON body into the target type"


def test_candles_count_the_models_trades_and_months_are_calendar_months(client: TestClient, clock: ManualClock) -> None:
    clock.now = T0 + 30 * 60_000
    sim = venue(client).sims["BTC"]
    req = {"coin": "BTC", "interval": "1m", "startTime": T0 - 10 * 60_000, "endTime": clock.now}
    candles = info(client, {"type": "candleSnapshot", "req": req})
    model = sim.candles(60_000, clock.now, start_ms=T0 - 10 * 60_000, end_ms=clock.now, limit=100)
    assert [c["n"] for c in candles] == [m["trades"] for m in model] and all(c["n"] > 0 for c in candles)
    assert [Decimal(c["v"]) for c in candles] == [m["volume"] for m in model]
    # 1M: opens on the first of each month (UTC), closes the millisecond before the next one
    months = info(client, {"type": "candleSnapshot",
                           "req": {"coin": "BTC", "interval": "1M", "startTime": T0 - 100 * 86_400_000}})
    from datetime import datetime, timezone
    opens = [datetime.fromtimestamp(c["t"] / 1000, tz=timezone.utc) for c in months]
    assert len(months) >= 4 and all(o.day == 1 and o.hour == 0 and o.minute == 0 for o in opens)
    assert all(a["T"] + 1 == b["t"] for a, b in zip(months, months[1:]))
    assert months[-1]["t"] <= clock.now <= months[-1]["T"]
    # a month is the aggregate of its days: volume adds up, extremes contain them
    last = months[-2]
    days = info(client, {"type": "candleSnapshot",
                         "req": {"coin": "BTC", "interval": "1d", "startTime": last["t"], "endTime": last["T"]}})
    days = [d for d in days if last["t"] <= d["t"] <= last["T"]]
    assert sum(Decimal(d["v"]) for d in days) == Decimal(last["v"]) and sum(d["n"] for d in days) == last["n"]
    assert max(Decimal(d["h"]) for d in days) == Decimal(last["h"]) and min(Decimal(d["l"]) for d in days) == Decimal(last["l"])


def test_candle_snapshot_serves_only_the_latest_5000_candles(client: TestClient, clock: ManualClock) -> None:
    candles = info(client, {"type": "candleSnapshot", "req": {"coin": "BTC", "interval": "1m", "startTime": 0}})
    assert len(candles) == 5000 and candles[-1]["t"] == clock.now // 60_000 * 60_000


async def test_ccxt_reads_the_books_candles_and_funding_the_sandbox_serves(exchange, clock: ManualClock) -> None:
    book = await exchange.fetch_order_book("BTC/USDC:USDC")
    assert len(book["bids"]) == 20 and len(book["asks"]) == 20 and book["bids"][0][0] < book["asks"][0][0]
    assert book["timestamp"] == clock.now
    ohlcv = await exchange.fetch_ohlcv("BTC/USDC:USDC", "1h", since=clock.now - 5 * HOUR)
    # the candle holding `since` is served and ccxt drops it (it keeps t >= since); the forming one is last
    assert [c[0] for c in ohlcv] == [(clock.now // HOUR - k) * HOUR for k in range(4, -1, -1)]
    rates = await exchange.fetch_funding_rate_history("BTC/USDC:USDC", since=clock.now - 24 * HOUR)
    assert len(rates) == 24 and len({r["fundingRate"] for r in rates}) > 1
    status = await exchange.fetch_status()
    assert status["status"] == "ok" and await exchange.fetch_time() == clock.now
