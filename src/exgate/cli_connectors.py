"""``exgate connectors stats|invalidate|warm``: the connector state (venues' clock offsets and
markets snapshots, :mod:`exgate.connectors`) from the command line. Each reads
``EXGATE_DATABASE_URL``, ``EXGATE_REDIS_URL``, ``EXGATE_UPSTREAMS`` and ``EXGATE_EXCHANGES``
as ``serve`` does; the database must be migrated."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import typer

connectors_app = typer.Typer(no_args_is_help=True,
                             help="Connector state: venues' clock offsets and markets snapshots kept across restarts.")


@contextlib.asynccontextmanager
async def _opened(settings: Any, need_store: bool = False) -> AsyncIterator[tuple[Any, Any]]:
    """(ConnectorState, Store) over the configured database and Redis, closed after."""
    from exgate.cache import CircuitBreaker, RedisStore, wall_clock_ms
    from exgate.connectors import ConnectorState
    from exgate.store import Store, database_url, require_migrated

    url = database_url(settings.database_url)
    await require_migrated(url)
    store = Store(url, None)
    redis = None
    if settings.redis_url:
        redis = RedisStore.from_url(settings.redis_url, CircuitBreaker("redis", wall_clock_ms),
                                    timeout_ms=settings.redis_timeout_ms)
    state = ConnectorState(store.engine, redis, offset_ttl_ms=settings.time_offset_ttl_ms,
                           markets_ttl_ms=settings.markets_snapshot_ttl_ms, lock_lease_ms=settings.lease_ms())
    try:
        async with state:
            yield state, store
    finally:
        if redis is not None:
            await redis.close()
        await store.close()


def _age(ms: int | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.1f} s"


@connectors_app.command("stats")
def stats() -> None:
    """Entries per venue: total, valid, expired, invalid, hits, age of the last sync.

    Hits are every process's (flushed to the database every 5 s)."""
    from exgate.cli_store import _run, _settings

    settings = _settings()

    async def work() -> dict:
        async with _opened(settings) as (state, _):
            await state.refresh()
            return state.stats()

    figures = _run(work)
    entries = figures["entries"]
    typer.echo(f"entries: {entries['total']} (valid {entries['valid']}, expired {entries['expired']},"
               f" invalid {entries['invalid']}); hits {figures['stored_hits']};"
               f" last sync {_age(figures['last_sync_age_ms'])} ago")
    for venue, each in sorted(figures["by_venue"].items()):
        e = each["entries"]
        typer.echo(f"{venue}: {e['total']} entries (valid {e['valid']}, expired {e['expired']}, invalid"
                   f" {e['invalid']}); hits {each['stored_hits']}; last sync {_age(each['last_sync_age_ms'])} ago")


@connectors_app.command("invalidate")
def invalidate(exchange: Annotated[str | None, typer.Option(help="only this venue (default: every venue)")] = None
               ) -> None:
    """Invalidate stored state (every venue's, or one's): the next start or connection syncs again."""
    from exgate.cli_store import _run, _settings

    settings = _settings()

    async def work() -> int:
        async with _opened(settings) as (state, _):
            return await state.invalidate(exchange.lower() if exchange else None)

    count = _run(work)
    typer.echo(f"invalidated {count} entr{'y' if count == 1 else 'ies'}"
               f"{f' of {exchange.lower()}' if exchange else ''}")


@connectors_app.command("warm")
def warm() -> None:
    """Pre-load every venue's markets and the clock offset of venues with active connections.

    Run it before a scheduled job; prints what was loaded and from where (the venue or the store)."""
    from exgate.cli_store import _run, _settings

    settings = _settings()

    async def work() -> list[str]:
        from exgate.connectors import ClockOffsets, MarketsSnapshots
        from exgate.errors import ExgateError
        from exgate.http.app import open_budgets
        from exgate.metrics import Metrics
        from exgate.venues.registry import build_adapters
        from exgate.venues.upstream import parse_upstreams
        from exgate.cache import wall_clock_ms

        lines: list[str] = []
        adapters = build_adapters(settings.exchange_list(), parse_upstreams(settings.upstreams),
                                  timeout_ms=settings.upstream_timeout_ms)
        try:
            async with _opened(settings) as (state, store), contextlib.AsyncExitStack() as budgets:
                await open_budgets(budgets, adapters, settings, wall_clock_ms, Metrics())
                snapshots, offsets = MarketsSnapshots(state), ClockOffsets(state)
                active = await store.active_venues()
                for venue, adapter in adapters.items():
                    adapter.attach_snapshots(snapshots)
                    try:
                        await adapter.markets()
                        source = "stored snapshot" if snapshots.loaded.get(venue) == "snapshot" else "the venue"
                        lines.append(f"{venue}: markets {adapter.market_count} (from {source})")
                    except ExgateError as exc:
                        lines.append(f"{venue}: markets not loaded ({exc.detail})")
                        continue
                    if venue in active and offsets.applies(adapter):
                        syncs = state.syncs[venue]
                        try:
                            entry = await offsets.offset(adapter)
                        except ExgateError as exc:
                            lines.append(f"{venue}: clock offset not synced ({exc.detail})")
                            continue
                        source = "synced now" if state.syncs[venue] > syncs else "stored"
                        lines.append(f"{venue}: clock offset {entry.offset_ms:+d} ms, rtt {entry.rtt_ms} ms"
                                     f" ({source}; {active[venue]} active connection"
                                     f"{'s' if active[venue] != 1 else ''})")
        finally:
            for adapter in adapters.values():
                await adapter.close()
        return lines

    for line in _run(work):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add ``connectors`` to the ``exgate`` app."""
    app.add_typer(connectors_app, name="connectors")
