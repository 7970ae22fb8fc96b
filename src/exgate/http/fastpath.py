"""The hot path: L1 hits of the read routes answered in raw ASGI, before FastAPI.

FastAPI's routing, dependency solving and validation cost more per request than everything
a cache hit needs. :class:`FastPath` sits in front of them and answers a request itself only
when it knows the slow path would answer it with exactly these bytes:

* ``GET`` on a read route (``/v1/{exchange}/markets``, ``/prices``,
  ``/markets/{symbol}/orderbook|trades|klines|funding``), matched with the routes' own
  compiled path patterns, no ``root_path``, no ``Origin`` header (CORS is FastAPI's); ``HEAD``
  too, since the HEAD middleware outside runs it as ``GET`` and drops the body;
* a query string it fully understands: only that route's parameters, none repeated,
  integers in plain decimal (``depth=5``, not ``05``, ``+5`` or ``5.0``);
* a key known without calling anything (:meth:`MarketData.cached_key`: the same rules the
  read uses, symbols resolved only among the markets already loaded), and a fresh L1 copy
  under it (:meth:`Cache.peek`, counted in ``exgate_cache_lookups_total`` as the read counts
  its L1 hits).

It then sends the same status, headers (``X-Cache: hit``, ``X-Cache-Tier: l1``, ``X-Cache-Source: rest``, ``Age``,
``content-length``, ``content-type: application/json``) and body as the route, and sets
``scope["route"]`` to that route, so the request-metrics middleware outside it records the
same ``exgate_request_duration_seconds`` labels. Everything else (a miss, a stale copy, an
unknown exchange or symbol, a bad or repeated parameter, ``OPTIONS``, an ``Origin``)
goes to FastAPI untouched.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.convertors import Convertor, PathConvertor, StringConvertor
from starlette.routing import BaseRoute

from exgate.cache import CacheStatus, Source, Tier
from exgate.http import routes
from exgate.readkeys import Read

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_INTEGER = re.compile(r"0|[1-9][0-9]{0,17}")
"""An integer exactly as ``int()`` prints it: FastAPI parses it to the same value."""

_READS: dict[Callable[..., Any], tuple[Read, dict[str, bool]]] = {
    # endpoint → (read, query parameter → is an integer)
    routes.markets: (Read.MARKETS, {}),
    routes.prices: (Read.PRICES, {"symbols": False}),
    routes.orderbook: (Read.ORDER_BOOK, {"depth": True}),
    routes.trades: (Read.TRADES, {"limit": True}),
    routes.klines: (Read.CANDLES, {"interval": False, "start": True, "end": True, "limit": True}),
    routes.funding: (Read.FUNDING, {}),
}

_X_CACHE = (b"x-cache", CacheStatus.HIT.value.encode())
_X_CACHE_TIER = (b"x-cache-tier", Tier.L1.value.encode())  # Cache.peek answers only fresh L1 hits
_X_CACHE_SOURCE = (b"x-cache-source", Source.REST.value.encode())  # stream-fed reads go through the routes
_JSON = (b"content-type", b"application/json")


def _pairs(query: str) -> list[tuple[str, str]]:
    """``parse_qsl(query, keep_blank_values=True)``, as Starlette parses query strings; done
    by hand when nothing in it is escaped (several times faster, same answer)."""
    if "%" in query or "+" in query:
        return parse_qsl(query, keep_blank_values=True)
    return [(pair.partition("=")[0], pair.partition("=")[2]) for pair in query.split("&") if pair]


@dataclass
class FastPathStats:
    """What the fast path did since start: ``answered`` requests it served itself."""

    answered: int = 0


@dataclass(frozen=True, slots=True)
class _Route:
    pattern: re.Pattern[str]
    convertors: dict[str, Convertor[Any]] | None  # None: every path parameter is a plain string
    route: BaseRoute
    read: Read | None  # None: a route the fast path never answers (it only shadows later ones)
    params: dict[str, bool]


def _query_params(dependant: Any) -> set[str]:
    """Every query parameter a route takes, its dependencies' included (list parameters such
    as ``symbols`` are read by a dependency that merges their repeats)."""
    if dependant is None:
        return set()
    names = {q.alias for q in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_params(sub)
    return names


def _table(candidates: list[BaseRoute]) -> list[_Route]:
    """The routes of :data:`exgate.http.routes.router`, in matching order."""
    out = []
    for route in candidates:
        pattern, path = getattr(route, "path_regex", None), getattr(route, "path", "")
        if pattern is None or not path.startswith(("/v1/", "/{")):
            continue  # cannot match a path under /v1/ (the only ones the fast path looks at)
        read, params = _READS.get(getattr(route, "endpoint", None), (None, {}))
        declared = _query_params(getattr(route, "dependant", None))
        if read is not None and not set(params) <= declared:
            read = None  # the route no longer takes a parameter the fast path would key on
        convertors = dict(getattr(route, "param_convertors", {}))
        plain = all(type(c) in (StringConvertor, PathConvertor) for c in convertors.values())
        out.append(_Route(pattern, None if plain else convertors, route, read, params))
    return out


class FastPath:
    """ASGI middleware answering fresh L1 hits of the read routes (see the module doc).

    Install it inside the request-metrics middleware (``app.add_middleware(FastPath, ...)``
    before ``app.add_middleware(RequestMetrics, ...)``), so its answers are timed and labelled
    like the routes'. It reads ``app.state.market_data`` of the app it serves
    (``scope["app"]``) and passes every request through until that exists.

    Args:
        app: the rest of the middleware stack.
        stats: counters to update (tests and diagnostics).
    """

    def __init__(self, app: ASGIApp, stats: FastPathStats | None = None) -> None:
        self.app = app
        self.stats = stats if stats is not None else FastPathStats()
        self._routes = _table(routes.router.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        answer = self._answer(scope)
        if answer is None:
            await self.app(scope, receive, send)
            return
        route, result = answer
        scope["route"] = route
        self.stats.answered += 1
        body = result.body
        await send({"type": "http.response.start", "status": 200, "headers": [
            _X_CACHE, _X_CACHE_TIER, _X_CACHE_SOURCE, (b"age", str(result.age_s).encode()), (b"content-length", str(len(body)).encode()),
            _JSON]})
        await send({"type": "http.response.body", "body": body})

    def _answer(self, scope: Scope) -> tuple[BaseRoute, Any] | None:
        """The route and the fresh L1 result of this request, or ``None`` (FastAPI answers)."""
        if scope.get("root_path"):
            return None
        for name, _ in scope["headers"]:
            if name == b"origin":
                return None
        path = scope["path"]
        for entry in self._routes:
            match = entry.pattern.match(path)
            if match is not None:
                break
        else:
            return None
        if entry.read is None:
            return None
        service = getattr(scope["app"].state, "market_data", None)
        if service is None:
            return None
        values: dict[str, Any] = match.groupdict()
        if entry.convertors is not None:
            values = {name: entry.convertors[name].convert(value) for name, value in values.items()}
        query = scope["query_string"]
        if query:
            for name, value in _pairs(query.decode("latin-1")):
                integer = entry.params.get(name)
                if integer is None or name in values:
                    return None  # a parameter the route does not take, or a repeated one
                if integer:
                    if not _INTEGER.fullmatch(value):
                        return None
                    values[name] = int(value)
                else:
                    values[name] = value
        exchange, symbol = values.pop("exchange"), values.pop("symbol", None)
        key = service.cached_key(entry.read, exchange, symbol, **values)
        if key is None:
            return None
        result = service.cache.peek(key)
        if result is None:
            return None
        if symbol is not None:
            service.note_read(exchange, symbol)  # a stream's demand counts every read, fast or not
        return entry.route, result
