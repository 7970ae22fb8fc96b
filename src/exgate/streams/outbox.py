"""The bounded stage between the stream workers and the event bus.

Workers never wait for Redis: each update is put in one bounded queue (:class:`Outbox`,
``maxsize`` events) and one owned task drains it, publishing each run of events of one
(venue, kind) with the bus's ``publish_many`` (one round trip on Redis). A full queue drops the
newest event and counts it (``dropped``; ``exgate_stream_bus_dropped_total``): the cache, which
reads use, is written by the workers themselves and never waits for the bus.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import structlog

log = structlog.get_logger("exgate.streams")


class Outbox:
    """Events on their way to ``bus`` (see the module doc).

    Args:
        bus: the event bus (``publish_many(venue, kind, items, *, name)``).
        maxsize: events held at most.
        batch: events published per round trip at most.
    """

    def __init__(self, bus: Any, maxsize: int = 10_000, batch: int = 200) -> None:
        self.bus = bus
        self.batch = batch
        self._queue: asyncio.Queue[tuple[str, str, str, dict, str | None, str | None]] = asyncio.Queue(maxsize)
        self.dropped: Counter[str] = Counter()
        """venue → events dropped because the queue was full."""
        self.failed: Counter[str] = Counter()
        """venue → events the bus refused (Redis down or slow)."""

    def put(self, venue: str, kind: str, name: str, data: dict, symbol: str | None, asset: str | None) -> None:
        """Queue one event without waiting; a full queue drops it (counted)."""
        try:
            self._queue.put_nowait((venue, kind, name, data, symbol, asset))
        except asyncio.QueueFull:
            self.dropped[venue] += 1

    @property
    def depth(self) -> int:
        """Events waiting now."""
        return self._queue.qsize()

    async def run(self) -> None:
        """Publish until cancelled: each run of consecutive events of one stream in one call."""
        while True:
            first = await self._queue.get()
            taken = [first]
            while len(taken) < self.batch and not self._queue.empty():
                taken.append(self._queue.get_nowait())
            start = 0
            for end in range(1, len(taken) + 1):
                if end == len(taken) or taken[end][:2] != taken[start][:2]:
                    await self._send(taken[start:end])
                    start = end

    async def _send(self, run: list[tuple[str, str, str, dict, str | None, str | None]]) -> None:
        venue, kind, name = run[0][0], run[0][1], run[0][2]
        try:
            await self.bus.publish_many(venue, kind, [(data, symbol, asset) for *_, data, symbol, asset in run],
                                        name=name)
        except Exception as exc:  # noqa: BLE001 - the bus is best effort: reads use the cache
            self.failed[venue] += len(run)
            log.warning("stream_publish_failed", venue=venue, kind=kind, events=len(run), error=repr(exc))
