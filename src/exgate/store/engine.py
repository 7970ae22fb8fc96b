"""The async engine every part of the store uses (the Store, the migrations)."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from exgate.store.urls import async_url, is_sqlite


READ_ONLY = "exgate_read_only"
"""Execution option of an engine whose transactions only read (see :func:`reader`)."""


def reader(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` for read-only transactions: on SQLite a deferred ``BEGIN`` (no write lock
    until a write, which these never make); elsewhere the same engine. Shares the pool."""
    return engine.execution_options(**{READ_ONLY: True})


def make_engine(url: str) -> AsyncEngine:
    """An async engine on ``url`` (mapped by :func:`~exgate.store.urls.async_url`).

    On SQLite: foreign keys enforced (``PRAGMA foreign_keys=ON``) and real transactions: the
    driver's legacy mode would run DDL and SELECTs outside the transaction (SQLAlchemy's
    documented fix: SQLAlchemy emits ``BEGIN`` itself), so a failed migration or write leaves
    nothing behind. SQLite is the one-instance default: its transactions run one at a time.
    """
    url = async_url(url)
    # SQLite: wait up to 30 s for the write lock (sqlite3's default is 5 s, short on a loaded host)
    engine = create_async_engine(url, pool_pre_ping=not is_sqlite(url),
                                 connect_args={"timeout": 30} if is_sqlite(url) else {})
    if is_sqlite(url):
        @event.listens_for(engine.sync_engine, "connect")
        def _connect(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(connection) -> None:
            # IMMEDIATE: take the write lock at BEGIN (waiting up to the 30 s busy timeout), so
            # two read-then-write transactions never deadlock into "database is locked"; a
            # read-only transaction (READ_ONLY) takes no lock at BEGIN, so reads never queue
            # behind a writer or each other on the one write lock several processes share
            read_only = connection.get_execution_options().get(READ_ONLY, False)
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
    return engine
