"""Binance's error answers and the parameter checks that produce them.

Binance answers a rejected request with HTTP 400 and ``{"code": <negative int>, "msg": str}``
(https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code); ccxt's
binance maps the codes used here to ``BadRequest`` (-1100, -1102, -1120) and ``BadSymbol`` (-1121).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from exgate.intervals import interval_ms
from exgate.sandbox.venue import json_response

KLINE_INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")
"""The kline intervals fapi accepts (the documented ENUM); any other is ``-1120 Invalid interval.``."""


def error(code: int, msg: str, status: int = 400) -> Response:
    """Binance's error answer: ``{"code": code, "msg": msg}`` with HTTP ``status`` (400)."""
    return json_response({"code": code, "msg": msg}, status=status)


def invalid_symbol() -> Response:
    """``-1121 Invalid symbol.`` (HTTP 400): the symbol is not listed (ccxt: ``BadSymbol``)."""
    return error(-1121, "Invalid symbol.")


def missing(request: Request, *names: str) -> Response | None:
    """``-1102`` (HTTP 400) naming the first of ``names`` absent or empty in the query, as Binance
    words it (ccxt: ``BadRequest``); ``None`` when all are there."""
    for name in names:
        if not request.query_params.get(name):
            return error(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return None


def kline_interval(request: Request) -> int | Response:
    """The ``interval`` query parameter in ms, or ``-1120 Invalid interval.`` (HTTP 400) when it is
    not one of :data:`KLINE_INTERVALS` (``1M`` counts 30 days)."""
    text = request.query_params.get("interval", "")
    step = interval_ms(text) if text in KLINE_INTERVALS else None
    return step if step is not None else error(-1120, "Invalid interval.")
