"""The read-through cache: L1 in-process, optional L2 in Redis, one upstream fetch per cold key.

A read, in order:

1. **L1 hit**: a fresh local copy (with an L2, copies are served at most ``l1_ttl_ms`` so an
   invalidation missed by this process hides a write no longer than that).
2. **Stale-while-revalidate**: an expired entry still within its grace window is served at once
   (``stale``) while one background refresh runs.
3. **L2 hit**: a fresh entry in Redis, copied into L1. From here on there is one lookup per key
   in this process: concurrent readers share its Redis read and its fetch.
4. **Miss**: one fetch per key in this process (every other local caller awaits it:
   ``coalesced``). With Redis it first takes the key's lock; an instance that finds the lock
   held waits for the holder's ``fill`` event (no polling), then reads L2 (``coalesced``). A
   holder that dies is replaced when its lease runs out; a waiter whose wait times out fetches
   itself rather than failing.
5. **Stale-if-error**: when the fetch fails with an upstream error, the last good value is
   served (``stale``) up to its max-stale age; beyond that the error goes to the caller.
6. **Stale-if-slow** (the soft deadline): when a copy within its max-stale age exists (in L1,
   or found in L2 by the lookup) and the fetch, or the wait for another instance's fetch, has
   not answered within ``stale_after_ms``, every caller waiting on it gets the copy
   (``stale``) at once, and so does every caller arriving later while it still runs; the
   fetch goes on in the background and fills L1/L2 as usual. A caller without such a copy
   waits for the fetch (up to the upstream timeout). Types never served stale (private data:
   no grace, no max-stale) have no such copy, so they always wait.

Fetches run as tasks the cache owns (its :class:`asyncio.TaskGroup`) and callers await them
through :func:`asyncio.shield`, so a cancelled caller never cancels the shared fetch. Redis
trouble never fails a read (see :mod:`exgate.cache.redis_store`).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import structlog

from exgate.cache.entry import CacheResult, CacheStatus, Entry, Fetch, Tier, wall_clock_ms
from exgate.cache.memory import MemoryStore
from exgate.cache.redis_store import DOWN, Lock, RedisStore
from exgate.cache.remote import RemoteFills
from exgate.errors import UpstreamError

log = structlog.get_logger("exgate.cache")

LookupHook = Callable[[Tier, CacheStatus], None]


@dataclass
class CacheStats:
    """Counters of this process's cache work since start."""

    hits: int = 0
    misses: int = 0
    coalesced: int = 0
    stale: int = 0
    fetches: int = 0
    fetch_errors: int = 0
    remote_fills: int = 0
    """Misses answered by another instance's fetch (cross-instance coalescing)."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    entry: Entry
    status: CacheStatus
    tier: Tier


@dataclass(slots=True)
class _Flight:
    """The one lookup of a key running in this process: its outcome, the copy its callers may
    get at the soft deadline (updated once the lookup has read L2) and that deadline (loop time)."""

    future: asyncio.Future[_Outcome]
    soft_deadline: float
    copy: Entry | None = None
    copy_tier: Tier = Tier.L1


class Cache:
    """Two-tier read-through cache with coalescing, stale serving and invalidation.

    Use as an async context manager (it owns fetch tasks and the Redis event listener).

    Args:
        clock: current time in ms (inject a fake one in tests).
        l1: the in-process store (default: a :class:`MemoryStore` with its default bounds).
        l2: the shared Redis store, or ``None`` for in-process only.
        l1_ttl_ms: longest an L1 copy is served as fresh while an L2 is reachable.
        lock_lease_ms: lease of the cross-instance fetch lock.
        wait_timeout_ms: longest a miss waits for another instance's fetch before fetching itself.
        stale_after_ms: the soft deadline (real time): a caller with a copy within its max-stale
            age waits this long for a fetch before it gets the copy as ``stale``.
        on_lookup: called with (tier, status) for every read (metrics).
    """

    def __init__(self, *, clock: Callable[[], int] = wall_clock_ms, l1: MemoryStore | None = None,
                 l2: RedisStore | None = None, l1_ttl_ms: int = 1_000, lock_lease_ms: int = 11_000,
                 wait_timeout_ms: int = 11_000, stale_after_ms: int = 1_000, on_lookup: LookupHook | None = None):
        self.clock = clock
        self.l1 = l1 if l1 is not None else MemoryStore()
        self.l2 = l2
        self.l1_ttl_ms = l1_ttl_ms
        self.lock_lease_ms = lock_lease_ms
        self.wait_timeout_ms = wait_timeout_ms
        self.stale_after_ms = stale_after_ms
        self.on_lookup = on_lookup
        self.stats = CacheStats()
        self._inflight: dict[str, _Flight] = {}
        self._remote = RemoteFills(l2, clock) if l2 is not None else None
        self._tasks: asyncio.TaskGroup | None = None
        self._listener: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None
        self._fills: set[asyncio.Task[None]] = set()

    # -- lifecycle ------------------------------------------------------------------------
    async def __aenter__(self) -> Cache:
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        if self.l2 is not None:
            self._listener = self._tasks.create_task(self.l2.listen(self._on_event, self.l1.clear, self._remote.wake_all))
            self._prober = self._tasks.create_task(self.l2.keep_probing())  # requests never probe
            try:  # start coordinated when Redis is there; never wait long when it is not
                async with asyncio.timeout(1.0):
                    await self.l2.subscribed.wait()
            except TimeoutError:
                log.warning("cache_l2_not_subscribed", detail="serving from L1 and upstream until Redis answers")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        tasks, self._tasks = self._tasks, None
        if self._listener is not None:
            self._listener.cancel()
        if self._prober is not None:
            self._prober.cancel()
        for task in list(self._fills):  # nobody is left to read what they would fetch
            task.cancel()
        for flight in self._inflight.values():
            flight.future.cancel()
        self._inflight.clear()
        try:
            if tasks is not None:  # the body's own exception propagates as it is, not in a group
                await tasks.__aexit__(None, None, None)
        finally:
            if self.l2 is not None:
                await self.l2.close()

    def __len__(self) -> int:
        return len(self.l1)

    # -- reads ----------------------------------------------------------------------------
    def _count(self, tier: Tier, status: CacheStatus) -> None:
        if self.on_lookup is not None:
            self.on_lookup(tier, status)

    def _result(self, entry: Entry, status: CacheStatus, tier: Tier, now: int) -> CacheResult:
        return CacheResult(entry.body, status, entry.age_s(now), entry.expires_ms, tier)

    def _keep_local(self, key: str, entry: Entry, tags: tuple[str, ...], now: int, *, local_only: bool = False) -> None:
        local_until = entry.expires_ms if self.l2 is None or local_only else now + self.l1_ttl_ms
        self.l1.put(key, entry, local_until, tags)

    def peek(self, key: str) -> CacheResult | None:
        """The fresh L1 copy of ``key`` (``hit``, tier ``l1``), counted as :meth:`get_or_fetch`
        counts its L1 hits; ``None`` otherwise (absent, expired, or only in L2). Never fetches,
        never waits: the first step of every read, and all the HTTP fast path asks."""
        now = self.clock()
        slot = self.l1.get(key, now)
        if slot is None or now >= slot.local_until_ms:
            return None
        self.stats.hits += 1
        self._count(Tier.L1, CacheStatus.HIT)
        return self._result(slot.entry, CacheStatus.HIT, Tier.L1, now)

    async def lookup(self, key: str, *, local_copy: bool = True) -> CacheResult | None:
        """The fresh value of ``key`` from L1, else from L2, without fetching or waiting for a
        fetch; ``None`` when neither holds a fresh copy (or Redis is down and L1 has none).
        ``local_copy=False``: L2 only while Redis coordinates (see :meth:`get_or_fetch`)."""
        remote_only = not local_copy and self.l2 is not None and self.l2.coordinating
        hit = None if remote_only else self.peek(key)
        if hit is not None:
            return hit
        if self.l2 is None:
            return None
        remote = await self.l2.get(key)
        now = self.clock()
        if isinstance(remote, Entry) and remote.fresh(now):
            return self._result(remote, CacheStatus.HIT, Tier.L2, now)
        return None

    async def push(self, key: str, body: bytes, freshness: Freshness, *, shared: bool = True) -> None:
        """Store ``body`` under ``key`` as a pushed value (a stream's latest state): in L1,
        fresh for its whole TTL, and with ``shared`` in L2 for the other instances, without tags
        or fill events. Readers get it through :meth:`lookup`. A Redis failure only leaves the
        L2 copy out (and is counted by the breaker)."""
        now = self.clock()
        entry = Entry.new(body, freshness, now)
        self.l1.put(key, entry, entry.expires_ms)
        if shared and self.l2 is not None:
            await self.l2.put(key, entry, now)

    async def withdraw(self, keys: Iterable[str], *, shared: bool = True) -> None:
        """Drop pushed values here and (``shared``) in L2 at once (the stream behind them
        stopped being healthy): the next read of them is an upstream read."""
        keys = list(keys)
        for key in keys:
            self.l1.drop(key)
        if shared and self.l2 is not None:
            await self.l2.delete(keys)

    async def get_or_fetch(self, key: str, fetch: Fetch, *, tags: Iterable[str] = (),
                           shared: bool = True, local_copy: bool = True) -> CacheResult:
        """The value of ``key``: from L1, L2, a fetch already running here or elsewhere, or
        fetched now; ``tags`` are stored with it for :meth:`invalidate`. ``shared=False`` keeps
        the key in this process only (derived data cheaper to recompute than to share).
        ``local_copy=False``: while Redis coordinates, never answer from this process's L1 copy
        (private data: an invalidation by another instance holds the moment it returns, not
        when its event arrives here).

        Raises:
            RuntimeError: the cache is not open (use ``async with``).
            Exception: whatever ``fetch`` raised, to this caller and every caller coalesced
                with it, unless a stale value could be served instead; failures are not cached.
        """
        remote_only = not local_copy and self.l2 is not None and self.l2.coordinating
        hit = None if remote_only else self.peek(key)
        if hit is not None:
            return hit
        now = self.clock()
        slot = None if remote_only else self.l1.get(key, now)
        tags = tuple(tags)
        candidate = slot.entry if slot is not None else None
        if candidate is not None and candidate.in_grace(now):
            self._start(key, fetch, tags, candidate, background=True, shared=shared)
            self.stats.stale += 1
            self._count(Tier.L1, CacheStatus.STALE)
            return self._result(candidate, CacheStatus.STALE, Tier.L1, now)
        # one lookup per key in this process: the L2 read, and the fetch if it is needed
        flight = self._inflight.get(key)
        started = flight is None
        if flight is None:
            flight = self._start(key, fetch, tags, candidate, background=False, shared=shared)
        outcome = await self._wait(flight)
        status = outcome.status
        if not started and status is CacheStatus.MISS:
            status = CacheStatus.COALESCED
        if status is CacheStatus.HIT:
            self.stats.hits += 1
        elif status is CacheStatus.MISS:
            self.stats.misses += 1
        elif status is CacheStatus.COALESCED:
            self.stats.coalesced += 1
        else:
            self.stats.stale += 1
        self._count(outcome.tier, status)
        return self._result(outcome.entry, status, outcome.tier, self.clock())

    async def _wait(self, flight: _Flight) -> _Outcome:
        """The outcome of ``flight`` for one caller; at its soft deadline, its copy (``stale``)
        if that is still within max-stale, else the outcome however long it takes. Shielded:
        a caller that leaves (or gets the copy) never cancels the fetch."""
        future = flight.future
        if not future.done():
            remaining = flight.soft_deadline - asyncio.get_running_loop().time()
            if remaining > 0:
                try:
                    async with asyncio.timeout(remaining):  # not wait_for: see BudgetGate._pump
                        return await asyncio.shield(future)
                except TimeoutError:  # the deadline, or the fetch's own error: told apart below
                    pass
            copy = flight.copy
            if copy is not None and not future.done() and copy.usable_on_error(self.clock()):
                return _Outcome(copy, CacheStatus.STALE, flight.copy_tier)
        return await asyncio.shield(future)

    def _flight(self, fallback: Entry | None, tier: Tier = Tier.L1) -> _Flight:
        loop = asyncio.get_running_loop()
        return _Flight(loop.create_future(), loop.time() + self.stale_after_ms / 1000, fallback, tier)

    def _start(self, key: str, fetch: Fetch, tags: tuple[str, ...], fallback: Entry | None, *,
               background: bool, shared: bool = True) -> _Flight:
        """The one lookup of ``key`` in this process (started if none runs)."""
        running = self._inflight.get(key)
        if running is not None:
            return running
        if self._tasks is None:
            raise RuntimeError("Cache is not open; use 'async with Cache()'")
        flight = self._flight(fallback)
        self._own(self._tasks.create_task(self._fill(key, fetch, tags, fallback, flight, background, shared)))
        self._inflight[key] = flight  # only once the task exists: never a future nobody resolves
        return flight

    def _own(self, task: asyncio.Task[None]) -> None:
        self._fills.add(task)
        task.add_done_callback(self._fills.discard)

    async def _fill(self, key: str, fetch: Fetch, tags: tuple[str, ...], fallback: Entry | None,
                    flight: _Flight, background: bool, shared: bool = True) -> None:
        """Run one fill; its outcome goes to ``flight.future``, never out of the task group."""
        future = flight.future
        try:
            outcome = await self._obtain(key, fetch, tags, fallback, flight, background, shared)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every waiter, not swallowed
            if not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved: a background refresh has no waiter
        else:
            if not future.done():
                future.set_result(outcome)
        finally:
            if self._inflight.get(key) is flight:
                del self._inflight[key]

    async def _obtain(self, key: str, fetch: Fetch, tags: tuple[str, ...], fallback: Entry | None,
                      flight: _Flight, background: bool, shared: bool) -> _Outcome:
        token: str | None = None
        l2 = self.l2 if shared else None
        shared_tier = Tier.L1 if l2 is None else Tier.L2
        if l2 is not None:
            remote = await l2.get(key)
            now = self.clock()
            if remote is DOWN:
                if fallback is not None and fallback.fresh(now):  # Redis down: L1 serves its full TTL
                    return _Outcome(fallback, CacheStatus.HIT, Tier.L1)
            elif remote is not None and (fallback is None or remote.stored_ms >= fallback.stored_ms):
                self._keep_local(key, remote, tags, now)
                fallback = remote
                flight.copy, flight.copy_tier = remote, Tier.L2  # the soft deadline's copy
                if remote.fresh(now):
                    return _Outcome(remote, CacheStatus.HIT, Tier.L2)
                if remote.in_grace(now) and not background:
                    self._refresh_in_background(key, fetch, tags, remote, shared)
                    return _Outcome(remote, CacheStatus.STALE, Tier.L2)
        if l2 is not None and l2.coordinating:
            token = secrets.token_hex(8)
            loop = asyncio.get_running_loop()  # waiting is real time, whatever the data clock says
            deadline = loop.time() + self.wait_timeout_ms / 1000
            while True:
                lock = await l2.try_lock(key, token, self.lock_lease_ms)
                if not isinstance(lock, Lock):  # Redis went away: fetch here
                    token = None
                    break
                if lock.acquired:
                    # a holder may have filled and released between our read and our lock
                    again = await l2.get(key)
                    if isinstance(again, Entry) and again.fresh(self.clock()):
                        await l2.release(key, token)
                        self._keep_local(key, again, tags, self.clock())
                        return _Outcome(again, CacheStatus.HIT, Tier.L2)
                    break
                if background and fallback is not None:  # another instance is refreshing it
                    return _Outcome(fallback, CacheStatus.STALE, Tier.L2)
                remaining_ms = int((deadline - loop.time()) * 1000)
                entry = await self._remote.wait(key, min(lock.remaining_ms + 50, remaining_ms))
                if entry is not None:
                    self.stats.remote_fills += 1
                    self._keep_local(key, entry, tags, self.clock())
                    return _Outcome(entry, CacheStatus.COALESCED, Tier.L2)
                if loop.time() >= deadline or not l2.coordinating:
                    log.info("cache_wait_timeout", key=key, detail="fetching without the lock")
                    token = None
                    break
        self.stats.fetches += 1
        try:
            fetched = await fetch()
        except UpstreamError as exc:
            self.stats.fetch_errors += 1
            if l2 is not None and token is not None:
                await l2.release(key, token, failed=True)
            now = self.clock()
            if fallback is not None and fallback.usable_on_error(now):
                log.info("cache_stale_on_error", key=key, age_s=fallback.age_s(now), error=exc.detail)
                return _Outcome(fallback, CacheStatus.STALE, shared_tier)
            raise
        except BaseException:
            self.stats.fetch_errors += 1
            if l2 is not None and token is not None:
                await asyncio.shield(l2.release(key, token, failed=True))
            raise
        now = self.clock()
        entry = Entry.new(fetched.body, fetched.freshness, now)
        self._keep_local(key, entry, tags, now, local_only=l2 is None)
        if l2 is not None:
            await l2.set(key, entry, tags, now)
            if token is not None:
                await l2.release(key, token)
        return _Outcome(entry, CacheStatus.MISS, shared_tier)

    def _refresh_in_background(self, key: str, fetch: Fetch, tags: tuple[str, ...], stale: Entry,
                               shared: bool) -> None:
        """Start the background refresh of ``key`` from inside its lookup (which still holds the
        in-flight slot): the refresh takes the slot over, and new readers serve ``stale`` meanwhile."""
        assert self._tasks is not None
        flight = self._flight(stale, Tier.L2)
        self._own(self._tasks.create_task(self._fill(key, fetch, tags, stale, flight, True, shared)))
        self._inflight[key] = flight

    def _on_event(self, event: dict[str, Any]) -> None:
        """One event from the channel: wake a waiter on ``fill``/``fail``, drop L1 on ``inv``."""
        op = event.get("op")
        if op in ("fill", "fail"):
            if self._remote is not None:
                self._remote.notify(str(event.get("key")), op)
        elif op == "inv":
            keys, tags = event.get("keys"), event.get("tags")
            for key in keys if isinstance(keys, list) else ():
                self.l1.drop(str(key))
            for tag in tags if isinstance(tags, list) else ():
                self.l1.drop_tag(str(tag))

    # -- invalidation ---------------------------------------------------------------------
    async def invalidate(self, keys: Iterable[str] = (), tags: Iterable[str] = ()) -> tuple[list[str], bool]:
        """Drop ``keys`` and every key stored with one of ``tags`` here, in Redis and (through
        the events channel) from every instance's L1.

        Returns:
            the keys that existed (here or in Redis) and were dropped, and whether the drop
            reached Redis (and so every instance).
            With Redis down only this process's copies go: the Redis copies and other
            instances' copies stay until their TTL ends.
        """
        keys, tags = list(keys), list(tags)
        now = self.clock()
        dropped = {key for key in keys if self.l1.get(key, now) is not None}  # only keys that existed
        for key in keys:
            self.l1.drop(key)
        for tag in tags:
            dropped.update(self.l1.drop_tag(tag))
        propagated = self.l2 is None
        if self.l2 is not None:
            remote = await self.l2.invalidate(keys, tags)
            if remote is not DOWN:
                dropped.update(remote)
                propagated = True
        return sorted(dropped), propagated
