"""The gateway's FastAPI app factory and its lifespan (adapters, cache, metrics, background loads)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from exgate import __version__
from exgate.budget import BudgetGate, MemoryBudgetStore, RedisBudgetStore
from exgate.budget.model import parse_limit_overrides
from exgate.cache import Cache, CircuitBreaker, MemoryStore, RedisStore, load_freshness, wall_clock_ms
from exgate.cache.passthrough import PassThroughCache
from exgate.config import CacheMode, Settings, StreamsMode
from exgate.connectors import ClockOffsets, ConnectorState, MarketsSnapshots
from exgate.errors import ConfigError, ExgateError
from exgate.http import manners, openapi, problems
from exgate.http.fastpath import FastPath, FastPathStats
from exgate.http.connector_routes import router as connector_router
from exgate.http.ingest_routes import router as ingest_router
from exgate.http.private_routes import router as private_router
from exgate.http.routes import router
from exgate.http.stream_routes import router as stream_router
from exgate.metrics import Metrics, RequestMetrics
from exgate.service import MarketData
from exgate.streams import StreamConfig, StreamSupervisor
from exgate.venues.base import ExchangeAdapter
from exgate.venues.metering import metering_for, with_override

log = structlog.get_logger("exgate")

_NO_OTEL = {"tracing": False, "metrics": False, "logs": False}
"""FastAPI's native OpenTelemetry, off: it looks for configured providers on every request
(~8 µs of environment reads here) and exgate's metrics are Prometheus. It stays on when the
process is set up for OpenTelemetry (any ``OTEL_*`` or ``FASTAPI_OTEL_*`` variable)."""


def _fastapi_telemetry() -> dict[str, bool] | None:
    return None if any(name.startswith(("OTEL_", "FASTAPI_OTEL_")) for name in os.environ) else _NO_OTEL


async def _load_markets(adapter: ExchangeAdapter) -> None:
    """Load one venue's markets at start-up; a failure leaves that venue 'unavailable' only."""
    try:
        await adapter.start()
        log.info("venue_ready", exchange=adapter.id, markets=adapter.market_count)
    except ExgateError as exc:
        log.warning("venue_unavailable", exchange=adapter.id, error=exc.detail)


async def open_stream_bus(app: FastAPI, stack: contextlib.AsyncExitStack, settings: Settings, cache: Cache) -> None:
    """Put the event bus on ``app.state.bus`` (one set before start-up is kept; else a
    :class:`~exgate.bus.RedisBus` on ``redis_url`` sharing the cache's breaker, or a
    :class:`~exgate.bus.MemoryBus`) and its fan-out on ``app.state.stream_hub``, both closed with ``stack``;
    ``app.state.control`` is the :class:`~exgate.bus.control.ControlChannel` (``exgate:control``
    on the bus's Redis client, or in-process without Redis)."""
    from exgate.bus import Hub, MemoryBus, RedisBus
    from exgate.bus.control import ControlChannel, LocalControl

    bus = getattr(app.state, "bus", None)
    if bus is None:
        l2 = getattr(cache, "l2", None)
        bus = RedisBus(settings.redis_url, timeout_ms=settings.redis_timeout_ms,
                       breaker=l2.breaker if l2 is not None else None) if settings.redis_url else MemoryBus()
        stack.push_async_callback(bus.close)
    app.state.bus = bus
    app.state.control = ControlChannel(bus.client if isinstance(bus, RedisBus) else LocalControl())
    app.state.stream_hub = await stack.enter_async_context(Hub(bus))
    collector = getattr(app.state, "stream_metrics", None)
    if collector is None:  # registered once per app, whatever the number of lifespans
        from exgate.bus.metrics import StreamCollector

        collector = app.state.stream_metrics = StreamCollector()
        app.state.metrics.registry.register(collector)
    collector.hub = app.state.stream_hub


def build_connectors(settings: Settings, store: object | None, cache: Cache) -> ConnectorState | None:
    """The connector state over the store's database and the cache's Redis (either may be
    missing); ``None`` when neither exists (nothing would outlive the process). Its times are
    the wall clock's: entries are shared with other processes."""
    engine = getattr(store, "engine", None)
    l2 = getattr(cache, "l2", None)
    if engine is None and l2 is None:
        return None
    return ConnectorState(engine, l2, offset_ttl_ms=settings.time_offset_ttl_ms,
                          markets_ttl_ms=settings.markets_snapshot_ttl_ms, lock_lease_ms=settings.lease_ms())


def build_cache(settings: Settings, clock: Callable[[], int], metrics: Metrics) -> Cache:
    """The read-through cache the settings describe: L1 always, L2 when ``redis_url`` is set;
    with ``EXGATE_CACHE=off`` a :class:`PassThroughCache` (nothing kept, nothing coalesced).

    Raises:
        ConfigError: the cache config file or TTL overrides are invalid.
    """
    l2 = None
    if settings.redis_url:
        breaker = CircuitBreaker("redis", clock, failure_threshold=settings.redis_failures_to_open,
                                 cooldown_ms=settings.redis_cooldown_ms, on_change=metrics.circuit)
        l2 = RedisStore.from_url(settings.redis_url, breaker, timeout_ms=settings.redis_timeout_ms,
                                 origin=f"{socket.gethostname()}:{os.getpid()}")
    kind = PassThroughCache if settings.cache is CacheMode.OFF else Cache
    return kind(clock=clock, l1=MemoryStore(max_entries=settings.cache_max_entries, max_bytes=settings.cache_max_bytes),
                 l2=l2, l1_ttl_ms=settings.l1_ttl_ms, lock_lease_ms=settings.lease_ms(),
                 wait_timeout_ms=settings.lease_ms(), stale_after_ms=settings.stale_after_ms,
                 on_lookup=metrics.cache_lookup)


async def open_budgets(stack: contextlib.AsyncExitStack, adapters: Mapping[str, ExchangeAdapter],
                       settings: Settings, clock: Callable[[], int], metrics: Metrics,
                       breaker: CircuitBreaker | None = None) -> None:
    """Give every ccxt adapter a :class:`BudgetGate` over one store: Redis (shared by every
    instance) when ``redis_url`` is set, else in-process. ``breaker``: the cache's breaker of
    that Redis, shared so one background probe serves both (``None``: the store keeps its own)."""
    overrides = parse_limit_overrides(settings.budgets)
    if settings.redis_url:
        store = await stack.enter_async_context(
            RedisBudgetStore(settings.redis_url, timeout_ms=settings.redis_timeout_ms, breaker=breaker, clock=clock))
    else:
        store = MemoryBudgetStore()
    for venue, adapter in adapters.items():
        attach = getattr(adapter, "attach_budget", None)
        if attach is None:
            continue
        metering = metering_for(venue, float(getattr(adapter.exchange, "rateLimit", 1000) or 1000))
        if venue in overrides:
            metering = with_override(metering, *overrides[venue])
        gate = BudgetGate(venue, metering, store, clock=clock, max_waiters=settings.budget_max_waiters,
                          on_wait=lambda p, s, v=venue: metrics.budget_wait.labels(v, p.name.lower()).observe(s),
                          on_throttled=lambda status, v=venue: metrics.upstream_throttled.labels(v, str(status)).inc())
        for status in ("429", "418"):  # series at 0 from the start, so the first 429 shows in increase()
            metrics.upstream_throttled.labels(venue, status)
        attach(await stack.enter_async_context(gate))


def build_streams(settings: Settings, market_data: MarketData, bus: object | None = None,
                  control: object | None = None) -> StreamSupervisor | None:
    """The stream supervisor the settings describe (``EXGATE_STREAMS``: ``on`` streams from
    the start, ``idle`` waits for a start command, ``off`` builds none), attached to
    ``market_data`` so reads try healthy streams first."""
    if settings.streams is StreamsMode.OFF:
        return None
    config = StreamConfig(
        top_n=settings.stream_top_n,
        symbols=tuple(dict.fromkeys(b.strip().upper() for b in settings.stream_symbols.split(",") if b.strip())),
        lease_ms=settings.stream_lease_ms, owner_lease_ms=settings.stream_owner_lease_ms,
        stall_ms=settings.stream_stall_ms, interval=settings.stream_interval)
    supervisor = StreamSupervisor(market_data, config, bus=bus, control=control,
                                  autostart=settings.streams is StreamsMode.ON)
    market_data.attach_streams(supervisor)
    return supervisor


def create_app(adapters: Mapping[str, ExchangeAdapter], *, clock: Callable[[], int] = wall_clock_ms,
               settings: Settings | None = None, preload: bool = True, fast_path: bool = True,
               store: object | None = None, private_unavailable: str | None = None) -> FastAPI:
    """Build the gateway app over ``adapters`` (``settings``: cache, Redis and TTL options;
    default: read from the environment).

    ``store``: the SQL :class:`~exgate.store.Store` of tenants and connections (``None``: the
    private routes answer 503 with ``private_unavailable`` or a default reason).

    ``fast_path``: answer fresh L1 hits of the read routes in raw ASGI before FastAPI's
    routing and validation (:mod:`exgate.http.fastpath`; same bytes, headers and metrics).

    On start-up each venue's markets load in the background (``preload``); a venue that is
    unreachable does not delay or stop the others, and is retried on its next request.
    On shutdown the cache's fetches are cancelled and every adapter is closed.

    Raises:
        ConfigError: the cache settings are invalid (raised here, before serving).
    """
    settings = settings if settings is not None else Settings()
    freshness = load_freshness(settings.cache_ttl_ms, settings.cache_config)
    try:
        parse_limit_overrides(settings.budgets)
    except ValueError as exc:
        raise ConfigError(str(exc), field="EXGATE_BUDGETS") from None
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as budgets, build_cache(settings, clock, metrics) as cache:
            await open_budgets(budgets, adapters, settings, clock, metrics,
                               breaker=cache.l2.breaker if cache.l2 is not None else None)
            connectors = build_connectors(settings, store, cache)
            offsets = None
            if connectors is not None:
                await budgets.enter_async_context(connectors)
                snapshots = MarketsSnapshots(connectors)
                for adapter in adapters.values():
                    if hasattr(adapter, "attach_snapshots"):
                        adapter.attach_snapshots(snapshots)
                offsets = ClockOffsets(connectors)
            app.state.connectors = connectors
            metrics.connectors.state = connectors
            await open_stream_bus(app, budgets, settings, cache)
            app.state.market_data = MarketData(adapters, cache, freshness=freshness, clock=clock)
            metrics.live.market_data = app.state.market_data
            from exgate.accounts import AccountService, Idempotency, OrderDesk

            accounts = AccountService(app.state.market_data, store, unavailable=private_unavailable,
                                      clock_offsets=offsets)
            app.state.accounts = accounts
            app.state.orders = OrderDesk(accounts, Idempotency(
                cache.l2.client if cache.l2 is not None else None, lease_ms=4 * settings.upstream_timeout_ms + 2_000))
            budgets.push_async_callback(accounts.close)
            for adapter in adapters.values():
                if adapter.calls is not None:  # count only the calls that reached the exchange
                    adapter.calls.observers["metrics"] = metrics.upstream_call
            streams = build_streams(settings, app.state.market_data, getattr(app.state, "bus", None),
                                    getattr(app.state, "control", None))
            app.state.streams = streams
            metrics.streams.supervisor = streams
            if streams is not None:  # start/stop commands of every instance (and `exgate streams`)
                from exgate.bus.control import supervisor_commands

                await budgets.enter_async_context(app.state.control.listen(supervisor_commands(streams)))
            try:
                async with streams if streams is not None else contextlib.nullcontext(), \
                        asyncio.TaskGroup() as loads:
                    pending = [loads.create_task(_load_markets(a)) for a in adapters.values()] if preload else []
                    try:
                        yield
                    finally:
                        for task in pending:
                            task.cancel()
            finally:
                for adapter in adapters.values():
                    await adapter.close()

    # Swagger UI and ReDoc assets come from the installed fastapi-offline package, not a CDN
    app = FastAPIOffline(
        title="exgate",
        version=__version__,
        summary="One normalized, cached market-data API over many crypto exchanges.",
        lifespan=lifespan,
        telemetry=_fastapi_telemetry(),
    )
    app.state.metrics = metrics
    app.state.admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
    problems.install(app)
    app.include_router(router)
    app.include_router(private_router)
    app.include_router(connector_router)
    app.include_router(ingest_router)
    app.include_router(stream_router)
    app.state.fast_path = FastPathStats()
    if fast_path:  # inside RequestMetrics: its answers are timed and labelled like the routes'
        app.add_middleware(FastPath, stats=app.state.fast_path)
    app.add_middleware(RequestMetrics, metrics=metrics)
    manners.install(app, manners.cors_origins(settings.cors_origins))
    openapi.install(app, adapters)
    return app
