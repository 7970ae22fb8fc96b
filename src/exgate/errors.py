"""One exception tree for exgate; each leaf says what failed and maps to one HTTP status.

Foreign errors (ccxt, aiohttp, pydantic) are translated once, at the adapter boundary, with
``raise ... from`` so the cause stays in the traceback but never reaches a client.
"""

from __future__ import annotations

ECHO_LIMIT = 100
"""Most characters of client input quoted back in an error message."""


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)`` of client input for an error message, cut to ``limit`` characters of the
    value with a trailing ``…`` so a 60 KB symbol is not sent back (twice) in a 404."""
    text = str(value)
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "…"


class ExgateError(Exception):
    """Base of every error exgate raises on purpose.

    ``status`` is the HTTP status a route answers with, ``title`` the problem+json title.
    """

    status: int = 500
    title: str = "Internal error"

    def __init__(self, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class ConfigError(ExgateError):
    """A setting (environment variable or config file) is invalid; ``extra`` names it."""

    title = "Invalid configuration"


class BadRequest(ExgateError):
    """A request parameter is invalid; ``extra`` names the field and the allowed values."""

    status = 422
    title = "Invalid parameter"


class UnknownExchange(ExgateError):
    """The exchange id is not one this gateway serves (``extra['available']`` lists them)."""

    status = 404
    title = "Unknown exchange"


class UnknownSymbol(ExgateError):
    """The symbol does not resolve to a market of the venue (``extra['suggestions']``)."""

    status = 404
    title = "Unknown symbol"


class NotSupported(ExgateError):
    """The venue does not offer this data (e.g. funding on a spot-only venue)."""

    status = 404
    title = "Not supported by this exchange"


class UpstreamError(ExgateError):
    """The exchange could not be asked or answered badly.

    ``retry_after_s`` is the number of seconds a client should wait before retrying.
    """

    status = 502
    title = "Upstream error"

    def __init__(self, detail: str, *, retry_after_s: int = 5, **extra: object) -> None:
        super().__init__(detail, **extra)
        self.retry_after_s = retry_after_s


class UpstreamUnavailable(UpstreamError):
    """The exchange is unreachable, timing out, in maintenance or not loaded yet (503)."""

    status = 503
    title = "Upstream unavailable"


class UpstreamRateLimited(UpstreamError):
    """The exchange refused for rate limits (HTTP 429/418); honour ``retry_after_s``."""

    status = 503
    title = "Upstream rate limited"


class MalformedUpstream(UpstreamError):
    """The exchange answered with a payload exgate cannot parse into its models (502)."""

    title = "Malformed upstream payload"


class Unauthorized(ExgateError):
    """No, an unknown or a revoked tenant key (401)."""

    status = 401
    title = "Unauthorized"


class Forbidden(ExgateError):
    """The tenant or user may not use what it asked for (403)."""

    status = 403
    title = "Forbidden"


class NotFound(ExgateError):
    """A private resource (connection, order) that does not exist for this tenant and user (404)."""

    status = 404
    title = "Not found"


class VenueRejected(ExgateError):
    """The venue refused the request (an order with insufficient margin, a wrong API key on a
    new connection): 422 with the venue's reason in ``detail`` and ``extra['venue_error']``."""

    status = 422
    title = "Rejected by the exchange"
