"""Exchange connections of :class:`~exgate.store.Store`: every call scoped by (tenant_id, user_id)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from exgate.errors import BadRequest, echo
from exgate.store.errors import Conflict, NotFound, SecretsUnavailable
from exgate.store.models import Connection
from exgate.store.secrets import SecretBox
from exgate.store.tables import EXCHANGE_UNIQUE, PRIMARY_INDEX, ConnectionTable, ExchangeTable, TenantTable

TEXT_MAX = 255


def _connection(row: ConnectionTable) -> Connection:
    connection = Connection(id=row.id, tenant_id=row.tenant_id, user_id=row.user_id, exchange=row.exchange,
                            account_id=row.account_id, settings=dict(row.settings or {}),
                            is_active=bool(row.is_active), is_primary=bool(row.is_primary),
                            connected_at=row.connected_at, updated_at=row.updated_at)
    object.__setattr__(connection, "_ciphertext", bytes(row.credentials))  # not a field: no repr, no asdict
    return connection


def _text(field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > TEXT_MAX:
        raise BadRequest(f"{field}: must be text of 1 to {TEXT_MAX} characters (got {echo(value)})", field=field)
    return value


def _settings(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest("settings: must be a JSON object", field="settings")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise BadRequest("settings: must be a JSON object of JSON values", field="settings") from None
    return dict(value)


def _credentials(value: object) -> dict[str, str]:
    # never echo anything of a credential dict, not even its values' types
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BadRequest("credentials: must be an object of text fields (ccxt credential names: apiKey, secret,"
                         " walletAddress, privateKey, ...)", field="credentials")
    return dict(value)


def _is_primary_clash(exc: IntegrityError) -> bool:
    """True when ``exc`` is the one-primary index (not the one-per-exchange constraint)."""
    message = str(exc.orig)
    if PRIMARY_INDEX in message:
        return True
    if EXCHANGE_UNIQUE in message or "exchange_connections.exchange" in message:
        return False
    return "exchange_connections.tenant_id, exchange_connections.user_id" in message  # SQLite names columns


def _primary_conflict(other: str | None = None) -> Conflict:
    which = f" (connection {other})" if other else ""
    return Conflict(f"is_primary: the user already has a primary connection{which}; set is_primary=false on it"
                    " first", field="is_primary", connection_id=other)


def _exchange_conflict(exchange: str, other: str | None = None) -> Conflict:
    which = f" (connection {other})" if other else ""
    return Conflict(f"exchange: the user already has a connection on {exchange}{which}; update or delete it",
                    field="exchange", connection_id=other)


class ConnectionsMixin:
    """The connection methods of the store (needs ``_session``, ``_secrets``, ``_clock``)."""

    _secrets: SecretBox | None
    _clock: Callable[[], int]

    def _session(self) -> AsyncSession:  # pragma: no cover - provided by Store
        raise NotImplementedError

    def _reading(self) -> AsyncSession:  # pragma: no cover - provided by Store
        raise NotImplementedError

    def _box(self) -> SecretBox:
        if self._secrets is None:
            raise SecretsUnavailable()
        return self._secrets

    @staticmethod
    def _owned(tenant_id: int, user_id: str):
        return select(ConnectionTable).where(ConnectionTable.tenant_id == tenant_id,
                                             ConnectionTable.user_id == user_id)

    async def create_connection(self, tenant_id: int, user_id: str, exchange: str, account_id: str,
                                credentials: dict[str, str], settings: dict, is_primary: bool) -> Connection:
        """Store a new connection of ``user_id`` (under ``tenant_id``) on ``exchange``, its
        ``credentials`` Fernet-encrypted. The user's first connection is primary whatever
        ``is_primary`` says. Atomic: on any error nothing is stored.

        Raises:
            SecretsUnavailable: no ``EXGATE_SECRET_KEYS`` (503).
            BadRequest: empty/too long ``user_id``/``account_id``, credentials not text fields.
            NotFound: ``exchange`` is not a seeded exchange id (``extra['available']``), or no such tenant.
            Conflict: the user has a connection on ``exchange`` (``field='exchange'``), or
                ``is_primary`` while another connection is primary (``field='is_primary'``).
        """
        box = self._box()
        user_id, account_id = _text("user_id", user_id), _text("account_id", account_id)
        token = box.encrypt(_credentials(credentials))
        settings = _settings(settings if settings is not None else {})
        for attempt in range(2):  # a second try only when a concurrent first connection took the primary
            try:
                return await self._insert(tenant_id, user_id, exchange, account_id, token, settings, is_primary)
            except IntegrityError as exc:
                if _is_primary_clash(exc):
                    if is_primary or attempt:
                        raise _primary_conflict() from None
                    continue
                if "foreign key" in str(exc.orig).lower():
                    raise NotFound(f"tenant_id: no tenant {tenant_id}", field="tenant_id") from None
                raise _exchange_conflict(exchange) from None
        raise AssertionError("unreachable")

    async def _insert(self, tenant_id: int, user_id: str, exchange: str, account_id: str, token: bytes,
                      settings: dict, is_primary: bool) -> Connection:
        async with self._session() as session, session.begin():
            if await session.get(ExchangeTable, exchange) is None:
                available = list(await session.scalars(select(ExchangeTable.id).order_by(ExchangeTable.id)))
                raise NotFound(f"exchange: unknown exchange id {echo(exchange)} (available: {', '.join(available)})",
                               field="exchange", available=available)
            if await session.get(TenantTable, tenant_id) is None:
                raise NotFound(f"tenant_id: no tenant {tenant_id}", field="tenant_id")
            existing = list(await session.scalars(self._owned(tenant_id, user_id)))
            same = next((c for c in existing if c.exchange == exchange), None)
            if same is not None:
                raise _exchange_conflict(exchange, same.id)
            primary = next((c for c in existing if c.is_primary), None)
            if is_primary and primary is not None:
                raise _primary_conflict(primary.id)
            now = self._clock()
            row = ConnectionTable(id=str(uuid.uuid4()), tenant_id=tenant_id, user_id=user_id, exchange=exchange,
                                  account_id=account_id, credentials=token, settings=settings, is_active=True,
                                  is_primary=bool(is_primary or primary is None), connected_at=now, updated_at=now)
            session.add(row)
            await session.flush()
            return _connection(row)

    async def active_venues(self) -> dict[str, int]:
        """Active connections per exchange id, over every tenant (``exgate connectors warm``)."""
        async with self._reading() as session:
            rows = await session.execute(select(ConnectionTable.exchange, func.count())
                                         .where(ConnectionTable.is_active.is_(True))
                                         .group_by(ConnectionTable.exchange))
            return {exchange: int(count) for exchange, count in rows}

    async def list_connections(self, tenant_id: int, user_id: str) -> list[Connection]:
        """The user's connections, oldest first (inactive ones too)."""
        async with self._reading() as session:
            rows = await session.scalars(self._owned(tenant_id, user_id)
                                         .order_by(ConnectionTable.connected_at, ConnectionTable.id))
            return [_connection(r) for r in rows]

    async def get_connection(self, tenant_id: int, user_id: str, connection_id: str) -> Connection | None:
        """The user's connection ``connection_id``; ``None`` if it is not theirs or does not exist."""
        async with self._reading() as session:
            row = await session.scalar(self._owned(tenant_id, user_id).where(ConnectionTable.id == connection_id))
            return _connection(row) if row is not None else None

    async def resolve_connection(self, tenant_id: int, user_id: str, exchange: str | None) -> Connection | None:
        """The connection a private route uses: ``exchange`` None → the user's primary, else the
        user's connection on ``exchange``; ``None`` when there is none or it is inactive."""
        query = self._owned(tenant_id, user_id).where(ConnectionTable.is_active.is_(True))
        query = query.where(ConnectionTable.is_primary.is_(True) if exchange is None
                            else ConnectionTable.exchange == exchange)
        async with self._reading() as session:
            row = await session.scalar(query)
            return _connection(row) if row is not None else None

    async def update_connection(self, tenant_id: int, user_id: str, connection_id: str, *,
                                is_primary: bool | None = None, is_active: bool | None = None,
                                settings: dict | None = None) -> Connection:
        """Change the user's connection: ``None`` leaves a field as it is; ``settings`` replaces
        the whole object. ``updated_at`` moves when anything is given.

        Raises:
            NotFound: no such connection for this tenant and user (``field='connection_id'``).
            Conflict: ``is_primary=True`` while another connection of the user is primary (unset
                that one first).
            BadRequest: ``settings`` is not a JSON object.
        """
        if settings is not None:
            settings = _settings(settings)
        try:
            async with self._session() as session, session.begin():
                row = await session.scalar(self._owned(tenant_id, user_id)
                                           .where(ConnectionTable.id == connection_id).with_for_update())
                if row is None:
                    raise NotFound(f"connection_id: no connection {echo(connection_id)} for this user",
                                   field="connection_id")
                if is_primary and not row.is_primary:
                    other = await session.scalar(self._owned(tenant_id, user_id)
                                                 .where(ConnectionTable.is_primary.is_(True)))
                    if other is not None:
                        raise _primary_conflict(other.id)
                if is_primary is not None:
                    row.is_primary = is_primary
                if is_active is not None:
                    row.is_active = is_active
                if settings is not None:
                    row.settings = settings
                if (is_primary, is_active, settings) != (None, None, None):
                    row.updated_at = self._clock()
                await session.flush()
                return _connection(row)
        except IntegrityError:  # a concurrent update made another connection primary
            raise _primary_conflict() from None

    async def delete_connection(self, tenant_id: int, user_id: str, connection_id: str) -> bool:
        """Delete the user's connection (no other connection becomes primary by itself); False
        when it is not theirs or does not exist."""
        async with self._session() as session, session.begin():
            result = await session.execute(delete(ConnectionTable).where(
                ConnectionTable.tenant_id == tenant_id, ConnectionTable.user_id == user_id,
                ConnectionTable.id == connection_id))
            return result.rowcount > 0

    def credentials(self, connection: Connection) -> dict[str, str]:
        """The decrypted credentials of a connection this store returned (in memory only; never
        log them). ``{}`` for a connection stored without credentials (adopted legacy rows).

        Raises:
            SecretsUnavailable: no ``EXGATE_SECRET_KEYS``.
            ConfigError: no configured key decrypts the row.
            ValueError: ``connection`` did not come from a store.
        """
        box = self._box()
        token = getattr(connection, "_ciphertext", None)
        if token is None:
            raise ValueError("credentials(): pass a Connection returned by the store")
        return box.decrypt(token) if token else {}

    async def rotate_secrets(self) -> int:
        """Re-encrypt every stored credential with the first key of ``EXGATE_SECRET_KEYS`` (one
        transaction); returns how many rows were re-encrypted (rows without credentials skipped).

        Raises:
            SecretsUnavailable: no keys. ConfigError: a row no key decrypts (nothing is changed).
        """
        box = self._box()
        async with self._session() as session, session.begin():
            rows = list(await session.scalars(select(ConnectionTable).with_for_update()))
            count = 0
            for row in rows:
                if row.credentials:
                    row.credentials = box.rotate(row.credentials)
                    count += 1
            return count
