"""The Redis tier of connector state: entries under ``connector:{venue}:scope:env:kind``
(expiring with the entry) and the per-entry sync lock (the cache's fetch lock of that key,
:meth:`~exgate.cache.RedisStore.try_lock`), every call through the cache's circuit breaker
(:meth:`~exgate.cache.RedisStore.call`), so Redis trouble is a miss, never an error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from exgate.cache.keys import lock_key
from exgate.cache.redis_store import DOWN
from exgate.connectors.entry import Corrupt, StateEntry, StateKey


class RedisTier:
    """Connector entries in Redis over a :class:`~exgate.cache.RedisStore` (its client, its
    breaker and its call timeout)."""

    def __init__(self, store: Any):
        self.store = store

    async def _r(self, op: Callable[[], Awaitable[Any]]) -> Any:
        return await self.store.call(op)

    @property
    def client(self) -> Any:
        return self.store.client

    async def get(self, key: StateKey) -> StateEntry | Corrupt | None:
        """The entry of ``key``; ``None`` when absent or Redis is down; the :class:`Corrupt`
        error (the value deleted) when unreadable."""
        raw = await self._r(lambda: self.client.get(key.redis_key))
        if raw is DOWN or raw is None:
            return None
        try:
            return StateEntry.decode(key, raw)
        except Corrupt as exc:
            await self._r(lambda: self.client.delete(key.redis_key))
            return exc

    async def set(self, entry: StateEntry, now_ms: int) -> None:
        """Store ``entry`` until it expires (nothing when it has)."""
        px = entry.remaining_ms(now_ms)
        if px > 0:
            body = entry.encode()
            await self._r(lambda: self.client.set(entry.key.redis_key, body, px=px))

    async def lock(self, key: StateKey, token: str, lease_ms: int) -> bool | None:
        """Take the sync lock of ``key`` for ``lease_ms`` (``SET NX PX``): taken, held by
        another instance (False), or Redis down (``None``)."""
        got = await self.store.try_lock(key.redis_key, token, lease_ms)
        return None if got is DOWN else got.acquired

    async def held(self, key: StateKey) -> bool:
        """Whether another instance still holds the lock (False when Redis is down)."""
        found = await self._r(lambda: self.client.exists(lock_key(key.redis_key)))
        return found is not DOWN and bool(found)

    async def unlock(self, key: StateKey, token: str) -> None:
        """Free the lock if ``token`` still holds it (a compare-and-delete script)."""
        await self.store.release(key.redis_key, token)

    async def invalidate(self, venue: str | None, matches: Callable[[StateKey], bool],
                         synced_at_ms: int | None) -> set[StateKey]:
        """Delete the entries of ``venue`` (all: ``None``) that ``matches`` accepts (and, when
        given, synced at ``synced_at_ms``); returns their keys."""
        pattern = f"connector:{{{venue}}}:*" if venue else "connector:*"

        async def op() -> set[StateKey]:
            dropped = set()
            async for name in self.client.scan_iter(match=pattern, count=500):
                name = name.decode() if isinstance(name, bytes) else name
                key = StateKey.from_redis(name)
                if key is None or not matches(key):
                    continue
                if synced_at_ms is not None:
                    raw = await self.client.get(name)
                    try:
                        if raw is None or StateEntry.decode(key, raw).synced_at_ms != synced_at_ms:
                            continue
                    except Corrupt:
                        pass
                if await self.client.delete(name):
                    dropped.add(key)
            return dropped

        found = await self._r(op)
        return set() if found is DOWN else found
