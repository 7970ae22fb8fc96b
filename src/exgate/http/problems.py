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
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from exgate.errors import ExgateError, UpstreamError

log = structlog.get_logger("exgate.http")

PROBLEM_JSON = "application/problem+json"


def problem(status: int, title: str, detail: str, *, instance: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> Response:
    """A problem+json response: ``{"type", "title", "status", "detail", "instance", ...extra}``."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
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


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    described = [_describe(e) for e in exc.errors()]
    fields = [f for f, _ in described]
    return problem(422, "Invalid parameter", "; ".join(d for _, d in described), instance=request.url.path,
                   field=fields[0] if len(fields) == 1 else fields)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    if exc.status_code == 404:
        detail = f"no route for {request.method} {request.url.path}; see /docs"
    return problem(exc.status_code, title, detail, instance=request.url.path, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled_error", path=request.url.path, error=repr(exc), exc_info=exc)
    return problem(500, "Internal error", "the gateway failed to answer; the error was logged",
                   instance=request.url.path)


def install(app: FastAPI) -> None:
    """Register the problem+json handlers on ``app``."""
    app.add_exception_handler(ExgateError, _exgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
