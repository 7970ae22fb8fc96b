"""The sandbox's market model, as a trader would check it: one price per asset across venues,
candles that aggregate the trades and never change once closed, a forming candle that only
widens, takers that trade at the touch, 24 h statistics from the same candles, mark distinct
from index, funding from the premium, expiry, and requests that cost what they return."""

from __future__ import annotations

from decimal import Decimal

import pytest
from starlette.testclient import TestClient

from exgate.sandbox.app import create_sandbox_app
from exgate.sandbox.market.tree import BLOCK_DEPTH
from exgate.sandbox.sim import DEFAULT_LISTED_MS, MAX_CANDLES, MAX_TRADES, Instrument, InstrumentSim
from tests.conftest import ManualClock, sandbox_data

NOW = 1_790_000_000_000 + 12_345  # 2026-09-21, mid-second
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
BTC_IDS = {"binanceusdm": "BTCUSDT", "bybit": "BTCUSDT", "hyperliquid": "BTC", "pacifica": "BTC"}


@pytest.fixture(scope="module")
def app():
    return create_sandbox_app(sandbox_data(), clock=ManualClock(NOW))


def btcs(app) -> dict[str, InstrumentSim]:
    return {venue: app.state.venues[venue].sims[symbol] for venue, symbol in BTC_IDS.items()}


def btc(**extra) -> Instrument:
    return Instrument(venue_id="BTCUSDT", base="BTC", quote="USDT", tick=Decimal("0.1"), lot=Decimal("0.001"),
                      price=Decimal("65000.0"), volume_24h=Decimal("50000"), **extra)


def aggregate(candles: list[dict]) -> tuple:
    return (candles[0]["open"], max(c["high"] for c in candles), min(c["low"] for c in candles),
            candles[-1]["close"], sum(c["volume"] for c in candles))


def ohlcv(c: dict) -> tuple:
    return c["open"], c["high"], c["low"], c["close"], c["volume"]


def test_one_btc_price_across_venues_each_off_by_a_small_basis(app) -> None:
    sims = btcs(app)
    for when in (NOW, NOW + 3 * HOUR + 777, NOW - 40 * DAY):
        index = {v: s.index_price(when) for v, s in sims.items()}
        last = {v: s.price(when) for v, s in sims.items()}
        ref = index["binanceusdm"]
        for venue in sims:
            tick = sims[venue].instrument.tick
            assert abs(index[venue] - ref) <= tick + ref * Decimal("0.00001"), (venue, index)
            assert abs(last[venue] / index[venue] - 1) < Decimal("0.002"), (venue, last, index)
            assert last[venue] % tick == 0
    # and not every venue trades at the same price: each has its own basis
    assert len({s.price(NOW) for s in sims.values()}) > 1


def test_closed_candles_never_change_across_reads_and_restarts() -> None:
    first = create_sandbox_app(sandbox_data(), clock=ManualClock(NOW))
    restarted = create_sandbox_app(sandbox_data(), clock=ManualClock(NOW + 5 * DAY))  # a later start
    for venue, symbol in BTC_IDS.items():
        sim, again = first.state.venues[venue].sims[symbol], restarted.state.venues[venue].sims[symbol]
        for interval in (MINUTE, HOUR, DAY):
            start = (NOW // interval - 30) * interval
            now_read = sim.candles(interval, NOW, start_ms=start, limit=40)
            later = sim.candles(interval, NOW + 2_500, start_ms=start, limit=40)
            much_later = again.candles(interval, NOW + 3 * interval, start_ms=start, limit=40)
            closed = [c for c in now_read if c["close_time"] < NOW]
            assert len(closed) == 30
            assert later[:30] == closed and much_later[:30] == closed, (venue, interval)
        assert sim.funding_history(NOW, limit=10) == again.funding_history(NOW, limit=10)
        assert sim.trades(NOW, 50) == again.trades(NOW, 50)


@pytest.mark.parametrize("venue", list(BTC_IDS))
def test_longer_candles_are_the_aggregate_of_shorter_ones(app, venue) -> None:
    sim = btcs(app)[venue]
    hour_open = NOW // HOUR * HOUR - 5 * HOUR
    minutes = sim.candles(MINUTE, NOW, start_ms=hour_open, limit=300)
    hours = sim.candles(HOUR, NOW, start_ms=hour_open, limit=5)
    for k, hour in enumerate(hours):
        assert ohlcv(hour) == aggregate(minutes[60 * k:60 * (k + 1)]), (venue, k)
    days = sim.candles(DAY, NOW, end_ms=NOW - DAY, limit=3)
    for day in days:
        day_hours = sim.candles(HOUR, NOW, start_ms=day["open_time"], limit=24)
        assert ohlcv(day) == aggregate(day_hours)


def test_a_minute_candle_is_the_aggregate_of_its_trades_and_takers_trade_at_the_touch(app) -> None:
    walks = 0
    for venue, sim in btcs(app).items():
        minute_open = NOW // MINUTE * MINUTE - MINUTE
        (candle,) = sim.candles(MINUTE, NOW, start_ms=minute_open, limit=1)
        trades = sim.trades(NOW, MAX_TRADES, start_ms=minute_open, end_ms=minute_open + MINUTE - 1)
        assert len(trades) == candle["trades"] and trades[-1]["time"] < minute_open + MINUTE
        prices = [t["price"] for t in trades]
        assert (prices[0], max(prices), min(prices), prices[-1], sum(t["size"] for t in trades)) == ohlcv(candle)
        assert [t["id"] for t in trades] == list(range(trades[0]["id"], trades[0]["id"] + len(trades)))
        for before, trade in zip(trades, trades[1:]):
            if trade["time"] == before["time"]:
                continue  # a walking taker's later fills: checked with its first
            bids, asks = sim.book(trade["time"] - 1, 5)
            assert bids[0][0] < asks[0][0]
            walk = [t for t in trades if t["time"] == trade["time"]]
            walks += len(walk) > 1
            if not trade["buyer_maker"]:  # a taker buy: at the ask, walking up the levels shown
                assert [t["price"] for t in walk] == [p for p, _ in asks[:len(walk)]], venue
                assert all(t["size"] <= size for t, (_, size) in zip(walk, asks))
            else:
                assert [t["price"] for t in walk] == [p for p, _ in bids[:len(walk)]], venue
            spread = (asks[0][0] - bids[0][0]) / sim.instrument.tick
            assert 1 <= spread <= 3
    assert walks > 10  # takers do walk the book


def test_the_forming_candle_keeps_its_open_only_widens_and_grows(app) -> None:
    sim = btcs(app)["binanceusdm"]
    hour_open = NOW // HOUR * HOUR
    reads = [sim.candles(HOUR, hour_open + ms, limit=1)[0] for ms in range(0, HOUR, 97_777)]
    assert len({c["open"] for c in reads}) == 1 and all(c["open_time"] == hour_open for c in reads)
    for before, after in zip(reads, reads[1:]):
        assert after["high"] >= before["high"] and after["low"] <= before["low"]
        assert after["volume"] > before["volume"]
    minute = sim.candles(MINUTE, NOW, limit=1)[0]
    assert minute["close"] == sim.price(NOW) == sim.trades(NOW, 1)[0]["price"]
    assert minute["volume"] < sim.candles(MINUTE, NOW - MINUTE, limit=1)[0]["volume"] * 3


def test_the_24h_ticker_is_the_aggregate_of_the_same_minute_candles(app) -> None:
    for sim in btcs(app).values():
        stats = sim.stats_24h(NOW)
        minutes = sim.candles(MINUTE, NOW, start_ms=stats["open_time"], limit=1500)
        assert minutes[0]["open_time"] == stats["open_time"] and len(minutes) == 1441
        assert (stats["open"], stats["high"], stats["low"], stats["last"], stats["volume"]) == aggregate(minutes)
        assert stats["count"] == sum(c["trades"] for c in minutes) == stats["last_id"] - stats["first_id"] + 1


def test_mark_and_index_differ_and_funding_settles_at_the_premium_with_history_that_varies(app) -> None:
    for venue, sim in btcs(app).items():
        mark, index = sim.mark_price(NOW), sim.index_price(NOW)
        assert mark != index and abs(mark / index - 1) < Decimal("0.002")
        history = sim.funding_history(NOW, limit=30)
        step = sim.instrument.funding_interval_ms
        assert [h["time"] for h in history] == [(NOW // step - 29 + k) * step for k in range(30)]
        assert len({h["rate"] for h in history}) > 20, venue  # not one rate repeated
        assert all(abs(h["rate"]) < Decimal("0.003") for h in history)
        premium = sim.candles(HOUR, NOW, limit=3, kind="premium")
        marks, indexes = sim.candles(HOUR, NOW, limit=3, kind="mark"), sim.candles(HOUR, NOW, limit=3, kind="index")
        for p, m, i in zip(premium, marks, indexes):
            assert p["low"] <= p["open"] <= p["high"] and abs(p["close"]) < Decimal("0.002")
            assert m["low"] <= min(m["open"], m["close"]) and max(m["open"], m["close"]) <= m["high"]
            assert i["low"] <= min(i["open"], i["close"]) and max(i["open"], i["close"]) <= i["high"]
            assert m["close"] != i["close"]


def test_books_reach_the_depth_asked_on_the_tick_grid_without_crossing(app) -> None:
    for sim in btcs(app).values():
        bids, asks = sim.book(NOW, 1000)
        tick = sim.instrument.tick
        assert len(bids) == len(asks) == 1000
        assert [p for p, _ in bids] == sorted({p for p, _ in bids}, reverse=True)
        assert [p for p, _ in asks] == sorted({p for p, _ in asks})
        assert bids[0][0] < asks[0][0] and all(p % tick == 0 and s > 0 for p, s in bids + asks)
        near = sum(s for _, s in bids[:10]) / 10
        far = sum(s for _, s in bids[-10:]) / 10
        assert far > near  # more resting size away from the touch


def test_an_expired_contract_stops_trading_at_its_expiry() -> None:
    expiry = NOW - 10 * DAY
    sim = InstrumentSim(btc(expiry_ms=expiry), seed=7, t0_ms=NOW)
    assert not sim.is_active(NOW) and sim.is_active(expiry - 1)
    assert sim.book(NOW, 10) == ([], [])
    assert sim.trades(NOW, 10)[-1]["time"] < expiry
    assert sim.candles(DAY, NOW, limit=30)[-1]["open_time"] <= expiry
    assert sim.price(NOW) == sim.price(expiry - 1) and sim.stats_24h(NOW)["volume"] == 0


def test_history_starts_at_the_listing_and_costs_what_it_returns() -> None:
    listed = 1_569_398_400_000 + 123_456
    sim = InstrumentSim(btc(listed_ms=listed), seed=7, t0_ms=NOW)
    candles = sim.candles(MINUTE, NOW, start_ms=0, limit=5)
    assert [c["open_time"] for c in candles] == [(listed // MINUTE + k) * MINUTE for k in range(5)]
    # the work is that of 5 candles (a descent of the tree to each bound), not of 7 years
    assert sim.core.tree.nodes_computed <= 6 * 2 * BLOCK_DEPTH
    work = sim.core.tree.nodes_computed
    assert len(sim.trades(NOW, 10**9)) == MAX_TRADES
    assert sim.core.tree.nodes_computed - work <= 200 * 2 * BLOCK_DEPTH
    unlisted = InstrumentSim(btc(), seed=7, t0_ms=NOW)
    assert unlisted.candles(DAY, NOW, start_ms=0, limit=1)[0]["open_time"] == DEFAULT_LISTED_MS
    assert unlisted.candles(DAY, NOW, end_ms=DEFAULT_LISTED_MS - 1) == []
    assert len(unlisted.candles(MINUTE, NOW, start_ms=0, limit=10**9)) == MAX_CANDLES


def test_the_same_seed_tells_the_same_history_and_another_seed_another(app) -> None:
    one, other = InstrumentSim(btc(), seed=7, t0_ms=NOW), InstrumentSim(btc(), seed=7, t0_ms=NOW - DAY)
    assert one.candles(HOUR, NOW, limit=48) == other.candles(HOUR, NOW, limit=48)
    assert InstrumentSim(btc(), seed=8, t0_ms=NOW).candles(HOUR, NOW, limit=48) != one.candles(HOUR, NOW, limit=48)


def test_binance_klines_from_start_zero_begin_at_the_onboard_date() -> None:
    app = create_sandbox_app(sandbox_data(), venues=["binanceusdm"], clock=ManualClock(NOW))
    client = TestClient(app)
    info = client.get("/binanceusdm/fapi/v1/exchangeInfo").json()
    onboard = next(s["onboardDate"] for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    rows = client.get("/binanceusdm/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime=0&limit=5").json()
    assert [r[0] for r in rows] == [(onboard // MINUTE + k) * MINUTE for k in range(5)]
