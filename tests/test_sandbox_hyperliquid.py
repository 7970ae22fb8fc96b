"""The Hyperliquid sandbox venue: recorded state at t0, a valid moving market afterwards."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from starlette.testclient import TestClient

from exgate.sandbox.app import create_sandbox_app
from tests.conftest import ManualClock, require_fixtures

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


def test_l2_book_at_t0_is_the_recorded_book(client: TestClient) -> None:
    recorded = json.loads((NAUTILUS / "http_l2_book_btc.json").read_text())
    book = info(client, {"type": "l2Book", "coin": "BTC"})
    assert book["coin"] == "BTC" and book["time"] == T0
    served = [[(lv["px"], lv["sz"]) for lv in side] for side in book["levels"]]
    assert served == [[(lv["px"], lv["sz"]) for lv in side] for side in recorded["levels"]]
    assert all(isinstance(lv["n"], int) and lv["n"] >= 1 for side in book["levels"] for lv in side)


def test_asset_contexts_at_t0_are_recorded_and_aligned(client: TestClient) -> None:
    meta, ctxs = info(client, {"type": "metaAndAssetCtxs"})
    names = [u["name"] for u in meta["universe"]]
    assert names == ["BTC", "ETH", "ATOM"] and len(ctxs) == len(names)
    feed = json.loads((NAUTILUS / "ws_all_dexs_asset_ctxs.json").read_text())
    main = next(c for dex, c in feed["data"]["ctxs"] if dex == "")
    assert ctxs[1] == main[1]  # ETH: no recorded book, so every value is the recorded one
    assert ctxs[0]["funding"] == main[0]["funding"] and ctxs[0]["midPx"] == "110427.5"  # BTC follows its book
    mids = info(client, {"type": "allMids"})
    assert mids == {"BTC": "110427.5", "ETH": main[1]["midPx"], "ATOM": main[2]["midPx"]}


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
    assert bad_type.status_code == 422 and "unknown variant `noSuchThing`" in bad_type.text
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
