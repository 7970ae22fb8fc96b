"""Migrations on SQLite and PostgreSQL: head → base → head, the schema equal to the ORM's, and
the adoption of a legacy ``pacifica_connections`` table (every row kept, downgrade restores it)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from exgate.errors import ConfigError
from exgate.store import SecretBox, Store, current_async, downgrade_async, head, require_migrated, upgrade_async
from exgate.store.engine import make_engine
from exgate.store.tables import Base
from tests.store_db import db_url, pg_database  # noqa: F401  (fixtures)

EXCHANGES = {"binanceusdm", "bybit", "hyperliquid", "pacifica", "coinbase", "binance", "binanceus", "kraken",
             "kucoin", "mexc", "bingx"}


async def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def _execute(url: str, *statements, params: list | None = None) -> list:
    """Run statements in one transaction; the rows of the last one."""
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            result = None
            for statement in statements:
                result = await connection.execute(sa.text(statement) if isinstance(statement, str) else statement,
                                                  params)
            return list(result.all()) if result is not None and result.returns_rows else []
    finally:
        await engine.dispose()


async def test_up_down_up_and_the_schema_matches_the_orm(db_url) -> None:
    with pytest.raises(ConfigError, match="is not migrated: run `exgate db upgrade`"):
        await require_migrated(db_url)
    assert await upgrade_async(db_url) == (None, head())
    await require_migrated(db_url)
    assert {"exchanges", "tenants", "exchange_connections", "alembic_version"} <= await _tables(db_url)

    engine = make_engine(db_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
    finally:
        await engine.dispose()
    assert diff == []

    assert await downgrade_async(db_url, "base") == (head(), None)
    assert await _tables(db_url) <= {"alembic_version"}
    assert await current_async(db_url) is None
    with pytest.raises(ConfigError, match="exgate db upgrade"):
        await require_migrated(db_url)

    await upgrade_async(db_url)
    store = Store(db_url, None)
    try:
        assert await store.is_migrated()
        rows = {row.id: row for row in await store.exchanges()}
        assert set(rows) == EXCHANGES
        assert rows["binanceusdm"].name == "Binance USD-M" and rows["hyperliquid"].kind == "dex"
        assert rows["pacifica"].capabilities == {"market_data": True, "trading": True, "sandbox": True}
        assert rows["bingx"].capabilities == {"market_data": True, "trading": True, "sandbox": False}
        assert (await store.exchange("kraken")).kind == "cex" and await store.exchange("nope") is None
    finally:
        await store.close()


async def test_behind_head_is_not_migrated(db_url) -> None:
    await upgrade_async(db_url, "0001")
    with pytest.raises(ConfigError, match=r"not migrated: run `exgate db upgrade` \(at revision 0001"):
        await require_migrated(db_url)


LEGACY_ROWS = [  # user_id, account_address, is_active, created_at
    ("u1", "0xAAA1", True, datetime(2024, 5, 1, 10, 0, 0)),
    ("u2", "0xBBB2", False, datetime(2024, 6, 2, 11, 30, 15)),
    ("u3", "0xCCC3", True, datetime(2025, 1, 3, 0, 0, 0, 250_000)),
    ("42", "0xDDD4", True, datetime(2025, 2, 4, 8, 0, 0)),
]


def _ms(value: datetime) -> int:
    return int(value.replace(tzinfo=timezone.utc).timestamp() * 1000)


async def _create_legacy(url: str, rows=LEGACY_ROWS) -> None:
    legacy = sa.table("pacifica_connections", sa.column("user_id"), sa.column("account_address"),
                      sa.column("is_active"), sa.column("created_at"))
    serial = "SERIAL" if url.startswith("postgresql") else "INTEGER"
    await _execute(url, f"CREATE TABLE pacifica_connections (id {serial} PRIMARY KEY, user_id VARCHAR(64) NOT NULL,"
                   " account_address VARCHAR(64) NOT NULL, is_active BOOLEAN NOT NULL, created_at TIMESTAMP)")
    await _execute(url, legacy.insert(), params=[
        {"user_id": u, "account_address": a, "is_active": act, "created_at": c} for u, a, act, c in rows])


async def _legacy_rows(url: str, table: str = "pacifica_connections") -> list[tuple]:
    rows = await _execute(url, f"SELECT user_id, account_address, is_active, created_at FROM {table} ORDER BY id")
    return [(u, a, bool(act), c if isinstance(c, datetime) else datetime.fromisoformat(c)) for u, a, act, c in rows]


async def test_pacifica_connections_adoption_keeps_every_row(db_url) -> None:
    await upgrade_async(db_url, "0001")
    await _create_legacy(db_url)
    assert await _legacy_rows(db_url) == LEGACY_ROWS

    assert await upgrade_async(db_url, "0002") == ("0001", "0002")
    store = Store(db_url, SecretBox.generate())
    try:
        legacy = await store.tenant("legacy-pacifica")
        assert legacy is not None and not legacy.revoked
        adopted = [c for user, *_ in LEGACY_ROWS for c in await store.list_connections(legacy.id, user)]
        assert sorted((c.user_id, c.account_id, c.is_active, c.connected_at) for c in adopted) == sorted(
            (u, a, act, _ms(c)) for u, a, act, c in LEGACY_ROWS)
        assert all(c.exchange == "pacifica" and c.is_primary and c.settings == {} for c in adopted)
        assert all(store.credentials(c) == {} for c in adopted)  # b"": no credentials
        u1 = await store.resolve_connection(legacy.id, "u1", None)
        assert u1 is not None and u1.account_id == "0xAAA1"
        assert await store.tenant_by_key("legacy-pacifica:unusable") is None  # the hash is no key's hash
        key = await store.rekey_tenant("legacy-pacifica")  # how an operator takes the rows over
        assert await store.tenant_by_key(key) == legacy
    finally:
        await store.close()
    assert "pacifica_connections" not in await _tables(db_url)
    assert await _legacy_rows(db_url, "pacifica_connections_adopted") == LEGACY_ROWS

    assert await downgrade_async(db_url, "0001") == ("0002", "0001")
    assert await _legacy_rows(db_url) == LEGACY_ROWS
    assert await _execute(db_url, "SELECT count(*) FROM exchange_connections") == [(0,)]
    assert await _execute(db_url, "SELECT count(*) FROM tenants") == [(1,)]  # re-keyed: an operator's now, kept
    await _execute(db_url, "DELETE FROM tenants")

    await upgrade_async(db_url)  # and adopted again
    assert await _execute(db_url, "SELECT count(*) FROM exchange_connections") == [(len(LEGACY_ROWS),)]
    await downgrade_async(db_url, "base")
    assert await _legacy_rows(db_url) == LEGACY_ROWS  # dropping exgate's tables leaves the app's own


async def test_adoption_reads_text_and_epoch_times(tmp_path) -> None:
    """SQLite keeps whatever a legacy app wrote into created_at: ISO text, epoch seconds or ms."""
    url = f"sqlite:///{tmp_path}/legacy.db"
    await upgrade_async(url, "0001")
    await _execute(url, "CREATE TABLE pacifica_connections (user_id TEXT, account_address TEXT, is_active INTEGER,"
                   " created_at)",
                   "INSERT INTO pacifica_connections VALUES ('a', '0x1', 1, '2024-05-01T10:00:00Z'),"
                   " ('b', '0x2', 0, 1714557600), ('c', '0x3', 1, 1714557600123), ('d', '0x4', 1, '2024-05-01 10:00:00'),"
                   " ('d', '0x4', 0, '2024-04-01 10:00:00')")
    await upgrade_async(url)
    rows = await _execute(url, "SELECT user_id, account_id, is_active, is_primary, connected_at"
                          " FROM exchange_connections ORDER BY user_id")
    april = _ms(datetime(2024, 4, 1, 10))
    assert [(u, a, bool(act), bool(p), t) for u, a, act, p, t in rows] == [
        ("a", "0x1", True, True, 1714557600000), ("b", "0x2", False, True, 1714557600000),
        ("c", "0x3", True, True, 1714557600123), ("d", "0x4", True, True, april)]


async def test_adoption_refuses_a_user_with_two_addresses_and_changes_nothing(db_url) -> None:
    rows = [*LEGACY_ROWS, ("u1", "0xEEE5", True, datetime(2025, 3, 1))]
    await upgrade_async(db_url, "0001")
    await _create_legacy(db_url, rows)
    with pytest.raises(RuntimeError, match=r"1 user\(s\) have more than one account_address \(u1\)"):
        await upgrade_async(db_url)
    assert await current_async(db_url) == "0001"
    assert await _legacy_rows(db_url) == rows
    assert await _execute(db_url, "SELECT count(*) FROM tenants") == [(0,)]


async def test_an_unreachable_database_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError, match=r"unreachable \(ConnectionRefusedError.*then run `exgate db upgrade`") as info:
        await require_migrated("postgresql://postgres:hunter2@127.0.0.1:1/exgate")
    assert "hunter2" not in info.value.detail and "***" in info.value.detail
