"""Bybit v5's response envelope, its error answers and the request parameters it validates.

Every v5 body is ``{"retCode", "retMsg", "result", "retExtInfo", "time"}``
(https://bybit-exchange.github.io/docs/v5/intro); errors keep HTTP 200 and put a non-zero
``retCode`` in it (https://bybit-exchange.github.io/docs/v5/error): 10001 "Request parameter
error" for a missing, malformed or unknown parameter or symbol. The ``retMsg`` texts are the
ones the real API sends, as reported by its users: an unknown or missing linear/inverse
symbol (a delivered future too) is ``"params error: symbol invalid"`` (a BadRequest for ccxt:
10001 in its ``exact`` map), a spot/option one ``"Not supported symbols"`` (ccxt's ``broad``
map: BadSymbol); a missing or unknown category ``"Illegal category"`` (ccxt issue 23902); a
bad kline interval ``"Invalid period!"``. Other parameter texts follow the
``"params error: {name} invalid"`` pattern (not all verified against the live API). The rate-limit answers (retCode 10006,
HTTP 403) are built by :func:`exgate.sandbox.limits.bybit_reject`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response

from exgate.sandbox.venue import json_response

PARAMS_ERROR = 10001
"""retCode of every parameter error (https://bybit-exchange.github.io/docs/v5/error)."""

NOT_SUPPORTED_SYMBOLS = "Not supported symbols"
SYMBOL_INVALID = "params error: symbol invalid"
ILLEGAL_CATEGORY = "Illegal category"
INVALID_PERIOD = "Invalid period!"

CATEGORIES = ("spot", "linear", "inverse", "option")
"""Bybit v5's product categories; only ``linear`` has instruments in the sandbox."""


class BybitError(Exception):
    """A request Bybit rejects: answered as ``{"retCode": code, "retMsg": message, "result": {}}``."""

    def __init__(self, message: str, code: int = PARAMS_ERROR):
        super().__init__(message)
        self.message = message
        self.code = code


def envelope(result: dict, now_ms: int, code: int = 0, message: str = "OK",
             headers: dict[str, str] | None = None) -> Response:
    """Bybit's v5 envelope around ``result`` (HTTP 200 for errors too)."""
    return json_response({"retCode": code, "retMsg": message, "result": result, "retExtInfo": {}, "time": now_ms},
                         headers=headers)


Handler = Callable[[Request], Awaitable[Response]]


def answers_errors(now: Callable[[], int]) -> Callable[[Handler], Handler]:
    """Decorator: a :class:`BybitError` raised by the handler becomes Bybit's error envelope."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except BybitError as error:
                return envelope({}, now(), error.code, error.message)

        return run

    return wrap


def category(params: Mapping[str, str], default: str | None = None,
             allowed: tuple[str, ...] = CATEGORIES) -> str:
    """The request's ``category`` (``default`` when absent); "Illegal category" when missing or
    not one of ``allowed``."""
    value = params.get("category", default)
    if value not in allowed:
        raise BybitError(ILLEGAL_CATEGORY)
    return value


def required(params: Mapping[str, str], name: str) -> str:
    """A required parameter's value; ``"params error: {name} invalid"`` when absent or empty."""
    value = params.get(name, "")
    if not value:
        raise BybitError(f"params error: {name} invalid")
    return value


def limit(params: Mapping[str, str], default: int, maximum: int) -> int:
    """``limit`` (``default`` when absent), clamped to the endpoint's documented ``maximum``;
    ``"params error: limit invalid"`` when it is not a positive integer."""
    raw = params.get("limit")
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise BybitError("params error: limit invalid")
    return min(int(raw), maximum)


def ms(params: Mapping[str, str], name: str) -> int | None:
    """An optional ms timestamp parameter; ``"params error: {name} invalid"`` when not an integer."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise BybitError(f"params error: {name} invalid")
    return int(raw)
