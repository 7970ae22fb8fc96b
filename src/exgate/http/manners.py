"""HTTP manners of the gateway: ``HEAD`` on every ``GET`` route, CORS for configured origins,
and one value per scalar query parameter.

- ``HEAD`` is answered as the ``GET`` of the same URL with the same status and headers
  (``Content-Length`` included) and no body (:class:`HeadAsGet`).
- CORS (Starlette's ``CORSMiddleware``) is installed only when ``EXGATE_CORS_ORIGINS`` lists
  origins: ``GET``/``HEAD`` from those origins, exposing the cache headers and ``Retry-After``.
- A scalar query parameter given twice (``?depth=5&depth=10``) is a 422 naming it
  (:func:`reject_repeated_scalars`); list parameters merge repeats and comma lists
  (:func:`split_list`).
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Sequence

from fastapi import FastAPI, Request
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exgate.errors import BadRequest
from exgate.metrics import ORIGINAL_METHOD

EXPOSED_HEADERS = ("X-Cache", "X-Cache-Tier", "X-Cache-Source", "Age", "Retry-After")
"""Response headers a browser script may read cross-origin."""

CORS_METHODS = ("GET", "HEAD")
"""Methods allowed cross-origin: the read API (cache invalidation is not for browsers)."""


class HeadAsGet:
    """ASGI middleware: a ``HEAD`` request runs as ``GET`` and its body is dropped.

    The status and headers are the ``GET``'s, so ``Content-Length`` is the length of the body
    a ``GET`` would send (RFC 9110 §9.3.2). A route without ``GET`` still answers 405.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        # a copy: the server keeps seeing HEAD in its own scope and sends no body either
        await self.app({**scope, "method": "GET", ORIGINAL_METHOD: "HEAD"}, receive, send_without_body)


def cors_origins(raw: str) -> list[str]:
    """The origins of a comma list (``*``: any origin), blanks and repeats dropped."""
    return list(dict.fromkeys(o.strip().rstrip("/") for o in raw.split(",") if o.strip()))


def install(app: FastAPI, cors: Sequence[str]) -> None:
    """Add :class:`HeadAsGet` and, when ``cors`` lists origins, CORS to ``app`` (outermost last)."""
    app.add_middleware(HeadAsGet)
    if cors:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors), allow_methods=list(CORS_METHODS),
                           allow_headers=["*"], expose_headers=list(EXPOSED_HEADERS), allow_credentials=False)


def split_list(values: Iterable[str], *, strip: bool = True) -> list[str]:
    """Merge a repeated list parameter: ``?symbols=BTC,ETH&symbols=SOL`` → ``[BTC, ETH, SOL]``
    (order kept, repeats kept for the caller to de-duplicate; empty items dropped, and with
    ``strip`` items are trimmed and blank ones dropped too)."""
    items = (item for value in values for item in value.split(","))
    if strip:
        return [item.strip() for item in items if item.strip()]
    return [item for item in items if item]


def list_pattern(item: str) -> str:
    """The JSON-schema pattern of a comma list whose non-empty items each match ``item``."""
    return f"^({item})?(,({item})?)*$"


def _scalar_query_names(dependant: typing.Any) -> list[str]:
    names: list[str] = []
    stack = [dependant]
    while stack:
        current = stack.pop()
        for param in current.query_params:
            origin = typing.get_origin(param.field_info.annotation)
            if origin not in (list, tuple, set, frozenset):
                names.append(param.alias)
        stack.extend(current.dependencies)
    return names


async def reject_repeated_scalars(request: Request) -> None:
    """Route dependency: a scalar query parameter of the route given more than once is a 422.

    Raises:
        BadRequest: ``field`` names the repeated parameter.
    """
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    for name in _scalar_query_names(dependant):
        count = len(request.query_params.getlist(name))
        if count > 1:
            raise BadRequest(f"{name} was given {count} times; give it once", field=name)
