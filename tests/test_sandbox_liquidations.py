"""The shared liquidation model: a pure function of (seed, venue, instrument, second) whose
events sit on the market's grid near its mark price, the ground truth of every venue's feed."""

from __future__ import annotations

from decimal import Decimal

from exgate.sandbox.app import create_sandbox_app
from exgate.sandbox.market.liquidations import MAX_PER_SECOND, MAX_SLIPPAGE, LiquidatedSide, liquidations, liquidations_between
from tests.conftest import require_fixtures

require_fixtures()

START_MS = 1_760_000_000_000
HOUR_MS = 3_600_000


def sim_of(seed: int = 7, venue: str = "binanceusdm", symbol: str = "BTCUSDT", clock_ms: int = START_MS):
    app = create_sandbox_app(venues=[venue], seed=seed, clock=lambda: clock_ms)
    return app.state.venues[venue].sims[symbol]


def test_same_seed_same_events_whenever_the_sandbox_started_and_another_seed_differs() -> None:
    early, late = sim_of(clock_ms=START_MS), sim_of(clock_ms=START_MS + 5 * HOUR_MS)
    window = (START_MS - 600_000, START_MS)
    events = liquidations_between(early, "binanceusdm", *window)
    assert events and events == liquidations_between(late, "binanceusdm", *window)
    assert events != liquidations_between(sim_of(seed=8), "binanceusdm", *window)
    assert events != liquidations_between(early, "bybit", *window)  # each venue its own draws


def test_events_are_ordered_in_their_second_on_tick_and_lot_near_the_mark() -> None:
    sim = sim_of()
    inst = sim.instrument
    sides = []
    for second in range(START_MS // 1000 - 3600, START_MS // 1000):
        events = liquidations(sim, "binanceusdm", second)
        assert len(events) <= MAX_PER_SECOND and [e.time_ms for e in events] == sorted(e.time_ms for e in events)
        for e in events:
            assert second * 1000 <= e.time_ms < (second + 1) * 1000
            assert e.price % inst.tick == 0 and e.size % inst.lot == 0 and e.size > 0
            mark = sim.mark_price(e.time_ms)
            gap = (mark - e.price) / mark if e.side is LiquidatedSide.LONG else (e.price - mark) / mark
            assert -Decimal("0.0001") <= gap <= Decimal(str(MAX_SLIPPAGE)) + Decimal("0.0001")  # against the position
            sides.append(e.side)
    assert 20 < len(sides) < 1200 and set(sides) == {LiquidatedSide.LONG, LiquidatedSide.SHORT}


def test_nothing_before_the_listing() -> None:
    sim = sim_of()
    listed = sim.core.first_second
    assert all(not liquidations(sim, "binanceusdm", s) for s in range(listed - 600, listed))
