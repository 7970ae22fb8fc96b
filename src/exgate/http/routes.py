"""Read routes: thin handlers that pass raw parameters to :class:`~exgate.service.MarketData`
and return its cached bytes as they are, with ``X-Cache`` (hit, miss, coalesced, stale),
``X-Cache-Tier`` (l1: this process, l2: Redis) and ``Age``."""

from __future__ import annotations

import hmac
from typing import Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

import orjson

from exgate import readkeys
from exgate.cache import CacheResult
from exgate.cache.circuit import CircuitState
from exgate.cache.keys import PREFIX
from exgate.errors import BadRequest, echo
from exgate.http.manners import list_pattern, reject_repeated_scalars, split_list
from exgate.http.openapi import problem_responses
from exgate.http.problems import problem
from exgate.metrics import CONTENT_TYPE
from exgate.models import ExchangeInfo, FundingRate, OrderBook, VenueStatus
from exgate.service import CandlesPage, MarketData, MarketsPage, PricesPage, TradesPage
from exgate.venues.profiles import widest

# Response (not JSONResponse): handlers send cached bytes; each route documents its own bodies
router = APIRouter(default_response_class=Response, dependencies=[Depends(reject_repeated_scalars)])

_JSON = "application/json"

MAX_DEPTH = widest("max_depth")
MAX_TRADES = widest("max_trades")
MAX_CANDLES = widest("max_candles")


class Health(BaseModel):
    """``GET /healthz``: ``starting`` (503) until every venue loaded or failed once, then ``ok``;
    ``exchanges`` maps each venue to its status."""

    status: Literal["ok", "starting"]
    exchanges: dict[str, VenueStatus]


class Ready(BaseModel):
    """``GET /readyz`` when ready: each venue's status; ``redis`` the L2 circuit state, or
    ``null`` without Redis."""

    status: Literal["ready"]
    exchanges: dict[str, VenueStatus]
    redis: CircuitState | None


class ExchangesPage(BaseModel):
    """``GET /v1/exchanges``."""

    exchanges: list[ExchangeInfo]


class Invalidated(BaseModel):
    """``DELETE /v1/cache``: the keys dropped; ``propagated`` false when Redis was unreachable
    and only this instance's copies were dropped."""

    invalidated: list[str]
    propagated: bool


def _list_param(name: str, description: str, item_pattern: str | None = None):
    """A list query parameter: repeats and comma lists merge (``?a=x,y&a=z`` → ``[x, y, z]``).

    With ``item_pattern`` (documentation only: the handler checks and names the bad value)
    items are kept as given, only empty ones dropped."""
    extra = {"items": {"type": "string", "pattern": list_pattern(item_pattern)}} if item_pattern else None

    def values(raw: list[str] = Query([], alias=name, description=description + "; repeat or comma-separate",
                                      json_schema_extra=extra)) -> list[str]:
        return split_list(raw, strip=item_pattern is None)

    return values


_EXCHANGE = Path(description="venue id, see /v1/exchanges")
_SYMBOL = Path(description="ccxt unified (BTC/USDT:USDT), dashed (BTC-USDT-PERP), venue id (BTCUSDT) or a bare base"
                           " (BTC: the main perpetual)", openapi_examples={"base": {"value": "BTC"}})


def cached_response(result: CacheResult, body: bytes | None = None) -> Response:
    """A cached read's answer: ``body`` (default: the cached bytes as they are) with
    ``X-Cache``, ``X-Cache-Tier``, ``X-Cache-Source`` and ``Age``."""
    return Response(result.body if body is None else body, media_type=_JSON,
                    headers={"X-Cache": result.status.value, "X-Cache-Tier": result.tier.value,
                             "X-Cache-Source": result.source.value, "Age": str(result.age_s)})



def _service(request: Request) -> MarketData:
    return request.app.state.market_data


_CACHE_HEADERS = {
    "X-Cache": {"description": "hit, miss, coalesced or stale", "required": True,
                "schema": {"type": "string", "enum": ["hit", "miss", "coalesced", "stale"]}},
    "X-Cache-Tier": {"description": "l1: this process, l2: Redis", "required": True,
                     "schema": {"type": "string", "enum": ["l1", "l2"]}},
    "X-Cache-Source": {"description": "stream: a healthy WebSocket stream's latest state; rest: an upstream REST"
                                      " response kept for its TTL", "required": True,
                       "schema": {"type": "string", "enum": ["stream", "rest"]}},
    "Age": {"description": "seconds since the data was fetched upstream", "required": True,
            "schema": {"type": "integer", "minimum": 0}},
}


def _doc(model: type, *errors: int) -> dict:
    return {200: {"model": model, "description": "cached JSON; see X-Cache and Age headers", "headers": _CACHE_HEADERS},
            **problem_responses(*errors)}


@router.get("/healthz", tags=["ops"], responses={200: {"model": Health},
                                                 503: {"model": Health, "description": "starting"}})
async def healthz(request: Request) -> Response:
    """Liveness: the process answers. 503 ``starting`` until every venue has loaded its markets
    or failed once; 200 ``ok`` from then on, whatever the venues do (see ``/readyz``). The body
    carries each venue's status either way."""
    service = _service(request)
    statuses = {info.id: info.status.value for info in service.exchanges()}
    started = service.started()
    return Response(orjson.dumps({"status": "ok" if started else "starting", "exchanges": statuses}),
                    status_code=200 if started else 503, media_type=_JSON)


@router.get("/readyz", tags=["ops"], responses={200: {"model": Ready}, **problem_responses(503)})
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


@router.get("/metrics", tags=["ops"], responses={
    200: {"description": "Prometheus text exposition format",
          "content": {CONTENT_TYPE.split(";")[0] + "; version=0.0.4": {"schema": {"type": "string"}}}}})
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this instance (text exposition format)."""
    connectors = getattr(request.app.state, "connectors", None)
    if connectors is not None:  # the connector state's entry counts, read from SQL at scrape
        await connectors.refresh()
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


_TAG_KINDS = ("exchange:", "market:", "account:")


def refuse_admin(request: Request, feature: str = "cache invalidation") -> Response | None:
    """``None`` when the request carries the operator token; else the 403 (no token set: the
    ``feature`` is disabled) or 401."""
    token = getattr(request.app.state, "admin_token", None)
    if not token:
        return problem(403, "Forbidden", f"{feature} is disabled: set EXGATE_ADMIN_TOKEN to enable it",
                       instance=request.url.path)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        return problem(401, "Unauthorized", "send the operator token as 'Authorization: Bearer <EXGATE_ADMIN_TOKEN>'",
                       instance=request.url.path, headers={"WWW-Authenticate": 'Bearer realm="exgate-admin"'})
    return None


@router.delete("/v1/cache", tags=["ops"], openapi_extra={"security": [{"adminToken": []}]},
                responses={200: {"model": Invalidated}, **problem_responses(401, 403, 404, 422)})
async def invalidate(request: Request,
                     key: list[str] = Depends(_list_param("key", "cache key, e.g. exgate:v1:bybit:markets",
                                                          f"{PREFIX}:[^,]*")),
                     tag: list[str] = Depends(_list_param("tag", "exchange:{venue}, market:{venue}:{symbol}"
                                                                 " or account:{venue}:{hash}",
                                                          "(exchange|market|account):[^,]*"))) -> Response:
    """Drop cached keys and tagged groups on every instance sharing this Redis (operators only:
    ``Authorization: Bearer <EXGATE_ADMIN_TOKEN>``). Tags take any symbol form the routes accept;
    ``invalidated`` lists the keys that existed."""
    refused = refuse_admin(request)
    if refused is not None:
        return refused
    if not key and not tag:
        raise BadRequest("give at least one key or tag", field="key", allowed=["key", "tag"])
    for value in key:
        if not value.startswith(PREFIX + ":"):
            raise BadRequest(f"key must start with {PREFIX}:, got {echo(value)}", field="key")
    for value in tag:
        if not value.startswith(_TAG_KINDS):
            raise BadRequest(f"tag must start with one of {', '.join(_TAG_KINDS)}; got {echo(value)}", field="tag",
                             allowed=list(_TAG_KINDS))
    dropped, propagated = await _service(request).invalidate(key, tag)
    # propagated false: Redis was unreachable, only this instance's copies were dropped
    return Response(orjson.dumps({"invalidated": dropped, "propagated": propagated}), media_type=_JSON)


@router.get("/v1/exchanges", tags=["market data"], responses={200: {"model": ExchangesPage}})
async def exchanges(request: Request) -> Response:
    """Venues served, with capabilities, whether their markets are loaded, their upstream
    budget (use of each limit in the current window, bans after a 429/418) and the status of
    their WebSocket streams."""
    infos = await _service(request).exchanges_with_budget()
    streams = getattr(request.app.state, "streams", None)
    if streams is not None:
        infos = [i.model_copy(update={"streams": [s.model_dump(mode="json") for s in await streams.statuses(i.id)]})
                 for i in infos]
    return Response(orjson.dumps({"exchanges": [i.model_dump(mode="json") for i in infos]}), media_type=_JSON)


@router.get("/v1/{exchange}/markets", tags=["market data"], responses=_doc(MarketsPage, 404, 502, 503))
async def markets(request: Request, exchange: str = _EXCHANGE) -> Response:
    """All markets of a venue (cached 300 s)."""
    return cached_response(await _service(request).markets(exchange))


@router.get("/v1/{exchange}/prices", tags=["market data"], responses=_doc(PricesPage, 404, 502, 503))
async def prices(request: Request, exchange: str = _EXCHANGE,
                 symbols: list[str] = Depends(_list_param("symbols", "symbols; all when absent"))) -> Response:
    """Tickers (last, bid, ask, mark, index, 24 h stats, funding) of a venue (cached 5 s)."""
    return cached_response(await _service(request).prices(exchange, ",".join(symbols) or None))


@router.get("/v1/{exchange}/markets/{symbol:path}/orderbook", tags=["market data"],
            responses=_doc(OrderBook, 404, 422, 502, 503))
async def orderbook(request: Request, exchange: str = _EXCHANGE, symbol: str = _SYMBOL,
                    depth: int | None = Query(None, ge=1, le=MAX_DEPTH,
                                              description="levels per side (default 20; the venue's maximum"
                                                          " may be lower: a 422 gives it)")) -> Response:
    """Order book snapshot (cached 1 s)."""
    return cached_response(await _service(request).order_book(exchange, symbol, depth))


@router.get("/v1/{exchange}/markets/{symbol:path}/trades", tags=["market data"],
            responses=_doc(TradesPage, 404, 422, 502, 503))
async def trades(request: Request, exchange: str = _EXCHANGE, symbol: str = _SYMBOL,
                 limit: int | None = Query(None, ge=1, le=MAX_TRADES,
                                           description="most recent trades (default 100; the venue's maximum"
                                                       " may be lower: a 422 gives it)")) -> Response:
    """Recent public trades, oldest first (cached 2 s)."""
    return cached_response(await _service(request).trades(exchange, symbol, limit))


async def _interval_given(request: Request) -> None:
    """A missing ``interval`` is a 422 listing the venue's intervals (after an unknown
    exchange's 404), as the service answers a wrong one."""
    if "interval" not in request.query_params:
        readkeys.check_interval(_service(request).adapter(request.path_params["exchange"]), None)


@router.get("/v1/{exchange}/markets/{symbol:path}/klines", tags=["market data"],
            responses=_doc(CandlesPage, 404, 422, 502, 503), dependencies=[Depends(_interval_given)])
async def klines(request: Request, exchange: str = _EXCHANGE, symbol: str = _SYMBOL,
                 interval: str = Query(description="e.g. 1m, 1h, 1d (venue-specific: a 422 lists the venue's)"),
                 start: int | None = Query(None, ge=0, description="first open time, ms"),
                 end: int | None = Query(None, ge=0, description="last open time, ms"),
                 limit: int | None = Query(None, ge=1, le=MAX_CANDLES,
                                           description="most candles (default 200; the venue's maximum may be"
                                                       " lower: a 422 gives it)")) -> Response:
    """Candles, oldest first (cached 5 s; 1 h once every candle in range is closed)."""
    return cached_response(await _service(request).klines(exchange, symbol, interval, start, end, limit))


@router.get("/v1/{exchange}/markets/{symbol:path}/funding", tags=["market data"],
            responses=_doc(FundingRate, 404, 502, 503))
async def funding(request: Request, exchange: str = _EXCHANGE, symbol: str = _SYMBOL) -> Response:
    """Current funding rate, next funding time, mark and index of a perpetual (cached 10 s)."""
    return cached_response(await _service(request).funding(exchange, symbol))
