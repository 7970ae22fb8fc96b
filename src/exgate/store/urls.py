"""The database URL: ``EXGATE_DATABASE_URL`` mapped to an async SQLAlchemy driver."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from exgate.errors import ConfigError

ENV = "EXGATE_DATABASE_URL"
DEFAULT_URL = "sqlite+aiosqlite:///./exgate.db"
"""``EXGATE_DATABASE_URL`` unset: an SQLite file ``exgate.db`` in the working directory."""

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}
_ALLOWED = ("sqlite+aiosqlite:///PATH", "sqlite:///PATH", "postgresql+asyncpg://USER@HOST:PORT/DB",
            "postgresql://USER@HOST:PORT/DB")


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"{ENV}: not a database URL (got {masked(url)!r}; allowed: {', '.join(_ALLOWED)})",
                          fields=[ENV], allowed=list(_ALLOWED)) from None
    backend, _, driver = parsed.drivername.partition("+")  # no dialect loaded: an unknown one raises nothing
    if backend == "postgres":
        backend = "postgresql"
    if backend not in ("sqlite", "postgresql") or driver not in ("", "aiosqlite", "pysqlite", "asyncpg",
                                                                  "psycopg2", "psycopg"):
        raise ConfigError(f"{ENV}: unsupported database {parsed.drivername!r} (got {masked(url)!r};"
                          f" allowed: {', '.join(_ALLOWED)})", fields=[ENV], allowed=list(_ALLOWED))
    return parsed.set(drivername=_ASYNC_DRIVERS[backend])


def async_url(url: str) -> str:
    """``url`` with its async driver: ``sqlite:///x.db`` → ``sqlite+aiosqlite:///x.db``,
    ``postgresql://...`` (or ``postgres://``, ``postgresql+psycopg://``) → ``postgresql+asyncpg://...``.

    Raises:
        ConfigError: not a URL, or a database other than SQLite/PostgreSQL (password masked).
    """
    return _parse(url).render_as_string(hide_password=False)


def database_url(settings_value: str | None) -> str:
    """The async URL of ``EXGATE_DATABASE_URL`` (``settings_value``); unset or blank:
    :data:`DEFAULT_URL`. Raises :class:`~exgate.errors.ConfigError` as :func:`async_url`."""
    return async_url(settings_value.strip() if settings_value and settings_value.strip() else DEFAULT_URL)


def masked(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages; a password is never printed)."""
    from exgate.config import _masked

    return _masked(url)


def is_sqlite(url: str) -> bool:
    """True for an SQLite URL (any driver)."""
    return make_url(url).get_backend_name() == "sqlite"
