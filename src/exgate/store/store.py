"""The store: tenants, seeded exchanges and users' exchange connections in SQL (SQLAlchemy 2 async)."""

from __future__ import annotations

import hashlib
import secrets as _random
import time
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from exgate.errors import BadRequest, echo
from exgate.store.connections import ConnectionsMixin
from exgate.store.engine import make_engine, reader
from exgate.store.errors import Conflict
from exgate.store.migrate import _current, head
from exgate.store.models import ExchangeKind, ExchangeRow, Tenant
from exgate.store.secrets import SecretBox
from exgate.store.tables import ExchangeTable, TenantTable
from exgate.store.urls import async_url

KEY_PREFIX = "exg_"
NAME_MAX = 100


def wall_ms() -> int:
    """Wall-clock time in integer ms since the epoch."""
    return time.time_ns() // 1_000_000


def key_hash(key: str) -> str:
    """The sha256 hex digest a tenant key is stored as (the key itself is never stored)."""
    return hashlib.sha256(key.encode()).hexdigest()


def _tenant(row: TenantTable) -> Tenant:
    return Tenant(id=row.id, name=row.name, created_at=row.created_at, revoked_at=row.revoked_at)


def _exchange(row: ExchangeTable) -> ExchangeRow:
    return ExchangeRow(id=row.id, ccxt_id=row.ccxt_id, name=row.name, kind=ExchangeKind(row.kind),
                       capabilities=dict(row.capabilities))


class Store(ConnectionsMixin):
    """All SQL state of exgate, on one async engine.

    Args:
        url: SQLAlchemy URL; ``sqlite:///``/``postgresql://`` are mapped to the async drivers
            (``sqlite+aiosqlite``, ``postgresql+asyncpg``), see :func:`exgate.store.database_url`.
        secrets: the :class:`SecretBox` of ``EXGATE_SECRET_KEYS``; ``None``: connections can be
            listed, resolved, updated and deleted, but not created nor their credentials read
            (:class:`~exgate.store.SecretsUnavailable`, 503).
        clock: time in integer ms (tests inject one); default the wall clock.

    The engine connects lazily; call :meth:`close` at shutdown. The store does not migrate: run
    ``exgate db upgrade`` (or :func:`exgate.store.upgrade_async`), check with :meth:`is_migrated`.
    """

    def __init__(self, url: str, secrets: SecretBox | None, *, clock: Callable[[], int] = wall_ms) -> None:
        self.url = async_url(url)
        self._secrets = secrets
        self._clock = clock
        self._engine = make_engine(self.url)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
        self._readers = async_sessionmaker(reader(self._engine), expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Store({self._engine.url!r}, secrets={'set' if self._secrets else 'unset'})"  # URL repr masks the password

    @property
    def engine(self):
        """The store's async engine (shared by :mod:`exgate.connectors` for its table)."""
        return self._engine

    @property
    def secrets_available(self) -> bool:
        """True when ``EXGATE_SECRET_KEYS`` (or a generated sandbox key) is set."""
        return self._secrets is not None

    def _session(self) -> AsyncSession:
        return self._sessions()

    def _reading(self) -> AsyncSession:
        """A session for reads only (SQLite: no write lock taken; see :func:`exgate.store.engine.reader`)."""
        return self._readers()

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._engine.dispose()

    async def is_migrated(self) -> bool:
        """True when the database is at the Alembic head revision."""
        async with self._engine.connect() as connection:
            return await connection.run_sync(_current) == head()

    # -- tenants

    async def create_tenant(self, name: str) -> tuple[Tenant, str]:
        """A new tenant and its API key (``exg_`` + 43 url-safe chars), the only time the key exists
        in clear: the table keeps its sha256 hash.

        Raises:
            BadRequest: ``name`` empty, longer than 100 chars or holding control characters.
            Conflict: a tenant with that name exists (revoked ones too).
        """
        name = _check_name(name)
        key = KEY_PREFIX + _random.token_urlsafe(32)
        try:
            async with self._session() as session, session.begin():
                row = TenantTable(name=name, key_hash=key_hash(key), created_at=self._clock(), revoked_at=None)
                session.add(row)
                await session.flush()
                return _tenant(row), key
        except IntegrityError:
            raise Conflict(f"name: a tenant named {echo(name)} already exists (names are unique; revoked"
                           " tenants keep theirs)", field="name") from None

    async def rekey_tenant(self, name: str) -> str | None:
        """A new API key for the tenant named ``name`` (printed once by ``exgate tenants rekey``);
        the old key stops working at once. ``None`` if there is no such tenant. This is how the
        ``legacy-pacifica`` tenant of migration 0002 gets its first usable key.

        Raises:
            Conflict: the tenant is revoked (revocation is final; create a new tenant).
        """
        key = KEY_PREFIX + _random.token_urlsafe(32)
        async with self._session() as session, session.begin():
            row = await session.scalar(select(TenantTable).where(TenantTable.name == name))
            if row is None:
                return None
            if row.revoked_at is not None:
                raise Conflict(f"name: tenant {echo(name)} is revoked; revocation is final (create a new tenant)",
                               field="name")
            await session.execute(update(TenantTable).where(TenantTable.id == row.id).values(key_hash=key_hash(key)))
            return key

    async def tenant_by_key(self, key: str) -> Tenant | None:
        """The tenant whose API key is ``key``; ``None`` if no tenant has it or it is revoked."""
        if not key:
            return None
        async with self._reading() as session:
            row = await session.scalar(select(TenantTable).where(TenantTable.key_hash == key_hash(key)))
            return _tenant(row) if row is not None and row.revoked_at is None else None

    async def tenant(self, name: str) -> Tenant | None:
        """The tenant named ``name`` (revoked or not), or ``None``."""
        async with self._reading() as session:
            row = await session.scalar(select(TenantTable).where(TenantTable.name == name))
            return _tenant(row) if row is not None else None

    async def list_tenants(self) -> list[Tenant]:
        """Every tenant, oldest first, revoked ones included."""
        async with self._reading() as session:
            return [_tenant(r) for r in await session.scalars(select(TenantTable).order_by(TenantTable.id))]

    async def revoke_tenant(self, name: str) -> bool:
        """Revoke the tenant named ``name`` (its key stops working; its connections stay).
        Revoking a revoked tenant keeps the first ``revoked_at``. False if there is no such tenant."""
        async with self._session() as session, session.begin():
            row = await session.scalar(select(TenantTable).where(TenantTable.name == name))
            if row is None:
                return False
            if row.revoked_at is None:
                await session.execute(update(TenantTable).where(TenantTable.id == row.id)
                                      .values(revoked_at=self._clock()))
            return True

    # -- exchanges

    async def exchanges(self) -> list[ExchangeRow]:
        """Every seeded exchange, by id."""
        async with self._reading() as session:
            return [_exchange(r) for r in await session.scalars(select(ExchangeTable).order_by(ExchangeTable.id))]

    async def exchange(self, id: str) -> ExchangeRow | None:
        """The exchange ``id`` (``binanceusdm``), or ``None``."""
        async with self._reading() as session:
            row = await session.get(ExchangeTable, id)
            return _exchange(row) if row is not None else None


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise BadRequest(f"name: a tenant name is 1 to {NAME_MAX} printable characters (got {echo(name)})",
                         field="name")
    return name
