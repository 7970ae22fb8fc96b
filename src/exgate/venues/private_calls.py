"""Helpers of :class:`exgate.venues.private.PrivateClient`'s calls: the venue's own message out
of a ccxt exception (:func:`venue_reason`), and the count of upstream requests a block made
(:class:`RequestCounter`, fed by :func:`counting` around a ccxt transport)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

_REQUESTS: ContextVar[list[int] | None] = ContextVar("exgate_private_requests", default=None)
"""The counter of the innermost :class:`RequestCounter` block, ``None`` outside one."""


def venue_reason(exc: BaseException) -> str:
    """The venue's own message out of a ccxt exception (``binanceusdm {"code":-2019,"msg":"Margin
    is insufficient."}`` → ``Margin is insufficient. (code -2019)``), without URLs or headers."""
    text = str(exc)
    start = text.find("{")
    if start >= 0:
        try:
            body = json.loads(text[start:])
        except ValueError:
            body = None
        if isinstance(body, dict):
            message = next((body[k] for k in ("msg", "retMsg", "response", "error", "message") if body.get(k)), None)
            code = next((body[k] for k in ("code", "retCode") if body.get(k) not in (None, 0, "0")), None)
            if isinstance(message, (str, int)):
                return f"{message} (code {code})" if code is not None else str(message)
    text = re.sub(r"https?://\S+", "<url>", text)
    return text[:300]


class RequestCounter:
    """Counts the upstream requests made inside a ``with`` block (this task and the tasks it
    starts): ``count`` after the block."""

    def __enter__(self) -> RequestCounter:
        self._box = [0]
        self._token = _REQUESTS.set(self._box)
        return self

    def __exit__(self, *exc: object) -> None:
        _REQUESTS.reset(self._token)

    @property
    def count(self) -> int:
        return self._box[0]


def counting(fetch: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """``fetch`` counting each request it sends into the enclosing :class:`RequestCounter`."""
    async def sending(*args: Any, **kwargs: Any) -> Any:
        box = _REQUESTS.get()
        if box is not None:
            box[0] += 1
        return await fetch(*args, **kwargs)
    return sending


async def skipped(*args: Any, **kwargs: Any) -> bool:
    """A ccxt side call turned off (the profile's ``private_noops``): does nothing, answers true."""
    return True
