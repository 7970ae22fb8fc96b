"""A seeded random path whose extremes and volume over any interval are known without visiting it.

:class:`ExtremesTree` describes one asset's fair log-price path ``W`` (standard Brownian units:
variance 1 per second) on integer seconds, plus one market's traded volume, as a binary tree
descended from fixed blocks of :data:`BLOCK_SECONDS`. Every node ``[lo, lo + size]`` carries
the path at both ends, its maximum and minimum over the whole node (the continuous path, every
instant included) and the volume traded in it (integer lots). A node's children are drawn from
its own values (hashed, so the same seed always draws the same), consistently by construction:

- the midpoint is a Brownian-bridge draw between the ends, kept inside ``[min, max]`` (of a few
  hashed draws, the first whose children can plausibly reach the node's extremes);
- one child holds the node's maximum (chosen with the bridge's odds of reaching it from each
  half), the other's maximum is a bridge-maximum draw capped by it; the same for the minimum;
- the volume splits by a hashed fraction near one half (integer lots: the halves add up).

So the maximum of any interval is the maximum of the few nodes covering it, an N-minute candle
is exactly the aggregate of its 1-minute candles, and an interval's volume is the sum of its
seconds'. Blocks start and end at 0: the path comes back to its level every block (about 24
days), which keeps prices within a few percent of the recorded level forever and makes every
block independent (a read never walks from anywhere).

Nodes of :data:`CACHE_MIN_SIZE` seconds or more are remembered (bounded), so a request's upper
tree is paid once; a request costs about ``log2(interval)`` nodes per candle boundary.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from typing import NamedTuple

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_INV32 = 1.0 / 2**32
_TAU = 2.0 * math.pi

BLOCK_DEPTH = 21
BLOCK_SECONDS = 1 << BLOCK_DEPTH
"""Seconds per independent block (about 24.3 days); the path is 0 at every block boundary."""

CACHE_MIN_SIZE = 1 << 9
"""Nodes at least this long (seconds) are kept in the tree's bounded memo."""

CACHE_MAX_NODES = 200_000
"""Most nodes one tree remembers (least recently used go first)."""


def _mix(x: int) -> int:
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _normal(h: int) -> float:
    return math.sqrt(-2.0 * math.log(((h >> 32) + 0.5) * _INV32)) * math.cos(_TAU * ((h & 0xFFFFFFFF) + 0.5) * _INV32)


def _unit(h: int) -> float:
    """A uniform number in (0, 1) from a hash's upper 53 bits."""
    return ((h >> 11) + 0.5) / 2**53


def bridge_max(x: float, y: float, length: float, u: float) -> float:
    """The maximum of a Brownian bridge from ``x`` to ``y`` over ``length`` seconds at quantile ``u``
    (the exact law: ``P(max > M) = exp(-2 (M - x)(M - y) / length)``)."""
    return 0.5 * (x + y + math.sqrt((y - x) ** 2 - 2.0 * length * math.log(u)))


class Span(NamedTuple):
    """The path over ``[start, end]`` seconds: ``open`` = W(start), ``close`` = W(end), ``high`` and
    ``low`` its extremes over the span, ``lots`` the volume traded in it (integer lots)."""

    start: int
    end: int
    open: float
    close: float
    high: float
    low: float
    lots: int


class ExtremesTree:
    """One market's view of an asset's path: the asset's extremes, the market's volume.

    Args:
        path_key: the asset's 64-bit key (every market of the asset shares the path).
        volume_key: the market's 64-bit key for its volume cascade.
        lots_per_second: the market's mean volume, in lots per second (a block holds
            ``lots_per_second * BLOCK_SECONDS`` lots, give or take 20 %).

    Attributes:
        nodes_computed: nodes drawn so far (a work counter for tests of the cost bounds).
    """

    def __init__(self, path_key: int, volume_key: int, lots_per_second: float):
        self.path_key = path_key
        self.volume_key = volume_key
        self.lots_per_second = max(0.0, lots_per_second)
        self.nodes_computed = 0
        self._memo: OrderedDict[tuple[int, int], tuple] = OrderedDict()

    # -- nodes --------------------------------------------------------------------------------
    def _block(self, index: int) -> tuple:
        h = _mix((self.path_key + _GOLDEN + (index & _MASK)) & _MASK)
        high = bridge_max(0.0, 0.0, BLOCK_SECONDS, _unit(_mix(h ^ 0x51)))
        low = -bridge_max(0.0, 0.0, BLOCK_SECONDS, _unit(_mix(h ^ 0xA3)))
        v = _mix((self.volume_key + _GOLDEN + (index & _MASK)) & _MASK)
        lots = int(self.lots_per_second * BLOCK_SECONDS * (0.8 + 0.4 * _unit(v)))
        return (0.0, 0.0, high, low, lots)

    def _children(self, lo: int, size: int, node: tuple) -> tuple[tuple, tuple]:
        """The two halves of node ``[lo, lo + size]`` whose values are ``node``."""
        a, b, high, low, lots = node
        half = size >> 1
        mid = lo + half
        h = _mix((self.path_key + _GOLDEN + mid) & _MASK)
        mean, sd = 0.5 * (a + b), 0.5 * math.sqrt(size)
        reach = 1.5 * math.sqrt(half)
        best, best_bad = 0.0, math.inf
        for attempt in range(4):
            w = mean + sd * _normal(_mix(h + attempt))
            w = high if w > high else low if w < low else w
            # how far the nearer half would still have to climb (fall) to reach the extremes
            bad = max(min(high - max(a, w), high - max(w, b)), min(min(a, w) - low, min(w, b) - low))
            if bad <= reach:
                best = w
                break
            if bad < best_bad:
                best, best_bad = w, bad
        w = best
        u_hold_hi, u_hold_lo = _unit(_mix(h ^ 0x1111)), _unit(_mix(h ^ 0x2222))
        u_hi, u_lo = _unit(_mix(h ^ 0x3333)), _unit(_mix(h ^ 0x4444))
        # which half holds the node's maximum: the bridge's odds of reaching it from each half
        p_left = math.exp(-2.0 * (high - a) * (high - w) / half)
        p_right = math.exp(-2.0 * (high - w) * (high - b) / half)
        hi_left_holds = u_hold_hi * (p_left + p_right) < p_left if p_left + p_right > 0 else \
            (high - a) * (high - w) <= (high - w) * (high - b)
        q_left = math.exp(-2.0 * (a - low) * (w - low) / half)
        q_right = math.exp(-2.0 * (w - low) * (b - low) / half)
        lo_left_holds = u_hold_lo * (q_left + q_right) < q_left if q_left + q_right > 0 else \
            (a - low) * (w - low) <= (w - low) * (b - low)
        if hi_left_holds:
            hi_l, hi_r = high, min(high, bridge_max(w, b, half, u_hi))
        else:
            hi_l, hi_r = min(high, bridge_max(a, w, half, u_hi)), high
        if lo_left_holds:
            lo_l, lo_r = low, max(low, -bridge_max(-w, -b, half, u_lo))
        else:
            lo_l, lo_r = max(low, -bridge_max(-a, -w, half, u_lo)), low
        # volume: a hashed share near one half, wider for short nodes (bursty seconds, calm days)
        spread = 0.04 if size >= 1 << 16 else 0.12 if size >= 1 << 12 else 0.3
        share = 0.5 + spread * (2.0 * _unit(_mix((self.volume_key + _GOLDEN + mid) & _MASK)) - 1.0)
        left_lots = int(lots * share)
        self.nodes_computed += 1
        return (a, w, hi_l, lo_l, left_lots), (w, b, hi_r, lo_r, lots - left_lots)

    def _node(self, lo: int, size: int) -> tuple:
        """Values of node ``[lo, lo + size]`` (``size`` a power of two, ``lo`` a multiple of it)."""
        key = (lo, size)
        memo = self._memo
        hit = memo.get(key)
        if hit is not None:
            memo.move_to_end(key)
            return hit
        if size == BLOCK_SECONDS:
            node = self._block(lo >> BLOCK_DEPTH)
        else:
            parent_lo = lo & ~((size << 1) - 1)
            left, right = self._children(parent_lo, size << 1, self._node(parent_lo, size << 1))
            node = left if parent_lo == lo else right
        if size >= CACHE_MIN_SIZE:
            memo[key] = node
            if len(memo) > CACHE_MAX_NODES:
                memo.popitem(last=False)
        return node

    # -- queries ------------------------------------------------------------------------------
    def spans(self, bounds: list[int]) -> list[Span]:
        """The path over each ``[bounds[i], bounds[i + 1]]`` (seconds, strictly increasing).

        One walk down the tree serves every span: a node inside one span is taken whole, a
        node holding a bound inside is split. Work: about ``log2(span length)`` nodes per bound.
        """
        if len(bounds) < 2:
            return []
        n = len(bounds) - 1
        opens = [0.0] * (n + 1)
        highs = [-math.inf] * n
        lows = [math.inf] * n
        lots = [0] * n
        first, last = bounds[0], bounds[-1]
        stack: list[tuple[int, int, tuple]] = []
        block = first >> BLOCK_DEPTH
        while (block << BLOCK_DEPTH) < last:
            stack.append((block << BLOCK_DEPTH, BLOCK_SECONDS, self._node(block << BLOCK_DEPTH, BLOCK_SECONDS)))
            block += 1
        stack.reverse()
        bisect_right, children = bisect.bisect_right, self._children
        memo = self._memo
        while stack:
            lo, size, node = stack.pop()
            hi = lo + size
            if hi <= first or lo >= last:
                continue
            k = bisect_right(bounds, lo) - 1  # the span holding lo (k = -1: before the first bound)
            if k >= 0 and bounds[k] == lo:
                opens[k] = node[0]
            if k + 1 <= n and bounds[k + 1] == hi:
                opens[k + 1] = node[1]
            if k >= 0 and k < n and bounds[k + 1] >= hi:  # the node lies inside span k
                if node[2] > highs[k]:
                    highs[k] = node[2]
                if node[3] < lows[k]:
                    lows[k] = node[3]
                lots[k] += node[4]
                continue
            half = size >> 1
            cached = memo.get((lo, half)) if half >= CACHE_MIN_SIZE else None
            if cached is not None:
                left, right = cached, memo.get((lo + half, half)) or self._node(lo + half, half)
            else:
                left, right = children(lo, size, node)
                if half >= CACHE_MIN_SIZE:
                    memo[(lo, half)], memo[(lo + half, half)] = left, right
                    while len(memo) > CACHE_MAX_NODES:
                        memo.popitem(last=False)
            stack.append((lo + half, half, right))
            stack.append((lo, half, left))
        return [Span(bounds[i], bounds[i + 1], opens[i], opens[i + 1], highs[i], lows[i], lots[i]) for i in range(n)]

    def value(self, second: int) -> float:
        """``W(second)``."""
        return self.spans([second, second + 1])[0].open

    def first_second(self, start: int, end: int, reaches) -> int | None:
        """The first second ``s`` in ``[start, end)`` whose span ``[s, s + 1]`` satisfies
        ``reaches(high, low)``, where ``reaches`` must hold of a node whenever it holds of one
        of its seconds (e.g. "the high is at or above P"); ``None`` if none does.

        A node failing ``reaches`` is skipped whole, so the search costs about ``log2`` of the
        distance to the answer per node it has to open."""
        if end <= start:
            return None
        stack: list[tuple[int, int, tuple]] = []
        block = end >> BLOCK_DEPTH if end & (BLOCK_SECONDS - 1) else (end >> BLOCK_DEPTH) - 1
        while (block << BLOCK_DEPTH) + BLOCK_SECONDS > start and block >= 0:
            stack.append((block << BLOCK_DEPTH, BLOCK_SECONDS, self._node(block << BLOCK_DEPTH, BLOCK_SECONDS)))
            block -= 1
        while stack:  # depth first, earliest child on top
            lo, size, node = stack.pop()
            if lo + size <= start or lo >= end or not reaches(node[2], node[3]):
                continue
            if size == 1:
                return lo
            half = size >> 1
            left, right = self._children(lo, size, node)
            stack.append((lo + half, half, right))
            stack.append((lo, half, left))
        return None
