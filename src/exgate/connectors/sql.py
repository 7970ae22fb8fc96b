"""The SQL tier of connector state: the ``connector_state`` table, failing open.

Every call is bounded by a timeout; an unreachable (or unmigrated) database makes it answer
"unavailable" (:data:`DOWN`), logs one warning for the life of this object (one per gateway
process) and is not tried again for :data:`RETRY_MS`, so a request never waits on it twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import structlog
from sqlalchemy import and_, delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from exgate.connectors.entry import Corrupt, Kind, StateEntry, StateKey
from exgate.store.engine import reader
from exgate.store.tables import ConnectorStateTable as T

log = structlog.get_logger("exgate.connectors")
R = TypeVar("R")

RETRY_MS = 30_000
"""After a failure the database is left alone this long (real time)."""


class _Down:
    def __repr__(self) -> str:
        return "DOWN"


DOWN: Final = _Down()
_ERRORS = (SQLAlchemyError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class RowInfo:
    """An entry's figures without its payload (for statistics)."""

    key: StateKey
    valid: bool
    synced_at_ms: int
    expires_at_ms: int
    hits: int


def _key_filter(key: StateKey) -> Any:
    return and_(T.venue == key.venue, T.scope == key.scope, T.environment == key.environment,
                T.kind == key.kind.value)


class SqlState:
    """``connector_state`` on ``engine`` (the store's), every call fail-open (see the module).

    Args:
        engine: the store's async engine (``None``: no database, every call is ``DOWN`` quietly).
        timeout_ms: longest a call may take.
    """

    def __init__(self, engine: AsyncEngine | None, *, timeout_ms: int = 3_000):
        self.engine = engine
        self.timeout_s = timeout_ms / 1000
        self.available = engine is not None
        self.warnings = 0
        """Warnings logged: at most one for the life of this object."""
        self.failures = 0
        self._down_until = 0.0
        if engine is not None:
            self._sessions = async_sessionmaker(engine, expire_on_commit=False)
            self._readers = async_sessionmaker(reader(engine), expire_on_commit=False)

    async def _run(self, op: Callable[[], Awaitable[R]]) -> R | _Down:
        if self.engine is None or time.monotonic() < self._down_until:
            return DOWN
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await op()
        except _ERRORS as exc:
            self._down_until = time.monotonic() + RETRY_MS / 1000
            self.available = False
            self.failures += 1
            if not self.warnings:
                from exgate.store.migrate import db_error

                self.warnings = 1
                log.warning("connector_state_database_unavailable", error=db_error(exc),
                            detail="connector state runs on a cold path (syncs with the venues) until it answers")
            return DOWN
        self.available = True
        return result

    async def get(self, key: StateKey) -> StateEntry | None | Corrupt | _Down:
        """The row of ``key`` (valid or not), ``None`` when absent, the :class:`Corrupt` error
        when it is unreadable, ``DOWN`` when the database is."""

        async def op() -> StateEntry | None | Corrupt:
            async with self._readers() as session:
                row = (await session.execute(select(T.payload, T.rtt_ms, T.synced_at_ms, T.expires_at_ms, T.valid,
                                                    T.hits).where(_key_filter(key)))).first()
            if row is None:
                return None
            try:
                return StateEntry.from_row(key, *row)
            except Corrupt as exc:
                return exc

        return await self._run(op)

    async def put(self, entry: StateEntry, payload_json: str) -> bool:
        """Insert or overwrite the row of ``entry.key`` (valid, hits kept). False when down."""
        key = entry.key
        values = {"venue": key.venue, "scope": key.scope, "environment": key.environment, "kind": key.kind.value,
                  "payload": payload_json, "rtt_ms": entry.rtt_ms, "synced_at_ms": entry.synced_at_ms,
                  "expires_at_ms": entry.expires_at_ms, "valid": True, "hits": 0}

        async def op() -> bool:
            if self.engine.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            statement = insert(T).values(**values)
            statement = statement.on_conflict_do_update(
                index_elements=["venue", "scope", "environment", "kind"],
                set_={name: statement.excluded[name] for name in ("payload", "rtt_ms", "synced_at_ms",
                                                                   "expires_at_ms", "valid")})
            async with self._sessions() as session, session.begin():
                await session.execute(statement)
            return True

        return await self._run(op) is True

    async def rows(self, venue: str | None = None) -> list[RowInfo] | _Down:
        """Every row's figures (of ``venue``), without payloads."""

        async def op() -> list[RowInfo]:
            query = select(T.venue, T.scope, T.environment, T.kind, T.valid, T.synced_at_ms, T.expires_at_ms, T.hits)
            if venue is not None:
                query = query.where(T.venue == venue)
            async with self._readers() as session:
                found = (await session.execute(query)).all()
            out = []
            for v, scope, env, kind, valid, synced, expires, hits in found:
                try:
                    out.append(RowInfo(StateKey(v, scope, env, Kind(kind)), bool(valid), synced, expires, hits or 0))
                except ValueError:
                    continue
            return out

        return await self._run(op)

    async def invalidate(self, keys: Iterable[StateKey], synced_at_ms: int | None = None) -> list[StateKey] | _Down:
        """Mark the valid rows of ``keys`` invalid (only those synced at ``synced_at_ms`` when
        given: a newer sync is never undone); returns the keys changed."""
        keys = list(keys)

        async def op() -> list[StateKey]:
            changed = []
            async with self._sessions() as session, session.begin():
                for key in keys:
                    condition = and_(_key_filter(key), T.valid.is_(True))
                    if synced_at_ms is not None:
                        condition = and_(condition, T.synced_at_ms == synced_at_ms)
                    result = await session.execute(update(T).where(condition).values(valid=False))
                    if result.rowcount:
                        changed.append(key)
            return changed

        return await self._run(op)

    async def cleanup(self, now_ms: int) -> int | _Down:
        """Delete the rows expired at ``now_ms``; returns how many."""

        async def op() -> int:
            async with self._sessions() as session, session.begin():
                result = await session.execute(delete(T).where(T.expires_at_ms <= now_ms))
            return int(result.rowcount or 0)

        return await self._run(op)

    async def add_hits(self, hits: dict[StateKey, int]) -> bool:
        """Add ``hits`` to the rows' counters in one transaction. False when down."""

        async def op() -> bool:
            async with self._sessions() as session, session.begin():
                for key, count in hits.items():
                    await session.execute(update(T).where(_key_filter(key)).values(hits=T.hits + count))
            return True

        return await self._run(op) is True
