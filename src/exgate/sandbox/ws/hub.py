"""Every sandbox WebSocket: serving them, their faults and their counters."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable
from enum import StrEnum

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import orjson

from exgate.sandbox.ws.protocol import WsProtocol
from exgate.sandbox.ws.session import WsSession


class WsFault(StrEnum):
    """``POST /__sandbox/ws?venue=V&fault=...``.

    - ``drop``: close every socket of the venue now (clients must reconnect);
    - ``stall``: keep every socket open but send nothing (no data, no pongs) until ``resume``
      (or for ``ms`` sandbox-clock ms when given);
    - ``gap``: every book subscription skips one sequence number once (Binance ``pu`` not the
      previous ``u``; Bybit ``u`` jumping by two);
    - ``reset``: every book subscription sends a fresh snapshot once (Bybit ``u=1``);
    - ``resume``: end a stall.
    """

    DROP = "drop"
    STALL = "stall"
    GAP = "gap"
    RESET = "reset"
    RESUME = "resume"


class _Closed(Exception):
    """The session ended (peer went away or the hub closed it)."""


class WsHub:
    """Serves the venues' WebSocket paths and keeps their fault switches and counters.

    Args:
        clock: the sandbox clock (ms), for timed stalls.
    """

    def __init__(self, clock: Callable[[], int]) -> None:
        self.clock = clock
        self.sessions: defaultdict[str, set[WsSession]] = defaultdict(set)
        self._stalled_until: dict[str, int | None] = {}
        self._epochs: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._faults: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._sockets_total: Counter[str] = Counter()
        self._by_topic: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._messages: Counter[str] = Counter()
        self._messages_by_topic: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._withheld: Counter[str] = Counter()

    # -- faults ---------------------------------------------------------------------------
    def stalled(self, venue: str) -> bool:
        """Whether ``venue`` is stalled now (a timed stall ends by itself)."""
        if venue not in self._stalled_until:
            return False
        until = self._stalled_until[venue]
        if until is not None and self.clock() >= until:
            del self._stalled_until[venue]
            return False
        return True

    def fault_epoch(self, venue: str, fault: WsFault) -> int:
        """How many ``gap``/``reset`` faults ``venue`` has had: a subscription remembers the
        value it last saw and applies the fault once when it rises."""
        return self._epochs[venue][fault.value]

    async def inject(self, venue: str, fault: WsFault, ms: int | None = None) -> None:
        """Apply ``fault`` to ``venue`` (see :class:`WsFault`)."""
        self._faults[venue][fault.value] += 1
        if fault is WsFault.DROP:
            for session in list(self.sessions[venue]):
                await session.close(1012)
        elif fault is WsFault.STALL:
            self._stalled_until[venue] = None if ms is None else self.clock() + ms
        elif fault is WsFault.RESUME:
            self._stalled_until.pop(venue, None)
        else:
            self._epochs[venue][fault.value] += 1

    # -- counters -------------------------------------------------------------------------
    def count_subscription(self, venue: str, topic: str, delta: int) -> None:
        self._by_topic[venue][topic] += delta
        if self._by_topic[venue][topic] <= 0:
            del self._by_topic[venue][topic]

    def count_message(self, venue: str, topic: str | None) -> None:
        self._messages[venue] += 1
        if topic is not None:
            self._messages_by_topic[venue][topic] += 1

    def count_withheld(self, venue: str) -> None:
        self._withheld[venue] += 1

    def reset_counters(self) -> None:
        """Zero the message and socket totals (open sockets and subscriptions stay)."""
        self._sockets_total.clear()
        self._messages.clear()
        self._messages_by_topic.clear()
        self._withheld.clear()
        self._faults.clear()

    def snapshot(self, venue: str) -> dict:
        """``{"sockets_open", "sockets_total", "by_path": {path: open sockets}, "subscriptions",
        "by_topic": {topic: sessions subscribed}, "messages", "messages_by_topic", "withheld",
        "stalled", "faults": {fault: count}}`` for ``venue``."""
        open_ = self.sessions[venue]
        return {
            "sockets_open": len(open_),
            "sockets_total": self._sockets_total[venue],
            "by_path": dict(Counter(s.path for s in open_)),
            "subscriptions": sum(self._by_topic[venue].values()),
            "by_topic": dict(self._by_topic[venue]),
            "messages": self._messages[venue],
            "messages_by_topic": dict(self._messages_by_topic[venue]),
            "withheld": self._withheld[venue],
            "stalled": self.stalled(venue),
            "faults": dict(self._faults[venue]),
        }

    # -- serving --------------------------------------------------------------------------
    def routes(self, protocol: WsProtocol) -> list[BaseRoute]:
        """The WebSocket routes of one venue (relative to its ``/{venue}`` mount)."""
        venue = protocol.venue.name

        async def endpoint(websocket: WebSocket) -> None:
            await self.serve(websocket, protocol, venue)

        return [WebSocketRoute(path, endpoint) for path in protocol.paths()]

    async def serve(self, websocket: WebSocket, protocol: WsProtocol, venue: str) -> None:
        """Run one socket until it closes: the protocol's frames in, its ticks out."""
        await websocket.accept()
        path = websocket.url.path.removeprefix(f"/{venue}")
        session = WsSession(self, websocket, venue, path)
        self.sessions[venue].add(session)
        self._sockets_total[venue] += 1
        try:
            await protocol.on_open(session)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read(session, protocol))
                group.create_task(self._tick(session, protocol))
                group.create_task(self._watch(session))
        except* (_Closed, WebSocketDisconnect, OSError):
            pass
        finally:
            for topic in list(session.subscriptions):
                session.unsubscribe(topic)
            self.sessions[venue].discard(session)
            await session.close()

    @staticmethod
    async def _read(session: WsSession, protocol: WsProtocol) -> None:
        while True:
            message = await session.websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise _Closed
            text = message.get("text")
            if text is None and message.get("bytes") is not None:
                text = message["bytes"].decode("utf-8", "replace")
            if text is not None:
                await protocol.on_text(session, text)

    @staticmethod
    async def _tick(session: WsSession, protocol: WsProtocol) -> None:
        while True:
            await protocol.tick(session, protocol.venue.now())
            await asyncio.sleep(protocol.tick_ms / 1000)

    @staticmethod
    async def _watch(session: WsSession) -> None:
        await session.closed.wait()
        raise _Closed

    def control_routes(self, venues: list[str]) -> list[BaseRoute]:
        """``POST /__sandbox/ws?venue=V&fault=drop|stall|gap|reset|resume[&ms=N]`` and
        ``GET /__sandbox/ws`` (every venue's :meth:`snapshot`)."""

        async def post(request: Request) -> Response:
            q = request.query_params
            venue, fault, ms = q.get("venue", ""), q.get("fault", ""), q.get("ms")
            allowed = [f.value for f in WsFault]
            if venue not in venues or fault not in allowed or (ms is not None and not ms.isdigit()):
                body = {"error": f"expected venue in {','.join(venues)}, fault in {'|'.join(allowed)}"
                                 ", and optionally ms (whole ms, for stall)"}
                return Response(orjson.dumps(body), status_code=422, media_type="application/json")
            await self.inject(venue, WsFault(fault), int(ms) if ms is not None else None)
            return Response(orjson.dumps({"venue": venue, "fault": fault, **self.snapshot(venue)}),
                            media_type="application/json")

        async def get(request: Request) -> Response:
            return Response(orjson.dumps({v: self.snapshot(v) for v in venues}), media_type="application/json")

        return [Route("/__sandbox/ws", post, methods=["POST"]), Route("/__sandbox/ws", get, methods=["GET"])]
