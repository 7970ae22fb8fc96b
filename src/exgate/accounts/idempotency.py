"""``Idempotency-Key`` records of order requests, shared by every instance through Redis.

The first request with a key claims it (``SET NX`` of a pending marker with a lease); a
concurrent request with the same key, on any instance, waits for the first one's answer and
returns it, and so does every later retry while the record lives (24 h). A request that fails
in a way a corrected retry should not be blocked by (bad input, a venue rejection) releases the
claim: nothing is recorded. Without Redis (or with Redis down) the records live in this
process only.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import orjson
import structlog

log = structlog.get_logger("exgate.accounts")

RECORD_TTL_MS = 24 * 3_600_000
"""How long an answered key is remembered."""

PENDING = b"pending"

LOCAL_PRUNE_AT = 10_000
"""In-process records past which expired ones are dropped on the next write."""


@dataclass(frozen=True)
class Recorded:
    """A stored answer: HTTP ``status`` and JSON ``body`` bytes."""

    status: int
    body: bytes

    def encode(self) -> bytes:
        return orjson.dumps({"status": self.status, "body": self.body.decode()})

    @classmethod
    def decode(cls, raw: bytes) -> Recorded:
        data = orjson.loads(raw)
        return cls(int(data["status"]), data["body"].encode())


class InProgress(Exception):
    """Another request with the same key is still running past the wait."""


class Idempotency:
    """Claims and answers of idempotency keys.

    Args:
        redis: a redis-py asyncio client (``None``: this process only).
        lease_ms: how long a claim holds without an answer (the order's whole budget: the
            upstream timeout, the lookup after it, plus a margin); past it another request may claim.
    """

    def __init__(self, redis=None, *, lease_ms: int = 30_000, poll_ms: int = 25):
        self.redis = redis
        self.lease_ms = lease_ms
        self.poll_ms = poll_ms
        self._local: dict[str, tuple[bytes, float]] = {}  # key -> (value, expires monotonic)

    # -- storage -------------------------------------------------------------------------------
    async def _set_nx(self, key: str, value: bytes, ttl_ms: int) -> bool:
        if self.redis is not None:
            try:
                return bool(await self.redis.set(key, value, nx=True, px=ttl_ms))
            except Exception as exc:  # noqa: BLE001 - Redis down: this process's records only
                log.warning("idempotency_redis_down", error=type(exc).__name__)
        now = time.monotonic()
        held = self._local.get(key)
        if held is not None and held[1] > now:
            return False
        self._keep(key, value, ttl_ms)
        return True

    async def _get(self, key: str) -> bytes | None:
        if self.redis is not None:
            try:
                return await self.redis.get(key)
            except Exception as exc:  # noqa: BLE001
                log.warning("idempotency_redis_down", error=type(exc).__name__)
        held = self._local.get(key)
        return held[0] if held is not None and held[1] > time.monotonic() else None

    async def _put(self, key: str, value: bytes, ttl_ms: int) -> None:
        if self.redis is not None:
            try:
                await self.redis.set(key, value, px=ttl_ms)
                return
            except Exception as exc:  # noqa: BLE001
                log.warning("idempotency_redis_down", error=type(exc).__name__)
        self._keep(key, value, ttl_ms)

    def _keep(self, key: str, value: bytes, ttl_ms: int) -> None:
        """Store in this process, dropping expired records first once there are many (the
        records would otherwise pile up for their 24 h)."""
        now = time.monotonic()
        if len(self._local) >= LOCAL_PRUNE_AT:
            self._local = {k: v for k, v in self._local.items() if v[1] > now}
        self._local[key] = (value, now + ttl_ms / 1000)

    async def _delete(self, key: str) -> None:
        self._local.pop(key, None)
        if self.redis is not None:
            try:
                await self.redis.delete(key)
            except Exception as exc:  # noqa: BLE001
                log.warning("idempotency_redis_down", error=type(exc).__name__)

    # -- protocol ------------------------------------------------------------------------------
    async def claim(self, key: str) -> Recorded | None:
        """Claim ``key``: ``None`` when this request owns it now (it must :meth:`answer` or
        :meth:`release`), else the recorded answer of the request that owned it (waiting for
        it while it is pending).

        Raises:
            InProgress: the owner has not answered within the lease.
        """
        deadline = time.monotonic() + self.lease_ms / 1000
        while True:
            if await self._set_nx(key, PENDING, self.lease_ms):
                return None
            raw = await self._get(key)
            if raw is not None and raw != PENDING:
                return Recorded.decode(raw)
            if time.monotonic() >= deadline:
                raise InProgress("a request with this Idempotency-Key is still in progress")
            await asyncio.sleep(self.poll_ms / 1000)

    async def answer(self, key: str, recorded: Recorded) -> None:
        """Record the owner's answer for every retry of ``key`` (for :data:`RECORD_TTL_MS`)."""
        await self._put(key, recorded.encode(), RECORD_TTL_MS)

    async def release(self, key: str) -> None:
        """Drop the claim: the request failed without effect, a retry may go ahead."""
        await self._delete(key)
