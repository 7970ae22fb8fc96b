"""Observing the calls an adapter makes to its exchange: which reached the wire, and how they ended.

An adapter owns one :class:`CallMeter`. Its transport wrapper (:meth:`CallMeter.wrap_transport`)
marks the current call as *sent* when an HTTP request actually leaves for the exchange, and
:meth:`CallMeter.measure` reports every adapter call that sent at least one request to the
meter's observers (metrics, venue health) as one :class:`UpstreamCall`.

A call that never reached the exchange is not reported: an operation the venue lacks
(``NotSupported`` raised before any request, e.g. Hyperliquid trades), a symbol ccxt rejects
locally, or a request refused by exgate's own budget (``UpstreamRateLimited`` from the budget
gate, or a timeout while queued for budget). Those say nothing about the exchange.
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from exgate.errors import ExgateError, UpstreamError


class _Attempt:
    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = 0


_ATTEMPT: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar("exgate_upstream_attempt", default=None)


def status_slug(exc: BaseException | None) -> str:
    """``"ok"`` for no error, else the problem title's slug (``upstream_unavailable``), or ``"error"``."""
    if exc is None:
        return "ok"
    if isinstance(exc, ExgateError):
        return re.sub(r"[^a-z0-9]+", "_", exc.title.lower()).strip("_")
    return "error"


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """One adapter call that sent at least one request to the exchange.

    Attributes:
        exchange: venue id.
        operation: the ccxt method called (``fetch_order_book``, ``load_markets``, ...).
        status: ``"ok"`` or the problem slug of the error it ended with.
        seconds: wall time of the call, budget wait included.
        requests: HTTP requests it sent (ccxt may page or ask several endpoints).
        error: the exgate error it ended with, if any.
    """

    exchange: str
    operation: str
    status: str
    seconds: float
    requests: int = 1
    error: ExgateError | None = None

    @property
    def failed(self) -> bool:
        """The exchange failed us: unreachable, timing out, answering with an error, a
        malformed payload, or a 429/418. A client-side error the venue answered (an unknown
        symbol) is not a failure of the venue."""
        return isinstance(self.error, UpstreamError)


CallObserver = Callable[[UpstreamCall], None]


class CallMeter:
    """Reports one venue's upstream calls to its observers.

    ``observers`` maps a name (``"metrics"``, ``"health"``) to a callback; registering a name
    again replaces the previous callback, so an app started twice over the same adapters does
    not count twice.
    """

    def __init__(self, exchange: str):
        self.exchange = exchange
        self.observers: dict[str, CallObserver] = {}

    @staticmethod
    def wrap_transport(fetch: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """Wrap ccxt's ``fetch`` (one HTTP request) so the call in progress counts as sent."""

        async def sending(*args: Any, **kwargs: Any) -> Any:
            attempt = _ATTEMPT.get()
            if attempt is not None:
                attempt.sent += 1
            return await fetch(*args, **kwargs)

        return sending

    @contextmanager
    def measure(self, operation: str) -> Iterator[None]:
        """Time the block (one adapter call to ccxt ``operation``) and report it if it sent a
        request; the error it raises (already translated to exgate's tree) is its status."""
        attempt = _Attempt()
        token = _ATTEMPT.set(attempt)
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            _ATTEMPT.reset(token)
            cancelled = error is not None and not isinstance(error, Exception)
            if attempt.sent and not cancelled:
                call = UpstreamCall(self.exchange, operation, status_slug(error), time.perf_counter() - started,
                                    attempt.sent, error if isinstance(error, ExgateError) else None)
                for observer in list(self.observers.values()):
                    observer(call)
