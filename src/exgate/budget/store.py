"""Where budget usage lives: in-process, or in Redis shared by every instance.

Usage is kept per limit and per fixed window (``window index = now // window_ms``). A grant
made in the last ``guard_ms`` of a window is charged to that window *and* the next: the request
may reach the exchange after the window turns, and the exchange counts it where it lands. So
exgate may overcount a little at window edges, never undercount.

The Redis store does each acquire in one Lua script (check every limit, then charge all or
none), so instances can never jointly overspend. A ban (after a 429/418) is a key holding
the time it lifts, compared with the caller's clock. The ban and every window of a venue share
the ``{venue}`` hash tag (:func:`exgate.cache.keys.budget_key`), so on a Redis Cluster that
script runs on one slot.

Redis calls go through a :class:`~exgate.cache.circuit.CircuitBreaker`: while it is open or
half-open no budget call touches Redis (each is answered in-process at once, so a hanging Redis
costs requests nothing once the circuit is open), and a background ``PING`` closes it again.
The gateway shares one breaker per Redis between the cache and the budgets (so the cache's
probe serves both and ``/readyz`` tells the truth); a store given none keeps its own and probes
it while entered (``async with``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from redis.exceptions import RedisClusterException, RedisError

from exgate.budget.model import Limit
from exgate.cache.circuit import CircuitBreaker
from exgate.cache.client import redis_client
from exgate.cache.entry import wall_clock_ms
from exgate.cache.keys import ban_key, budget_key

_T = TypeVar("_T")
_DOWN: Any = object()
"""What :meth:`RedisBudgetStore._call` returns when Redis was not asked or did not answer."""


@dataclass(frozen=True, slots=True)
class Grant:
    """Outcome of one acquire: granted, else how long (ms) until it may succeed."""

    granted: bool
    retry_ms: int = 0
    banned: bool = False


def _windows(limit: Limit, now_ms: int, guard_ms: int) -> list[int]:
    index = now_ms // limit.window_ms
    end = (index + 1) * limit.window_ms
    return [index, index + 1] if end - now_ms <= min(guard_ms, limit.window_ms // 10) else [index]


def _retry_ms(limit: Limit, now_ms: int) -> int:
    return (now_ms // limit.window_ms + 1) * limit.window_ms - now_ms


def _charge_needed(cost: int, cap: int) -> int:
    """Cost checked against ``cap``; a request costlier than the whole window may still go
    alone into an empty window, as the exchange would let it."""
    return min(cost, cap)


class MemoryBudgetStore:
    """Usage in this process only (no Redis): same rules, one process's view."""

    def __init__(self) -> None:
        self._used: dict[tuple[str, int], int] = {}
        self._window_ms: dict[str, int] = {}
        self._bans: dict[str, int] = {}

    async def acquire(self, venue: str, limits: Sequence[tuple[Limit, int]], cost: int, now_ms: int,
                      guard_ms: int) -> Grant:
        """Charge ``cost`` to every limit (each with its usable cap) or to none."""
        banned = self._bans.get(venue, 0)
        if banned > now_ms:
            return Grant(False, banned - now_ms, banned=True)
        charges: list[tuple[str, int]] = []
        for limit, cap in limits:
            name = f"{venue}:{limit.name}"
            self._window_ms[name] = limit.window_ms
            for window in _windows(limit, now_ms, guard_ms):
                if self._used.get((name, window), 0) + _charge_needed(cost, cap) > cap:
                    return Grant(False, _retry_ms(limit, now_ms))
                charges.append((name, window))
        for key in charges:
            self._used[key] = self._used.get(key, 0) + cost
        if len(self._used) > 256:
            self._used = {(n, w): v for (n, w), v in self._used.items() if w >= now_ms // self._window_ms[n] - 1}
        return Grant(True)

    async def reconcile(self, venue: str, limit: Limit, used: int, now_ms: int) -> None:
        """The exchange reports ``used`` in the current window: never count less than that."""
        self._window_ms[f"{venue}:{limit.name}"] = limit.window_ms
        key = (f"{venue}:{limit.name}", now_ms // limit.window_ms)
        self._used[key] = max(self._used.get(key, 0), used)

    async def ban(self, venue: str, until_ms: int, now_ms: int) -> None:
        """Stop calling ``venue`` until ``until_ms``."""
        self._bans[venue] = max(self._bans.get(venue, 0), until_ms)

    async def banned_until(self, venue: str, now_ms: int) -> int:
        """When the current ban lifts (ms), or 0."""
        until = self._bans.get(venue, 0)
        return until if until > now_ms else 0

    async def used(self, venue: str, limit: Limit, now_ms: int) -> int:
        """Weight used in the current window."""
        return self._used.get((f"{venue}:{limit.name}", now_ms // limit.window_ms), 0)


_ACQUIRE = """
local ban = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = tonumber(ARGV[1])
if ban > now then return {0, ban - now, 1} end
local cost = tonumber(ARGV[2])
for i = 2, #KEYS do
  local cap = tonumber(ARGV[3 + (i - 2) * 3])
  local need = tonumber(ARGV[4 + (i - 2) * 3])
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used + need > cap then return {0, tonumber(ARGV[5 + (i - 2) * 3]), 0} end
end
for i = 2, #KEYS do
  redis.call('INCRBY', KEYS[i], cost)
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[5 + (i - 2) * 3]) + 120000)
end
return {1, 0, 0}
"""

_RAISE = """
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"""
"""Set KEYS[1] to ARGV[1] (expiring after ARGV[2] ms) only if that raises it: window usage
reconciled from the exchange, and ban ends (a longer ban is never shortened)."""


_ERRORS = (RedisError, RedisClusterException, OSError, TimeoutError)


class RedisBudgetStore:
    """Usage shared by every instance through Redis (atomic Lua per acquire).

    When Redis fails, or while ``breaker`` is open or half-open (Redis not even tried), each
    call falls back to the in-process ``fallback`` store, so upstream calls stay metered (per
    instance) rather than unmetered or failed. Each failure or timeout (``timeout_ms``) counts
    on ``breaker``; usage counted in process during an outage is not copied to Redis after it.

    Args:
        url: any URL :func:`~exgate.cache.client.redis_client` takes (one server or a Redis
            Cluster).
        timeout_ms: a call slower than this counts as a Redis failure.
        breaker: the circuit breaker of this Redis, shared with the cache (whose background
            probe closes it). ``None``: the store builds its own (3 failures open it, 1 s
            cooldown, on ``clock``) and probes it from a task that runs while the store is
            entered (``async with``); a store never entered then never closes its circuit.
        clock: current time (ms) of the store's own breaker.

    Raises:
        ConfigError: ``url`` is not a Redis URL exgate accepts.
    """

    def __init__(self, url: str, *, timeout_ms: int = 500, breaker: CircuitBreaker | None = None,
                 clock: Callable[[], int] = wall_clock_ms):
        self.client = redis_client(url, timeout_ms=timeout_ms)
        self.timeout_s = timeout_ms / 1000
        self.fallback = MemoryBudgetStore()
        self.owns_breaker = breaker is None
        self.breaker = breaker if breaker is not None else CircuitBreaker("redis-budget", clock)
        self._acquire = self.client.register_script(_ACQUIRE)
        self._raise = self.client.register_script(_RAISE)
        self._prober: asyncio.Task[None] | None = None

    @staticmethod
    def _key(venue: str, limit: Limit, window: int) -> str:
        return budget_key(venue, limit.name, window)

    @staticmethod
    def _ban_key(venue: str) -> str:
        return ban_key(venue)

    async def __aenter__(self) -> RedisBudgetStore:
        """Start probing the store's own breaker in the background (nothing when shared: its
        owner probes it)."""
        if self.owns_breaker and self._prober is None:
            self._prober = asyncio.get_running_loop().create_task(
                self.breaker.keep_probing(self.client.ping, timeout_s=self.timeout_s, errors=_ERRORS))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the probe task, if any, and close the client's connections."""
        prober, self._prober = self._prober, None
        if prober is not None:
            prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober
        await self.client.aclose()

    async def _call(self, op: Callable[[], Awaitable[_T]]) -> _T:
        """``op``'s result, or ``_DOWN`` when the circuit is not closed or the call fails."""
        return await self.breaker.call(op, timeout_s=self.timeout_s, errors=_ERRORS, down=_DOWN)

    async def acquire(self, venue: str, limits: Sequence[tuple[Limit, int]], cost: int, now_ms: int,
                      guard_ms: int) -> Grant:
        """Charge ``cost`` to every limit or to none, atomically across instances."""
        keys = [self._ban_key(venue)]
        args: list[int] = [now_ms, cost]
        for limit, cap in limits:
            for window in _windows(limit, now_ms, guard_ms):
                keys.append(self._key(venue, limit, window))
                args.extend([cap, _charge_needed(cost, cap), _retry_ms(limit, now_ms)])
        result = await self._call(lambda: self._acquire(keys=keys, args=args))
        if result is _DOWN:
            return await self.fallback.acquire(venue, limits, cost, now_ms, guard_ms)
        granted, retry_ms, banned = result
        return Grant(bool(granted), int(retry_ms), banned=bool(banned))

    async def reconcile(self, venue: str, limit: Limit, used: int, now_ms: int) -> None:
        """Raise the shared count of the current window to what the exchange reports."""
        await self.fallback.reconcile(venue, limit, used, now_ms)
        await self._call(lambda: self._raise(keys=[self._key(venue, limit, now_ms // limit.window_ms)],
                                             args=[used, limit.window_ms + 120_000]))

    async def ban(self, venue: str, until_ms: int, now_ms: int) -> None:
        """Stop every instance calling ``venue`` until ``until_ms`` (a longer ban wins)."""
        await self.fallback.ban(venue, until_ms, now_ms)
        if until_ms <= now_ms:
            return
        # atomic: a longer ban is never shortened
        await self._call(lambda: self._raise(keys=[self._ban_key(venue)], args=[until_ms, until_ms - now_ms + 60_000]))

    async def banned_until(self, venue: str, now_ms: int) -> int:
        """When the shared ban lifts (ms), or 0."""
        raw = await self._call(lambda: self.client.get(self._ban_key(venue)))
        if raw is _DOWN:
            return await self.fallback.banned_until(venue, now_ms)
        until = int(raw or 0)
        return until if until > now_ms else 0

    async def used(self, venue: str, limit: Limit, now_ms: int) -> int:
        """Weight used in the current window, by every instance."""
        raw = await self._call(lambda: self.client.get(self._key(venue, limit, now_ms // limit.window_ms)))
        if raw is _DOWN:
            return await self.fallback.used(venue, limit, now_ms)
        return int(raw or 0)
