"""Forced liquidations: a small deterministic model, the ground truth every venue's feed reads.

The market model has no positions, so liquidations are drawn on their own, as a pure function
of ``(seed, venue, instrument, second)`` (the seed and instrument from the
:class:`~exgate.sandbox.sim.InstrumentSim`): the same sandbox seed gives the same events after
a restart, a past second never changes, and any second costs a few hashes.

Per second ``s`` of a market:

- the **rate** rises with the market's move over the last :data:`LOOKBACK_S` seconds:
  ``p = min(MAX_RATE, BASE_RATE * (1 + SURGE * |z|))`` with ``z`` the index's log move over the
  lookback in standard deviations of the path (``STEP_VOL * sqrt(LOOKBACK_S)``);
- the **count** is 0 to :data:`MAX_PER_SECOND`: event ``k`` (0-based) happens when the
  second's ``k``-th uniform draw is below ``p ** (k + 1)`` (so one event with probability
  about ``p``, two about ``p**2``...);
- the liquidated **side**: a falling market liquidates longs: ``P(long) = 0.5 - 0.4 * tanh(z)``;
- the **time**: ``s * 1000`` plus a drawn ms in the second (events of a second in time order);
- the **price**: the mark price at that time, moved against the position by up to
  :data:`MAX_SLIPPAGE` (a liquidated long is sold below the mark, a short bought above), on
  the market's tick;
- the **size** (base units, on the market's lot): log-normal around :data:`SIZE_SECONDS`
  seconds of the market's average volume, at least one lot.

Nothing before the instrument's listing nor after its expiry. Venues map the side to their
own wire field (Binance ``forceOrder`` ``o.S`` is the liquidation ORDER's side: ``SELL`` for
a long; Bybit ``allLiquidation`` ``S`` is the POSITION's side: ``Buy`` for a long).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from exgate.sandbox.market.market import STEP_VOL
from exgate.sandbox.path import hash64, key64, normal_from, uniform

if TYPE_CHECKING:
    from exgate.sandbox.sim import InstrumentSim

BASE_RATE = 0.02
"""Chance per second of a liquidation in a quiet market (about one every 50 s)."""

SURGE = 1.5
"""How much each standard deviation of the recent move adds to the rate (a factor of BASE_RATE)."""

MAX_RATE = 0.35
"""The rate's ceiling per second."""

MAX_PER_SECOND = 3
"""Most liquidations of one market in one second."""

LOOKBACK_S = 60
"""The window (s) of the move that drives the rate and the side."""

MAX_SLIPPAGE = 0.003
"""Largest distance of the liquidation price from the mark (a fraction, against the position)."""

SIZE_SECONDS = 1.0
"""A liquidation's median size, in seconds of the market's average volume."""

SIZE_SIGMA = 1.2
"""Log-normal spread of the size."""


class LiquidatedSide(StrEnum):
    """The side of the position that was liquidated (not of the order that closed it)."""

    LONG = "long"
    SHORT = "short"


@dataclass(frozen=True)
class Liquidation:
    """One forced liquidation.

    Attributes:
        time_ms: when it happened (ms since the epoch).
        side: the liquidated position's side.
        price: the price it was closed at (quote currency, on the market's tick).
        size: how much was closed (base units, on the market's lot; contracts are lots).
    """

    time_ms: int
    side: LiquidatedSide
    price: Decimal
    size: Decimal


def _key(sim: InstrumentSim, venue: str) -> int:
    cache = sim.__dict__.setdefault("_liquidation_keys", {})
    key = cache.get(venue)
    if key is None:
        key = cache[venue] = key64(sim.seed, "liquidation", venue, sim.instrument.venue_id)
    return key


def liquidations(sim: InstrumentSim, venue: str, second: int) -> list[Liquidation]:
    """The liquidations of ``sim``'s market on ``venue`` in the second ``second`` (whole seconds
    since the epoch), in time order; usually empty. Pure: same seed, venue, instrument and
    second, same answer. See the module's description for the model."""
    core = sim.core
    if second < core.first_second or (core.expiry_ms is not None and second * 1000 >= core.expiry_ms):
        return []
    key = _key(sim, venue)
    draws = [uniform(key, second, k) for k in range(MAX_PER_SECOND)]
    if draws[0] >= MAX_RATE:  # the rate never exceeds MAX_RATE: most seconds end here, cheaply
        return []
    now_v = core.index_value(second * 1000)
    then_v = core.index_value(max(core.first_second, second - LOOKBACK_S) * 1000)
    z = math.log(now_v / then_v) / (STEP_VOL * math.sqrt(LOOKBACK_S)) if then_v > 0 and now_v > 0 else 0.0
    rate = min(MAX_RATE, BASE_RATE * (1 + SURGE * abs(z)))
    count = 0
    while count < MAX_PER_SECOND and draws[count] < rate ** (count + 1):
        count += 1
    if count == 0:
        return []
    offsets = sorted(int(uniform(key, second, 10 + k) * 1000) for k in range(count))
    p_long = 0.5 - 0.4 * math.tanh(z)
    lots_per_second = max(1.0, float(sim.instrument.volume_24h / core.lot) / 86_400)
    out = []
    for k, offset in enumerate(offsets):
        time_ms = second * 1000 + offset
        side = LiquidatedSide.LONG if uniform(key, second, 20 + k) < p_long else LiquidatedSide.SHORT
        slip = MAX_SLIPPAGE * uniform(key, second, 30 + k)
        mark = float(sim.mark_price(time_ms) / core.tick)
        ticks = max(1, round(mark * (1 - slip if side is LiquidatedSide.LONG else 1 + slip)))
        lots = max(1, round(lots_per_second * SIZE_SECONDS * math.exp(SIZE_SIGMA * normal_from(hash64(key, second, 40 + k)))))
        out.append(Liquidation(time_ms, side, core.price_of(ticks), core.size_of(lots)))
    return out


def liquidations_between(sim: InstrumentSim, venue: str, start_ms: int, end_ms: int) -> list[Liquidation]:
    """Every liquidation with ``start_ms <= time_ms < end_ms``, in time order (the seconds in
    between are read one by one: keep the span short, a few minutes at most)."""
    out: list[Liquidation] = []
    for second in range(start_ms // 1000, -(-end_ms // 1000)):
        out.extend(e for e in liquidations(sim, venue, second) if start_ms <= e.time_ms < end_ms)
    return out
