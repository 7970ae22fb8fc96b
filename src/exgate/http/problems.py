"""RFC 9457 problem+json responses for every error a client can see.

Bad input is a 4xx naming the field and the allowed values; upstream trouble is 502/503 with
``Retry-After``; nothing ever answers with a stack trace.
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from exgate.errors import ECHO_LIMIT, ExgateError, UpstreamError

log = structlog.get_logger("exgate.http")

PROBLEM_JSON = "application/problem+json"

DETAIL_LIMIT = 1_000
"""Longest ``detail`` sent; each echoed value in it is already cut to 100 characters
(:func:`exgate.errors.echo`), this is the net under messages built from many values."""


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every 4xx/5xx (``application/problem+json``).

    ``field`` names the bad parameter (a list when several are bad), ``allowed`` the values it
    accepts (a list, or ``{"min", "max"}`` for a range), ``available`` the exchanges served
    (unknown exchange), ``suggestions`` close symbols (unknown symbol). Keys without a value
    are left out, never ``null``.
    """

    model_config = ConfigDict(json_schema_extra={"additionalProperties": True})

    type: str = "about:blank"
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str | SkipJsonSchema[None] = Field(None, description="the request path (cut to 100 characters)")
    field: str | list[str] | SkipJsonSchema[None] = None
    allowed: list[str] | dict[str, int] | SkipJsonSchema[None] = None
    available: list[str] | SkipJsonSchema[None] = None
    suggestions: list[str] | SkipJsonSchema[None] = None


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def problem(status: int, title: str, detail: str, *, instance: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> Response:
    """A problem+json response: ``{"type", "title", "status", "detail", "instance", ...extra}``
    (see :class:`Problem`); ``instance`` is cut to 100 and ``detail`` to 1000 characters."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status,
                            "detail": _cap(detail, DETAIL_LIMIT)}
    if instance:
        body["instance"] = _cap(instance, ECHO_LIMIT)
    body.update({k: v for k, v in extra.items() if v is not None})
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def _exgate_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ExgateError)
    headers = None
    if isinstance(exc, UpstreamError):
        headers = {"Retry-After": str(exc.retry_after_s)}
        log.warning("upstream_error", path=request.url.path, status=exc.status, detail=exc.detail)
    return problem(exc.status, exc.title, exc.detail, instance=request.url.path, headers=headers, **exc.extra)


def _describe(error: dict) -> tuple[str, str]:
    loc = [str(part) for part in error.get("loc", ()) if part not in ("query", "path", "body")]
    field = ".".join(loc) or "request"
    return field, f"{field}: {error.get('msg', 'invalid value')}"


def _bounds(request: Request, field: str) -> dict[str, int] | None:
    """``{"min", "max"}`` declared on the route's query parameter ``field``, if any."""
    stack = [getattr(request.scope.get("route"), "dependant", None)]
    while stack:
        dependant = stack.pop()
        if dependant is None:
            continue
        for param in dependant.query_params:
            if param.alias == field:
                bounds = {}
                for rule in param.field_info.metadata:
                    if getattr(rule, "ge", None) is not None:
                        bounds["min"] = rule.ge
                    if getattr(rule, "le", None) is not None:
                        bounds["max"] = rule.le
                return bounds or None
        stack.extend(dependant.dependencies)
    return None


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    described = [_describe(e) for e in exc.errors()]
    fields = list(dict.fromkeys(f for f, _ in described))
    return problem(422, "Invalid parameter", "; ".join(d for _, d in described), instance=request.url.path,
                   field=fields[0] if len(fields) == 1 else fields,
                   allowed=_bounds(request, fields[0]) if len(fields) == 1 else None)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        detail = f"no route for {request.method} {_cap(request.url.path, ECHO_LIMIT)}; see /docs"
    if exc.status_code == 400 and request.method in ("POST", "PATCH", "PUT"):  # FastAPI: the body is not JSON
        return problem(422, "Invalid parameter", "body: expected a JSON object (the body could not be parsed)",
                       instance=request.url.path, field="body")
    if exc.status_code == 405 and "Allow" in headers:
        allowed = _methods_of_path(request) or [m.strip() for m in headers["Allow"].split(",")]
        if "GET" in allowed and "HEAD" not in allowed:  # HEAD is answered on every GET route (see http.manners)
            allowed.append("HEAD")
        headers["Allow"] = ", ".join(allowed)
    return problem(exc.status_code, title, detail, instance=request.url.path, headers=headers or None)


def _methods_of_path(request: Request) -> list[str]:
    """Every method some route serves at the request's path (Starlette's 405 names only the
    first route matching the path, e.g. ``POST`` for ``/v1/orders`` which ``DELETE`` serves too)."""
    from starlette.routing import Match

    methods: list[str] = []
    scope = dict(request.scope)
    stack = list(request.app.routes)
    while stack:
        route = stack.pop(0)
        inner = getattr(route, "original_router", None)  # FastAPI's included router: its own routes
        if inner is not None:
            stack[:0] = list(inner.routes)
            continue
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            methods += [m for m in sorted(getattr(route, "methods", None) or ()) if m not in methods]
    return methods


async def _database_error(request: Request, exc: Exception) -> Response:
    """The SQL store failed (unreachable, locked past its timeout): 503 with Retry-After, the
    driver's message logged, never sent (it may name the database URL)."""
    log.error("database_error", path=request.url.path, error=type(exc).__name__)
    return problem(503, "Database unavailable", "the gateway's database did not answer; retry shortly",
                   instance=request.url.path, headers={"Retry-After": "2"})


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled_error", path=request.url.path, error=repr(exc), exc_info=exc)
    return problem(500, "Internal error", "the gateway failed to answer; the error was logged",
                   instance=request.url.path)


def install(app: FastAPI) -> None:
    """Register the problem+json handlers on ``app``."""
    app.add_exception_handler(ExgateError, _exgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    from sqlalchemy.exc import DBAPIError

    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
