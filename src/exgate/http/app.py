"""The gateway's FastAPI app factory and its lifespan (adapters, cache, background loads)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from exgate import __version__
from exgate.cache import MemoryCache
from exgate.cache.memory import wall_clock_ms
from exgate.errors import ExgateError
from exgate.http import problems
from exgate.http.routes import router
from exgate.service import MarketData
from exgate.venues.base import ExchangeAdapter

log = structlog.get_logger("exgate")


async def _load_markets(adapter: ExchangeAdapter) -> None:
    """Load one venue's markets at start-up; a failure leaves that venue 'unavailable' only."""
    try:
        await adapter.start()
        log.info("venue_ready", exchange=adapter.id, markets=adapter.market_count)
    except ExgateError as exc:
        log.warning("venue_unavailable", exchange=adapter.id, error=exc.detail)


def create_app(adapters: Mapping[str, ExchangeAdapter], *, clock: Callable[[], int] = wall_clock_ms,
               cache_max_entries: int = 50_000, preload: bool = True) -> FastAPI:
    """Build the gateway app over ``adapters``.

    On start-up each venue's markets load in the background (``preload``); a venue that is
    unreachable does not delay or stop the others, and is retried on its next request.
    On shutdown the cache's fetches are cancelled and every adapter is closed.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with MemoryCache(clock=clock, max_entries=cache_max_entries) as cache:
            app.state.market_data = MarketData(adapters, cache, clock=clock)
            try:
                async with asyncio.TaskGroup() as loads:
                    pending = [loads.create_task(_load_markets(a)) for a in adapters.values()] if preload else []
                    try:
                        yield
                    finally:
                        for task in pending:
                            task.cancel()
            finally:
                for adapter in adapters.values():
                    await adapter.close()

    app = FastAPI(
        title="exgate",
        version=__version__,
        summary="One normalized, cached market-data API over many crypto exchanges.",
        lifespan=lifespan,
    )
    problems.install(app)
    app.include_router(router)
    return app
