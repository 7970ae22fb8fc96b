"""The Redis bus: one Redis stream per (venue, kind), shared by every gateway instance.

``XADD exgate:ev:{venue}:{kind} MAXLEN ~ N * prev <id> venue .. kind .. name .. ts .. data <json>
[symbol ..] [asset ..]`` appends (bounded: Redis trims whole nodes, keeping a little over
``N``), from a small script that also records ``prev``, the id of the event before it;
``XREAD [BLOCK ms] COUNT n STREAMS ...`` reads after cursors; ``XRANGE (id + COUNT n``
replays. The oldest kept event's ``prev`` is the newest trimmed one (Redis's own
``max-deleted-entry-id`` counts XDEL, not trimming), so a cursor older than it is seen as a
gap, exactly, not as silence.

Every call goes through a :class:`~exgate.cache.circuit.CircuitBreaker` (the cache's, when
shared, so one outage is one open circuit) with a timeout; a failure raises
:class:`~exgate.bus.base.BusUnavailable`. While the circuit is open a call first sends the
breaker's probe if one is due (a ``PING``), so a bus used without the cache's prober still
comes back when Redis does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from exgate.bus.base import DEFAULT_MAXLEN, Bus, BusUnavailable, StreamInfo, check_maxlen
from exgate.bus.events import ZERO_ID, Event, EventKind, event_fields, event_from_fields, parse_id, stream_key
from exgate.cache.circuit import CircuitBreaker
from exgate.cache.client import Client, redis_client
from exgate.cache.entry import wall_clock_ms

import structlog

log = structlog.get_logger("exgate.bus")

_ERRORS: Final = (RedisError, RedisClusterException, OSError, asyncio.TimeoutError)


class _Down:
    def __repr__(self) -> str:
        return "DOWN"


_DOWN: Final = _Down()


_PUBLISH = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = '0-0'
if last[1] then prev = last[1][1] end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'prev', prev, unpack(ARGV, 2))
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBus(Bus):
    """The bus over Redis Streams.

    Args:
        redis: a redis-py asyncio client (one server or a cluster) or a Redis URL (then the
            bus owns the client it builds and closes it).
        maxlen: events kept per stream (approximately, ``MAXLEN ~``).
        maxlen_by_kind: per-kind lengths (default :data:`~exgate.bus.base.DEFAULT_MAXLEN_BY_KIND`).
        timeout_ms: a call slower than this (beyond its own ``block_ms``) fails.
        breaker: the circuit breaker guarding the calls (default: the bus's own).
        clock: current time in ms (``ts_ms``; Redis makes the ids).
    """

    def __init__(self, redis: Client | str, *, maxlen: int = DEFAULT_MAXLEN,
                 maxlen_by_kind: dict[EventKind, int] | None = None, timeout_ms: int = 500,
                 breaker: CircuitBreaker | None = None, clock: Callable[[], int] = wall_clock_ms,
                 max_connections: int = 64) -> None:
        self.maxlen_by_kind = check_maxlen(maxlen, maxlen_by_kind)
        self._owned = isinstance(redis, str)
        self.client: Client = redis_client(redis, timeout_ms=timeout_ms, max_connections=max_connections) \
            if isinstance(redis, str) else redis
        self.maxlen = maxlen
        self.timeout_s = timeout_ms / 1000
        self.clock = clock
        self.breaker = breaker or CircuitBreaker("redis-bus", wall_clock_ms)
        self._cluster = isinstance(self.client, RedisCluster)
        self._publish = self.client.register_script(_PUBLISH)

    async def _call(self, what: str, op: Callable[[], Any], extra_s: float = 0.0) -> Any:
        if not self.breaker.allow():
            await self.breaker.probe(self.client.ping, timeout_s=self.timeout_s)
        result = await self.breaker.call(op, timeout_s=self.timeout_s + extra_s, errors=_ERRORS, down=_DOWN)
        if result is _DOWN:
            raise BusUnavailable(f"event bus unavailable: Redis did not answer {what}"
                                 f" (circuit {self.breaker.state.value})")
        return result

    async def publish(self, venue: str, kind: EventKind, data: dict[str, Any], *, symbol: str | None = None,
                      asset: str | None = None, name: str | None = None) -> str:
        """See :meth:`Bus.publish`."""
        kind = EventKind(kind)
        fields = event_fields(venue, kind, data, symbol=symbol, asset=asset, name=name or venue, ts_ms=self.clock())
        key = stream_key(venue, kind)
        args = [self.maxlen_of(kind), *(part for pair in fields.items() for part in pair)]
        return _text(await self._call("XADD", lambda: self._publish(keys=[key], args=args)))

    async def publish_many(self, venue: str, kind: EventKind,
                           items: list[tuple[dict[str, Any], str | None, str | None]], *,
                           name: str | None = None) -> list[str]:
        """See :meth:`Bus.publish_many`: one pipeline of the publish script."""
        kind = EventKind(kind)
        key, now = stream_key(venue, kind), self.clock()
        batches = [[self.maxlen_of(kind), *(part for pair in event_fields(
            venue, kind, data, symbol=symbol, asset=asset, name=name or venue, ts_ms=now).items() for part in pair)]
            for data, symbol, asset in items]
        if not batches:
            return []

        async def op() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for args in batches:
                await self._publish(keys=[key], args=args, client=pipe)
            return list(await pipe.execute())

        return [_text(i) for i in await self._call("XADD (batch)", op)]

    async def read_after(self, stream_cursors: dict[str, str], count: int, block_ms: int) -> list[tuple[str, Event]]:
        """See :meth:`Bus.read_after`. On a Redis Cluster several streams (different slots)
        are read one ``XREAD`` each, concurrently; the call returns when all have answered."""
        if not stream_cursors:
            return []
        for last in stream_cursors.values():
            parse_id(last)
        block = block_ms if block_ms > 0 else None
        if self._cluster and len(stream_cursors) > 1:
            parts = await asyncio.gather(*(self.read_after({k: v}, count, block_ms) for k, v in stream_cursors.items()))
            return [item for part in parts for item in part]
        reply = await self._call("XREAD", lambda: self.client.xread(stream_cursors, count=count, block=block),
                                 extra_s=max(block_ms, 0) / 1000)
        out: list[tuple[str, Event]] = []
        for stream, entries in _xread_items(reply):
            key = _text(stream)
            out.extend((key, event) for event in _events(key, entries))
        return out

    async def range_after(self, stream: str, last_id: str, count: int) -> list[Event]:
        """See :meth:`Bus.range_after`."""
        parse_id(last_id)
        entries = await self._call("XRANGE", lambda: self.client.xrange(stream, min=f"({last_id}", count=count))
        return _events(stream, entries)

    async def info(self, stream: str) -> StreamInfo:
        """See :meth:`Bus.info` (``XINFO STREAM``; an absent stream is empty)."""

        async def op() -> Any:
            try:
                return await self.client.xinfo_stream(stream)
            except ResponseError as exc:
                if "no such key" in str(exc).lower():
                    return None
                raise

        raw = await self._call("XINFO STREAM", op)
        if raw is None:
            return StreamInfo()
        first = raw.get("first-entry")
        prev = ZERO_ID
        if first:
            fields = first[1] or {}
            prev = _text(fields.get(b"prev", fields.get("prev", ZERO_ID)))
        return StreamInfo(last_id=_text(raw.get("last-generated-id") or ZERO_ID),
                          first_id=_text(first[0]) if first else None, trimmed_upto_id=prev,
                          length=int(raw.get("length", 0)))

    async def close(self) -> None:
        """Close the client if the bus built it (a client passed in stays its owner's)."""
        if self._owned:
            await self.client.aclose()


def _xread_items(reply: Any) -> list[tuple[Any, list]]:
    """XREAD's reply as ``[(stream, entries)]`` (RESP2 gives a list, RESP3 a dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [(k, v[0] if v and isinstance(v[0], list) and len(v) == 1 and isinstance(v[0][0], list) else v)
                for k, v in reply.items()]
    return [(stream, entries) for stream, entries in reply]


def _events(stream: str, entries: list) -> list[Event]:
    out: list[Event] = []
    for stream_id, fields in entries or ():
        try:
            out.append(event_from_fields(_text(stream_id), fields))
        except ValueError:
            log.warning("bus_entry_unreadable", stream=stream, id=_text(stream_id))
    return out
