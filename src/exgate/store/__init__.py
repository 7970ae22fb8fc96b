"""SQL state of exgate: tenants, seeded exchanges, users' exchange connections (credentials
Fernet-encrypted), and the Alembic migrations that build them.

    store = Store(database_url(settings.database_url), SecretBox.from_env(keys))
    await require_migrated(store.url)            # ConfigError naming `exgate db upgrade`
    tenant = await store.tenant_by_key(bearer)   # None: 401
    conn = await store.resolve_connection(tenant.id, user_id, exchange)   # None: 404
    creds = store.credentials(conn)              # decrypted in memory only

Modules: :mod:`.store` (Store, tenants, exchanges), :mod:`.connections` (connection methods),
:mod:`.models` (returned dataclasses), :mod:`.tables` (ORM schema), :mod:`.secrets` (SecretBox),
:mod:`.migrate` (Alembic from code), :mod:`.urls` (EXGATE_DATABASE_URL), :mod:`.errors`.
"""

from exgate.store.errors import Conflict, NotFound, SecretsUnavailable
from exgate.store.migrate import (current_async, downgrade, downgrade_async, head, require_migrated, upgrade,
                                  upgrade_async)
from exgate.store.models import Connection, ExchangeKind, ExchangeRow, Tenant
from exgate.store.secrets import SecretBox
from exgate.store.store import Store, key_hash, wall_ms
from exgate.store.urls import DEFAULT_URL, async_url, database_url

__all__ = [
    "DEFAULT_URL", "Conflict", "Connection", "ExchangeKind", "ExchangeRow", "NotFound", "SecretBox",
    "SecretsUnavailable", "Store", "Tenant", "async_url", "current_async", "database_url", "downgrade",
    "downgrade_async", "head", "key_hash", "require_migrated", "upgrade", "upgrade_async", "wall_ms",
]
