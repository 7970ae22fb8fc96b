"""Connection status per (venue, stream kind): kept by the owner, seen by every instance.

The owner of a stream keeps a :class:`StreamStatus` and writes it to Redis every heartbeat
under ``exgate:stream:status:{venue}:{kind}`` with a TTL of three heartbeats, so a status that
stops being renewed disappears with its owner. ``GET /v1/exchanges``, ``GET /v1/{exchange}/streams``,
``exgate streams status`` and ``/metrics`` read it.
"""

from __future__ import annotations

from enum import StrEnum

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
