"""One subscription's producer and the loop that sends what the subscriptions of a socket are due.

A protocol keeps a :class:`Stream` per topic in ``session.subscriptions``; every tick
:func:`pump` asks each for the payloads due at ``now_ms`` (:meth:`Stream.poll`) and, once all of
them went out, lets it :meth:`Stream.commit` its new state. While the venue is stalled
(``POST /__sandbox/ws?fault=stall``) the sends fail, nothing is committed, and the same
updates go out, caught up, after the stall: a stall delays a stream, it does not lose
updates (a ``gap`` fault does that).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exgate.sandbox.ws.session import WsSession


class Stream(abc.ABC):
    """What one subscription sends.

    :meth:`poll` computes the payloads due at ``now_ms`` without changing what was sent;
    :meth:`commit` records them as sent. A stream whose poll has nothing returns ``[]``.
    """

    topic: str
    """The venue's name of the subscription (``btcusdt@depth@100ms``, ``orderbook.50.BTCUSDT``)."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._staged: Callable[[], None] | None = None

    @abc.abstractmethod
    def poll(self, now_ms: int) -> list[Any]:
        """The payloads (JSON-ready objects) due at ``now_ms`` (sandbox clock, ms)."""

    def stage(self, apply: Callable[[], None]) -> None:
        """Remember ``apply`` as the state change :meth:`commit` makes."""
        self._staged = apply

    def commit(self) -> None:
        """The last :meth:`poll`'s payloads went out: apply its staged state."""
        if self._staged is not None:
            staged, self._staged = self._staged, None
            staged()


async def pump(session: WsSession, now_ms: int, wrap: Callable[[str, Any], Any] | None = None) -> None:
    """Send every due payload of ``session``'s :class:`Stream` subscriptions (others are
    skipped), each counted under its topic; ``wrap(topic, payload)`` may reshape a payload
    (Binance's combined-stream envelope). A stream commits only when all its payloads went out."""
    for topic, stream in list(session.subscriptions.items()):
        if not isinstance(stream, Stream):
            continue
        payloads = stream.poll(now_ms)
        if not payloads:
            stream.commit()
            continue
        sent = True
        for payload in payloads:
            if not await session.send(wrap(topic, payload) if wrap else payload, topic):
                sent = False
                break
        if sent:
            stream.commit()
        else:
            stream._staged = None
            if session.closed.is_set():
                return
