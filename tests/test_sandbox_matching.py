"""The sandbox's matching engine as a trader would see it: client orders in the same books as the
synthetic flow, price-time priority, partial fills, IOC / FOK / post-only / reduce-only, resting
orders hit by the synthetic flow, consumed liquidity gone from every reader's book until it
refills, and the client's prints in the public trades."""

from __future__ import annotations

from decimal import Decimal

import pytest

from exgate.sandbox.app import create_sandbox_app
from exgate.sandbox.matching import (MatchingEngine, OrderRejected, OrderStatus, OrderType, RejectReason, Side,
                                     TimeInForce)
from exgate.sandbox.sim import InstrumentSim
from tests.conftest import ManualClock, require_fixtures

NOW = 1_790_000_000_000 + 12_345
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
BUY, SELL = Side.BUY, Side.SELL


@pytest.fixture(scope="module")
def recorded():
    """The recorded Binance USD-M BTCUSDT instrument."""
    app = create_sandbox_app(require_fixtures(), clock=ManualClock(NOW))
    return app.state.venues["binanceusdm"].sims["BTCUSDT"].instrument


@pytest.fixture
def clock():
    return ManualClock(NOW)


@pytest.fixture
def sim(recorded):
    return InstrumentSim(recorded, seed=7, t0_ms=NOW)


@pytest.fixture
def engine(clock, sim):
    eng = MatchingEngine(clock, maker_fee=Decimal("0.0002"), taker_fee=Decimal("0.0005"), refill_ms=3_000)
    eng.attach(sim)
    return eng


def touch(sim, now):
    bids, asks = sim.book(now, 5)
    return bids[0], asks[0]


def below_flow(sim, now, ticks=2000):
    """A bid price far below the market: the synthetic flow does not reach it for a while."""
    return sim.core.price_of(round(sim.price(now) / sim.core.tick) - ticks)


def test_price_time_priority_between_two_accounts_at_one_price(engine, sim, clock):
    lot = sim.core.lot
    price, size = sim.book(clock(), 20)[0][19]  # a synthetic level twenty deep
    first, _ = engine.place("alice", sim, BUY, LIMIT, 2 * lot, price)
    clock.advance(1)
    second, _ = engine.place("bob", sim, BUY, LIMIT, 2 * lot, price)
    bids, _ = sim.book(clock(), 20)
    assert bids[19] == (price, size + 4 * lot)  # both rest, merged into the level
    # a client seller sweeping down to that price meets the synthetic bids, then alice, then bob
    synthetic = sum(q for p, q in bids) - 4 * lot
    order, fills = engine.place("carol", sim, SELL, LIMIT, synthetic + 3 * lot, price, TimeInForce.IOC)
    assert order.status is OrderStatus.FILLED
    assert engine.order(first.id).status is OrderStatus.FILLED
    assert second.status is OrderStatus.PARTIALLY_FILLED and second.remaining == lot
    assert [f.price for f in fills] == sorted((f.price for f in fills), reverse=True)
    assert all(not f.maker for f in fills) and first.fills[0].maker
    assert first.fills[0].fee == price * 2 * lot * Decimal("0.0002")


def test_a_taker_fills_partially_across_levels_and_respects_its_limit(engine, sim, clock):
    _, asks = sim.book(clock(), 3)
    qty = asks[0][1] + asks[1][1] + asks[2][1] / 2 // sim.core.lot * sim.core.lot
    order, fills = engine.place("alice", sim, BUY, LIMIT, qty + asks[2][1], asks[2][0])
    assert [f.price for f in fills] == [asks[0][0], asks[1][0], asks[2][0]]
    assert [f.qty for f in fills[:2]] == [asks[0][1], asks[1][1]]
    assert order.filled == asks[0][1] + asks[1][1] + asks[2][1]
    assert order.status is OrderStatus.PARTIALLY_FILLED  # the rest rests at its limit
    bids, _ = sim.book(clock(), 3)
    assert bids[0] == (asks[2][0], order.remaining)
    assert engine.position("alice", sim) == order.filled


def test_ioc_leaves_its_remainder_canceled(engine, sim, clock):
    _, asks = sim.book(clock(), 2)
    order, fills = engine.place("alice", sim, BUY, LIMIT, asks[0][1] * 10, asks[0][0], TimeInForce.IOC)
    assert sum(f.qty for f in fills) == asks[0][1] and order.status is OrderStatus.CANCELED
    assert engine.open_orders("alice", sim) == []


def test_fok_is_all_or_nothing_and_a_reject_changes_nothing(engine, sim, clock):
    bids, asks = sim.book(clock(), 5)
    trades = sim.trades(clock(), 20)
    with pytest.raises(OrderRejected) as err:
        engine.place("alice", sim, BUY, LIMIT, asks[0][1] * 1000, asks[1][0], TimeInForce.FOK)
    assert err.value.reason is RejectReason.FOK_NOT_FILLABLE
    assert sim.book(clock(), 5) == (bids, asks) and sim.trades(clock(), 20) == trades
    assert engine.position("alice", sim) == 0
    order, fills = engine.place("alice", sim, BUY, LIMIT, asks[0][1] + asks[1][1], asks[1][0], TimeInForce.FOK)
    assert order.status is OrderStatus.FILLED and len(fills) == 2


def test_post_only_is_rejected_when_it_would_cross(engine, sim, clock):
    bid, ask = touch(sim, clock())
    with pytest.raises(OrderRejected) as err:
        engine.place("alice", sim, BUY, LIMIT, sim.core.lot, ask[0], post_only=True)
    assert err.value.reason is RejectReason.POST_ONLY_WOULD_CROSS
    order, fills = engine.place("alice", sim, BUY, LIMIT, sim.core.lot, bid[0], TimeInForce.POST_ONLY)
    assert fills == [] and order.status is OrderStatus.NEW


def test_reduce_only_never_increases_or_flips_a_position(engine, sim, clock):
    lot = sim.core.lot
    with pytest.raises(OrderRejected) as err:
        engine.place("alice", sim, SELL, MARKET, lot, reduce_only=True)
    assert err.value.reason is RejectReason.REDUCE_ONLY_WOULD_INCREASE
    engine.place("alice", sim, BUY, MARKET, 3 * lot)
    with pytest.raises(OrderRejected):
        engine.place("alice", sim, BUY, MARKET, lot, reduce_only=True)
    order, _ = engine.place("alice", sim, SELL, MARKET, 10 * lot, reduce_only=True)
    assert order.qty == 3 * lot and engine.position("alice", sim) == 0


def test_a_resting_buy_is_filled_by_the_synthetic_flow_reaching_it(engine, sim, clock):
    price = below_flow(sim, clock(), 3)
    order, fills = engine.place("alice", sim, BUY, LIMIT, sim.core.lot * 10**6, price)
    assert fills == []
    start = clock()
    clock.advance(600_000)
    reached = [t for t in sim.trades(clock(), 1000, start_ms=start + 1) if t["price"] <= price and t["id"] < 10**15]
    engine.sync(sim)
    assert reached, "the flow should reach three ticks down within ten minutes"
    assert order.fills[0].time == reached[0]["time"] and order.fills[0].price == price
    event = sum(t["size"] for t in reached if t["time"] == reached[0]["time"])  # one taker's fills
    assert order.fills[0].maker and order.fills[0].qty == event
    assert order.status is OrderStatus.PARTIALLY_FILLED and len(order.fills) >= 1
    assert engine.position("alice", sim) == order.filled


def test_a_client_market_buy_removes_the_asks_others_see_and_prints(engine, sim, clock):
    _, asks = sim.book(clock(), 5)
    qty = asks[0][1] + asks[1][1]
    order, fills = engine.place("alice", sim, BUY, MARKET, qty)
    assert order.status is OrderStatus.FILLED
    _, after = sim.book(clock(), 5)
    assert after[0][0] > asks[1][0]  # the two levels are gone for every reader
    prints = sim.trades(clock(), 5)[-2:]
    assert [(t["price"], t["size"], t["buyer_maker"]) for t in prints] == [(f.price, f.qty, False) for f in fills]
    assert prints[0]["id"] < prints[1]["id"] and prints[0]["time"] == clock()


def test_consumed_liquidity_refills_after_refill_ms(engine, sim, clock):
    _, asks = sim.book(clock(), 1)
    engine.place("alice", sim, BUY, LIMIT, asks[0][1], asks[0][0], TimeInForce.IOC)
    assert engine.market(sim).taken(True, int(asks[0][0] / sim.core.tick), clock()) == int(asks[0][1] / sim.core.lot)
    clock.advance(3_000)
    assert engine.market(sim).taken(True, int(asks[0][0] / sim.core.tick), clock()) == 0
    from exgate.sandbox.matching.book import synthetic_book
    raw = synthetic_book(sim, clock(), 5)
    bids, asks_now = sim.book(clock(), 5)
    assert [q for _, q in asks_now] == [sim.core.size_of(n) for _, n in raw[1]]


def test_an_expired_instrument_rejects_orders(recorded, clock):
    sim = InstrumentSim(type(recorded)(**{**recorded.__dict__, "expiry_ms": NOW - 1}), seed=7, t0_ms=NOW)
    engine = MatchingEngine(clock)
    with pytest.raises(OrderRejected) as err:
        engine.place("alice", sim, BUY, LIMIT, sim.core.lot, sim.price(NOW))
    assert err.value.reason is RejectReason.MARKET_INACTIVE


def test_a_duplicate_client_order_id_is_rejected_and_changes_nothing(engine, sim, clock):
    price = below_flow(sim, clock())
    engine.place("alice", sim, BUY, LIMIT, sim.core.lot, price, client_order_id="x1")
    book = sim.book(clock(), 10)
    with pytest.raises(OrderRejected) as err:
        engine.place("alice", sim, BUY, LIMIT, sim.core.lot, price, client_order_id="x1")
    assert err.value.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID
    assert sim.book(clock(), 10) == book and len(engine.open_orders("alice", sim)) == 1
    engine.place("bob", sim, BUY, LIMIT, sim.core.lot, price, client_order_id="x1")  # per account


def test_bad_tick_and_lot_are_rejected(engine, sim, clock):
    with pytest.raises(OrderRejected) as err:
        engine.place("alice", sim, BUY, LIMIT, sim.core.lot, below_flow(sim, clock()) + sim.core.tick / 2)
    assert err.value.reason is RejectReason.BAD_TICK
    with pytest.raises(OrderRejected) as err:
        engine.place("alice", sim, BUY, LIMIT, sim.core.lot / 2, below_flow(sim, clock()))
    assert err.value.reason is RejectReason.BAD_LOT


def test_cancel_removes_the_order_from_the_book(engine, sim, clock):
    price = below_flow(sim, clock())
    order, _ = engine.place("alice", sim, BUY, LIMIT, sim.core.lot, price, client_order_id="c")
    engine.cancel("alice", sim, client_order_id="c")
    assert order.status is OrderStatus.CANCELED and price not in [p for p, _ in sim.book(clock(), 1000)[0]]


def test_client_prints_widen_the_forming_candle(engine, sim, clock):
    before = sim.candles(60_000, clock(), limit=1)[-1]
    _, asks = sim.book(clock(), 30)
    qty = sum(q for _, q in asks)
    order, fills = engine.place("alice", sim, BUY, MARKET, qty)
    after = sim.candles(60_000, clock(), limit=1)[-1]
    assert after["high"] == max(before["high"], fills[-1].price)
    assert after["volume"] == before["volume"] + qty and after["trades"] == before["trades"] + len(fills)
    assert after["open"] == before["open"]


def test_the_synthetic_flow_serves_resting_orders_in_price_time_order(engine, sim, clock):
    lot = sim.core.lot
    price = below_flow(sim, clock(), 3)
    first, _ = engine.place("alice", sim, BUY, LIMIT, lot, price)
    clock.advance(1)
    second, _ = engine.place("bob", sim, BUY, LIMIT, lot * 10**6, price)
    clock.advance(600_000)
    engine.sync(sim)
    assert first.status is OrderStatus.FILLED and second.fills
    assert first.fills[0].time <= second.fills[0].time
