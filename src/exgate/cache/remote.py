"""Waiting for another instance's fill of a key: the cross-instance half of coalescing.

An instance that finds a key's fetch lock held in Redis waits here for the holder's ``fill``
or ``fail`` event (no polling), then reads the entry the holder wrote to L2.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from exgate.cache.entry import Entry
from exgate.cache.redis_store import DOWN, RedisStore


class RemoteFills:
    """The waits of this process for fills made by other instances, one per key.

    Args:
        l2: the shared Redis store whose events channel announces fills.
        clock: current time in ms, to judge an entry's freshness.
    """

    def __init__(self, l2: RedisStore, clock: Callable[[], int]):
        self.l2 = l2
        self.clock = clock
        self._waiters: dict[str, asyncio.Future[str]] = {}

    async def wait(self, key: str, timeout_ms: int) -> Entry | None:
        """Wait up to ``timeout_ms`` (real time) for another instance's fill of ``key``.

        Returns:
            the fresh entry it wrote, or ``None``: no fill in time, the fill failed, or Redis
            or its events feed is gone (the caller then fetches itself).
        """
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters[key] = waiter
        try:
            entry = await self.l2.get(key)  # after registering: a fill can't slip between the two
            if isinstance(entry, Entry) and entry.fresh(self.clock()):
                return entry
            if entry is DOWN or not self.l2.coordinating:
                return None  # no event will come: the caller fetches itself
            if timeout_ms > 0:
                try:
                    async with asyncio.timeout(timeout_ms / 1000):  # not wait_for: see BudgetGate._pump
                        await asyncio.shield(waiter)
                except TimeoutError:
                    return None
                entry = await self.l2.get(key)
                if isinstance(entry, Entry) and entry.fresh(self.clock()):
                    return entry
            return None
        finally:
            if self._waiters.get(key) is waiter:
                del self._waiters[key]

    def notify(self, key: str, op: str) -> None:
        """A ``fill`` or ``fail`` event for ``key`` arrived: wake its waiter."""
        waiter = self._waiters.get(key)
        if waiter is not None and not waiter.done():
            waiter.set_result(op)

    def wake_all(self) -> None:
        """The events feed broke: wake every wait (each caller fetches itself)."""
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_result("lost")
