"""Adopt a legacy single-venue ``pacifica_connections`` table into ``exchange_connections``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

For apps moving from a Pacifica-only schema (``pacifica_connections``: ``user_id``,
``account_address``, ``is_active``, ``created_at``). Without that table this revision changes
nothing. With it, every row becomes a connection:

- tenant: a tenant named ``legacy-pacifica`` made by this migration (reused if one exists). Its
  key hash is ``legacy-pacifica:unusable``, which no sha256 hex digest equals, so no key opens
  it until an operator re-keys it: ``exgate tenants rekey legacy-pacifica`` prints a new key, or
  by hand ``UPDATE tenants SET key_hash = '<sha256 hex of a new key>' WHERE name =
  'legacy-pacifica'`` (or ``exgate tenants create`` a new tenant and move the rows with an
  UPDATE of ``tenant_id``).
- exchange ``pacifica``, ``account_id`` = ``account_address``, ``user_id`` as text,
  ``is_active`` as it was, ``connected_at``/``updated_at`` = ``created_at`` in ms
  (a TIMESTAMP/DATETIME, ISO text or epoch seconds/ms; naive times are UTC; a NULL or
  unreadable value becomes the time of the migration).
- credentials: none were kept by the legacy table, so the column holds ``b""``, which the
  store reads as "no credentials" (the user reconnects with keys through ``POST /v1/connections``
  after deleting, or the app patches them in).
- ``is_primary``: true (the user's first and only connection).

Identical rows (same user and address) become one connection. A user with two different
addresses cannot be adopted (one connection per user and exchange): the migration stops before
changing anything and names those users.

The legacy table is kept, renamed ``pacifica_connections_adopted``, so the downgrade renames it
back (the table as it was at adoption) and deletes the adopted connections (the legacy tenant's
``pacifica`` connections) and the legacy tenant if it is left without connections and still
unusable.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

LEGACY = "pacifica_connections"
ADOPTED = "pacifica_connections_adopted"
TENANT = "legacy-pacifica"
UNUSABLE_HASH = "legacy-pacifica:unusable"

_tenants = sa.table("tenants", sa.column("id", sa.Integer), sa.column("name", sa.String),
                    sa.column("key_hash", sa.String), sa.column("created_at", sa.BigInteger),
                    sa.column("revoked_at", sa.BigInteger))
_connections = sa.table(
    "exchange_connections", sa.column("id", sa.String), sa.column("tenant_id", sa.Integer),
    sa.column("user_id", sa.String), sa.column("exchange", sa.String), sa.column("account_id", sa.String),
    sa.column("credentials", sa.LargeBinary), sa.column("settings", sa.JSON), sa.column("is_active", sa.Boolean),
    sa.column("is_primary", sa.Boolean), sa.column("connected_at", sa.BigInteger),
    sa.column("updated_at", sa.BigInteger))


def _ms(value: object, now_ms: int) -> int:
    """``created_at`` of a legacy row in ms since the epoch."""
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp() * 1000)
    if isinstance(value, (bytes, bytearray)):
        value = value.decode(errors="replace")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                return _ms(datetime.fromisoformat(text.replace("Z", "+00:00")), now_ms)
            except ValueError:
                return now_ms
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value * 1000) if abs(value) < 100_000_000_000 else int(value)  # seconds or ms
    return now_ms


def _active(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "t", "true", "y", "yes", "on")
    return bool(value) if value is not None else True


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table(LEGACY):
        return
    now_ms = time.time_ns() // 1_000_000
    rows = bind.execute(sa.text(f"SELECT user_id, account_address, is_active, created_at FROM {LEGACY}")).all()
    by_user: dict[str, dict] = {}
    clashes: set[str] = set()
    for user_id, address, is_active, created_at in rows:
        user, account = str(user_id), str(address)
        known = by_user.get(user)
        if known is None:
            by_user[user] = {"account_id": account, "is_active": _active(is_active),
                             "connected_at": _ms(created_at, now_ms)}
        elif known["account_id"] != account:
            clashes.add(user)
        else:  # the same account twice: one connection, active if any row is, connected at the first
            known["is_active"] = known["is_active"] or _active(is_active)
            known["connected_at"] = min(known["connected_at"], _ms(created_at, now_ms))
    if clashes:
        listed = ", ".join(sorted(clashes)[:10]) + (" …" if len(clashes) > 10 else "")
        raise RuntimeError(f"{LEGACY}: {len(clashes)} user(s) have more than one account_address ({listed});"
                           " exchange_connections holds one connection per user and exchange: keep one row per"
                           " user in that table, then run `exgate db upgrade` again")
    tenant_id = bind.execute(sa.select(_tenants.c.id).where(_tenants.c.name == TENANT)).scalar()
    if tenant_id is None:
        tenant_id = bind.execute(_tenants.insert().values(name=TENANT, key_hash=UNUSABLE_HASH, created_at=now_ms,
                                                          revoked_at=None).returning(_tenants.c.id)).scalar_one()
    if by_user:
        op.bulk_insert(_connections, [
            {"id": str(uuid.uuid4()), "tenant_id": tenant_id, "user_id": user, "exchange": "pacifica",
             "account_id": row["account_id"], "credentials": b"", "settings": {}, "is_active": row["is_active"],
             "is_primary": True, "connected_at": row["connected_at"], "updated_at": row["connected_at"]}
            for user, row in by_user.items()])
    op.rename_table(LEGACY, ADOPTED)


def downgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table(ADOPTED):
        return
    tenant_id = bind.execute(sa.select(_tenants.c.id).where(_tenants.c.name == TENANT)).scalar()
    if tenant_id is not None:
        bind.execute(_connections.delete().where(_connections.c.tenant_id == tenant_id,
                                                 _connections.c.exchange == "pacifica"))
        left = bind.execute(sa.select(sa.func.count()).select_from(_connections)
                            .where(_connections.c.tenant_id == tenant_id)).scalar_one()
        if not left:
            bind.execute(_tenants.delete().where(_tenants.c.id == tenant_id, _tenants.c.key_hash == UNUSABLE_HASH))
    op.rename_table(ADOPTED, LEGACY)
