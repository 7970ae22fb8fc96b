"""Databases for the store tests: an SQLite file per test, and the machine's PostgreSQL with a
fresh database per test module (``exgate_test_<random>``, made through asyncpg on the ``test``
database and dropped at the end; each test starts on an empty ``public`` schema).

``EXGATE_TEST_POSTGRES_URL`` overrides the admin URL (default
``postgresql://postgres@127.0.0.1:5432/test``). PostgreSQL unreachable: those tests skip, or fail
with ``EXGATE_REQUIRE_POSTGRES=1`` (CI).
"""

from __future__ import annotations

import asyncio
import os
import secrets

import pytest

ADMIN_URL = os.environ.get("EXGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


async def _admin(*statements: str, url: str = ADMIN_URL) -> None:
    import asyncpg

    connection = await asyncpg.connect(url, timeout=5)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="module")
def pg_database():
    """The asyncpg URL of a database made for this module (dropped after it)."""
    name = f"exgate_test_{secrets.token_hex(4)}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncio.TimeoutError) as exc:
        reason = f"PostgreSQL not reachable at {ADMIN_URL} ({type(exc).__name__})"
        if os.environ.get("EXGATE_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield _with_database(ADMIN_URL, name).replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    """An empty database: a fresh SQLite file, or the module's PostgreSQL database with its
    ``public`` schema dropped and made again."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/exgate.db"
    url = request.getfixturevalue("pg_database")
    asyncio.run(_admin("DROP SCHEMA public CASCADE", "CREATE SCHEMA public",
                       url=url.replace("postgresql+asyncpg://", "postgresql://", 1)))
    return url
