"""The seam between ccxt and exgate's errors: ccxt's exceptions translated to exgate's
(:func:`translate`), and ccxt's transport wrapped so a body that is not JSON is an error
(:func:`json_only`), with the decoded bodies of one call kept for who asks (``_RESPONSES``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from ccxt.base import errors as ccxt_errors

from exgate import errors

_RESPONSES: ContextVar[list[Any] | None] = ContextVar("exgate_ccxt_responses", default=None)
"""Where the transport puts each decoded response body of the ccxt call being awaited (see
:meth:`CcxtAdapter._call_keeping_bodies`); ``None`` outside such a call."""


def translate(exc: BaseException, venue: str, operation: str) -> errors.ExgateError:
    """Map a ccxt (or parsing) exception to the exgate error a client should see."""
    where = f"{venue} {operation}"
    if isinstance(exc, errors.ExgateError):
        return exc
    if isinstance(exc, ccxt_errors.BadSymbol):
        return errors.UnknownSymbol(f"{where}: the exchange does not list this symbol", field="symbol")
    if isinstance(exc, ccxt_errors.NotSupported):
        return errors.NotSupported(f"{where} is not supported by this exchange")
    if isinstance(exc, (ccxt_errors.RateLimitExceeded, ccxt_errors.DDoSProtection)):
        return errors.UpstreamRateLimited(f"{where}: the exchange is rate limiting", retry_after_s=10)
    if isinstance(exc, (ccxt_errors.NetworkError, TimeoutError, OSError)):
        return errors.UpstreamUnavailable(f"{where}: the exchange is unreachable or timing out ({type(exc).__name__})")
    if isinstance(exc, ccxt_errors.BadResponse):
        return errors.MalformedUpstream(f"{where}: the exchange sent a malformed response")
    if isinstance(exc, ccxt_errors.BaseError):
        return errors.UpstreamError(f"{where}: the exchange answered with an error ({type(exc).__name__})")
    if isinstance(exc, (KeyError, TypeError, ValueError, IndexError, AttributeError)):
        return errors.MalformedUpstream(f"{where}: cannot parse the exchange's response ({type(exc).__name__})")
    raise exc


def json_only(fetch: Callable[..., Awaitable[Any]], venue: str) -> Callable[..., Awaitable[Any]]:
    """Wrap ccxt's transport so a body that is not JSON fails as ``BadResponse``.

    ccxt hands back the raw text when it cannot decode JSON (a truncated body, an HTML error
    page), and its parsers then read that as an empty book or list; exgate must not serve an
    empty answer as if the exchange had said so.
    """

    async def checked(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        response = await fetch(url, method, headers, body)
        if isinstance(response, (str, bytes, bytearray)):
            raise ccxt_errors.BadResponse(f"{venue}: non-JSON body from {method} {url}")
        bodies = _RESPONSES.get()
        if bodies is not None:
            bodies.append(response)
        return response

    return checked
