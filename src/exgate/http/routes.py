"""Read routes: thin handlers that pass raw parameters to :class:`~exgate.service.MarketData`
and return its cached bytes as they are, with ``X-Cache`` (hit, miss, coalesced, stale),
``X-Cache-Tier`` (l1: this process, l2: Redis) and ``Age``."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

import orjson

from exgate.cache import CacheResult
from exgate.cache.keys import PREFIX
from exgate.errors import BadRequest
from exgate.http.problems import problem
from exgate.metrics import CONTENT_TYPE
from exgate.models import ExchangeInfo, FundingRate, OrderBook
from exgate.service import CandlesPage, MarketData, MarketsPage, PricesPage, TradesPage

router = APIRouter()

_JSON = "application/json"


def _cached(result: CacheResult) -> Response:
    return Response(result.body, media_type=_JSON,
                    headers={"X-Cache": result.status.value, "X-Cache-Tier": result.tier.value, "Age": str(result.age_s)})


def _service(request: Request) -> MarketData:
    return request.app.state.market_data


def _doc(model: type) -> dict:
    return {200: {"model": model, "description": "cached JSON; see X-Cache and Age headers"}}


@router.get("/healthz", tags=["ops"])
async def healthz(request: Request) -> Response:
    """Liveness: the process answers. 503 ``starting`` until every venue has loaded its markets
    or failed once; 200 ``ok`` from then on, whatever the venues do (see ``/readyz``). The body
    carries each venue's status either way."""
    service = _service(request)
    statuses = {info.id: info.status.value for info in service.exchanges()}
    started = service.started()
    return Response(orjson.dumps({"status": "ok" if started else "starting", "exchanges": statuses}),
                    status_code=200 if started else 503, media_type=_JSON)


@router.get("/readyz", tags=["ops"])
async def readyz(request: Request) -> Response:
    """Readiness: 200 while at least one venue is usable (``ready`` or ``degraded``) and Redis,
    when configured, is reachable (its circuit closed); otherwise 503 problem+json saying why."""
    ready, why, statuses, redis = _service(request).readiness()
    venues = {v: s.value for v, s in statuses.items()}
    redis_state = redis.value if redis is not None else None
    if not ready:
        return problem(503, "Not ready", why, instance=request.url.path, headers={"Retry-After": "1"},
                       exchanges=venues, redis=redis_state)
    return Response(orjson.dumps({"status": "ready", "exchanges": venues, "redis": redis_state}), media_type=_JSON)


@router.get("/metrics", tags=["ops"])
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this instance (text exposition format)."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


_TAG_KINDS = ("exchange:", "market:", "account:")


def _refuse_admin(request: Request) -> Response | None:
    """``None`` when the request carries the operator token; else the 403 (no token set) or 401."""
    token = getattr(request.app.state, "admin_token", None)
    if not token:
        return problem(403, "Forbidden", "cache invalidation is disabled: set EXGATE_ADMIN_TOKEN to enable it",
                       instance=request.url.path)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        return problem(401, "Unauthorized", "send the operator token as 'Authorization: Bearer <EXGATE_ADMIN_TOKEN>'",
                       instance=request.url.path, headers={"WWW-Authenticate": 'Bearer realm="exgate-admin"'})
    return None


@router.delete("/v1/cache", tags=["ops"])
async def invalidate(request: Request,
                     key: list[str] = Query(default=[], description="cache key, e.g. exgate:v1:bybit:markets"),
                     tag: list[str] = Query(default=[], description="exchange:{venue}, market:{venue}:{symbol}"
                                                                     " or account:{venue}:{hash}")) -> Response:
    """Drop cached keys and tagged groups on every instance sharing this Redis (operators only:
    ``Authorization: Bearer <EXGATE_ADMIN_TOKEN>``). Tags take any symbol form the routes accept;
    ``invalidated`` lists the keys that existed."""
    refused = _refuse_admin(request)
    if refused is not None:
        return refused
    if not key and not tag:
        raise BadRequest("give at least one key or tag", field="key", allowed=["key", "tag"])
    for value in key:
        if not value.startswith(PREFIX + ":"):
            raise BadRequest(f"key must start with {PREFIX}:, got {value!r}", field="key")
    for value in tag:
        if not value.startswith(_TAG_KINDS):
            raise BadRequest(f"tag must start with one of {', '.join(_TAG_KINDS)}; got {value!r}", field="tag",
                             allowed=list(_TAG_KINDS))
    dropped, propagated = await _service(request).invalidate(key, tag)
    # propagated false: Redis was unreachable, only this instance's copies were dropped
    return Response(orjson.dumps({"invalidated": dropped, "propagated": propagated}), media_type=_JSON)


@router.get("/v1/exchanges", tags=["market data"], responses={200: {"model": list[ExchangeInfo]}})
async def exchanges(request: Request) -> Response:
    """Venues served, with capabilities, whether their markets are loaded, and their upstream
    budget (use of each limit in the current window, bans after a 429/418)."""
    infos = await _service(request).exchanges_with_budget()
    return Response(orjson.dumps({"exchanges": [i.model_dump(mode="json") for i in infos]}), media_type=_JSON)


@router.get("/v1/{exchange}/markets", tags=["market data"], responses=_doc(MarketsPage))
async def markets(request: Request, exchange: str) -> Response:
    """All markets of a venue (cached 300 s)."""
    return _cached(await _service(request).markets(exchange))


@router.get("/v1/{exchange}/prices", tags=["market data"], responses=_doc(PricesPage))
async def prices(request: Request, exchange: str,
                 symbols: str | None = Query(None, description="comma-separated symbols; all when absent")) -> Response:
    """Tickers (last, bid, ask, mark, index, 24 h stats, funding) of a venue (cached 5 s)."""
    return _cached(await _service(request).prices(exchange, symbols))


@router.get("/v1/{exchange}/markets/{symbol:path}/orderbook", tags=["market data"], responses=_doc(OrderBook))
async def orderbook(request: Request, exchange: str, symbol: str,
                    depth: int | None = Query(None, description="levels per side (default 20)")) -> Response:
    """Order book snapshot (cached 1 s)."""
    return _cached(await _service(request).order_book(exchange, symbol, depth))


@router.get("/v1/{exchange}/markets/{symbol:path}/trades", tags=["market data"], responses=_doc(TradesPage))
async def trades(request: Request, exchange: str, symbol: str,
                 limit: int | None = Query(None, description="most recent trades (default 100)")) -> Response:
    """Recent public trades, oldest first (cached 2 s)."""
    return _cached(await _service(request).trades(exchange, symbol, limit))


@router.get("/v1/{exchange}/markets/{symbol:path}/klines", tags=["market data"], responses=_doc(CandlesPage))
async def klines(request: Request, exchange: str, symbol: str,
                 interval: str | None = Query(None, description="e.g. 1m, 1h, 1d (venue-specific list)"),
                 start: int | None = Query(None, description="first open time, ms"),
                 end: int | None = Query(None, description="last open time, ms"),
                 limit: int | None = Query(None, description="most candles (default 200)")) -> Response:
    """Candles, oldest first (cached 5 s; 1 h once every candle in range is closed)."""
    return _cached(await _service(request).klines(exchange, symbol, interval, start, end, limit))


@router.get("/v1/{exchange}/markets/{symbol:path}/funding", tags=["market data"], responses=_doc(FundingRate))
async def funding(request: Request, exchange: str, symbol: str) -> Response:
    """Current funding rate, next funding time, mark and index of a perpetual (cached 10 s)."""
    return _cached(await _service(request).funding(exchange, symbol))
