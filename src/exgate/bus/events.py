"""The bus's data: event kinds, the :class:`Event` record, stream keys and stream ids.

A stream is one venue's events of one kind, the Redis stream ``exgate:ev:{venue}:{kind}``
(exchange-scoped, so a Redis Cluster shards the bus by venue). Its ids are Redis stream ids,
``"<ms>-<seq>"``: the publish time in ms and a sequence within that ms, increasing along the
stream; the in-process bus makes the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import orjson

STREAM_PREFIX: Final = "exgate:ev:"
"""Every bus stream key starts with it: ``exgate:ev:{venue}:{kind}``."""


class EventKind(StrEnum):
    """What an event carries; the last part of its stream key and the ``kind`` of a channel."""

    TICKER = "ticker"
    TRADES = "trades"
    BOOK = "book"
    CANDLE = "candle"
    LIQUIDATION = "liquidation"
    STATUS = "status"


def stream_key(venue: str, kind: EventKind | str) -> str:
    """``exgate:ev:{venue}:{kind}``: the Redis stream of ``venue``'s events of ``kind``."""
    return f"{STREAM_PREFIX}{venue}:{EventKind(kind).value}"


def split_stream_key(stream: str) -> tuple[str, EventKind]:
    """``(venue, kind)`` of a stream key made by :func:`stream_key`.

    Raises:
        ValueError: not a bus stream key.
    """
    if not stream.startswith(STREAM_PREFIX):
        raise ValueError(f"not a bus stream key: {stream!r}")
    venue, sep, kind = stream[len(STREAM_PREFIX):].rpartition(":")
    if not sep or not venue:
        raise ValueError(f"not a bus stream key: {stream!r}")
    return venue, EventKind(kind)


def parse_id(stream_id: str) -> tuple[int, int]:
    """``(ms, seq)`` of a stream id ``"<ms>-<seq>"`` (a bare ``"<ms>"`` means seq 0).

    Raises:
        ValueError: not a stream id.
    """
    ms, _, seq = stream_id.partition("-")
    if not ms.isdigit() or (seq and not seq.isdigit()) or len(stream_id) > 41:
        raise ValueError(f"not a stream id: {stream_id!r}")
    return int(ms), int(seq or 0)


def format_id(ms: int, seq: int) -> str:
    """The stream id ``"<ms>-<seq>"``."""
    return f"{ms}-{seq}"


ZERO_ID: Final = "0-0"
"""Before every event: a cursor at it reads a stream from its start."""


@dataclass(frozen=True, slots=True)
class Event:
    """One normalized event on the bus.

    Attributes:
        id: its stream id ``"<ms>-<seq>"`` (unique and increasing within its stream).
        venue: the exgate venue id that produced it (``binanceusdm``).
        kind: what it carries.
        symbol: the ccxt unified symbol (``BTC/USDT:USDT``), ``None`` for venue-wide events.
        asset: the base asset (``BTC``), ``None`` for venue-wide events.
        data: the normalized model as a JSON-ready dict (decimals as strings, times in ms).
        source_exchange_id: the venue id again, named for consumers of mixed feeds.
        source_exchange_name: the venue's display name (``Binance USDⓈ-M``).
        ts_ms: when it was published (ms since the epoch, the publisher's clock).
    """

    id: str
    venue: str
    kind: EventKind
    symbol: str | None
    asset: str | None
    data: dict[str, Any] = field(hash=False, compare=True)
    source_exchange_id: str = ""
    source_exchange_name: str = ""
    ts_ms: int = 0

    @property
    def stream(self) -> str:
        """The stream key it was published on."""
        return stream_key(self.venue, self.kind)

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (``kind`` as its string value; ``data`` is the event's
        own dict, not a copy: read it, do not change it)."""
        return {"id": self.id, "venue": self.venue, "kind": self.kind.value, "symbol": self.symbol,
                "asset": self.asset, "data": self.data, "source_exchange_id": self.source_exchange_id,
                "source_exchange_name": self.source_exchange_name, "ts_ms": self.ts_ms}

    def to_json(self) -> str:
        """The event as a JSON text: :meth:`to_dict` encoded."""
        return orjson.dumps(self.to_dict()).decode()


def event_fields(venue: str, kind: EventKind, data: dict[str, Any], *, symbol: str | None, asset: str | None,
                 name: str, ts_ms: int) -> dict[str, bytes | str]:
    """The Redis stream fields an event is stored as (``symbol``/``asset`` only when set).

    Raises:
        TypeError: ``data`` is not JSON-encodable (a ``Decimal`` not turned into a string, ...).
    """
    fields: dict[str, bytes | str] = {"venue": venue, "kind": kind.value, "name": name, "ts": str(ts_ms),
                                      "data": orjson.dumps(data)}
    if symbol is not None:
        fields["symbol"] = symbol
    if asset is not None:
        fields["asset"] = asset
    return fields


def event_from_fields(stream_id: str, fields: dict[bytes | str, bytes | str]) -> Event:
    """The :class:`Event` stored under ``stream_id`` with ``fields`` (see :func:`event_fields`).

    Raises:
        ValueError: a field is missing or unreadable (an entry exgate did not write).
    """
    def text(name: str) -> str | None:
        value = fields.get(name, fields.get(name.encode()))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else value

    try:
        venue, kind, raw = text("venue"), text("kind"), fields.get("data", fields.get(b"data"))
        if venue is None or kind is None or raw is None:
            raise ValueError("missing venue, kind or data")
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("data is not an object")
        return Event(id=stream_id if isinstance(stream_id, str) else stream_id.decode(), venue=venue,
                     kind=EventKind(kind), symbol=text("symbol"), asset=text("asset"), data=data,
                     source_exchange_id=venue, source_exchange_name=text("name") or venue,
                     ts_ms=int(text("ts") or 0))
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"unreadable bus entry {stream_id!r}: {exc}") from None
