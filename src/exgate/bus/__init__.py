"""The exchange-scoped event bus, the client stream's sessions and the control channel.

Publish (the ingest supervisor)::

    bus = RedisBus(redis_url)            # or MemoryBus() without Redis
    event_id = await bus.publish("binanceusdm", EventKind.LIQUIDATION, liquidation_dict,
                                 symbol="BTC/USDT:USDT", asset="BTC", name="Binance USDⓈ-M")

Read: :meth:`Bus.read_after` (live, blocking), :meth:`Bus.range_after` (replay); clients use
``WS /v1/stream`` and ``GET /v1/stream/sse`` (:mod:`exgate.http.stream_routes`) through a
:class:`Hub` (one reader per stream per process) and a :class:`ClientSession` per client.

Control: :func:`publish_control` / :class:`ControlListener` on ``exgate:control``
(:mod:`exgate.bus.control`; ``app.state.control`` is a :class:`~exgate.bus.control.ControlChannel`).
"""

from exgate.bus.base import DEFAULT_MAXLEN, Bus, BusUnavailable, StreamInfo
from exgate.bus.events import STREAM_PREFIX, Event, EventKind, stream_key
from exgate.bus.fanout import Hub
from exgate.bus.memory import MemoryBus
from exgate.bus.redis_bus import RedisBus
from exgate.bus.session import ClientSession, StreamOptions

__all__ = [
    "DEFAULT_MAXLEN", "STREAM_PREFIX", "Bus", "BusUnavailable", "ClientSession", "Event", "EventKind", "Hub",
    "MemoryBus", "RedisBus", "StreamInfo", "StreamOptions", "stream_key",
]
