"""The async engine every part of the store uses (the Store, the migrations)."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from exgate.store.urls import async_url, is_sqlite


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
            # two read-then-write transactions never deadlock into "database is locked"
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    return engine
