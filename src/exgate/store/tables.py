"""The SQL schema (SQLAlchemy 2 typed ORM). Migrations own the DDL: these classes must match
``migrations/versions`` (``tests/test_store.py`` compares them after ``upgrade head``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Text,
                        UniqueConstraint, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {"ix": "ix_%(table_name)s_%(column_0_name)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
          "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s", "pk": "pk_%(table_name)s"}

PRIMARY_INDEX = "uq_exchange_connections_one_primary"
"""The partial unique index ``(tenant_id, user_id) WHERE is_primary``: one primary per user."""
EXCHANGE_UNIQUE = "uq_exchange_connections_tenant_user_exchange"
"""One connection per (tenant, user, exchange)."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ExchangeTable(Base):
    """``exchanges``: seed rows (migration 0001), one per venue a connection may name."""

    __tablename__ = "exchanges"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ccxt_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(8))  # ExchangeKind value
    capabilities: Mapped[dict[str, Any]] = mapped_column(JSON)


class TenantTable(Base):
    """``tenants``: application backends; ``key_hash`` is the sha256 hex of the API key."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ConnectionTable(Base):
    """``exchange_connections``: a user's account on one exchange, credentials as a Fernet token
    (``b""``: none stored, as for rows adopted from ``pacifica_connections``)."""

    __tablename__ = "exchange_connections"
    __table_args__ = (
        UniqueConstraint("tenant_id", "user_id", "exchange", name=EXCHANGE_UNIQUE),
        Index(PRIMARY_INDEX, "tenant_id", "user_id", unique=True,
              sqlite_where=text("is_primary"), postgresql_where=text("is_primary")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    exchange: Mapped[str] = mapped_column(ForeignKey("exchanges.id"))
    account_id: Mapped[str] = mapped_column(String(255), index=True)
    credentials: Mapped[bytes] = mapped_column(LargeBinary)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    is_active: Mapped[bool] = mapped_column(Boolean)
    is_primary: Mapped[bool] = mapped_column(Boolean)
    connected_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


CONNECTOR_STATE_KEY = "uq_connector_state_key"
"""One entry per (venue, scope, environment, kind)."""


class ConnectorStateTable(Base):
    """``connector_state``: what a connector learnt from a venue that outlives a process (see
    :mod:`exgate.connectors`): the clock offset (``kind='time_offset'``) and the markets snapshot
    (``kind='markets'``). Never a secret: ``scope`` is ``public`` or the sha256 of a connection or
    account id, ``payload`` the JSON the venue answered in public."""

    __tablename__ = "connector_state"
    __table_args__ = (UniqueConstraint("venue", "scope", "environment", "kind", name=CONNECTOR_STATE_KEY),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    venue: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(64))
    environment: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[str] = mapped_column(Text)
    rtt_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    synced_at_ms: Mapped[int] = mapped_column(BigInteger)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    valid: Mapped[bool] = mapped_column(Boolean)
    hits: Mapped[int] = mapped_column(BigInteger)
