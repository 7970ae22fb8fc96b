"""What the cache stores and returns: entries with their freshness windows, and read results.

An entry moves through three windows, all absolute times in integer ms:

* fresh until ``expires_ms``: served as a hit;
* stale-while-revalidate until ``grace_until_ms``: served at once as ``stale`` while one
  background refresh runs;
* stale-if-error until ``stale_until_ms``: served as ``stale`` only when the upstream fetch
  fails; past it the entry is gone and an upstream failure becomes a 503.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum


def wall_clock_ms() -> int:
    """Current time in integer ms since the epoch."""
    return time.time_ns() // 1_000_000


class CacheStatus(StrEnum):
    """How a read was answered (the ``X-Cache`` header)."""

    HIT = "hit"
    MISS = "miss"
    COALESCED = "coalesced"
    STALE = "stale"


class Source(StrEnum):
    """What fed the value a read returned (the ``X-Cache-Source`` header)."""

    REST = "rest"
    """An upstream REST response, kept for its TTL."""
    STREAM = "stream"
    """A healthy WebSocket stream's latest state (see :mod:`exgate.streams`)."""


class Tier(StrEnum):
    """Where a read was answered from (the ``tier`` label of ``exgate_cache_lookups_total``)."""

    L1 = "l1"
    L2 = "l2"


@dataclass(frozen=True, slots=True)
class Freshness:
    """How long one value stays usable (ms): ``ttl_ms`` fresh, then ``grace_ms`` of
    stale-while-revalidate, and up to ``max_stale_ms`` past expiry as a stale-if-error fallback."""

    ttl_ms: int
    grace_ms: int = 0
    max_stale_ms: int = 0


@dataclass(frozen=True, slots=True)
class Fetched:
    """An upstream fetch's answer: the encoded ``body`` and its ``freshness``."""

    body: bytes
    freshness: Freshness


Fetch = Callable[[], Awaitable[Fetched]]
"""An upstream fetch; raises to signal failure (failures are never cached)."""

_HEADER = struct.Struct(">qqqq")


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached value: ``body`` stored at ``stored_ms`` and its three windows (see module doc)."""

    body: bytes
    stored_ms: int
    expires_ms: int
    grace_until_ms: int
    stale_until_ms: int

    @classmethod
    def new(cls, body: bytes, freshness: Freshness, now_ms: int) -> Entry:
        """An entry stored at ``now_ms`` with the windows of ``freshness``."""
        expires = now_ms + max(0, freshness.ttl_ms)
        grace = expires + max(0, freshness.grace_ms)
        return cls(body, now_ms, expires, grace, max(grace, expires + max(0, freshness.max_stale_ms)))

    def fresh(self, now_ms: int) -> bool:
        """Still within its TTL."""
        return now_ms < self.expires_ms

    def in_grace(self, now_ms: int) -> bool:
        """Expired but within the stale-while-revalidate window."""
        return self.expires_ms <= now_ms < self.grace_until_ms

    def usable_on_error(self, now_ms: int) -> bool:
        """Young enough to serve when the upstream fails."""
        return now_ms < self.stale_until_ms

    def age_s(self, now_ms: int) -> int:
        """Whole seconds since it was stored (the ``Age`` header)."""
        return max(0, (now_ms - self.stored_ms) // 1000)

    def encode(self) -> bytes:
        """Wire form for L2: a 32-byte header of the four times, then the body."""
        return _HEADER.pack(self.stored_ms, self.expires_ms, self.grace_until_ms, self.stale_until_ms) + self.body

    @classmethod
    def decode(cls, raw: bytes) -> Entry:
        """Inverse of :meth:`encode`.

        Raises:
            ValueError: ``raw`` is shorter than the header (not written by exgate).
        """
        if len(raw) < _HEADER.size:
            raise ValueError(f"cache value of {len(raw)} bytes is shorter than its {_HEADER.size}-byte header")
        stored, expires, grace, stale = _HEADER.unpack_from(raw)
        return cls(raw[_HEADER.size:], stored, expires, grace, stale)


@dataclass(frozen=True, slots=True)
class CacheResult:
    """What a read returns: the bytes, how and where they were obtained, their age in whole
    seconds and when they stop being fresh (ms)."""

    body: bytes
    status: CacheStatus
    age_s: int
    expires_ms: int
    tier: Tier = Tier.L1
    source: Source = Source.REST
