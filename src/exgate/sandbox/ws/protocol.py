"""What a venue implements to speak its WebSocket protocol in the sandbox."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from exgate.sandbox.venue import SandboxVenue
    from exgate.sandbox.ws.session import WsSession


class WsProtocol(abc.ABC):
    """One venue's WebSocket wire protocol, served by :class:`~exgate.sandbox.ws.hub.WsHub`.

    The hub accepts a socket on one of :meth:`paths`, wraps it in a
    :class:`~exgate.sandbox.ws.session.WsSession` and then, until the socket closes:

    - calls :meth:`on_open` once (a venue that pushes without a subscribe starts here);
    - calls :meth:`on_text` with every text frame the client sends (subscribe, unsubscribe,
      ping); the protocol answers through ``session.send``;
    - calls :meth:`tick` every :attr:`tick_ms` of real time with the sandbox clock's ``now_ms``
      (``venue.now()``): the protocol sends what each of ``session.subscriptions`` is due.

    Values come from ``venue`` (its :class:`~exgate.sandbox.sim.InstrumentSim` objects), the
    model REST reads. Faults: ``session.hub.fault_epoch(venue, WsFault.GAP)`` (and ``RESET``)
    rise by one per ``POST /__sandbox/ws?fault=gap|reset``: a book subscription that sees the
    epoch change applies the fault once (skips a sequence number; sends a reset snapshot).
    ``drop`` and ``stall`` are applied by the hub and the session, not here.
    """

    tick_ms: ClassVar[int] = 100
    """How often (real ms) :meth:`tick` runs for each open session."""

    def __init__(self, venue: SandboxVenue) -> None:
        self.venue = venue

    @abc.abstractmethod
    def paths(self) -> list[str]:
        """Starlette path patterns relative to ``/{venue}``, e.g. ``/public/ws/{stream}``."""

    async def on_open(self, session: WsSession) -> None:
        """A socket was accepted (``session.path_params`` holds the path's parameters)."""

    @abc.abstractmethod
    async def on_text(self, session: WsSession, text: str) -> None:
        """A text frame from the client; malformed input gets the venue's error frame, never a crash."""

    @abc.abstractmethod
    async def tick(self, session: WsSession, now_ms: int) -> None:
        """Send what the session's subscriptions are due at ``now_ms`` (sandbox clock, ms)."""
