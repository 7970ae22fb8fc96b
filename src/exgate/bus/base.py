"""The bus interface (:class:`Bus`) shared by :class:`~exgate.bus.redis_bus.RedisBus` and
:class:`~exgate.bus.memory.MemoryBus`, and its one error."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

from exgate.bus.events import ZERO_ID, Event, EventKind, stream_key
from exgate.errors import ExgateError

DEFAULT_MAXLEN = 10_000
"""Events kept per stream (about: Redis trims with ``MAXLEN ~``, a little over it)."""

DEFAULT_MAXLEN_BY_KIND: dict[EventKind, int] = {EventKind.BOOK: 2_000}
"""Kinds kept shorter by default: a book event is ~2-3 KB (20 levels a side), ten times a ticker."""


class BusUnavailable(ExgateError):
    """The bus could not be used: Redis errored, timed out, or its circuit is open (503).

    Raised by every :class:`RedisBus` call instead of a redis-py error; the caller retries later
    (the client stream tells its client and closes; the ingest side keeps its own buffer).
    """

    status = 503
    title = "Event bus unavailable"


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a stream holds now.

    Attributes:
        last_id: the id of the newest event ever added (``"0-0"``: none yet); a reader that
            starts "from now" starts after it.
        first_id: the oldest event still kept (``None``: empty).
        trimmed_upto_id: the id of the newest event trimmed away (``"0-0"``: nothing
            trimmed). A cursor older than it has lost events.
        length: events kept.
    """

    last_id: str = ZERO_ID
    first_id: str | None = None
    trimmed_upto_id: str = ZERO_ID
    length: int = 0


class Bus(abc.ABC):
    """Exchange-scoped event streams: publish normalized events, read them after a cursor.

    One stream per (venue, kind), :func:`~exgate.bus.events.stream_key`; each keeps the last
    ``maxlen`` events (``maxlen_by_kind`` for the kinds it names). Ids are ``"<ms>-<seq>"`` and increase along a stream.
    """

    maxlen: int
    maxlen_by_kind: dict[EventKind, int]

    def maxlen_of(self, kind: EventKind) -> int:
        """Events kept in a stream of ``kind``."""
        return self.maxlen_by_kind.get(kind, self.maxlen)

    @staticmethod
    def stream_key(venue: str, kind: EventKind | str) -> str:
        """``exgate:ev:{venue}:{kind}``."""
        return stream_key(venue, kind)

    @abc.abstractmethod
    async def publish(self, venue: str, kind: EventKind, data: dict[str, Any], *, symbol: str | None = None,
                      asset: str | None = None, name: str | None = None) -> str:
        """Append one event to ``venue``'s ``kind`` stream; returns its id.

        Args:
            venue: exgate venue id (``binanceusdm``), also the event's ``source_exchange_id``.
            kind: the stream's kind.
            data: the normalized model, JSON-ready (decimal strings, int ms).
            symbol: ccxt unified symbol, when the event is about one market.
            asset: base asset (``BTC``), when the event is about one market.
            name: the venue's display name (``source_exchange_name``); default ``venue``.

        Raises:
            BusUnavailable: Redis failed (Redis bus only).
            TypeError: ``data`` is not JSON-encodable.
        """

    async def publish_many(self, venue: str, kind: EventKind,
                           items: list[tuple[dict[str, Any], str | None, str | None]], *,
                           name: str | None = None) -> list[str]:
        """Publish several events of one stream, in order: ``items`` are ``(data, symbol,
        asset)``; returns their ids. The Redis bus sends them in one round trip.

        Raises:
            BusUnavailable: Redis failed (Redis bus only; none of the batch may be kept, or part).
            TypeError: an item's ``data`` is not JSON-encodable (nothing published).
        """
        return [await self.publish(venue, kind, data, symbol=symbol, asset=asset, name=name)
                for data, symbol, asset in items]

    @abc.abstractmethod
    async def read_after(self, stream_cursors: dict[str, str], count: int, block_ms: int) -> list[tuple[str, Event]]:
        """Events after each stream's cursor (``stream key → last id seen``), at most ``count``
        per stream, in stream order per stream; waits up to ``block_ms`` (0: do not wait) for
        the first when there is none yet. ``[]`` when the wait ran out.

        Raises:
            BusUnavailable: Redis failed (Redis bus only).
        """

    @abc.abstractmethod
    async def range_after(self, stream: str, last_id: str, count: int) -> list[Event]:
        """Up to ``count`` kept events of ``stream`` after ``last_id`` (exclusive), oldest
        first, without waiting: the replay of a resumed client.

        Raises:
            BusUnavailable: Redis failed (Redis bus only).
        """

    @abc.abstractmethod
    async def info(self, stream: str) -> StreamInfo:
        """What ``stream`` holds now (an absent stream: the empty :class:`StreamInfo`).

        Raises:
            BusUnavailable: Redis failed (Redis bus only).
        """

    async def close(self) -> None:  # noqa: B027 - the memory bus has nothing to close
        """Release connections (a closed bus is not used again)."""


def check_maxlen(maxlen: int, by_kind: dict[EventKind, int] | None) -> dict[EventKind, int]:
    """``by_kind`` over :data:`DEFAULT_MAXLEN_BY_KIND` (``None``: the defaults, each at most ``maxlen``).

    Raises:
        ValueError: a length below 1.
    """
    chosen = {k: min(v, maxlen) for k, v in DEFAULT_MAXLEN_BY_KIND.items()} if by_kind is None \
        else {EventKind(k): v for k, v in by_kind.items()}
    if maxlen < 1 or any(v < 1 for v in chosen.values()):
        raise ValueError("maxlen must be at least 1")
    return chosen
