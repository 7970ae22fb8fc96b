"""Seeded randomness the sandbox can evaluate at any instant without walking to it.

:class:`BrownianPath` is a standard Brownian motion sampled on integer seconds, built by Lévy's
construction (a Brownian bridge refined by halving): the value at any second is found by
descending a fixed binary tree of the path's time span, one hashed normal number per level.
So any past or future instant costs at most :data:`PATH_DEPTH` hashes (a batch of neighbouring
seconds shares its upper tree), a read never depends on the clock or on earlier reads, and the
same key always gives the same path.

The hashes are splitmix64's finalizer over a 64-bit key derived once (blake2b) from the
sandbox's seed and a name: cheap integer arithmetic, no global random state.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import struct
from collections.abc import Iterable

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15

PATH_DEPTH = 33
"""Levels of the tree: the path spans ``2**33`` seconds from the epoch (until the year 2242)."""

PATH_SPAN = 1 << PATH_DEPTH
"""Seconds covered by a :class:`BrownianPath`; reads outside ``[0, PATH_SPAN]`` are clamped."""


def key64(*parts: object) -> int:
    """A 64-bit key from ``parts`` (blake2b of their ``|``-joined text); compute it once, reuse it."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return struct.unpack("<Q", digest)[0]


def mix64(x: int) -> int:
    """splitmix64's finalizer: a bijection of 64-bit integers that scrambles every bit."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def hash64(key: int, *ints: int) -> int:
    """A 64-bit hash of ``key`` and the integers ``ints`` (any sign)."""
    h = key
    for n in ints:
        h = mix64((h + _GOLDEN + (n & _MASK)) & _MASK)
    return h


def uniform(key: int, *ints: int) -> float:
    """A deterministic uniform number in (0, 1) from ``key`` and ``ints``."""
    return ((hash64(key, *ints) >> 11) + 0.5) / 2**53


def normal_from(h: int) -> float:
    """A standard normal number from a 64-bit hash (Box-Muller on its two 32-bit halves)."""
    u1 = ((h >> 32) + 0.5) / 2**32
    u2 = ((h & 0xFFFFFFFF) + 0.5) / 2**32
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


_INV32 = 1.0 / 2**32
_TAU = 2.0 * math.pi

_HALF_SD = [math.sqrt(PATH_SPAN >> d) / 2 for d in range(PATH_DEPTH + 1)]
"""Standard deviation of a bridge midpoint at depth ``d`` (interval ``2**(33-d)`` s): sqrt(len)/2."""


class BrownianPath:
    """A standard Brownian motion ``W`` on the integer seconds ``[0, PATH_SPAN]``, ``W(0) = 0``.

    ``W(k)`` has variance ``k`` and independent unit-variance increments per second, like a
    seeded random walk of Gaussian steps, but is computed directly: ``W(PATH_SPAN)`` is one
    hashed normal draw, and each dyadic midpoint ``m`` of an interval ``[lo, hi]`` is
    ``(W(lo) + W(hi)) / 2 + sqrt(hi - lo) / 2 * N_m`` with ``N_m`` hashed from ``(key, m)``
    (every dyadic point is the midpoint of exactly one interval, so ``m`` names its draw).
    Nothing is cached: a read costs its own descent and is safe from any thread.

    Args:
        key: the path's 64-bit key (:func:`key64` of the seed and the instrument).

    Attributes:
        nodes_computed: tree nodes (hashed normal draws) evaluated so far, a work counter: one
            read costs at most :data:`PATH_DEPTH`, a batch of :meth:`at_many` shares its upper tree.
    """

    def __init__(self, key: int):
        self.key = key
        self.nodes_computed = 0
        self._end = math.sqrt(PATH_SPAN) * normal_from(hash64(key, -1))

    def at(self, second: int) -> float:
        """``W(second)``; seconds outside ``[0, PATH_SPAN]`` read the nearest end."""
        return self.at_many((second,))[second]

    def at_many(self, seconds: Iterable[int]) -> dict[int, float]:
        """``{second: W(second)}`` for every second in ``seconds``, in one shared descent.

        Neighbouring seconds share their upper tree, so ``n`` seconds spaced ``s`` apart cost
        about ``n * (log2(s) + 1) + PATH_DEPTH`` nodes instead of ``n * PATH_DEPTH``. Seconds
        outside ``[0, PATH_SPAN]`` read the nearest end.
        """
        asked = list(seconds)
        ks = sorted({min(max(k, 0), PATH_SPAN) for k in asked})
        out: dict[int, float] = {}
        key = (self.key + _GOLDEN) & _MASK
        half_sd, log, sqrt, cos, bisect_left = _HALF_SD, math.log, math.sqrt, math.cos, bisect.bisect_left
        computed = 0
        stack = [(0, len(ks), 0, PATH_SPAN, 0.0, self._end, 0)] if ks else []
        while stack:
            i, j, lo, hi, w_lo, w_hi, depth = stack.pop()
            while i < j and ks[i] == lo:
                out[lo] = w_lo
                i += 1
            while j > i and ks[j - 1] == hi:
                out[hi] = w_hi
                j -= 1
            while i < j:  # halve [lo, hi] until it holds one point; then follow that point alone
                mid = (lo + hi) >> 1
                # W(mid): the bridge mean plus a hashed normal draw (hash64(key, mid), inlined)
                x = (key + mid) & _MASK
                x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
                x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
                x ^= x >> 31
                w_mid = 0.5 * (w_lo + w_hi) + half_sd[depth] * (
                    sqrt(-2.0 * log(((x >> 32) + 0.5) * _INV32)) * cos(_TAU * ((x & 0xFFFFFFFF) + 0.5) * _INV32))
                computed += 1
                depth += 1
                if j - i == 1:
                    k = ks[i]
                    if k == mid:
                        out[k] = w_mid
                        break
                    if k < mid:
                        hi, w_hi = mid, w_mid
                    else:
                        lo, w_lo = mid, w_mid
                    continue
                split = bisect_left(ks, mid, i, j)
                if split < j:
                    stack.append((split, j, mid, hi, w_mid, w_hi, depth))
                if i < split:
                    stack.append((i, split, lo, mid, w_lo, w_mid, depth))
                break
        self.nodes_computed += computed
        return {k: out[min(max(k, 0), PATH_SPAN)] for k in asked}
