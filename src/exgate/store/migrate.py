"""Alembic migrations run from code: no ``alembic.ini``, the scripts found in the installed package.

Each command runs on one async connection: :func:`upgrade_async` opens it and hands Alembic its
synchronous face through ``AsyncConnection.run_sync`` (Alembic's "connection sharing" recipe), so
it works inside a running event loop (tests, ``serve``) and the whole migration is one
transaction (on SQLite too, see :func:`~exgate.store.engine.make_engine`). The sync wrappers
(:func:`upgrade`, :func:`downgrade`) run that in ``asyncio.run`` and need no loop running (the CLI).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from exgate.errors import ConfigError
from exgate.store.engine import make_engine
from exgate.store.urls import async_url, masked

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
"""The Alembic script directory shipped in the package (``env.py``, ``script.py.mako``, ``versions/``)."""


def alembic_config(url: str | None = None) -> Config:
    """An Alembic :class:`~alembic.config.Config` built in code: script location = :data:`MIGRATIONS`,
    the URL (if given) in ``attributes["url"]`` (not in the ini options, whose ``%`` interpolation
    would mangle a password)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.attributes["url"] = url
    return config


def head() -> str:
    """The head revision of the shipped migrations (``"0003"``)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_async(url: str) -> str | None:
    """The revision the database at ``url`` is at (``None``: not migrated at all)."""
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_current)
    finally:
        await engine.dispose()


async def _command(url: str, name: str, revision: str) -> tuple[str | None, str | None]:
    """Run alembic ``command.<name>(config, revision)`` on one connection in one transaction;
    returns (revision before, revision after)."""
    config = alembic_config(url)

    def run(connection: Connection) -> tuple[str | None, str | None]:
        before = _current(connection)
        config.attributes["connection"] = connection
        getattr(command, name)(config, revision)
        return before, _current(connection)

    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(run)
    finally:
        await engine.dispose()


async def upgrade_async(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the database at ``url`` to ``revision``; returns (revision before, after), ``None``
    meaning the empty database. Usable inside a running event loop.

    Raises:
        ConfigError: a bad URL. A migration that fails rolls back whole and re-raises.
    """
    return await _command(async_url(url), "upgrade", revision)


async def downgrade_async(url: str, revision: str) -> tuple[str | None, str | None]:
    """Downgrade to ``revision`` (``"base"``: drop every exgate table); returns (before, after)."""
    return await _command(async_url(url), "downgrade", revision)


def upgrade(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """:func:`upgrade_async` for code with no event loop running (the CLI)."""
    return asyncio.run(upgrade_async(url, revision))


def downgrade(url: str, revision: str) -> tuple[str | None, str | None]:
    """:func:`downgrade_async` for code with no event loop running (the CLI)."""
    return asyncio.run(downgrade_async(url, revision))


async def is_migrated_url(url: str) -> bool:
    """True when the database at ``url`` is at the head revision."""
    return await current_async(url) == head()


def db_error(exc: BaseException) -> str:
    """``Type: first line`` of a driver error (the DBAPI's own, not SQLAlchemy's wrapper with its SQL)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0]}" if text else type(orig).__name__


def not_migrated_message(url: str) -> str:
    """``database <url> is not migrated: run `exgate db upgrade``` (password masked)."""
    return f"database {masked(url)} is not migrated: run `exgate db upgrade`"


async def require_migrated(url: str) -> None:
    """Raise unless the database at ``url`` is at the head revision (``serve`` refuses to start).

    Raises:
        ConfigError: the database is empty, behind (or ahead of) the head, or unreachable; the
            detail names ``exgate db upgrade``.
    """
    url = async_url(url)
    try:
        current = await current_async(url)
    except (OSError, DBAPIError) as exc:  # connection refused, no such host or database
        raise ConfigError(f"database {masked(url)} is unreachable ({db_error(exc)}): check"
                          " EXGATE_DATABASE_URL, then run `exgate db upgrade`", fields=["EXGATE_DATABASE_URL"]) from None
    if current != head():
        raise ConfigError(not_migrated_message(url) + (f" (at revision {current}, head is {head()})" if current else ""),
                          fields=["EXGATE_DATABASE_URL"])
