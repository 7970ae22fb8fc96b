"""Stream status records: what each ingest stream's owner reports about it, kept in Redis under
``exgate:stream:status:{venue}:{stream}`` as JSON with a TTL (a record that is not refreshed
expires: its owner is gone). Written by the ingest supervisor (:func:`write_status`), read by
``exgate streams status`` (:func:`read_statuses`)."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

import orjson

from exgate.cache.client import Client

STATUS_PREFIX: Final = "exgate:stream:status:"


def status_key(venue: str, stream: str) -> str:
    """``exgate:stream:status:{venue}:{stream}``."""
    return f"{STATUS_PREFIX}{venue}:{stream}"


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """One upstream stream as its owner sees it.

    Attributes:
        venue: exgate venue id.
        stream: the stream's name (e.g. ``liquidation``, ``ticker:BTC/USDT:USDT``).
        instance: the owner instance (``host:pid``).
        state: e.g. ``starting``, ``connected``, ``reconnecting``, ``stopped``, ``failed``.
        connected_since_ms: when the current connection opened (ms; ``None``: not connected).
        last_message_ms: when the last upstream message arrived (ms; ``None``: none yet).
        reconnects: reconnections since the owner started it.
        gaps: sequence gaps met (each one resynchronised).
        msgs_per_s: recent upstream message rate.
        updated_ms: when this record was written (ms).
    """

    venue: str
    stream: str
    instance: str
    state: str
    connected_since_ms: int | None = None
    last_message_ms: int | None = None
    reconnects: int = 0
    gaps: int = 0
    msgs_per_s: float = 0.0
    updated_ms: int = 0

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> StreamStatus:
        """Raises: ValueError: not a status record (missing keys, not JSON)."""
        try:
            data: dict[str, Any] = orjson.loads(raw)
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (orjson.JSONDecodeError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a stream status record: {exc}") from None


async def write_status(client: Client, status: StreamStatus, ttl_ms: int, *, timeout_ms: int = 1_000) -> None:
    """Store ``status`` under its key for ``ttl_ms``.

    Raises:
        redis.RedisError, TimeoutError: Redis failed (the supervisor retries at its next beat).
    """
    async with asyncio.timeout(timeout_ms / 1000):
        await client.set(status_key(status.venue, status.stream), status.to_json(), px=ttl_ms)


async def read_statuses(client: Client, *, venue: str | None = None, limit: int = 10_000,
                        timeout_ms: int = 5_000) -> list[StreamStatus]:
    """Every live status record (of ``venue`` only when given), sorted by venue and stream;
    unreadable records are skipped. ``SCAN`` (every primary of a cluster), then ``GET``s.

    Raises:
        redis.RedisError, TimeoutError: Redis failed.
    """
    pattern = f"{status_key(venue, '*') if venue else STATUS_PREFIX + '*'}"
    out: list[StreamStatus] = []
    async with asyncio.timeout(timeout_ms / 1000):
        keys = []
        async for key in client.scan_iter(match=pattern, count=500):  # a cluster client scans every primary
            keys.append(key)
            if len(keys) >= limit:
                break
        for key in keys:
            raw = await client.get(key)
            if raw is None:
                continue  # expired between the scan and the read
            try:
                out.append(StreamStatus.from_json(raw))
            except ValueError:
                continue
    return sorted(out, key=lambda s: (s.venue, s.stream))
