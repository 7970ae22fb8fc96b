"""One venue's market of an asset: the face every sandbox venue reads (prices, book, trades,
candles, 24 h statistics, mark/index, funding, open interest).

Prices: the asset's fair path ``W`` (:mod:`.tree`) gives the index price
``level * exp(STEP_VOL * W)``; the market trades at the index times ``1 + basis`` (a seeded
constant per market, within 0.08 %), through its taker flow (:mod:`.flow`); its mark price is
the index times ``1 + premium(t)``, the premium being the basis plus a slow seeded wander
(within ±0.075 %, hourly knots, linear between them): smoother than the last trade, distinct
from the index. A funding period settles at the premium averaged over it plus the interest
(0.01 % per 8 h, pro rata); open interest wanders slowly around its recorded level.

History is a pure function of (seed, instrument, time): a past trade, a closed candle and a
settled funding period read the same at every later clock reading and after a restart. It
starts at the listing (:attr:`Market.earliest_ms`) and stops at the expiry, if any. Every
request costs about ``log2`` of its interval per candle, or its own size for trades and books.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from decimal import Decimal

from exgate.sandbox.market.flow import Fill, Flow, log_ticks
from exgate.sandbox.market.model import MarketModel
from exgate.sandbox.market.tree import ExtremesTree, Span
from exgate.sandbox.path import BrownianPath, hash64, uniform

STEP_VOL = 0.00005
"""Standard deviation of one second's log-return (0.5 bp, about 1.5 % a day)."""

MAX_BASIS = 0.0008
"""Largest basis of a market's trades over the index (a fraction)."""

PREMIUM_VOL = 0.00025
"""Scale of the premium's wander around the basis (a fraction; it stays within 3 of it)."""

INTEREST_8H = 0.0001
"""Interest component of a funding rate, per 8 hours."""

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
_RATE = Decimal("0.00000001")



CLOSED_MEMO = 4096
"""Closed-range aggregates one market remembers (least recently stored go first)."""

_MISSING = object()

class Wander:
    """A slow, bounded, seeded signal in [-3, 3]: hourly knots ``(W(h) - W(h - 24)) / sqrt(24)``
    of a Brownian path on hours (so each knot is standard normal and a day apart they are
    independent), linear in between."""

    def __init__(self, key: int):
        self.path = BrownianPath(key)

    def knots(self, first_hour: int, last_hour: int) -> dict[int, float]:
        """``{hour: knot}`` for every hour in ``[first_hour, last_hour]``."""
        hours = range(first_hour, last_hour + 1)
        values = self.path.at_many([h for h in hours] + [h - 24 for h in hours])
        return {h: max(-3.0, min(3.0, (values[h] - values[h - 24]) / math.sqrt(24))) for h in hours}

    def at(self, ms: int) -> float:
        hour, rest = divmod(ms, HOUR_MS)
        k = self.knots(hour, hour + 1)
        return k[hour] + (k[hour + 1] - k[hour]) * rest / HOUR_MS

    def mean(self, start_ms: int, end_ms: int) -> float:
        """The signal's average over ``[start_ms, end_ms]`` (exact for the linear pieces)."""
        if end_ms <= start_ms:
            return self.at(start_ms)
        first, last = start_ms // HOUR_MS, -(-end_ms // HOUR_MS)
        k = self.knots(first, last)
        total = 0.0
        for h in range(first, last):
            lo, hi = max(start_ms, h * HOUR_MS), min(end_ms, (h + 1) * HOUR_MS)
            if hi <= lo:
                continue
            mid = ((lo + hi) / 2 - h * HOUR_MS) / HOUR_MS
            total += (k[h] + (k[h + 1] - k[h]) * mid) * (hi - lo)
        return total / (end_ms - start_ms)


class MarketCore:
    """The prices and flow of one market (see the module's description).

    Args:
        instrument: the recorded instrument (tick, lot, listing, expiry, volume, funding interval).
        model: the sandbox's :class:`~.model.MarketModel` (asset levels and keys).
        venue: the venue's name (part of the market's key).
        listed_ms: where history starts (ms).
    """

    def __init__(self, instrument, model: MarketModel, venue: str, listed_ms: int):
        self.instrument = instrument
        inst = instrument
        self.tick, self.lot = inst.tick, inst.lot
        self.level = model.level(inst.base, inst.price)
        key = model.market_key(venue, inst.venue_id)
        self.basis = MAX_BASIS * (2 * uniform(key, 1) - 1)
        level_ticks = float(self.level / self.tick)
        self.index_ticks = log_ticks(level_ticks, STEP_VOL)
        self.trade_ticks = log_ticks(level_ticks * (1 + self.basis), STEP_VOL)
        quote_volume = float(inst.volume_24h * self.level)
        fills = 8 if quote_volume >= 5e8 else 4
        lots_per_second = float(inst.volume_24h / self.lot) / 86_400 - fills
        self.tree = ExtremesTree(model.path_key(inst.base), hash64(key, 2), lots_per_second)
        mean_fill = max(1.0, lots_per_second / fills + 1)
        self.flow = Flow(hash64(key, 3), self.trade_ticks, fills, 1.5 * mean_fill)
        self.premium_wander = Wander(hash64(key, 4))
        self.oi_wander = Wander(hash64(key, 5))
        self.earliest_ms = listed_ms
        self.expiry_ms = inst.expiry_ms
        self.first_second = -(-listed_ms // 1000)
        self._closed: OrderedDict[tuple[int, int], dict | None] = OrderedDict()

    # -- time ---------------------------------------------------------------------------------
    def clamp(self, now_ms: int) -> int:
        """``now_ms``, or the last instant of trading for an expired instrument."""
        if self.expiry_ms is not None and now_ms >= self.expiry_ms:
            return self.expiry_ms - 1
        return now_ms

    def price_of(self, ticks: int) -> Decimal:
        return self.tick * ticks

    def size_of(self, lots: int) -> Decimal:
        return self.lot * lots

    # -- fills --------------------------------------------------------------------------------
    def seconds_fills(self, first: int, last: int) -> list[list[Fill]]:
        """The fills of every second in ``[first, last]`` (none before the listing)."""
        first = max(first, self.first_second)
        if last < first:
            return []
        spans = self.tree.spans(list(range(first, last + 2)))
        return [self.flow.fills(first + i, span) for i, span in enumerate(spans)]

    def last_fill(self, now_ms: int) -> Fill | None:
        """The latest fill at or before ``now_ms``."""
        now_ms = self.clamp(now_ms)
        second = now_ms // 1000
        if second < self.first_second:
            return None
        for fills in reversed(self.seconds_fills(second - 1, second)):
            done = [f for f in fills if f.time <= now_ms]
            if done:
                return done[-1]
        return None

    def next_fill(self, now_ms: int) -> tuple[list[Fill], int] | None:
        """``(fills of its second, index)`` of the first fill after ``now_ms``."""
        second = max(now_ms // 1000, self.first_second)
        for fills in self.seconds_fills(second, second + 1):
            for i, f in enumerate(fills):
                if f.time > now_ms:
                    return fills, i
        return None

    def first_cross(self, buy: bool, ticks: int, after_ms: int, until_ms: int) -> Fill | None:
        """The first synthetic fill in ``(after_ms, until_ms]`` that would reach a resting order
        at ``ticks``: for a resting buy (``buy``) the first fill at or below its price, for a
        resting sell the first at or above; ``None`` if none. Found by the tree's extremes
        (a search of ``log2`` of the distance), not by reading every fill in between."""
        t = self.trade_ticks
        reaches = (lambda high, low: t(low) <= ticks) if buy else (lambda high, low: t(high) >= ticks)
        start = max(after_ms // 1000, self.first_second)
        end = self.clamp(until_ms) // 1000 + 1
        while start < end:
            second = self.tree.first_second(start, end, reaches)
            if second is None:
                return None
            for fill in self.seconds_fills(second, second)[0]:
                if after_ms < fill.time <= until_ms and (fill.ticks <= ticks if buy else fill.ticks >= ticks):
                    return fill
            start = second + 1
        return None

    # -- spans: the tree's aggregate of [start, end) ms, the forming part from fills ----------
    def aggregate(self, ranges: list[tuple[int, int]], now_ms: int) -> list[dict | None]:
        """Trade aggregates of each ``[start_ms, end_ms)`` (whole seconds) up to ``now_ms``:
        ``{"open", "high", "low", "close": ticks, "lots", "count", "first_id", "last_id",
        "open_s", "close_s"}`` or ``None`` when nothing traded in it (before the listing, after
        the expiry, or not begun). Closed parts come from the tree, the current second's part
        from its fills up to ``now_ms``. Ranges closed by ``now_ms`` are remembered (they never
        change; at most :data:`CLOSED_MEMO` per market): callers must not mutate the dicts."""
        now_ms = self.clamp(now_ms)
        now_s = now_ms // 1000
        memo = self._closed
        known = [memo.get((start_ms, end_ms), _MISSING) if end_ms // 1000 <= now_s else _MISSING
                 for start_ms, end_ms in ranges]  # an earlier clock reading may see it forming
        todo = [r for r, k in zip(ranges, known) if k is _MISSING]
        if todo:
            fresh = iter(self._aggregate(todo, now_ms, now_s))
            known = [next(fresh) if k is _MISSING else k for k in known]
            for (start_ms, end_ms), agg in zip(ranges, known):
                if end_ms // 1000 <= now_s and (start_ms, end_ms) not in memo:  # closed: never changes
                    memo[(start_ms, end_ms)] = agg
            while len(memo) > CLOSED_MEMO:
                memo.popitem(last=False)
        return known

    def _aggregate(self, ranges: list[tuple[int, int]], now_ms: int, now_s: int) -> list[dict | None]:
        n = self.flow.fills_per_second
        plan = []
        for start_ms, end_ms in ranges:
            a = max(start_ms // 1000, self.first_second)
            b = min(end_ms // 1000, now_s)  # whole seconds [a, b) from the tree
            partial = end_ms // 1000 > now_s and a <= now_s
            plan.append((a, b, partial))
        bounds = sorted({x for a, b, _ in plan if b > a for x in (a, b)})
        spans = self.tree.spans(bounds) if len(bounds) > 1 else []
        index = {s.start: i for i, s in enumerate(spans)}
        current = None
        if any(p for _, _, p in plan):
            current = [f for f in self.seconds_fills(now_s, now_s)[0] if f.time <= now_ms] \
                if now_s >= self.first_second else []
        out: list[dict | None] = []
        for a, b, partial in plan:
            agg = None
            if b > a:
                parts: list[Span] = []
                i = index[a]
                while i < len(spans) and spans[i].end <= b:
                    parts.append(spans[i])
                    i += 1
                t = self.trade_ticks
                agg = {"open": t(parts[0].open), "close": t(parts[-1].close),
                       "high": t(max(p.high for p in parts)), "low": t(min(p.low for p in parts)),
                       "lots": sum(p.lots for p in parts) + n * (b - a), "count": n * (b - a),
                       "first_id": a * n, "last_id": b * n - 1, "open_s": a, "close_s": b}
            if partial and current:
                hi, lo = max(f.ticks for f in current), min(f.ticks for f in current)
                lots = sum(f.lots for f in current)
                if agg is None:
                    agg = {"open": current[0].ticks, "high": hi, "low": lo, "lots": 0, "count": 0,
                           "first_id": current[0].id, "open_s": now_s}
                agg.update(close=current[-1].ticks, high=max(agg["high"], hi), low=min(agg["low"], lo),
                           lots=agg["lots"] + lots, count=agg["count"] + len(current), last_id=current[-1].id,
                           close_s=now_s)
            out.append(agg)
        return out

    # -- mark, index, premium ---------------------------------------------------------------
    def premium(self, ms: int) -> float:
        """(mark - index) / index at ``ms``."""
        return self.basis + PREMIUM_VOL * self.premium_wander.at(ms)

    def index_value(self, ms: int) -> float:
        """The index price at ``ms`` in ticks (unrounded)."""
        ms = self.clamp(ms)
        w = self.tree.value(max(ms // 1000, self.first_second))
        return float(self.level / self.tick) * math.exp(STEP_VOL * w)

    def funding_rate(self, start_ms: int, end_ms: int) -> Decimal:
        """The funding rate of the period ``[start_ms, end_ms]``: the premium averaged over it
        plus the interest, pro rata of 8 h (a fraction per period, 8 decimals)."""
        mean = self.basis + PREMIUM_VOL * self.premium_wander.mean(start_ms, end_ms)
        interval = self.instrument.funding_interval_ms
        rate = (mean + INTEREST_8H) * interval / (8 * HOUR_MS)
        return Decimal(repr(rate)).quantize(_RATE)

    def open_interest(self, ms: int) -> Decimal:
        """Open interest at ``ms`` in base units: the recorded level times a slow wander (±30 %)."""
        inst = self.instrument
        level = inst.open_interest if getattr(inst, "open_interest", None) else inst.volume_24h / 2
        factor = math.exp(0.1 * self.oi_wander.at(self.clamp(ms)))
        lots = max(1, round(float(level / self.lot) * factor))
        return self.lot * lots
