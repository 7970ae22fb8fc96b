"""L2: the Redis tier shared by every gateway instance (redis-py asyncio, hiredis parser).

It stores encoded entries (:meth:`Entry.encode`) under the keys of :mod:`exgate.cache.keys`,
with a Redis expiry at the end of the entry's last window; holds the per-key fetch lock
(``SET NX PX`` with a random token, released by a compare-and-delete script so an instance
whose lease ran out never frees its successor's lock); and carries events on one pub/sub
channel: ``fill``/``fail`` when a fetch ends (waking the instances waiting on it) and ``inv``
when keys or tags are invalidated (dropping every instance's L1 copies).

The client comes from :func:`exgate.cache.client.redis_client`: one server or a Redis
Cluster. On a cluster the events channel stays classic pub/sub, which the cluster broadcasts
to every node: one subscription on any node hears every instance's events, so the feed
subscribes on the channel's slot owner first and moves to another node if that one dies.

Every call is fail-open: a Redis error or timeout is counted by the :class:`CircuitBreaker`
and reported as "Redis unavailable" (``DOWN``), never raised, so the caller carries on with
L1 and the upstream. While the circuit is open or half-open no request's call is tried at
all: the probe that closes it again is a ``PING`` sent by a background task
(:meth:`RedisStore.keep_probing`, owned by the cache), so a Redis that hangs costs a request
nothing once the circuit is open.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson
import structlog
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from exgate.cache.circuit import CircuitBreaker, CircuitState
from exgate.cache.client import Client, client_db, redis_client
from exgate.cache.entry import Entry
from exgate.cache.keys import events_channel, lock_key, tag_key

log = structlog.get_logger("exgate.cache")


class _Down:
    """Marker: Redis could not be asked (error, timeout or open circuit)."""

    def __repr__(self) -> str:
        return "DOWN"


DOWN: Final = _Down()

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""

_ERRORS = (RedisError, RedisClusterException, OSError, asyncio.TimeoutError, ValueError)


@dataclass(frozen=True, slots=True)
class Lock:
    """Outcome of a lock attempt: ``acquired``, else how long (ms) the holder's lease still runs."""

    acquired: bool
    remaining_ms: int = 0


EventHandler = Callable[[dict[str, Any]], None]


class RedisStore:
    """The shared tier over one Redis server or a Redis Cluster.

    Args:
        client: a redis-py asyncio client (one server or a cluster); build one with :meth:`from_url`.
        breaker: the circuit breaker guarding every call.
        db: the database number (the events channel is per database).
        origin: this instance's id, carried in events.
        timeout_ms: a call slower than this counts as a Redis failure.
    """

    def __init__(self, client: Client, breaker: CircuitBreaker, *, db: int = 0, origin: str = "",
                 timeout_ms: int = 250):
        self.client = client
        self.timeout_s = timeout_ms / 1000
        self.breaker = breaker
        self.origin = origin
        self.channel = events_channel(db)
        self.subscribed = asyncio.Event()
        self._release = client.register_script(_RELEASE)
        self._unexpected: set[type[Exception]] = set()  # kinds of non-Redis error already logged

    @classmethod
    def from_url(cls, url: str, breaker: CircuitBreaker, *, timeout_ms: int = 250, max_connections: int = 64,
                 origin: str = "") -> RedisStore:
        """A store on ``url`` (any URL :func:`~exgate.cache.client.redis_client` takes) whose
        calls give up after ``timeout_ms`` (including the wait for one of ``max_connections``
        pooled connections) and are never retried by redis-py (the breaker decides when to try
        again).

        Raises:
            ConfigError: ``url`` is not a Redis URL exgate accepts (``field="EXGATE_REDIS_URL"``).
        """
        client = redis_client(url, timeout_ms=timeout_ms, max_connections=max_connections)
        return cls(client, breaker, db=client_db(client), origin=origin, timeout_ms=timeout_ms)

    @property
    def coordinating(self) -> bool:
        """Whether cross-instance coalescing can work now: circuit closed and events subscribed."""
        return self.breaker.state is CircuitState.CLOSED and self.subscribed.is_set()

    async def close(self) -> None:
        """Close the client's connections."""
        await self.client.aclose()

    async def call(self, op: Callable[[], Awaitable[Any]]) -> Any:
        """``op()``'s result through the circuit breaker and the call timeout, or :data:`DOWN`
        when Redis fails or the circuit is open (never raises a Redis error)."""
        return await self.breaker.call(op, timeout_s=self.timeout_s, errors=_ERRORS, down=DOWN)

    async def probe(self) -> bool:
        """Probe Redis once if the breaker is due for it (open past its cooldown): a ``PING``
        bounded by the call timeout; its outcome opens or closes the circuit. Any client error
        counts as a failure (the prober must outlive it). Returns whether a probe was sent."""
        return await self.breaker.probe(self.client.ping, timeout_s=self.timeout_s,
                                        on_error=lambda exc: self._note_unexpected(exc, "probe"))

    async def keep_probing(self, poll_s: float = 0.1) -> None:
        """Run until cancelled: every ``poll_s`` (real time) check whether the breaker is due
        for a probe and send it (:meth:`probe`). The only path that closes an open circuit;
        run it as a task its owner cancels on close (see :class:`~exgate.cache.tiered.Cache`)."""
        await self.breaker.keep_probing(self.client.ping, timeout_s=self.timeout_s, poll_s=poll_s,
                                        on_error=lambda exc: self._note_unexpected(exc, "probe"))

    # -- values ---------------------------------------------------------------------------
    async def get(self, key: str) -> Entry | None | _Down:
        """The entry under ``key``, ``None`` when absent or unreadable, ``DOWN`` when Redis is."""
        raw = await self.call(lambda: self.client.get(key))
        if raw is DOWN or raw is None:
            return raw
        try:
            return Entry.decode(raw)
        except ValueError:
            log.warning("cache_value_unreadable", key=key, size=len(raw))
            return None

    async def set(self, key: str, entry: Entry, tags: Iterable[str], now_ms: int) -> bool:
        """Store ``entry`` until its last window ends, add ``key`` to each tag's set and announce
        the fill, in one round trip. Returns ``False`` when Redis is down (nothing stored)."""
        px = entry.stale_until_ms - now_ms
        event = orjson.dumps({"op": "fill", "key": key, "origin": self.origin})

        async def op() -> None:
            pipe = self.client.pipeline(transaction=False)
            if px > 0:
                pipe.set(key, entry.encode(), px=px)
                for tag in tags:  # members scored by their expiry; expired ones pruned here
                    pipe.zadd(tag_key(tag), {key: entry.stale_until_ms})
                    pipe.zremrangebyscore(tag_key(tag), "-inf", now_ms)
                    pipe.pexpire(tag_key(tag), px, nx=True)
                    pipe.pexpire(tag_key(tag), px, gt=True)
            await self._execute_then_publish(pipe, event)

        return await self.call(op) is not DOWN

    async def put(self, key: str, entry: Entry, now_ms: int) -> bool:
        """Store ``entry`` until its last window ends, with no tag and no fill event: what a
        stream pushes many times a second (readers on other instances read it here). Returns
        ``False`` when Redis is down."""
        px = entry.stale_until_ms - now_ms
        if px <= 0:
            return True
        return await self.call(lambda: self.client.set(key, entry.encode(), px=px)) is not DOWN

    async def delete(self, keys: Iterable[str]) -> bool:
        """Delete ``keys`` (no event: readers find them gone). ``False`` when Redis is down."""
        keys = list(keys)
        if not keys:
            return True
        return await self.call(lambda: self.client.delete(*keys)) is not DOWN

    async def _execute_then_publish(self, pipe: Any, event: bytes) -> list[Any]:
        """Run ``pipe``, then publish ``event``: in the same round trip on one server; after it
        on a cluster, where redis-py refuses PUBLISH in a pipeline. Never before: the event
        must not reach another instance ahead of the writes it announces. Returns the results
        of ``pipe``'s own commands (without the publish)."""
        if isinstance(self.client, RedisCluster):
            results = await pipe.execute()
            await self.client.publish(self.channel, event)
            return list(results)
        pipe.publish(self.channel, event)
        return list(await pipe.execute())[:-1]

    # -- fetch lock -----------------------------------------------------------------------
    async def try_lock(self, key: str, token: str, lease_ms: int) -> Lock | _Down:
        """Take the fetch lock of ``key`` for ``lease_ms`` unless another instance holds it."""

        async def op() -> Lock:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(lock_key(key), token, nx=True, px=lease_ms)
            pipe.pttl(lock_key(key))
            acquired, remaining = await pipe.execute()
            return Lock(bool(acquired), max(0, int(remaining)))

        return await self.call(op)

    async def release(self, key: str, token: str, *, failed: bool = False) -> None:
        """Free the lock of ``key`` if ``token`` still holds it; after a failed fetch, announce
        ``fail`` so waiting instances try themselves instead of waiting out the lease."""

        async def op() -> None:
            await self._release(keys=[lock_key(key)], args=[token])
            if failed:
                await self.client.publish(self.channel, orjson.dumps({"op": "fail", "key": key, "origin": self.origin}))

        await self.call(op)

    # -- invalidation ---------------------------------------------------------------------
    async def invalidate(self, keys: Iterable[str], tags: Iterable[str]) -> list[str] | _Down:
        """Delete ``keys`` and every key stored with one of ``tags``, and tell every instance to
        drop its L1 copies. Returns the keys that existed and were deleted, or ``DOWN``."""
        keys, tags = list(keys), list(tags)

        async def op() -> list[str]:
            found: set[str] = set(keys)
            if tags:
                pipe = self.client.pipeline(transaction=False)
                for tag in tags:
                    pipe.zrange(tag_key(tag), 0, -1)
                for members in await pipe.execute():
                    found.update(m.decode() for m in members)
            doomed = sorted(found)
            pipe = self.client.pipeline(transaction=False)
            for key in doomed:
                pipe.exists(key)
            if doomed or tags:  # on a cluster, redis-py splits this DEL into one per slot (venue, account)
                pipe.delete(*doomed, *(tag_key(t) for t in tags))
            results = await self._execute_then_publish(
                pipe, orjson.dumps({"op": "inv", "keys": doomed, "tags": tags, "origin": self.origin}))
            return [key for key, count in zip(doomed, results[:len(doomed)]) if count]

        return await self.call(op)

    # -- events ---------------------------------------------------------------------------
    def _pubsub(self, attempt: int) -> Any:
        """The pub/sub connection of subscription attempt number ``attempt``. On a cluster the
        first goes to the node owning the channel's slot and each later one to the next node
        in turn: classic pub/sub is broadcast to every node, so any node hears every event, and
        a dead node (whose slots a failover may have moved while this client's map is stale)
        is never retried forever."""
        if isinstance(self.client, RedisCluster) and attempt:
            nodes = sorted(self.client.get_nodes(), key=lambda node: node.name)
            if nodes:
                return self.client.pubsub(node=nodes[attempt % len(nodes)])
        return self.client.pubsub()

    async def listen(self, on_event: EventHandler, on_gap: Callable[[], None], on_lost: Callable[[], None] = lambda: None,
                     *, idle_s: float = 0.5, ping_every_s: float = 5.0) -> None:
        """Deliver every event of the channel to ``on_event`` until cancelled.

        Reconnects by itself: while the circuit is open it waits (checking every ``idle_s``)
        for :meth:`keep_probing` to close it, then subscribes again. A connection that dies silently is noticed by a ping every
        ``ping_every_s`` left unanswered. ``on_lost`` runs when the feed breaks (wake whoever
        waits for an event); after any gap ``on_gap`` runs, because invalidations may have
        been missed. A handler that raises is logged, never allowed to stop the feed.
        """
        first = True
        attempts = 0
        while True:
            if not self.breaker.allow():
                await asyncio.sleep(idle_s)
                continue
            pubsub = self._pubsub(attempts)
            attempts += 1
            try:
                async with asyncio.timeout(self.timeout_s):
                    if isinstance(self.client, RedisCluster):  # learn the slots first: pub/sub routes by them
                        await self.client.initialize()
                    await pubsub.subscribe(self.channel)
                self.breaker.success()
                if not first:
                    on_gap()
                first = False
                self.subscribed.set()
                loop = asyncio.get_running_loop()
                last_seen = last_ping = loop.time()
                while True:
                    now = loop.time()
                    if now - last_seen > 3 * ping_every_s:
                        raise ConnectionError("events connection silent: no answer to pings")
                    if now - last_ping >= ping_every_s:
                        last_ping = now
                        async with asyncio.timeout(self.timeout_s):
                            await pubsub.ping()
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=idle_s)
                    if message is None:
                        continue
                    last_seen = loop.time()
                    if message.get("type") != "message":
                        continue
                    try:
                        event = orjson.loads(message["data"])
                        if isinstance(event, dict):
                            on_event(event)
                    except Exception:  # noqa: BLE001 - one bad event must not stop the feed
                        log.warning("cache_event_rejected", channel=self.channel, exc_info=True)
            except Exception as exc:  # noqa: BLE001 - the feed must outlive any client error
                self.subscribed.clear()
                self._background_failure(exc, "events")
                on_lost()
                await asyncio.sleep(idle_s)
            finally:
                self.subscribed.clear()
                try:
                    async with asyncio.timeout(idle_s):
                        await pubsub.aclose()
                except Exception:  # noqa: BLE001, S110 - closing a broken feed
                    pass

    def _background_failure(self, exc: Exception, where: str) -> None:
        """Count ``exc``, met by the event feed or the prober, as a Redis failure. One that is no
        Redis error (a client bug, an option redis-py refuses only when connecting) is logged
        too, with the line that raised it: it keeps the circuit open, and never escapes into
        the cache's task group, whose failure would cancel the app's start-up. Logged once per
        kind of error (it comes back at every retry; the breaker logs each outage edge), and
        without the traceback's locals, which hold the connection's password."""
        self._note_unexpected(exc, where)
        self.breaker.failure(exc)

    def _note_unexpected(self, exc: BaseException, where: str) -> None:
        """Log ``exc`` once per kind when it is no Redis error (see :meth:`_background_failure`)."""
        if not isinstance(exc, _ERRORS) and type(exc) not in self._unexpected:
            self._unexpected.add(type(exc))
            frames = traceback.extract_tb(exc.__traceback__)
            log.error("cache_redis_unexpected_error", where=where, error=repr(exc),
                      at=f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None)
