"""One accepted sandbox WebSocket: what a protocol sends through and keeps its subscriptions in."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

if TYPE_CHECKING:
    from exgate.sandbox.ws.hub import WsHub


class WsSession:
    """A client socket of one venue, as its :class:`~exgate.sandbox.ws.protocol.WsProtocol` sees it.

    Attributes:
        venue: the venue's name (``binanceusdm``...).
        path: the socket's path under ``/{venue}`` (``/public/ws/0``).
        path_params: the path pattern's parameters.
        subscriptions: topic (the venue's own stream name, e.g. ``btcusdt@depth@100ms``) → the
            protocol's state for it; change it with :meth:`subscribe` / :meth:`unsubscribe` so
            the hub's counters follow.
        state: free per-connection state for the protocol.
    """

    def __init__(self, hub: WsHub, websocket: WebSocket, venue: str, path: str) -> None:
        self.hub = hub
        self.websocket = websocket
        self.venue = venue
        self.path = path
        self.path_params: dict[str, Any] = dict(websocket.path_params)
        self.query: dict[str, str] = dict(websocket.query_params)
        self.subscriptions: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.closed = asyncio.Event()

    def subscribe(self, topic: str, value: Any) -> bool:
        """Add (or replace) ``topic``; ``False`` when it was already subscribed."""
        new = topic not in self.subscriptions
        self.subscriptions[topic] = value
        if new:
            self.hub.count_subscription(self.venue, topic, +1)
        return new

    def unsubscribe(self, topic: str) -> bool:
        """Remove ``topic``; ``False`` when it was not subscribed."""
        if topic not in self.subscriptions:
            return False
        del self.subscriptions[topic]
        self.hub.count_subscription(self.venue, topic, -1)
        return True

    async def send(self, payload: object, topic: str | None = None) -> bool:
        """Send ``payload`` (a JSON-ready object, Decimals as strings, or ready text) as one text
        frame, counted under ``topic``. While the venue is stalled nothing is sent (the frame is
        counted as withheld) and ``False`` is returned; a closed socket also gives ``False``."""
        if self.closed.is_set() or self.websocket.application_state is not WebSocketState.CONNECTED:
            return False
        if self.hub.stalled(self.venue):
            self.hub.count_withheld(self.venue)
            return False
        text = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
        try:
            await self.websocket.send_text(text)
        except (RuntimeError, OSError, WebSocketDisconnect):  # the peer went away between the check and the send
            self.closed.set()
            return False
        self.hub.count_message(self.venue, topic)
        return True

    async def close(self, code: int = 1001) -> None:
        """Close the socket (the hub's ``drop`` fault: every client sees the server go away)."""
        if self.closed.is_set():
            return
        self.closed.set()
        if self.websocket.application_state is WebSocketState.CONNECTED:
            try:
                await self.websocket.close(code=code)
            except (RuntimeError, OSError, WebSocketDisconnect):  # starlette raises this when the peer is gone
                pass
