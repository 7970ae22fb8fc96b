"""Alembic environment of exgate's store (async engines).

Run from code (:mod:`exgate.store.migrate`), Alembic gets a live synchronous connection in
``config.attributes["connection"]`` (an ``AsyncConnection.run_sync`` handle) and migrates on it.
Run by the ``alembic`` command with no connection, it builds an async engine from
``config.attributes["url"]``, the ``sqlalchemy.url`` option or ``EXGATE_DATABASE_URL``.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from exgate.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    from exgate.store.engine import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def _url() -> str:
    from exgate.store.urls import database_url

    return database_url(config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
                        or os.environ.get("EXGATE_DATABASE_URL"))


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (connection := config.attributes.get("connection")) is not None:
    _run(connection)
else:
    asyncio.run(_run_async(_url()))
