"""One owner per upstream stream across instances: a leased Redis lock.

Every instance sharing Redis competes for ``exgate:stream:owner:{venue}:{kind}``; the one that
holds it opens the venue's sockets for that kind, the others read what it writes (cache
entries and bus events). The owner renews its lease every third of it; an owner that dies
stops renewing and another instance takes over within one lease. Without Redis every
process owns its streams.
"""

from __future__ import annotations

from typing import Any

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def owner_key(venue: str, kind: str) -> str:
    """Redis key of the ownership lease of a venue's stream kind."""
    return "exgate:stream:owner:{" + venue + "}:" + kind


class OwnerLease:
    """The ownership lease of one (venue, kind) for this instance.

    Args:
        store: the cache's :class:`~exgate.cache.RedisStore` (its client and breaker), or
            ``None``: this process always owns the stream.
        venue, kind: what is owned.
        instance: this instance's id (the lock's value).
        lease_ms: the lease (default 5 s): the longest a dead owner leaves a stream unowned.
    """

    def __init__(self, store: Any, venue: str, kind: str, instance: str, lease_ms: int = 5_000) -> None:
        self.store = store
        self.key = owner_key(venue, kind)
        self.instance = instance
        self.lease_ms = lease_ms
        self.held = store is None

    async def refresh(self) -> bool:
        """Take the lease if it is free, renew it if held; returns whether this instance owns
        the stream now. Redis unreachable (or its circuit open): this instance streams for
        itself, as without Redis (fail open: every instance then opens its own socket, and the
        reads keep coming from streams); once Redis answers again the lease decides anew."""
        if self.store is None:
            return True
        client = self.store.client

        async def op() -> bool:
            if self.held:
                renewed = await client.eval(_RENEW, 1, self.key, self.instance, self.lease_ms)
                if renewed:
                    return True
            return bool(await client.set(self.key, self.instance, nx=True, px=self.lease_ms))

        result = await self.store.call(op)
        if not isinstance(result, bool):  # DOWN: Redis failed, timed out or its circuit is open
            self.held = True
            return True
        self.held = result
        return self.held

    async def owner(self) -> str | None:
        """The instance holding the lease now (``None``: nobody, or Redis unreachable)."""
        if self.store is None:
            return self.instance
        client = self.store.client
        value = await self.store.call(lambda: client.get(self.key))
        return value.decode() if isinstance(value, bytes) else None

    async def release(self) -> None:
        """Give the lease up (stop or shutdown) so another instance takes over at once."""
        if self.store is not None and self.held:
            client = self.store.client
            await self.store.call(lambda: client.eval(_RELEASE, 1, self.key, self.instance))
        self.held = self.store is None
