"""Streams: WebSocket ingest that keeps the cache fresh.

The public face: :class:`StreamSupervisor` (run it as an async context manager beside the
cache; ``start``/``stop``/``statuses``/``plan``/``note_read``), :class:`StreamConfig`, the read
side :class:`LiveView` (what :class:`~exgate.service.MarketData` asks before the REST path),
:class:`StreamKind`, :class:`StreamStatus`/:class:`StreamState` and :class:`TierEntry`.
"""

from exgate.streams.kinds import StreamKind
from exgate.streams.live import LiveView, live_key
from exgate.streams.status import StreamState, StreamStatus
from exgate.streams.supervisor import StreamConfig, StreamSupervisor
from exgate.streams.tiers import TierEntry

__all__ = ["LiveView", "StreamConfig", "StreamKind", "StreamState", "StreamStatus", "StreamSupervisor",
           "TierEntry", "live_key"]
