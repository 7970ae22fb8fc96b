"""The connector state service: entries read through L1 (in-process) → L2 (Redis) → SQL, and
one sync per entry however many callers and instances ask at once.

A read (:meth:`ConnectorState.get`) takes the first usable copy: L1 (kept at most
:data:`L1_SHARED_MS` while a shared tier exists, so an invalidation by another process is seen
within a minute), then Redis (``connector:{venue}:scope:env:kind``, expiring with the entry),
then the ``connector_state`` row (copied up into Redis and L1). A corrupt copy at any tier
(unparseable, negative TTL, an offset beyond ±1 day) is discarded there and the read goes on
as a miss; the next sync overwrites it. A hit adds to the entry's hit count in SQL in batches
(a background flush), never during the request.

A miss is synced by :meth:`ConnectorState.obtain`: one in-process future per key, and across
instances a Redis ``SET NX PX`` lock; an instance that finds the lock held polls Redis every
50 ms, up to the lease, for the winner's entry, and syncs itself only if none comes. With Redis
down or absent, each instance syncs once for itself; with the database down too, everything
still works from the venues (the cold path), with one warning.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import orjson
import structlog

from exgate.connectors.entry import Corrupt, Kind, StateEntry, StateKey, Synced
from exgate.connectors.figures import figures
from exgate.connectors.redis_tier import RedisTier
from exgate.connectors.sql import DOWN as SQL_DOWN
from exgate.connectors.sql import SqlState
from exgate.store.store import wall_ms

log = structlog.get_logger("exgate.connectors")

L1_SHARED_MS = 60_000
"""Longest an L1 copy is used while Redis or SQL is there to read again."""
POLL_S = 0.05
"""How often an instance waiting for another's sync looks for its entry (real time)."""
DEFAULT_OFFSET_TTL_MS = 900_000
DEFAULT_MARKETS_TTL_MS = 3_600_000
CLEANUP_EVERY_S = 300.0
FLUSH_EVERY_S = 5.0


Sync = Callable[[], Awaitable[Synced]]


class ConnectorState:
    """Connector state (clock offsets, markets snapshots) shared by every process.

    Use as an async context manager: it owns the syncs it runs, the hit-count flush and the
    cleanup of expired rows (at start and every 5 min).

    Args:
        engine: the store's async engine (``Store.engine``), or ``None`` without a database.
        redis: the cache's :class:`~exgate.cache.RedisStore` (its client and circuit breaker),
            or ``None`` without Redis.
        clock: time in ms since the epoch (entries' life); tests inject one.
        offset_ttl_ms: life of a ``time_offset`` entry (``EXGATE_TIME_OFFSET_TTL_MS``).
        markets_ttl_ms: life of a ``markets`` entry (``EXGATE_MARKETS_SNAPSHOT_TTL_MS``).
        lock_lease_ms: lease of the cross-instance sync lock, and the longest a loser waits.
        sql_timeout_ms: longest one SQL call may take.
    """

    def __init__(self, engine: Any = None, redis: Any = None, *, clock: Callable[[], int] = wall_ms,
                 offset_ttl_ms: int = DEFAULT_OFFSET_TTL_MS, markets_ttl_ms: int = DEFAULT_MARKETS_TTL_MS,
                 lock_lease_ms: int = 15_000, sql_timeout_ms: int = 3_000):
        self.sql = SqlState(engine, timeout_ms=sql_timeout_ms)
        self.redis = redis
        self.l2 = RedisTier(redis) if redis is not None else None
        self.clock = clock
        self.ttl_ms = {Kind.TIME_OFFSET: offset_ttl_ms, Kind.MARKETS: markets_ttl_ms}
        self.lock_lease_ms = lock_lease_ms
        self._l1: dict[StateKey, tuple[StateEntry, int]] = {}
        self._flights: dict[StateKey, asyncio.Future[StateEntry]] = {}
        self._pending_hits: Counter[StateKey] = Counter()
        self._tasks: asyncio.TaskGroup | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._syncing: set[asyncio.Task[None]] = set()
        self.hits: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()
        self.syncs: Counter[str] = Counter()
        self.coalesced = 0
        self.discarded = 0
        self._rows: list[Any] | None = None  # the last SQL figures (stats)

    # -- lifecycle ------------------------------------------------------------------------
    async def __aenter__(self) -> ConnectorState:
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        self._loops = [self._tasks.create_task(self._maintain())]
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        for task in [*self._loops, *self._syncing]:  # nobody is left to use what a sync would give
            task.cancel()
        tasks, self._tasks = self._tasks, None
        try:
            if tasks is not None:
                await tasks.__aexit__(None, None, None)
        finally:
            await self.flush_hits()

    async def _maintain(self) -> None:
        """Clean expired rows now and every :data:`CLEANUP_EVERY_S`; flush hit counts every
        :data:`FLUSH_EVERY_S` (real time)."""
        await self.cleanup_expired()
        waited = 0.0
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            waited += FLUSH_EVERY_S
            await self.flush_hits()
            if waited >= CLEANUP_EVERY_S:
                waited = 0.0
                await self.cleanup_expired()

    @property
    def shared(self) -> bool:
        """Whether a tier beyond this process exists (Redis or SQL)."""
        return self.redis is not None or self.sql.engine is not None

    async def _l2_get(self, key: StateKey) -> StateEntry | None:
        if self.l2 is None:
            return None
        found = await self.l2.get(key)
        if isinstance(found, Corrupt):
            self._discard(key, "redis", str(found))
            return None
        return found

    async def _l2_set(self, entry: StateEntry) -> None:
        if self.l2 is not None:
            await self.l2.set(entry, self.clock())

    def _discard(self, key: StateKey, tier: str, reason: str) -> None:
        self.discarded += 1
        log.warning("connector_state_discarded", venue=key.venue, kind=key.kind.value, tier=tier, reason=reason,
                    detail="corrupt entry dropped; the next sync overwrites it")

    # -- reads ----------------------------------------------------------------------------
    def _keep(self, entry: StateEntry, now: int) -> None:
        until = entry.expires_at_ms if not self.shared else min(entry.expires_at_ms, now + L1_SHARED_MS)
        self._l1[entry.key] = (entry, until)

    async def _read(self, key: StateKey, *, local: bool = True) -> StateEntry | None:
        """The first usable copy of ``key`` (L1 unless ``local`` is false, Redis, SQL), copied
        into the tiers above it; ``None`` when none is usable. Not counted."""
        now = self.clock()
        if local:
            slot = self._l1.get(key)
            if slot is not None:
                entry, until = slot
                if now < until and entry.usable(now):
                    return entry
                del self._l1[key]
        entry = await self._l2_get(key)
        if entry is not None and entry.usable(now):
            self._keep(entry, now)
            return entry
        found = await self.sql.get(key)
        if isinstance(found, Corrupt):
            self._discard(key, "sql", str(found))
            return None
        if found is SQL_DOWN or found is None or not found.usable(self.clock()):
            return None
        self._keep(found, self.clock())
        await self._l2_set(found)
        return found

    async def get(self, venue: str, scope: str, environment: str, kind: Kind) -> StateEntry | None:
        """The valid, unexpired entry of (venue, scope, environment, kind) or ``None``; counted
        as a hit or a miss (by venue), a hit also in the row's hit count (batched)."""
        key = StateKey(venue, scope, environment, Kind(kind))
        entry = await self._read(key)
        self._count(key, entry is not None)
        return entry

    def _count(self, key: StateKey, hit: bool) -> None:
        if hit:
            self.hits[key.venue] += 1
            self._pending_hits[key] += 1
        else:
            self.misses[key.venue] += 1

    async def flush_hits(self) -> None:
        """Write the hit counts gathered since the last flush (kept for the next one when the
        database does not answer)."""
        if not self._pending_hits or self.sql.engine is None:
            self._pending_hits.clear()
            return
        pending, self._pending_hits = dict(self._pending_hits), Counter()
        if not await self.sql.add_hits(pending):
            self._pending_hits.update(pending)

    # -- writes ---------------------------------------------------------------------------
    async def put(self, venue: str, scope: str, environment: str, kind: Kind, payload: dict[str, Any], *,
                  rtt_ms: int | None = None, ttl_ms: int | None = None, synced_at_ms: int | None = None
                  ) -> StateEntry:
        """Store a synced entry in every tier (overwriting what was there, corrupt or not),
        living ``ttl_ms`` (default: the kind's TTL). Tiers that are down are skipped.

        Raises:
            Corrupt: the entry itself makes no sense (e.g. an offset beyond ±1 day).
        """
        kind = Kind(kind)
        now = self.clock() if synced_at_ms is None else synced_at_ms
        entry = StateEntry(StateKey(venue, scope, environment, kind), payload, rtt_ms, now,
                           now + (self.ttl_ms[kind] if ttl_ms is None else ttl_ms))
        entry.check()
        self._keep(entry, self.clock())
        await self._l2_set(entry)
        await self.sql.put(entry, orjson.dumps(payload, default=str).decode())
        self._rows = None
        return entry

    async def obtain(self, venue: str, scope: str, environment: str, kind: Kind, sync: Sync, *,
                     newer_than: int | None = None) -> StateEntry:
        """The usable entry, or one synced now by ``sync`` and stored; ``newer_than`` (a
        ``synced_at_ms``): only an entry synced after it will do (a re-sync after a stale one).
        Concurrent calls for one key share one sync in this process and, through the Redis
        lock, across instances.

        Raises:
            Exception: whatever ``sync`` raised (to every caller sharing it); nothing is stored.
        """
        key = StateKey(venue, scope, environment, Kind(kind))
        entry = await self._read(key)
        if newer_than is None:
            self._count(key, entry is not None)
        if self._fits(entry, newer_than):
            return entry
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.get_running_loop().create_future()
            self._flights[key] = flight
            self._own(self._fly(key, sync, newer_than, flight))
        else:
            self.coalesced += 1
        return await asyncio.shield(flight)

    def _own(self, coro: Any) -> None:
        if self._tasks is not None:
            task = self._tasks.create_task(coro)
        else:  # used without ``async with`` (a one-shot command): the caller awaits the future
            task = asyncio.get_running_loop().create_task(coro)
        self._syncing.add(task)
        task.add_done_callback(self._syncing.discard)

    async def _fly(self, key: StateKey, sync: Sync, newer_than: int | None,
                   flight: asyncio.Future[StateEntry]) -> None:
        try:
            entry = await self._sync_once(key, sync, newer_than)
        except asyncio.CancelledError:
            flight.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every caller of this flight
            flight.set_exception(exc)
            flight.exception()  # retrieved: a flight whose callers left must not warn
        else:
            flight.set_result(entry)
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]

    def _fits(self, entry: StateEntry | None, newer_than: int | None) -> bool:
        return entry is not None and entry.usable(self.clock()) and (
            newer_than is None or entry.synced_at_ms > newer_than)

    async def _sync_once(self, key: StateKey, sync: Sync, newer_than: int | None) -> StateEntry:
        token = None
        if self.l2 is not None:
            token = secrets.token_hex(8)
            got = await self.l2.lock(key, token, self.lock_lease_ms)
            if got is None:  # Redis down: sync here
                token = None
            elif not got:  # another instance syncs it: wait for its entry
                entry = await self._wait_for_winner(key, newer_than)
                if entry is not None:
                    self.coalesced += 1
                    return entry
                token = None  # it failed or died: sync here
            else:
                again = await self._l2_get(key)
                if self._fits(again, newer_than):
                    await self.l2.unlock(key, token)
                    self._keep(again, self.clock())
                    return again
        try:
            self.syncs[key.venue] += 1
            synced = await sync()
            now = self.clock() if newer_than is None else max(self.clock(), newer_than + 1)
            try:
                return await self.put(key.venue, key.scope, key.environment, key.kind, synced.payload,
                                      rtt_ms=synced.rtt_ms, synced_at_ms=now)
            except Corrupt as exc:  # what the venue gave cannot be kept: used this once, stored nowhere
                log.warning("connector_state_not_stored", venue=key.venue, kind=key.kind.value, reason=str(exc))
                return StateEntry(key, synced.payload, synced.rtt_ms, now, now)
        finally:
            if token is not None:
                await self.l2.unlock(key, token)

    async def _wait_for_winner(self, key: StateKey, newer_than: int | None) -> StateEntry | None:
        """Poll Redis every :data:`POLL_S` up to the lease for the winner's entry; ``None`` when
        the lock goes without one (the winner failed) or the lease runs out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lock_lease_ms / 1000
        while loop.time() < deadline:
            await asyncio.sleep(POLL_S)
            entry = await self._l2_get(key)
            if self._fits(entry, newer_than):
                self._keep(entry, self.clock())
                return entry
            if not await self.l2.held(key):  # released without an entry (failed), or Redis gone
                entry = await self._l2_get(key)
                return entry if self._fits(entry, newer_than) else None
        return None

    # -- invalidation and cleanup ---------------------------------------------------------
    async def invalidate(self, venue: str | None = None, *, scope: str | None = None,
                         environment: str | None = None, kind: Kind | None = None,
                         synced_at_ms: int | None = None) -> int:
        """Invalidate the entries of ``venue`` (all venues: ``None``), narrowed by scope,
        environment, kind and, for a stale entry, the ``synced_at_ms`` it was synced at (a newer
        entry is left alone). Drops them from L1 and Redis, marks their rows invalid. Returns
        how many distinct entries were invalidated in any tier."""

        def matches(key: StateKey) -> bool:
            return all(want is None or have == want for want, have in (
                (venue, key.venue), (scope, key.scope), (environment, key.environment), (kind, key.kind)))

        hit: set[StateKey] = set()
        for key, (entry, _) in list(self._l1.items()):
            if matches(key) and (synced_at_ms is None or entry.synced_at_ms == synced_at_ms):
                del self._l1[key]
                hit.add(key)
        if self.l2 is not None:
            hit.update(await self.l2.invalidate(venue, matches, synced_at_ms))
        rows = await self.sql.rows(venue)
        if rows is not SQL_DOWN:
            doomed = [r.key for r in rows if r.valid and matches(r.key)]
            changed = await self.sql.invalidate(doomed, synced_at_ms)
            if changed is not SQL_DOWN:
                hit.update(changed)
        self._rows = None
        return len(hit)

    async def cleanup_expired(self) -> int:
        """Delete expired entries (L1 and SQL; Redis expires its own). Returns the rows deleted."""
        now = self.clock()
        for key, (entry, _) in list(self._l1.items()):
            if entry.expires_at_ms <= now:
                del self._l1[key]
        deleted = await self.sql.cleanup(now)
        self._rows = None
        return 0 if deleted is SQL_DOWN else deleted

    # -- statistics -----------------------------------------------------------------------
    async def refresh(self) -> None:
        """Read the entries' figures from SQL for :meth:`stats` (kept when the database is down)."""
        rows = await self.sql.rows()
        if rows is not SQL_DOWN:
            self._rows = rows

    def stats(self) -> dict[str, Any]:
        """Figures since start: ``entries`` (total, valid, expired, invalid: from SQL as last
        read by :meth:`refresh`, else this process's L1), ``hits``, ``misses``, ``hit_rate``,
        ``syncs``, ``coalesced``, ``discarded``, ``last_sync_age_ms``, ``database`` (available,
        warnings) and ``by_venue`` (the same per venue)."""
        now = self.clock()
        if self._rows is not None:
            rows = [(r.key.venue, r.valid, r.synced_at_ms, r.expires_at_ms, r.hits) for r in self._rows]
        else:
            rows = [(e.key.venue, e.valid, e.synced_at_ms, e.expires_at_ms, None) for e, _ in self._l1.values()]
        venues = sorted({row[0] for row in rows} | set(self.hits) | set(self.misses) | set(self.syncs))

        out = figures(rows, now, sum(self.hits.values()), sum(self.misses.values()), sum(self.syncs.values()))
        out.update(coalesced=self.coalesced, discarded=self.discarded,
                   database={"available": self.sql.available, "warnings": self.sql.warnings,
                             "failures": self.sql.failures},
                   by_venue={v: figures([r for r in rows if r[0] == v], now, self.hits[v], self.misses[v], self.syncs[v])
                             for v in venues})
        return out
