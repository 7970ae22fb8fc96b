"""Per-venue server clock skew: each venue's server time is the sandbox clock plus its skew.

A venue's skew (ms, negative: its server runs behind) moves what that venue calls its time
(:meth:`~exgate.sandbox.venue.SandboxVenue.server_now`): its time endpoint (Binance
``/fapi/v1/time``, Bybit ``/v5/market/time``, Hyperliquid ``exchangeStatus``), the server-time
fields of its answers (Bybit's envelope ``time``, Binance's ``exchangeInfo.serverTime``) and the
windows its signed requests are checked in (Binance -1021, Bybit 10002, Hyperliquid's nonce
window, Pacifica's ``expiry_window``). Market data (prices, candles, trades, fills) stays on the
unskewed model clock. So a client that never syncs its clock with the venue's
(ccxt ``load_time_difference``) fails its signed requests as it would on the real venue.

Set at start (``create_sandbox_app(clock_skew=...)``, ``exgate sandbox --clock-skew
VENUE=+MS``) or at run time (``POST /__sandbox/clock``); ``POST /__sandbox/reset`` keeps them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exgate.sandbox.sim import Clock
from exgate.sandbox.venue import SandboxVenue, json_response

MAX_SKEW_MS = 86_400_000
"""The largest skew either way (one day, ms)."""

_ITEM = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*([+-]?\d+)\s*$")


def _form(venues: Iterable[str]) -> str:
    return (f"expected VENUE=[+|-]MS, MS a whole number of ms within ±{MAX_SKEW_MS}, "
            f"VENUE one of {', '.join(venues)}")


def check_skews(skews: Mapping[str, object], venues: Iterable[str], source: str = "clock_skew") -> dict[str, int]:
    """``skews`` (venue → ms) checked against the served ``venues``.

    Raises:
        ValueError: an unknown venue, a skew that is not an int (bools neither) or is beyond
            ±:data:`MAX_SKEW_MS`; the message starts with ``source`` and names the allowed form.
    """
    names = list(venues)
    out: dict[str, int] = {}
    for venue, skew in skews.items():
        if venue not in names or not isinstance(skew, int) or isinstance(skew, bool) or abs(skew) > MAX_SKEW_MS:
            raise ValueError(f"{source}: {venue}={skew!r}: {_form(names)}")
        out[venue] = skew
    return out


def parse_clock_skew(items: Iterable[str], venues: Iterable[str], source: str = "--clock-skew") -> dict[str, int]:
    """``["binanceusdm=+2500", "bybit=-300"]`` → ``{"binanceusdm": 2500, "bybit": -300}`` (a
    later item of the same venue wins).

    Raises:
        ValueError: an item not of the form ``VENUE=[+|-]MS`` (message ``"{source}: ..."``
            naming the item and the allowed form), an unknown venue or a skew beyond ±1 day.
    """
    names = list(venues)
    out: dict[str, int] = {}
    for item in items:
        match = _ITEM.match(item)
        if match is None:
            raise ValueError(f"{source}: {item!r}: {_form(names)}")
        out[match.group(1).lower()] = int(match.group(2))
    for venue, skew in out.items():
        if venue not in names or abs(skew) > MAX_SKEW_MS:
            raise ValueError(f"{source}: {venue}={skew:+d}: {_form(names)}")
    return out


def clock_routes(venues: dict[str, SandboxVenue], clock: Clock) -> list[BaseRoute]:
    """``GET /__sandbox/clock``: ``{"skew_ms": {venue: ms}, "now_ms": sandbox clock,
    "server_ms": {venue: its server time}}``; ``POST /__sandbox/clock`` with JSON ``{"venue",
    "skew_ms"}`` sets that venue's skew from now on and answers ``{"venue", "skew_ms"}``; bad
    input (not a JSON object, an unknown venue, a skew that is not a whole number of ms within
    ±1 day) is HTTP 422 ``{"error": "<field>: expected ..."}``."""

    def bad(detail: str) -> Response:
        return json_response({"error": detail}, status=422)

    async def show(request: Request) -> Response:
        return json_response({"skew_ms": {name: v.skew_ms for name, v in venues.items()}, "now_ms": clock(),
                              "server_ms": {name: v.server_now() for name, v in venues.items()}})

    async def set_skew(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return bad("expected a JSON object with venue and skew_ms")
        venue, skew = body.get("venue"), body.get("skew_ms")
        if venue not in venues:
            return bad("venue: expected one of " + ", ".join(venues))
        if not isinstance(skew, int) or isinstance(skew, bool) or abs(skew) > MAX_SKEW_MS:
            return bad(f"skew_ms: expected a whole number of ms within ±{MAX_SKEW_MS} (got {skew!r})")
        venues[venue].skew_ms = skew
        return json_response({"venue": venue, "skew_ms": skew})

    return [Route("/__sandbox/clock", show, methods=["GET"]), Route("/__sandbox/clock", set_skew, methods=["POST"])]
