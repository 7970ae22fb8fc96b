"""Market simulation behind the sandbox: recorded state at t0, then a seeded price path.

Each :class:`Instrument` starts from values taken from a recorded exchange payload (price,
book levels, funding). :class:`InstrumentSim` moves it deterministically: the price at any
instant is the recorded price times ``exp(STEP_VOL * (W(s) - W(s0)))``, where ``W`` is the
instrument's seeded Brownian path (:class:`~exgate.sandbox.path.BrownianPath`) on whole seconds
``s`` since the epoch and ``s0`` the second of t0. The path is a pure function of (seed,
instrument, second), evaluated directly (O(log) per instant, no walk from now), so the same seed
and clock reading always give the same book, trades and candles, a read never changes what
another read sees, and a closed candle is the same at every later clock reading. The path's
shape does not depend on t0; only its level does (anchored so that t0 reads the recording).

At ``t0`` (the sandbox's start) every value equals the recorded one. Time is integer ms.

Cost bounds: one call returns at most :data:`MAX_CANDLES` candles, :data:`MAX_TRADES` trades
and :data:`MAX_LEVELS` levels per side (the venues cap lower, at their own published maxima),
and its work is proportional to what it returns. History starts at the instrument's listing
(:attr:`Instrument.listed_ms`, from the venue's recorded listing time, else
:data:`DEFAULT_LISTED_MS`): a candle request from ``start=0`` answers from there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from exgate.sandbox.path import BrownianPath, key64, uniform

Clock = Callable[[], int]
"""A function returning the current time in integer ms since the epoch."""


def wall_clock_ms() -> int:
    """The real time in ms; the default clock."""
    return time.time_ns() // 1_000_000


STEP_MS = 1_000
"""The walk moves once per second."""

STEP_VOL = 0.00005
"""Standard deviation of one step's log-return (0.5 bp per second, about 1.5 % a day)."""

MAX_CANDLES = 5000
"""Most candles one call returns (Hyperliquid's 5000, the largest venue maximum)."""

MAX_TRADES = 1000
"""Most trades one call returns (Binance's and Bybit's maximum)."""

MAX_LEVELS = 1000
"""Most book levels per side one call returns (Binance's maximum depth)."""

DEFAULT_LISTED_MS = 1_577_836_800_000
"""Listing time (2020-01-01T00:00:00Z) of instruments whose recording has none: their history
starts there. A sandbox choice, not recorded."""


def listing_ms(value: object) -> int | None:
    """A recorded listing time (int or digit string, ms) as an int; ``None`` when absent or invalid."""
    text = str(value) if value is not None else ""
    return int(text) if text.isdigit() else None


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
    ``raw`` the recorded instrument record the venue's instruments endpoint echoes;
    ``listed_ms`` the recorded listing time (ms), where history starts (``None``:
    :data:`DEFAULT_LISTED_MS`).
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
    listed_ms: int | None = None
    expiry_ms: int | None = None
    funding_interval_ms: int = 8 * 3_600_000


class InstrumentSim:
    """Deterministic evolution of one :class:`Instrument` around ``t0_ms``.

    Args:
        instrument: the recorded starting state.
        seed: the sandbox's seed; two sandboxes with the same seed agree.
        t0_ms: the sandbox's start time; reads at ``t0_ms`` return the recorded values.

    Attributes:
        path: the instrument's :class:`~exgate.sandbox.path.BrownianPath` (its
            ``nodes_computed`` counts the work reads have cost).
        earliest_ms: where history starts: the listing time, or t0 if that is earlier.
    """

    def __init__(self, instrument: Instrument, seed: int, t0_ms: int):
        self.instrument = instrument
        self.seed = seed
        self.t0_ms = t0_ms
        venue_id = instrument.venue_id
        self.path = BrownianPath(key64(seed, venue_id, "walk"))
        self._keys = {name: key64(seed, venue_id, name) for name in ("b", "a", "t", "side", "hi", "lo", "v")}
        self._s0 = t0_ms // STEP_MS
        self._w0 = self.path.at(self._s0)
        listed = instrument.listed_ms if instrument.listed_ms is not None else DEFAULT_LISTED_MS
        self.earliest_ms = min(int(listed), t0_ms)

    # -- prices -------------------------------------------------------------------------
    def step_at(self, now_ms: int) -> int:
        """Walk steps (seconds) from t0's second to ``now_ms``'s (0 at or before t0)."""
        return max(0, now_ms // STEP_MS - self._s0)

    def _log_move(self, w: float) -> float:
        """Log-return since t0 of a path value ``w``."""
        return STEP_VOL * (w - self._w0)

    def factor(self, now_ms: int) -> float:
        """Price multiplier relative to the recorded state at ``now_ms``."""
        return math.exp(self._log_move(self.path.at(now_ms // STEP_MS)))

    def price(self, now_ms: int) -> Decimal:
        """Last/mid price at ``now_ms``, on the tick grid (quote currency)."""
        if now_ms // STEP_MS == self._s0:
            return self.instrument.price
        return self._moved(self.instrument.price, self.factor(now_ms))

    def _price_of(self, second: int, w: float) -> Decimal:
        """The price at ``second`` whose path value is ``w`` (the recorded price at t0)."""
        if second == self._s0:
            return self.instrument.price
        return self._moved(self.instrument.price, math.exp(self._log_move(w)))

    def _moved(self, price: Decimal, factor: float) -> Decimal:
        return quantize(price * Decimal(repr(factor)), self.instrument.tick)

    def book(self, now_ms: int, depth: int) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """Order book at ``now_ms``: up to ``depth`` (at most :data:`MAX_LEVELS`) levels per side, best first.

        The recorded levels shift with the path; sizes wiggle by a seeded factor per second.
        Sides never cross: asks stay at least one tick above bids.
        """
        depth = max(0, min(depth, MAX_LEVELS))
        inst = self.instrument
        second = now_ms // STEP_MS
        bids, asks = inst.bids, inst.asks
        if not bids or not asks:
            bids, asks = self._synthetic_levels(max(depth, 20))
        if second == self._s0:
            return list(bids[:depth]), list(asks[:depth])
        f = self.factor(now_ms)
        out_bids = self._shift(bids[:depth + 10], f, second, "b")
        out_asks = self._shift(asks[:depth + 10], f, second, "a")
        if out_bids and out_asks and out_asks[0][0] <= out_bids[0][0]:
            gap = out_bids[0][0] - out_asks[0][0] + inst.tick
            out_asks = [(p + gap, s) for p, s in out_asks]
        return out_bids[:depth], out_asks[:depth]

    def _shift(self, levels, factor: float, second: int, side: str) -> list[tuple[Decimal, Decimal]]:
        out: list[tuple[Decimal, Decimal]] = []
        seen: set[Decimal] = set()
        key = self._keys[side]
        for i, (price, size) in enumerate(levels):
            moved = self._moved(price, factor)
            if moved in seen:
                continue
            seen.add(moved)
            wiggle = Decimal(repr(round(0.5 + uniform(key, second, i), 3)))
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
        """The ``limit`` (at most :data:`MAX_TRADES`) most recent public trades up to ``now_ms``, oldest first.

        One trade per second of the path, none before the listing; each is ``{"id": int,
        "price", "size": Decimal, "buyer_maker": bool, "time": ms}`` (ids grow by one per second
        and are 1000000 at t0).
        """
        inst = self.instrument
        limit = max(0, min(limit, MAX_TRADES))
        last = now_ms // STEP_MS
        first = max(last - limit + 1, -(-self.earliest_ms // STEP_MS))
        seconds = range(first, last + 1)
        values = self.path.at_many(seconds)
        base_size = inst.trade_size or inst.lot * 10
        size_key, side_key = self._keys["t"], self._keys["side"]
        out = []
        for second in seconds:
            wiggle = Decimal(repr(round(0.2 + 2 * uniform(size_key, second), 3)))
            out.append({
                "id": 1_000_000 + second - self._s0,
                "price": self._price_of(second, values[second]),
                "size": quantize(base_size * wiggle, inst.lot),
                "buyer_maker": uniform(side_key, second) < 0.5,
                "time": second * STEP_MS,
            })
        return out

    # -- candles ------------------------------------------------------------------------
    def candles(self, interval_ms: int, now_ms: int, *, start_ms: int | None = None,
                end_ms: int | None = None, limit: int = 500, kind: str = "last") -> list[dict]:
        """Candles of ``interval_ms`` (``kind``: ``last`` trades, ``mark``, ``index`` or ``premium`` index) covering ``[start_ms, end_ms]`` (clamped to ``now_ms``).

        Without ``start_ms`` the last ``limit`` candles up to ``end_ms`` (or now) are returned;
        with it, the first ``limit`` from ``start_ms``; never any before the candle holding
        :attr:`earliest_ms` (the listing), and at most :data:`MAX_CANDLES`. Each candle is
        ``{"open_time", "close_time": ms, "open", "high", "low", "close", "volume": Decimal}``,
        oldest first (see :meth:`span_candles`). Work: O(candles returned).
        """
        limit = max(0, min(limit, MAX_CANDLES))
        now_bucket = now_ms // interval_ms
        first_listed = self.earliest_ms // interval_ms
        last_bucket = now_bucket if end_ms is None else min(now_bucket, end_ms // interval_ms)
        if start_ms is not None:
            first_bucket = max(-(-start_ms // interval_ms), first_listed)
            last_bucket = min(last_bucket, first_bucket + limit - 1)
        else:
            first_bucket = max(last_bucket - limit + 1, first_listed)
        if last_bucket < first_bucket:
            return []
        opens = [bucket * interval_ms for bucket in range(first_bucket, last_bucket + 1)]
        return self.span_candles([(o, o + interval_ms) for o in opens], now_ms, kind=kind)

    def span_candles(self, spans: list[tuple[int, int]], now_ms: int, kind: str = "last") -> list[dict]:
        """One candle per ``(open_ms, next_open_ms)`` span that has begun by ``now_ms``, in order.

        Open is the price at the span's first second, close at its last second (at ``now_ms``'s
        for the forming candle); high and low are drawn from the exact distributions of the
        maximum and minimum of a Brownian bridge between them over the span's seconds (seeded
        per span), so ``low <= open, close <= high``, all on the tick grid. Volume is a seeded
        share (0.5-1.5x) of the instrument's 24 h volume pro rata. A span that has closed by
        ``now_ms`` reads the same at every clock reading.
        """
        inst = self.instrument
        spans = [(o, n) for o, n in spans[:MAX_CANDLES] if o <= now_ms]
        edges = []
        for open_ms, next_ms in spans:
            edges.append((open_ms // STEP_MS, (min(next_ms, now_ms + 1) - 1) // STEP_MS))
        values = self.path.at_many([s for pair in edges for s in pair])
        hi_key, lo_key, v_key = self._keys["hi"], self._keys["lo"], self._keys["v"]
        day = Decimal(86_400_000)
        out = []
        for (open_ms, next_ms), (s_open, s_close) in zip(spans, edges):
            span = next_ms - open_ms
            x_open, x_close = self._log_move(values[s_open]), self._log_move(values[s_close])
            var = STEP_VOL * STEP_VOL * max(0, s_close - s_open)
            gap2 = (x_close - x_open) ** 2
            x_high = 0.5 * (x_open + x_close + math.sqrt(gap2 - 2 * var * math.log(uniform(hi_key, span, open_ms))))
            x_low = 0.5 * (x_open + x_close - math.sqrt(gap2 - 2 * var * math.log(uniform(lo_key, span, open_ms))))
            share = Decimal(repr(round(0.5 + uniform(v_key, span, open_ms), 4)))
            open_ = self._price_of(s_open, values[s_open])
            close = self._price_of(s_close, values[s_close])
            out.append({
                "open_time": open_ms,
                "close_time": next_ms - 1,
                "open": open_,
                "high": max(self._moved(inst.price, math.exp(x_high)), open_, close),
                "low": min(self._moved(inst.price, math.exp(x_low)), open_, close),
                "close": close,
                "volume": quantize(inst.volume_24h * span / day * share, inst.lot),
            })
        return out

    # -- the market-model face the venues use (interim implementation; issue 9 replaces it) ----
    def is_active(self, now_ms: int) -> bool:
        """Whether the instrument trades at ``now_ms`` (listed and not past its expiry)."""
        expiry = self.instrument.expiry_ms
        return expiry is None or now_ms < expiry

    def index_price(self, now_ms: int) -> Decimal:
        """Index price at ``now_ms`` (quote currency, on the tick grid)."""
        return self.price(now_ms)

    def mark_price(self, now_ms: int) -> Decimal:
        """Mark price at ``now_ms`` (quote currency, on the tick grid)."""
        return self.price(now_ms)

    def funding_rate(self, now_ms: int) -> Decimal:
        """The predicted rate of the funding period holding ``now_ms`` (a fraction per period)."""
        return self.instrument.funding_rate

    def next_funding_ms(self, now_ms: int) -> int:
        """When the period holding ``now_ms`` settles (ms)."""
        step = self.instrument.funding_interval_ms
        return (now_ms // step + 1) * step

    def funding_history(self, now_ms: int, *, start_ms: int | None = None, end_ms: int | None = None,
                        limit: int = 100) -> list[dict]:
        """Settled funding periods ``{"time": ms, "rate": Decimal, "mark": Decimal}``, oldest first:
        the first ``limit`` from ``start_ms``, else the last ``limit`` up to ``end_ms`` (or now)."""
        step = self.instrument.funding_interval_ms
        last = (min(now_ms, end_ms) if end_ms is not None else now_ms) // step
        first_listed = -(-self.earliest_ms // step)
        if start_ms is not None:
            first = max(-(-start_ms // step), first_listed)
            last = min(last, first + limit - 1)
        else:
            first = max(last - limit + 1, first_listed)
        return [{"time": k * step, "rate": self.funding_rate(k * step), "mark": self.mark_price(k * step)}
                for k in range(first, last + 1)]

    def open_interest(self, now_ms: int) -> Decimal:
        """Open interest at ``now_ms`` in base units (contracts of one base unit)."""
        return quantize(self.instrument.volume_24h / 2, self.instrument.lot)

    def stats_24h(self, now_ms: int) -> dict:
        """Rolling 24 h statistics ``{"open", "high", "low", "last", "volume" (base),
        "quote_volume", "count", "first_id", "last_id", "open_time", "close_time"}``."""
        candles = self.candles(60_000, now_ms, start_ms=now_ms - 86_400_000, limit=1441)
        last = self.price(now_ms)
        if not candles:
            return {"open": last, "high": last, "low": last, "last": last, "volume": Decimal(0),
                    "quote_volume": Decimal(0), "count": 0, "first_id": 0, "last_id": 0,
                    "open_time": now_ms - 86_400_000, "close_time": now_ms}
        volume = sum((c["volume"] for c in candles), Decimal(0))
        return {"open": candles[0]["open"], "high": max(c["high"] for c in candles),
                "low": min(c["low"] for c in candles), "last": last, "volume": volume,
                "quote_volume": sum((c["volume"] * c["close"] for c in candles), Decimal(0)),
                "count": 86_400, "first_id": 1, "last_id": 86_400,
                "open_time": now_ms - 86_400_000, "close_time": now_ms}
