"""The store's commands of ``exgate``: ``db upgrade|downgrade|current``, ``tenants create|rekey|list|revoke``,
``secrets rotate``. Each reads ``EXGATE_DATABASE_URL`` (unset: ``./exgate.db``); every command
but ``db upgrade``/``db current`` refuses a database that is not at the head revision."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Annotated, TypeVar

import typer

T = TypeVar("T")

db_app = typer.Typer(no_args_is_help=True, help="Database migrations (Alembic).")
tenants_app = typer.Typer(no_args_is_help=True, help="Tenants: the application backends that use exgate.")
secrets_app = typer.Typer(no_args_is_help=True, help="Encryption of stored credentials (EXGATE_SECRET_KEYS).")


def _fail(detail: str) -> typer.Exit:
    from exgate.cli import _fail as fail

    return fail(detail)


def _settings():
    from exgate.config import load_settings
    from exgate.errors import ExgateError

    try:
        return load_settings()
    except ExgateError as exc:
        raise _fail(exc.detail) from None


def _url() -> str:
    from exgate.errors import ExgateError
    from exgate.store import database_url

    try:
        return database_url(_settings().database_url)
    except ExgateError as exc:
        raise _fail(exc.detail) from None


def _run(work: Callable[[], Awaitable[T]]) -> T:
    """``asyncio.run(work())`` with exgate's errors, Alembic's and the database's as ``error: ...``, exit 2."""
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError

    from exgate.errors import ExgateError

    try:
        return asyncio.run(work())
    except ExgateError as exc:
        raise _fail(exc.detail) from None
    except CommandError as exc:
        raise _fail(str(exc)) from None
    except (DBAPIError, OSError) as exc:
        from exgate.store.migrate import db_error
        from exgate.store.urls import masked

        raise _fail(f"database {masked(_url())}: {db_error(exc)}") from None


def _store(*, secrets: bool = False):
    """An async factory of a migrated :class:`~exgate.store.Store` (ConfigError otherwise) and,
    with ``secrets``, its SecretBox from ``EXGATE_SECRET_KEYS`` (required)."""
    from exgate.errors import ExgateError
    from exgate.store import SecretBox, Store, require_migrated

    url = _url()
    box = None
    if secrets:
        keys = _settings().secret_keys
        try:
            box = SecretBox.from_env(keys.get_secret_value() if keys else None)
        except ExgateError as exc:
            raise _fail(exc.detail) from None
        if box is None:
            raise _fail("EXGATE_SECRET_KEYS is not set: give the comma-separated Fernet keys (new key first)")

    async def open_store():
        await require_migrated(url)
        return Store(url, box)

    return open_store


def _revision(value: str | None) -> str:
    return value or "base (empty)"


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Option(help="target revision")] = "head") -> None:
    """Apply migrations up to REVISION (default: the head)."""
    from exgate.store import head, upgrade_async
    from exgate.store.urls import masked

    url = _url()
    before, after = _run(lambda: upgrade_async(url, revision))
    where = f"database {masked(url)}"
    if before == after:
        typer.echo(f"{where}: already at revision {_revision(after)}{' (head)' if after == head() else ''}")
    else:
        typer.echo(f"{where}: upgraded from {_revision(before)} to {_revision(after)}"
                   f"{' (head)' if after == head() else ''}")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="target revision (0001, base, -1)")]) -> None:
    """Undo migrations down to REVISION (``base``: drop every exgate table)."""
    from exgate.store import downgrade_async
    from exgate.store.urls import masked

    url = _url()
    before, after = _run(lambda: downgrade_async(url, revision))
    where = f"database {masked(url)}"
    if before == after:
        typer.echo(f"{where}: already at revision {_revision(after)}")
    else:
        typer.echo(f"{where}: downgraded from {_revision(before)} to {_revision(after)}")


@db_app.command("current")
def db_current() -> None:
    """Print the revision the database is at, and the head."""
    from exgate.store import current_async, head
    from exgate.store.urls import masked

    url = _url()
    current = _run(lambda: current_async(url))
    typer.echo(f"database {masked(url)}: at revision {_revision(current)} (head: {head()})")


@tenants_app.command("create")
def tenants_create(name: Annotated[str, typer.Argument(help="unique tenant name")]) -> None:
    """Create a tenant; its API key is printed once, alone on the last line."""
    open_store = _store()

    async def work():
        store = await open_store()
        try:
            return await store.create_tenant(name)
        finally:
            await store.close()

    tenant, key = _run(work)
    typer.echo(f"tenant {tenant.name} created (id {tenant.id}). Its API key is shown once, on the next line;"
               " store it now (exgate keeps only its hash):")
    typer.echo(key)


@tenants_app.command("rekey")
def tenants_rekey(name: Annotated[str, typer.Argument(help="tenant name")]) -> None:
    """Give a tenant a new API key (printed once, alone on the last line); the old key stops working."""
    open_store = _store()

    async def work():
        store = await open_store()
        try:
            return await store.rekey_tenant(name)
        finally:
            await store.close()

    key = _run(work)
    if key is None:
        raise _fail(f"no tenant named {name!r} (see exgate tenants list)")
    typer.echo(f"tenant {name} has a new API key; the old one no longer works. It is shown once, on the next"
               " line; store it now (exgate keeps only its hash):")
    typer.echo(key)


@tenants_app.command("list")
def tenants_list() -> None:
    """List tenants: name, created, revoked (never a key)."""
    open_store = _store()

    async def work():
        store = await open_store()
        try:
            return await store.list_tenants()
        finally:
            await store.close()

    tenants = _run(work)
    if not tenants:
        typer.echo("no tenants (create one: exgate tenants create NAME)")
        return
    width = max(len("name"), *(len(t.name) for t in tenants))
    typer.echo(f"{'name':<{width}}  {'created':<23}  revoked")
    for tenant in tenants:
        typer.echo(f"{tenant.name:<{width}}  {_when(tenant.created_at):<23}  {_when(tenant.revoked_at)}")


@tenants_app.command("revoke")
def tenants_revoke(name: Annotated[str, typer.Argument(help="tenant name")]) -> None:
    """Revoke a tenant: its key stops authenticating at once."""
    open_store = _store()

    async def work():
        store = await open_store()
        try:
            return await store.revoke_tenant(name)
        finally:
            await store.close()

    if not _run(work):
        raise _fail(f"no tenant named {name!r} (see exgate tenants list)")
    typer.echo(f"tenant {name} revoked")


@secrets_app.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every stored credential with the first key of EXGATE_SECRET_KEYS (after
    which the other keys can be removed)."""
    open_store = _store(secrets=True)

    async def work():
        store = await open_store()
        try:
            return await store.rotate_secrets()
        finally:
            await store.close()

    count = _run(work)
    typer.echo(f"re-encrypted {count} connection{'s' if count != 1 else ''} with the first key of EXGATE_SECRET_KEYS")


def register(app: typer.Typer) -> None:
    """Add the sub-apps to the ``exgate`` app."""
    app.add_typer(db_app, name="db")
    app.add_typer(tenants_app, name="tenants")
    app.add_typer(secrets_app, name="secrets")
