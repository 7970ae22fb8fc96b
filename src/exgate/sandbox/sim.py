"""Market simulation behind the sandbox: recorded state at t0, then a seeded random walk.

Each :class:`Instrument` starts from values taken from a recorded exchange payload (price,
book levels, funding). :class:`InstrumentSim` moves it forward deterministically: the same
seed and the same clock reading always give the same book, trades and candles, so tests can
pin a clock and assert exact values, while a live sandbox shows prices that change.

At ``t0`` (the sandbox's start) every value equals the recorded one. Time is integer ms.
"""

from __future__ import annotations

import hashlib
import math
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

Clock = Callable[[], int]
"""A function returning the current time in integer ms since the epoch."""


def wall_clock_ms() -> int:
    """The real time in ms; the default clock."""
    return time.time_ns() // 1_000_000


STEP_MS = 1_000
"""The walk moves once per second."""

STEP_VOL = 0.00005
"""Standard deviation of one step's log-return (0.5 bp per second, about 1.5 % a day)."""


def _unit(*parts: object) -> float:
    """A deterministic uniform number in (0, 1) from ``parts`` (seeded hash, not a global RNG)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return (struct.unpack("<Q", digest)[0] + 0.5) / 2**64


def _gauss(*parts: object) -> float:
    """A deterministic standard normal number from ``parts`` (Box-Muller on two hashes)."""
    u1, u2 = _unit(*parts, "a"), _unit(*parts, "b")
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def quantize(value: Decimal, step: Decimal) -> Decimal:
    """Round ``value`` to a multiple of ``step`` (tick or lot size), never below one step."""
    if step <= 0:
        return value
    units = (value / step).to_integral_value(rounding=ROUND_HALF_EVEN)
    return max(units, Decimal(1)) * step


@dataclass
class Instrument:
    """One market a sandbox venue serves, as recorded.

    ``price`` is the reference (last/mid) price at t0 in quote currency; ``bids``/``asks`` the
    recorded book levels ``(price, size)`` best first (empty: synthesized around ``price``);
    ``raw`` the recorded instrument record the venue's instruments endpoint echoes.
    """

    venue_id: str
    base: str
    quote: str
    tick: Decimal
    lot: Decimal
    price: Decimal
    bids: list[tuple[Decimal, Decimal]] = field(default_factory=list)
    asks: list[tuple[Decimal, Decimal]] = field(default_factory=list)
    funding_rate: Decimal = Decimal("0.0001")
    volume_24h: Decimal = Decimal("1000")
    trade_size: Decimal | None = None
    raw: dict = field(default_factory=dict)


class InstrumentSim:
    """Deterministic evolution of one :class:`Instrument` from ``t0_ms``.

    Args:
        instrument: the recorded starting state.
        seed: the sandbox's seed; two sandboxes with the same seed agree.
        t0_ms: the sandbox's start time; reads at ``t0_ms`` return the recorded values.
    """

    def __init__(self, instrument: Instrument, seed: int, t0_ms: int):
        self.instrument = instrument
        self.seed = seed
        self.t0_ms = t0_ms
        self._log_path: list[float] = [0.0]  # cumulative log-return at step k >= 0

    # -- prices -------------------------------------------------------------------------
    def _log_return(self, step: int) -> float:
        path = self._log_path
        while len(path) <= step:
            k = len(path)
            path.append(path[-1] + STEP_VOL * _gauss(self.seed, self.instrument.venue_id, "walk", k))
        return path[step]

    def step_at(self, now_ms: int) -> int:
        """Walk step index of ``now_ms`` (0 at or before t0)."""
        return max(0, (now_ms - self.t0_ms) // STEP_MS)

    def factor(self, now_ms: int) -> float:
        """Price multiplier relative to the recorded state at ``now_ms``."""
        return math.exp(self._log_return(self.step_at(now_ms)))

    def price(self, now_ms: int) -> Decimal:
        """Last/mid price at ``now_ms``, on the tick grid (quote currency)."""
        step = self.step_at(now_ms)
        if step == 0:
            return self.instrument.price
        return self._moved(self.instrument.price, self.factor(now_ms))

    def _moved(self, price: Decimal, factor: float) -> Decimal:
        return quantize(price * Decimal(repr(factor)), self.instrument.tick)

    def book(self, now_ms: int, depth: int) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """Order book at ``now_ms``: up to ``depth`` levels per side, best first.

        The recorded levels shift with the walk; sizes wiggle by a seeded factor per step.
        Sides never cross: asks stay at least one tick above bids.
        """
        inst = self.instrument
        step = self.step_at(now_ms)
        bids, asks = inst.bids, inst.asks
        if not bids or not asks:
            bids, asks = self._synthetic_levels(max(depth, 20))
        if step == 0:
            return list(bids[:depth]), list(asks[:depth])
        f = self.factor(now_ms)
        out_bids = self._shift(bids, f, step, "b")
        out_asks = self._shift(asks, f, step, "a")
        if out_bids and out_asks and out_asks[0][0] <= out_bids[0][0]:
            gap = out_bids[0][0] - out_asks[0][0] + inst.tick
            out_asks = [(p + gap, s) for p, s in out_asks]
        return out_bids[:depth], out_asks[:depth]

    def _shift(self, levels, factor: float, step: int, side: str) -> list[tuple[Decimal, Decimal]]:
        out: list[tuple[Decimal, Decimal]] = []
        seen: set[Decimal] = set()
        for i, (price, size) in enumerate(levels):
            moved = self._moved(price, factor)
            if moved in seen:
                continue
            seen.add(moved)
            wiggle = Decimal(repr(round(0.5 + _unit(self.seed, self.instrument.venue_id, side, step, i), 3)))
            out.append((moved, quantize(size * wiggle, self.instrument.lot)))
        return out

    def _synthetic_levels(self, depth: int):
        inst = self.instrument
        spread = max(inst.tick, quantize(inst.price * Decimal("0.0001"), inst.tick))
        size = inst.trade_size or inst.lot * 10
        bids = [(inst.price - spread * (i + 1), quantize(size * (i + 1), inst.lot)) for i in range(depth)]
        asks = [(inst.price + spread * (i + 1), quantize(size * (i + 1), inst.lot)) for i in range(depth)]
        return [b for b in bids if b[0] > 0], asks

    # -- trades -------------------------------------------------------------------------
    def trades(self, now_ms: int, limit: int) -> list[dict]:
        """The ``limit`` most recent public trades up to ``now_ms``, oldest first.

        One trade per walk step; each is ``{"id": int, "price", "size": Decimal,
        "buyer_maker": bool, "time": ms}``.
        """
        inst = self.instrument
        last_step = self.step_at(now_ms)
        base_size = inst.trade_size or inst.lot * 10
        out = []
        for step in range(last_step - limit + 1, last_step + 1):
            trade_id = 1_000_000 + step  # ids grow with time and stay positive before t0
            wiggle = Decimal(repr(round(0.2 + 2 * _unit(self.seed, inst.venue_id, "t", step), 3)))
            out.append({
                "id": trade_id,
                "price": self._moved(inst.price, math.exp(self._log_return(max(step, 0)))) if step > 0 else inst.price,
                "size": quantize(base_size * wiggle, inst.lot),
                "buyer_maker": _unit(self.seed, inst.venue_id, "side", step) < 0.5,
                "time": self.t0_ms + step * STEP_MS,
            })
        return out

    # -- candles ------------------------------------------------------------------------
    def candles(self, interval_ms: int, now_ms: int, *, start_ms: int | None = None,
                end_ms: int | None = None, limit: int = 500) -> list[dict]:
        """Candles of ``interval_ms`` covering ``[start_ms, end_ms]`` (clamped to ``now_ms``).

        Without ``start_ms`` the last ``limit`` candles up to ``end_ms`` (or now) are returned;
        with it, the first ``limit`` from ``start_ms``. The candle containing ``now_ms`` closes
        at the current price; earlier closes follow a walk backwards, one step per candle.
        Each candle is ``{"open_time", "close_time": ms, "open", "high", "low", "close",
        "volume": Decimal}``, oldest first.
        """
        now_bucket = now_ms // interval_ms
        last_bucket = now_bucket if end_ms is None else min(now_bucket, end_ms // interval_ms)
        if start_ms is not None:
            first_bucket = -(-start_ms // interval_ms)
            last_bucket = min(last_bucket, first_bucket + limit - 1)
        else:
            first_bucket = last_bucket - limit + 1
        if last_bucket < first_bucket:
            return []
        inst = self.instrument
        sigma = STEP_VOL * math.sqrt(interval_ms / STEP_MS)
        # walk backwards from now: close(b) for b in [first_bucket - 1, last_bucket]
        closes: dict[int, float] = {}
        log_close = math.log(float(self.price(now_ms)))
        for bucket in range(now_bucket, first_bucket - 2, -1):
            if bucket <= last_bucket:
                closes[bucket] = log_close
            log_close -= sigma * _gauss(self.seed, inst.venue_id, "c", interval_ms, bucket)
        volume_scale = inst.volume_24h * Decimal(interval_ms) / Decimal(86_400_000)
        out = []
        for bucket in range(first_bucket, last_bucket + 1):
            o = math.exp(closes.get(bucket - 1, closes[bucket]))
            c = math.exp(closes[bucket])
            spread = sigma * _unit(self.seed, inst.venue_id, "hl", interval_ms, bucket)
            h = max(o, c) * math.exp(spread)
            low = min(o, c) * math.exp(-spread)
            vol = volume_scale * Decimal(repr(round(0.5 + _unit(self.seed, inst.venue_id, "v", bucket), 4)))
            out.append({
                "open_time": bucket * interval_ms,
                "close_time": bucket * interval_ms + interval_ms - 1,
                "open": quantize(Decimal(repr(o)), inst.tick),
                "high": quantize(Decimal(repr(h)), inst.tick),
                "low": quantize(Decimal(repr(low)), inst.tick),
                "close": quantize(Decimal(repr(c)), inst.tick),
                "volume": quantize(vol, inst.lot),
            })
        return out
