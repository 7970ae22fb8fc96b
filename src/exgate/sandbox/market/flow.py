"""One second of a market: the synthetic taker flow's fills, and the book they trade against.

Every second ``s`` of a market holds exactly :attr:`Flow.fills_per_second` fills (so trade ids
``s * fills_per_second + i`` are contiguous and a candle's trade count is known without reading
it). Their prices come from the asset's path over ``[s, s + 1]`` (:class:`~.tree.Span`),
mapped monotonically onto the market's tick grid: the first fill prints at the path's value at
``s`` (at exactly ``s * 1000`` ms), the last at its value at ``s + 1``, and two fills in between
print the second's maximum and minimum. The others lie between their neighbours. So a candle's
open, high, low and close are its first, highest, lowest and last fill, read off the tree.

Consecutive fills group into taker orders: a rise is a buy (it prints at the ask), a fall a
sell (at the bid); a taker whose next fill is one tick further the same way walks the book
(buys at the ask and above, sells at the bid and below), all its fills at one timestamp.
The book between two takers is the one the next taker meets: its touch is that taker's first
fill, its consumed levels are exactly that taker's fills, the other side is a few ticks away,
and deeper levels follow a seeded size profile out to the venue's maximum depth. After a
taker, makers requote: the book a read sees is always the one before the next taker.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from exgate.sandbox.market.tree import Span, _mix, _unit

_GOLDEN = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1


class Fill(NamedTuple):
    """One public trade: ``id``, ``time`` (ms), ``ticks`` (price in ticks), ``lots`` (size in
    lots), ``buy`` (the taker bought: it printed at the ask), ``taker`` (index of its taker order
    within the second, fills of one taker share a time)."""

    id: int
    time: int
    ticks: int
    lots: int
    buy: bool
    taker: int


class Flow:
    """The fills and books of one market, from its price map and its seeded keys.

    Args:
        key: the market's 64-bit key.
        to_ticks: the market's monotone map from a path value to a price in ticks.
        fills_per_second: fills in every second (at least 4).
        base_lots: the typical resting size of a level near the touch, in lots.
    """

    def __init__(self, key: int, to_ticks, fills_per_second: int, base_lots: float):
        self.key = key
        self.to_ticks = to_ticks
        self.fills_per_second = max(4, fills_per_second)
        self.base_lots = max(1.0, base_lots)

    def _h(self, *ints: int) -> int:
        h = self.key
        for n in ints:
            h = _mix((h + _GOLDEN + (n & _MASK)) & _MASK)
        return h

    def fills(self, second: int, span: Span) -> list[Fill]:
        """The fills of ``second``, whose path is ``span`` (its ``lots`` beyond one per fill)."""
        n = self.fills_per_second
        t = self.to_ticks
        pa, pb, p_hi, p_lo = t(span.open), t(span.close), t(span.high), t(span.low)
        h = self._h(second)
        prices: list[int | None] = [None] * n
        prices[0], prices[-1] = pa, pb
        i_hi = 1 + _mix(h ^ 0x11) % (n - 2)
        i_lo = 1 + _mix(h ^ 0x22) % (n - 3)
        if i_lo >= i_hi:
            i_lo += 1
        prices[i_hi], prices[i_lo] = p_hi, p_lo
        # the rest, in order: a seeded third continue the previous taker one tick further (a
        # walk), the others lie between the last print and the next fixed one, kept in [low, high]
        sides: list[bool] = []
        takers: list[int] = []
        taker = -1
        prev_price, prev_buy = pa, _mix(h ^ 0x33) & 1 == 1
        nxt = 0
        for i in range(n):
            p = prices[i]
            walk = False
            if p is None:
                while prices[nxt] is None or nxt <= i:
                    nxt += 1
                step = 1 if prev_buy else -1
                if i > 0 and _unit(_mix(h ^ (0x55 + i))) < 0.3 and p_lo <= prev_price + step <= p_hi:
                    p, walk = prev_price + step, True
                else:
                    target = prices[nxt]
                    frac = 1 / (nxt - i + 1)
                    jitter = (_unit(_mix(h + i)) - 0.5) * 0.5 * abs(target - prev_price)
                    p = min(p_hi, max(p_lo, round(prev_price + (target - prev_price) * frac + jitter)))
                prices[i] = p
            buy = prev_buy if walk else p > prev_price if p != prev_price else (_mix(h ^ (0x44 + i)) & 1 == 1)
            if not walk:
                taker += 1
            sides.append(buy)
            takers.append(taker)
            prev_price, prev_buy = p, buy
        # times: the first taker at the second's start, the others at sorted seeded offsets
        count = taker + 1
        offsets = sorted(1 + _mix(h ^ (0x1000 + k)) % (999 - count) for k in range(count - 1))
        offsets = [o + k for k, o in enumerate(offsets)]  # distinct: one taker per ms at most
        times = [second * 1000] + [second * 1000 + o for o in offsets]
        # sizes: one lot each plus a seeded share of the second's volume
        weights = [0.2 + _unit(_mix(h ^ (0x2000 + i))) for i in range(n)]
        total = sum(weights)
        extra = span.lots
        sizes = [1 + int(extra * w / total) for w in weights]
        sizes[-1] += extra - (sum(sizes) - n)
        base = second * n
        return [Fill(base + i, times[takers[i]], prices[i], sizes[i], sides[i], takers[i]) for i in range(n)]

    def book(self, fills: list[Fill], index: int, depth: int, spread_key: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The book just before ``fills[index]``'s taker: ``(bids, asks)`` as ``(ticks, lots)``
        best first, ``depth`` levels a side.

        The taker's side shows its fills as the first levels (the last one with more behind
        it); the other side starts ``1-3`` ticks away; deeper levels are a seeded profile.
        """
        first = fills[index]
        taker = [f for f in fills[index:] if f.taker == first.taker]
        h = self._h(first.id, 0xB00C)
        spread = 1 + _mix(h ^ spread_key) % 3
        own: list[tuple[int, int]] = [(f.ticks, f.lots) for f in taker]
        last_ticks, last_lots = own[-1]
        own[-1] = (last_ticks, last_lots + self._size(h, 0, 1))
        step = 1 if first.buy else -1
        own_side = own + self._levels(h, 1, last_ticks + step, step, depth - len(own))
        other = self._levels(h, 2, first.ticks - step * spread, -step, depth)
        own_side, other = own_side[:depth], other[:depth]
        return (other, own_side) if first.buy else (own_side, other)

    def _size(self, h: int, side: int, i: int) -> int:
        u = _unit(_mix((h + side * 0x9E37 + i * 0x85EB) & _MASK))
        return max(1, int(self.base_lots * (1 + 0.08 * i) ** 0.8 * (0.3 + 1.4 * u)))

    def _levels(self, h: int, side: int, start: int, step: int, count: int) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        price, i = start, 0
        while len(out) < count and price > 0:
            i += 1
            if i == 1 or _unit(_mix((h ^ (side << 20)) + i)) >= 0.1:  # one tick in ten is empty, never the touch
                out.append((price, self._size(h, side, i)))
            price += step
        return out


def fills_before(fills: list[Fill], now_ms: int) -> list[Fill]:
    """The fills of one second at or before ``now_ms``."""
    return [f for f in fills if f.time <= now_ms]


def log_ticks(level_ticks: float, sigma: float):
    """The monotone map ``x -> round(level_ticks * exp(sigma * x))`` (at least 1 tick)."""
    exp = math.exp

    def to_ticks(x: float) -> int:
        return max(1, round(level_ticks * exp(sigma * x)))

    return to_ticks
