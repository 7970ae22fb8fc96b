"""The sandbox's price path and what it feeds: any instant costs O(log), a request O(what it
returns), history starts at the listing, and closed candles never change."""

from __future__ import annotations

import statistics
from decimal import Decimal

from starlette.testclient import TestClient

from exgate.sandbox.app import create_sandbox_app
from exgate.sandbox.path import PATH_DEPTH, BrownianPath, key64
from exgate.sandbox.sim import DEFAULT_LISTED_MS, MAX_CANDLES, MAX_TRADES, Instrument, InstrumentSim
from tests.conftest import ManualClock

NOW = 1_790_000_000_000  # 2026-09-21
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000


def btc(**extra) -> Instrument:
    return Instrument(venue_id="BTCUSDT", base="BTC", quote="USDT", tick=Decimal("0.1"), lot=Decimal("0.001"),
                      price=Decimal("65000.0"), **extra)


def assert_plausible(candles: list[dict], tick: Decimal) -> None:
    for c in candles:
        assert c["low"] <= min(c["open"], c["close"]) <= max(c["open"], c["close"]) <= c["high"], c
        assert all(c[k] % tick == 0 and c[k] > 0 for k in ("open", "high", "low", "close")), c
        assert c["volume"] > 0 and c["close_time"] > c["open_time"]


def test_start_zero_returns_the_first_candles_after_listing_at_the_cost_of_the_limit() -> None:
    listed = 1_569_398_400_000 + 123_456
    sim = InstrumentSim(btc(listed_ms=listed), seed=7, t0_ms=NOW)
    work = sim.path.nodes_computed
    candles = sim.candles(MINUTE, NOW, start_ms=0, limit=5)
    assert [c["open_time"] for c in candles] == [(listed // MINUTE + k) * MINUTE for k in range(5)]
    assert all(c["close_time"] == c["open_time"] + MINUTE - 1 for c in candles)
    assert_plausible(candles, Decimal("0.1"))
    # the work is that of 5 candles (2 path reads each), not of the 7 years between listing and now
    assert sim.path.nodes_computed - work <= 5 * 2 * PATH_DEPTH


def test_without_a_recorded_listing_history_starts_at_the_default() -> None:
    sim = InstrumentSim(btc(), seed=7, t0_ms=NOW)
    (first,) = sim.candles(DAY, NOW, start_ms=0, limit=1)
    assert first["open_time"] == DEFAULT_LISTED_MS
    assert sim.candles(DAY, NOW, end_ms=DEFAULT_LISTED_MS - 1) == []
    young = InstrumentSim(btc(listed_ms=NOW + DAY), seed=7, t0_ms=NOW)  # listed after t0: t0 is the start
    assert young.candles(HOUR, NOW, start_ms=0, limit=3)[0]["open_time"] == NOW // HOUR * HOUR


def test_one_call_never_returns_more_than_the_caps() -> None:
    sim = InstrumentSim(btc(), seed=7, t0_ms=NOW)
    assert len(sim.trades(NOW, 10**9)) == MAX_TRADES
    candles = sim.candles(MINUTE, NOW, start_ms=0, limit=10**9)
    assert len(candles) == MAX_CANDLES and candles[0]["open_time"] == DEFAULT_LISTED_MS


def test_closed_candles_read_the_same_at_every_later_clock_reading() -> None:
    sim = InstrumentSim(btc(), seed=7, t0_ms=NOW)
    for interval in (MINUTE, HOUR, DAY):
        start = NOW - 40 * interval
        first = sim.candles(interval, NOW + 1_234, start_ms=start, limit=100)
        later = sim.candles(interval, NOW + 3 * interval + 17_000, start_ms=start, limit=100)
        closed = [c for c in first if c["close_time"] < NOW + 1_234]
        assert len(closed) >= 39 and later[:len(closed)] == closed
        assert_plausible(first + later, Decimal("0.1"))
    # and a fresh simulation with the same seed and t0 tells the same history
    again = InstrumentSim(btc(), seed=7, t0_ms=NOW)
    assert again.candles(HOUR, NOW + 5 * HOUR, limit=24) == sim.candles(HOUR, NOW + 5 * HOUR, limit=24)
    assert InstrumentSim(btc(), seed=8, t0_ms=NOW).candles(HOUR, NOW, limit=24) != sim.candles(HOUR, NOW, limit=24)


def test_the_forming_candle_closes_at_the_current_price_and_t0_is_the_recording() -> None:
    sim = InstrumentSim(btc(), seed=7, t0_ms=NOW)
    assert sim.price(NOW) == Decimal("65000.0")
    later = NOW + 2 * HOUR + 5_000
    forming = sim.candles(HOUR, later, limit=3)[-1]
    assert forming["open_time"] <= later <= forming["close_time"] and forming["close"] == sim.price(later)
    assert sim.trades(later, 1)[0]["price"] == sim.price(later)


def test_trades_move_before_t0_too_and_follow_the_candles_seconds() -> None:
    sim = InstrumentSim(btc(), seed=7, t0_ms=NOW)
    trades = sim.trades(NOW + 10_000, 1000)
    before = [t for t in trades if t["time"] < NOW]
    assert len(before) == 989 and len({t["price"] for t in before}) > 50  # not one flat price
    assert [t["time"] for t in trades] == list(range(NOW - 989_000, NOW + 11_000, 1000))
    assert [t["id"] for t in trades] == list(range(1_000_000 - 989, 1_000_011))
    assert all(t["price"] % Decimal("0.1") == 0 and t["size"] > 0 for t in trades)
    minute = sim.candles(MINUTE, NOW + 10_000, start_ms=NOW - 5 * MINUTE, limit=1)[0]
    inside = [t for t in trades if minute["open_time"] <= t["time"] <= minute["close_time"]]
    assert inside[0]["price"] == minute["open"] and inside[-1]["price"] == minute["close"]


def test_the_path_is_a_pure_function_of_key_and_second_with_unit_variance_steps() -> None:
    seconds = [1_700_000_000 + 37 * k for k in range(2000)]
    one, other = BrownianPath(key64(7, "BTCUSDT", "walk")), BrownianPath(key64(7, "BTCUSDT", "walk"))
    batch = one.at_many(seconds)
    assert [other.at(s) for s in reversed(seconds)] == [batch[s] for s in reversed(seconds)]
    assert BrownianPath(key64(8, "BTCUSDT", "walk")).at(seconds[0]) != batch[seconds[0]]
    dense = one.at_many(range(1_700_000_000, 1_700_020_001))
    steps = [dense[s + 1] - dense[s] for s in range(1_700_000_000, 1_700_020_000)]
    assert abs(statistics.fmean(steps)) < 0.05 and 0.95 < statistics.pstdev(steps) < 1.05
    hours = [dense[s + 3600] - dense[s] for s in range(1_700_000_000, 1_700_016_400, 3600)]
    assert all(abs(h) < 6 * 60 for h in hours)  # sd of an hour's move: sqrt(3600) = 60


def test_binance_klines_from_start_zero_begin_at_the_onboard_date() -> None:
    app = create_sandbox_app(venues=["binanceusdm"], clock=ManualClock(NOW))
    client = TestClient(app)
    info = client.get("/binanceusdm/fapi/v1/exchangeInfo").json()
    onboard = next(s["onboardDate"] for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    rows = client.get("/binanceusdm/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime=0&limit=5").json()
    assert [r[0] for r in rows] == [(onboard // MINUTE + k) * MINUTE for k in range(5)]
    work = app.state.venues["binanceusdm"].sims["BTCUSDT"].path.nodes_computed
    assert work <= (5 * 2 + 2) * PATH_DEPTH  # 5 candles, plus the reads at t0


def test_bybit_calendar_candles_start_at_the_launch_and_cost_their_count() -> None:
    app = create_sandbox_app(venues=["bybit"], clock=ManualClock(NOW))
    client = TestClient(app)
    launch = int(client.get("/bybit/v5/market/instruments-info?category=linear&symbol=BTCUSDT")
                 .json()["result"]["list"][0]["launchTime"])
    sim = app.state.venues["bybit"].sims["BTCUSDT"]
    work = sim.path.nodes_computed
    months = client.get("/bybit/v5/market/kline?category=linear&symbol=BTCUSDT&interval=M&start=0&limit=1000")
    rows = months.json()["result"]["list"][::-1]
    assert rows and int(rows[0][0]) <= launch < int(rows[1][0])
    assert int(rows[-1][0]) <= NOW and len(rows) <= 1000
    assert all(Decimal(r[3]) <= min(Decimal(r[1]), Decimal(r[4])) <= max(Decimal(r[1]), Decimal(r[4])) <= Decimal(r[2])
               for r in rows)
    assert sim.path.nodes_computed - work <= len(rows) * 2 * PATH_DEPTH
