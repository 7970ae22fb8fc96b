"""Connection status per (venue, stream kind): kept by the owner, seen by every instance.

The owner of a stream keeps a :class:`StreamStatus` and writes it to Redis every heartbeat
under ``exgate:stream:status:{venue}:{kind}`` with a TTL of three heartbeats, so a status that
stops being renewed disappears with its owner. ``GET /v1/exchanges``, ``GET /v1/{exchange}/streams``,
``exgate streams status`` and ``/metrics`` read it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class StreamState(StrEnum):
    """Where a stream stands."""

    STARTING = "starting"
    """Subscribing: no message yet since (re)connecting."""
    LIVE = "live"
    """Messages arrive; its cache entries are served."""
    STALLED = "stalled"
    """No message for longer than its stall time: reconnecting; reads go to REST."""
    RECONNECTING = "reconnecting"
    """The socket failed or a sequence broke: waiting out the backoff; reads go to REST."""
    STOPPED = "stopped"
    """Not running (idle start, or stopped by a control command)."""
    STANDBY = "standby"
    """Another instance owns it (this instance reads what that one writes)."""


class StreamStatus(BaseModel):
    """Status of one venue's stream kind (all its symbols together).

    Times are ms since the epoch; ``last_message_age_ms`` is measured when the status is read;
    ``messages_per_s`` over the last heartbeat interval."""

    venue: str
    kind: str
    state: StreamState
    owner: str | None = None
    symbols: list[str] = []
    connected_since_ms: int | None = None
    last_message_ms: int | None = None
    last_message_age_ms: int | None = None
    reconnects: int = 0
    gaps: int = 0
    resets: int = 0
    """Venue-sent book resets (Bybit ``u=1`` snapshots): applied, not counted as gaps."""
    stalls: int = 0
    messages: int = 0
    messages_per_s: float = 0.0
    last_error: str | None = None


def status_key(venue: str, kind: str) -> str:
    """Redis key of a stream's status record."""
    return "exgate:stream:status:{" + venue + "}:" + kind


def status_of(venue: str, kind: str, counters: Any, *, owner: str, symbols: list[str], now_ms: int, stall_ms: int,
              since_beat: tuple[int, int] | None = None, resets: int = 0) -> StreamStatus:
    """The status of a stream kind this instance runs, from its
    :class:`~exgate.streams.worker.Counters` at ``now_ms``: live while some symbol's stream is
    (stalled once no message came for ``stall_ms``), reconnecting after failures, else
    starting. ``since_beat``: ``(ms, messages)`` at the last heartbeat, for messages/s."""
    before_ms, before_n = since_beat or (now_ms, counters.messages)
    rate = (counters.messages - before_n) * 1000 / (now_ms - before_ms) if now_ms > before_ms else 0.0
    last = counters.last_message_ms
    if counters.live:
        state = StreamState.STALLED if last is not None and now_ms - last > stall_ms else StreamState.LIVE
    else:
        state = StreamState.RECONNECTING if counters.reconnects else StreamState.STARTING
    return StreamStatus(venue=venue, kind=kind, state=state, owner=owner, symbols=symbols,
                        connected_since_ms=counters.connected_since_ms, last_message_ms=last,
                        last_message_age_ms=None if last is None else max(0, now_ms - last),
                        reconnects=counters.reconnects, gaps=counters.gaps, resets=resets, stalls=counters.stalls,
                        messages=counters.messages, messages_per_s=round(rate, 1), last_error=counters.last_error)


async def write_status(store: Any, status: StreamStatus, ttl_ms: int) -> None:
    """Publish ``status`` for the other instances (Redis, through the cache's breaker)."""
    client = store.client
    body = status.model_dump_json().encode()
    await store.call(lambda: client.set(status_key(status.venue, status.kind), body, px=ttl_ms))


async def read_status(store: Any, venue: str, kind: str, now_ms: int) -> StreamStatus:
    """The owner's record of a stream kind (its last message age measured now), or
    ``standby`` when there is none (no owner yet, Redis unreachable, or no Redis)."""
    if store is not None:
        client = store.client
        raw = await store.call(lambda: client.get(status_key(venue, kind)))
        if isinstance(raw, bytes):
            try:
                status = StreamStatus.model_validate_json(raw)
            except ValueError:
                status = None
            if status is not None:
                if status.last_message_ms is not None:
                    status.last_message_age_ms = max(0, now_ms - status.last_message_ms)
                return status
    return StreamStatus(venue=venue, kind=kind, state=StreamState.STANDBY)
