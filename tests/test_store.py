"""The store on SQLite and PostgreSQL: tenants (keys as hashes only), connections (one per
exchange, one primary, isolation by tenant and user, nothing half-written), credentials
encrypted at rest and key rotation."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from exgate.errors import BadRequest, ConfigError, ExgateError
from exgate.store import (DEFAULT_URL, Conflict, NotFound, SecretBox, SecretsUnavailable, Store, database_url,
                          upgrade_async)
from exgate.store.engine import make_engine
from tests.conftest import ManualClock
from tests.store_db import db_url, pg_database  # noqa: F401  (fixtures)

SECRET = "s3cr3t-VALUE-that-must-never-leak"
CREDS = {"apiKey": "key-id-1", "secret": SECRET}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox.generate()


@pytest.fixture
async def store(db_url, box, clock):
    await upgrade_async(db_url)
    store = Store(db_url, box, clock=clock)
    yield store
    await store.close()


async def _raw(url: str, sql: str) -> list:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return list((await connection.execute(sa.text(sql))).all())
    finally:
        await engine.dispose()


async def _count(store: Store) -> int:
    return (await _raw(store.url, "SELECT count(*) FROM exchange_connections"))[0][0]


# -- tenants

async def test_tenant_key_verifies_until_revoked_and_is_stored_as_a_hash_only(store, clock) -> None:
    tenant, key = await store.create_tenant("acme")
    assert key.startswith("exg_") and len(key) == 4 + 43
    assert (tenant.name, tenant.created_at, tenant.revoked_at) == ("acme", clock.now, None)
    assert await store.tenant_by_key(key) == tenant
    assert await store.tenant_by_key(key + "x") is None and await store.tenant_by_key("") is None

    rows = await _raw(store.url, "SELECT * FROM tenants")
    assert key not in repr(rows) and hashlib.sha256(key.encode()).hexdigest() in repr(rows)

    other, other_key = await store.create_tenant("globex")
    assert other_key != key and await store.tenant_by_key(other_key) == other
    with pytest.raises(Conflict, match="name: a tenant named 'acme' already exists") as info:
        await store.create_tenant("acme")
    assert info.value.status == 409 and info.value.extra["field"] == "name"
    with pytest.raises(BadRequest, match="name"):
        await store.create_tenant("  ")

    new_key = await store.rekey_tenant("acme")
    assert new_key != key and await store.tenant_by_key(new_key) == tenant
    assert await store.tenant_by_key(key) is None  # the old key stops at once
    assert await store.rekey_tenant("nobody") is None
    key = new_key

    clock.advance(5_000)
    assert await store.revoke_tenant("acme") is True
    assert await store.tenant_by_key(key) is None
    with pytest.raises(Conflict, match="revoked"):
        await store.rekey_tenant("acme")
    assert await store.tenant_by_key(other_key) == other
    clock.advance(5_000)
    assert await store.revoke_tenant("acme") is True  # again: keeps the first time
    assert await store.revoke_tenant("nobody") is False
    listed = await store.list_tenants()
    assert [(t.name, t.revoked_at) for t in listed] == [("acme", clock.now - 5_000), ("globex", None)]
    assert key not in repr(listed) and "hash" not in repr(listed)


# -- connections

async def test_reads_go_on_while_another_process_writes(store) -> None:
    """Every private request reads its tenant and connection: those reads must not queue behind
    a writer, nor behind each other, on SQLite's one write lock (several gateways share the file)."""
    _, key = await store.create_tenant("acme")
    tenant = await store.tenant_by_key(key)
    await store.create_connection(tenant.id, "u1", "binanceusdm", "acct-1", CREDS, {}, True)
    writer = make_engine(store.url)  # another gateway in the middle of a write transaction
    try:
        async with writer.connect() as connection:
            await connection.execute(sa.text("UPDATE tenants SET name = name WHERE id = :id"), {"id": tenant.id})
            async with asyncio.timeout(5):  # with the write lock taken at every BEGIN this waited 30 s
                assert (await store.tenant_by_key(key)).id == tenant.id
                assert (await store.resolve_connection(tenant.id, "u1", None)).account_id == "acct-1"
                assert [c.account_id for c in await store.list_connections(tenant.id, "u1")] == ["acct-1"]
            await connection.rollback()
    finally:
        await writer.dispose()


async def _tenant(store: Store, name: str = "acme") -> int:
    return (await store.create_tenant(name))[0].id


async def test_first_connection_is_primary_and_rules_hold(store, clock) -> None:
    t = await _tenant(store)
    first = await store.create_connection(t, "alice", "bybit", "key-id-1", CREDS, {}, is_primary=False)
    assert first.is_primary and first.is_active and first.connected_at == first.updated_at == clock.now
    assert len(first.id) == 36

    with pytest.raises(Conflict, match="exchange: the user already has a connection on bybit") as info:
        await store.create_connection(t, "alice", "bybit", "key-id-2", CREDS, {}, is_primary=False)
    assert info.value.status == 409 and info.value.extra["field"] == "exchange"
    with pytest.raises(Conflict, match="is_primary") as info:
        await store.create_connection(t, "alice", "hyperliquid", "0xabc", {"privateKey": "0x1"}, {}, is_primary=True)
    assert info.value.extra["field"] == "is_primary"

    clock.advance(1_000)
    second = await store.create_connection(t, "alice", "hyperliquid", "0xabc", {"privateKey": "0x1"},
                                           {"builder_code_approved": True}, is_primary=False)
    assert not second.is_primary and second.settings == {"builder_code_approved": True}
    assert [c.id for c in await store.list_connections(t, "alice")] == [first.id, second.id]

    assert (await store.resolve_connection(t, "alice", None)).id == first.id
    assert (await store.resolve_connection(t, "alice", "hyperliquid")).id == second.id
    assert await store.resolve_connection(t, "alice", "binanceusdm") is None

    with pytest.raises(Conflict, match="a second|already has a primary"):  # the "a second primary 409"
        await store.update_connection(t, "alice", second.id, is_primary=True)
    clock.advance(1_000)
    unset = await store.update_connection(t, "alice", first.id, is_primary=False)
    assert not unset.is_primary and unset.updated_at == clock.now
    assert await store.resolve_connection(t, "alice", None) is None
    promoted = await store.update_connection(t, "alice", second.id, is_primary=True, settings={"x": 1})
    assert promoted.is_primary and promoted.settings == {"x": 1}
    assert (await store.resolve_connection(t, "alice", None)).id == second.id

    await store.update_connection(t, "alice", second.id, is_active=False)
    assert await store.resolve_connection(t, "alice", None) is None  # inactive: not used
    assert await store.resolve_connection(t, "alice", "hyperliquid") is None
    assert (await store.get_connection(t, "alice", second.id)).is_active is False

    assert await store.delete_connection(t, "alice", second.id) is True
    assert await store.delete_connection(t, "alice", second.id) is False
    assert await store.get_connection(t, "alice", second.id) is None
    with pytest.raises(NotFound, match="connection_id") as info:
        await store.update_connection(t, "alice", second.id, is_active=True)
    assert info.value.status == 404


async def test_isolation_between_tenants_and_users(store) -> None:
    a, b = await _tenant(store, "a"), await _tenant(store, "b")
    conn = await store.create_connection(a, "alice", "binanceusdm", "key-id-1", CREDS, {}, is_primary=True)
    for tenant, user in ((b, "alice"), (a, "bob"), (b, "bob")):
        assert await store.list_connections(tenant, user) == []
        assert await store.get_connection(tenant, user, conn.id) is None
        assert await store.resolve_connection(tenant, user, None) is None
        assert await store.resolve_connection(tenant, user, "binanceusdm") is None
        with pytest.raises(NotFound):
            await store.update_connection(tenant, user, conn.id, is_active=False)
        assert await store.delete_connection(tenant, user, conn.id) is False
    assert await store.get_connection(a, "alice", conn.id) == conn  # untouched
    # the same user id under another tenant is another user: its own first connection, its own primary
    other = await store.create_connection(b, "alice", "binanceusdm", "key-id-9", CREDS, {}, is_primary=True)
    assert other.is_primary and other.id != conn.id


async def test_a_failed_create_stores_nothing(store) -> None:
    t = await _tenant(store)
    with pytest.raises(NotFound, match="exchange: unknown exchange id 'nasdaq' \\(available: .*binanceusdm") as info:
        await store.create_connection(t, "alice", "nasdaq", "k", CREDS, {}, is_primary=False)
    assert "bybit" in info.value.extra["available"]
    with pytest.raises(NotFound, match="tenant_id"):
        await store.create_connection(t + 100, "alice", "bybit", "k", CREDS, {}, is_primary=False)
    with pytest.raises(BadRequest, match="credentials") as info:
        await store.create_connection(t, "alice", "bybit", "k", {"apiKey": "k", "secret": 12345}, {}, is_primary=False)
    assert "12345" not in info.value.detail
    with pytest.raises(BadRequest, match="user_id"):
        await store.create_connection(t, "", "bybit", "k", CREDS, {}, is_primary=False)
    assert await _count(store) == 0
    await store.create_connection(t, "alice", "bybit", "k", CREDS, {}, is_primary=False)
    with pytest.raises(Conflict):
        await store.create_connection(t, "alice", "bybit", "k2", CREDS, {}, is_primary=False)
    with pytest.raises(Conflict):
        await store.create_connection(t, "alice", "pacifica", "k2", CREDS, {}, is_primary=True)
    assert await _count(store) == 1


async def test_concurrent_first_connections_leave_exactly_one_primary(store) -> None:
    t = await _tenant(store)
    venues = ["binanceusdm", "bybit", "hyperliquid", "pacifica", "kraken", "mexc"]
    made = await asyncio.gather(*(store.create_connection(t, "alice", v, f"acct-{v}", CREDS, {}, is_primary=False)
                                  for v in venues))
    assert sum(c.is_primary for c in made) == 1
    assert sorted(c.exchange for c in await store.list_connections(t, "alice")) == sorted(venues)


# -- credentials

async def test_credentials_are_encrypted_at_rest_and_never_shown(store) -> None:
    t = await _tenant(store)
    conn = await store.create_connection(t, "alice", "bybit", "key-id-1", CREDS, {}, is_primary=False)
    raw = await _raw(store.url, "SELECT credentials FROM exchange_connections")
    assert SECRET.encode() not in bytes(raw[0][0]) and b"key-id-1" not in bytes(raw[0][0])
    for shown in (repr(conn), str(conn), repr(dataclasses.asdict(conn)), repr(conn.as_dict()),
                  repr(await store.list_connections(t, "alice"))):
        assert SECRET not in shown and bytes(raw[0][0]).decode() not in shown
    assert store.credentials(conn) == CREDS
    assert store.credentials(await store.resolve_connection(t, "alice", None)) == CREDS


async def test_without_secret_keys_credentials_are_unavailable(store) -> None:
    t = await _tenant(store)
    conn = await store.create_connection(t, "alice", "bybit", "key-id-1", CREDS, {}, is_primary=False)
    keyless = Store(store.url, None)
    try:
        with pytest.raises(SecretsUnavailable, match="EXGATE_SECRET_KEYS is not set") as info:
            await keyless.create_connection(t, "bob", "bybit", "k", CREDS, {}, is_primary=False)
        assert info.value.status == 503 and isinstance(info.value, ExgateError)
        with pytest.raises(SecretsUnavailable):
            keyless.credentials(conn)
        with pytest.raises(SecretsUnavailable):
            await keyless.rotate_secrets()
        assert [c.id for c in await keyless.list_connections(t, "alice")] == [conn.id]  # reads still work
    finally:
        await keyless.close()
    assert await _count(store) == 1


async def test_key_rotation(db_url, clock) -> None:
    await upgrade_async(db_url)
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    writer = Store(db_url, SecretBox([old]), clock=clock)
    t = await _tenant(writer)
    for user in ("alice", "bob", "carol"):
        await writer.create_connection(t, user, "bybit", f"id-{user}", {**CREDS, "uid": user}, {}, is_primary=False)
    await writer.close()

    both = Store(db_url, SecretBox.from_env(f"{new}, {old}"))
    new_only = Store(db_url, SecretBox([new]))
    try:
        alice = await both.resolve_connection(t, "alice", None)
        assert both.credentials(alice) == {**CREDS, "uid": "alice"}  # written with old, read with [new, old]
        with pytest.raises(ConfigError, match="EXGATE_SECRET_KEYS: no configured key decrypts"):
            new_only.credentials(alice)
        assert await both.rotate_secrets() == 3
        for user in ("alice", "bob", "carol"):
            conn = await new_only.resolve_connection(t, user, None)
            assert new_only.credentials(conn) == {**CREDS, "uid": user}
    finally:
        await both.close()
        await new_only.close()


def test_secret_box_keys_are_never_shown() -> None:
    key = Fernet.generate_key().decode()
    box = SecretBox.from_env(f" {key} ,")
    assert key not in repr(box) and box.key_count == 1
    assert box.decrypt(box.encrypt(CREDS)) == CREDS
    fresh = Fernet.generate_key().decode()
    rotated = SecretBox([fresh, key]).rotate(box.encrypt(CREDS))
    assert SecretBox([fresh]).decrypt(rotated) == CREDS
    with pytest.raises(ConfigError, match="no configured key decrypts"):
        box.decrypt(rotated)
    assert SecretBox.from_env(None) is None and SecretBox.from_env("  ") is None
    bad = "not-a-fernet-key-" + key[:10]
    with pytest.raises(ConfigError, match="EXGATE_SECRET_KEYS: key 2 of 2 is not a Fernet key") as info:
        SecretBox.from_env(f"{key},{bad}")
    assert bad not in info.value.detail and key not in info.value.detail
    assert SecretBox.generate().key_count == 1


def test_database_url() -> None:
    assert database_url(None) == database_url("") == DEFAULT_URL == "sqlite+aiosqlite:///./exgate.db"
    assert database_url("sqlite:///data/x.db") == "sqlite+aiosqlite:///data/x.db"
    assert database_url("postgresql://u:p@h:5432/db") == "postgresql+asyncpg://u:p@h:5432/db"
    assert database_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert database_url("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"
    with pytest.raises(ConfigError, match="EXGATE_DATABASE_URL: unsupported database 'mysql'") as info:
        database_url("mysql://root:hunter2@h/db")
    assert "hunter2" not in info.value.detail
    with pytest.raises(ConfigError, match="EXGATE_DATABASE_URL: not a database URL"):
        database_url("nonsense")
