"""The sandbox's WebSocket side: each venue's real WS paths under ``/{venue}/``.

:class:`~exgate.sandbox.ws.hub.WsHub` owns every open socket, the fault switches
(``POST /__sandbox/ws``) and the counters ``/__sandbox/stats`` shows; a venue speaks its wire
protocol through a :class:`~exgate.sandbox.ws.protocol.WsProtocol` over
:class:`~exgate.sandbox.ws.session.WsSession` objects. Messages are read off the same market
model REST serves, so a book built from the stream and one read over REST agree.
"""

from exgate.sandbox.ws.hub import WsFault, WsHub
from exgate.sandbox.ws.protocol import WsProtocol
from exgate.sandbox.ws.session import WsSession

__all__ = ["WsFault", "WsHub", "WsProtocol", "WsSession"]
