"""The OpenAPI document: problem+json responses, the served venues and their intervals.

Routes declare their error statuses with :func:`problem_responses`; :func:`install` adds the
:class:`~exgate.http.problems.Problem` schema to the components and, once the app knows its
venues, turns the ``exchange`` path parameter and the ``interval`` query parameter into enums
of what this gateway serves (a value outside them still answers 404/422 problem+json).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI

from exgate.http.problems import PROBLEM_JSON, Problem
from exgate.venues.base import ExchangeAdapter

PROBLEM_REF = "#/components/schemas/Problem"

_DESCRIPTIONS = {
    401: "missing or wrong credentials",
    403: "credentials do not allow this",
    404: "unknown exchange (`available` lists those served), unknown symbol (`suggestions`), or data"
         " the venue does not offer",
    422: "invalid parameter: `field` names it, `allowed` lists the values (or `{min, max}`) accepted",
    502: "the exchange answered with an error or a payload exgate cannot parse; retry after `Retry-After` s",
    503: "the exchange is unreachable, rate limited, in maintenance or not loaded yet;"
         " retry after `Retry-After` s",
}

RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying",
                               "schema": {"type": "integer", "minimum": 0}, "required": True}}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` declarations of error statuses, each an ``application/problem+json``
    :class:`Problem` (502/503 with ``Retry-After``)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"description": _DESCRIPTIONS.get(status, "error"),
                                 "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}}
        if status in (502, 503):
            entry["headers"] = RETRY_AFTER
        out[status] = entry
    return out


def _intervals(adapters: Mapping[str, ExchangeAdapter]) -> list[str]:
    out: dict[str, None] = {}
    for adapter in adapters.values():
        out.update(dict.fromkeys(adapter.intervals()))
    return list(out)


def install(app: FastAPI, adapters: Mapping[str, ExchangeAdapter]) -> None:
    """Make ``app.openapi()`` return the exact document (built once, then cached)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = {"adminToken": {
            "type": "http", "scheme": "bearer", "description": "the operator token, EXGATE_ADMIN_TOKEN"}}
        components = schema["components"].setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        venues, intervals = sorted(adapters), _intervals(adapters)
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                # FastAPI adds its own 422 body to routes with parameters; exgate never sends it
                if "HTTPValidationError" in str(operation.get("responses", {}).get("422", {})):
                    del operation["responses"]["422"]
                for param in operation.get("parameters", []):
                    if param["name"] == "exchange" and param["in"] == "path" and venues:
                        param["schema"]["enum"] = venues
                    elif param["name"] == "interval" and param["in"] == "query" and intervals:
                        param["schema"]["enum"] = intervals
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
