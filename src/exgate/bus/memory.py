"""The in-process bus: the :class:`~exgate.bus.base.Bus` interface for a gateway without Redis."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from exgate.bus.base import DEFAULT_MAXLEN, Bus, StreamInfo, check_maxlen
from exgate.bus.events import ZERO_ID, Event, EventKind, format_id, parse_id, stream_key
from exgate.cache.entry import wall_clock_ms


class _Stream:
    __slots__ = ("events", "last", "max_deleted")

    def __init__(self, maxlen: int) -> None:
        self.events: deque[tuple[tuple[int, int], Event]] = deque(maxlen=maxlen)
        self.last = (0, 0)
        self.max_deleted = (0, 0)

    def after(self, position: tuple[int, int], count: int) -> list[Event]:
        """Kept events after ``position``, oldest first, at most ``count``."""
        newer: list[Event] = []
        for key, event in reversed(self.events):  # live readers are near the end: walk from it
            if key <= position:
                break
            newer.append(event)
        newer.reverse()
        return newer[:count]


class MemoryBus(Bus):
    """Bounded per-stream deques in this process, ids ``"<ms>-<seq>"`` as Redis makes them.

    Readers wait on one :class:`asyncio.Condition` notified by every publish (no polling).
    Not shared between processes or event loops: every call must come from the loop that
    uses it.

    Args:
        maxlen: events kept per stream (exactly; the oldest go first).
        maxlen_by_kind: per-kind lengths (default :data:`~exgate.bus.base.DEFAULT_MAXLEN_BY_KIND`).
        clock: current time in ms (the ids' first part and ``ts_ms``).
    """

    def __init__(self, maxlen: int = DEFAULT_MAXLEN, *, maxlen_by_kind: dict[EventKind, int] | None = None,
                 clock: Callable[[], int] = wall_clock_ms) -> None:
        self.maxlen_by_kind = check_maxlen(maxlen, maxlen_by_kind)
        self.maxlen = maxlen
        self.clock = clock
        self._streams: dict[str, _Stream] = {}
        self._changed = asyncio.Condition()

    def _stream(self, key: str, kind: EventKind) -> _Stream:
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(self.maxlen_of(kind))
        return stream

    async def publish(self, venue: str, kind: EventKind, data: dict[str, Any], *, symbol: str | None = None,
                      asset: str | None = None, name: str | None = None) -> str:
        """See :meth:`Bus.publish` (never raises :class:`BusUnavailable`)."""
        import orjson

        kind = EventKind(kind)
        data = orjson.loads(orjson.dumps(data))  # a copy, and the same TypeError as the Redis bus
        stream = self._stream(stream_key(venue, kind), kind)
        now = self.clock()
        ms, seq = (now, 0) if now > stream.last[0] else (stream.last[0], stream.last[1] + 1)
        event = Event(id=format_id(ms, seq), venue=venue, kind=kind, symbol=symbol, asset=asset, data=data,
                      source_exchange_id=venue, source_exchange_name=name or venue, ts_ms=now)
        if len(stream.events) == stream.events.maxlen:
            stream.max_deleted = stream.events[0][0]
        stream.events.append(((ms, seq), event))
        stream.last = (ms, seq)
        async with self._changed:
            self._changed.notify_all()
        return event.id

    def _collect(self, positions: dict[str, tuple[int, int]], count: int) -> list[tuple[str, Event]]:
        out: list[tuple[str, Event]] = []
        for key, position in positions.items():
            stream = self._streams.get(key)
            if stream is not None and stream.last > position:
                out.extend((key, event) for event in stream.after(position, count))
        return out

    async def read_after(self, stream_cursors: dict[str, str], count: int, block_ms: int) -> list[tuple[str, Event]]:
        """See :meth:`Bus.read_after`.

        Raises:
            ValueError: a cursor is not a stream id.
        """
        positions = {key: parse_id(last) for key, last in stream_cursors.items()}
        found = self._collect(positions, count)
        if found or block_ms <= 0:
            return found
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block_ms / 1000
        async with self._changed:
            while not (found := self._collect(positions, count)):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return []
                try:
                    async with asyncio.timeout(remaining):
                        await self._changed.wait()
                except TimeoutError:
                    return self._collect(positions, count)
        return found

    async def range_after(self, stream: str, last_id: str, count: int) -> list[Event]:
        """See :meth:`Bus.range_after`."""
        kept = self._streams.get(stream)
        return [] if kept is None else kept.after(parse_id(last_id), count)

    async def info(self, stream: str) -> StreamInfo:
        """See :meth:`Bus.info`."""
        kept = self._streams.get(stream)
        if kept is None:
            return StreamInfo()
        return StreamInfo(last_id=format_id(*kept.last), first_id=kept.events[0][1].id if kept.events else None,
                          trimmed_upto_id=format_id(*kept.max_deleted) if kept.max_deleted != (0, 0) else ZERO_ID,
                          length=len(kept.events))
