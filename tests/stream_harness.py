"""Helpers of the client-stream tests: a gateway whose bus the test publishes on, and
WebSocket/SSE clients that read frames until what they wait for arrives."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from exgate.bus import StreamOptions
from tests.conftest import ServerThread

VENUES = ["binanceusdm", "bybit", "hyperliquid", "pacifica"]
NAMES = {"binanceusdm": "Binance USDⓈ-M", "bybit": "Bybit", "hyperliquid": "Hyperliquid", "pacifica": "Pacifica"}
HANG_GUARD_S = 30  # a stuck wait fails with this, it is not a speed expectation


class LoopServer(ServerThread):
    """A :class:`ServerThread` that keeps its event loop (to publish on an in-process bus)."""

    loop: asyncio.AbstractEventLoop

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve(sockets=[self.sock])

        asyncio.run(main())


@contextmanager
def stream_gateway(redis_url: str | None, options: StreamOptions, bus: Any = None) -> Iterator[LoopServer]:
    """A gateway over the four default venues (never loaded: nothing upstream is asked), its bus
    on ``redis_url`` (``None``: in-process, or ``bus`` when given), with ``options``."""
    from exgate.config import Settings
    from exgate.http.app import create_app
    from exgate.venues.registry import build_adapters

    adapters = build_adapters(VENUES, {v: f"http://127.0.0.1:9/{v}" for v in VENUES})
    # a 2 s Redis timeout: these tests are about the stream protocol, and on a loaded 2-core
    # machine a Redis call can take longer than the production default of 500 ms
    settings = Settings(redis_url=redis_url, exchanges=",".join(VENUES), redis_timeout_ms=2_000)
    app = create_app(adapters, preload=False, settings=settings)
    app.state.stream_options = options
    if bus is not None:
        app.state.bus = bus
    with LoopServer(app) as server:
        server.app = app  # type: ignore[attr-defined]
        yield server


def ws_url(server: ServerThread) -> str:
    return server.url.replace("http://", "ws://") + "/v1/stream"


async def open_ws(server: ServerThread, *, small_buffer: bool = False, max_queue: int = 16) -> ClientConnection:
    """A WebSocket client of ``/v1/stream`` (no compression; ``small_buffer``: a 4 KB receive
    buffer, so a client that stops reading fills up quickly)."""
    sock = None
    if small_buffer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.setblocking(False)
    return await connect(ws_url(server), compression=None, max_queue=max_queue, sock=sock,
                         ping_interval=None, open_timeout=HANG_GUARD_S)


async def send(ws: ClientConnection, frame: dict) -> None:
    await ws.send(orjson.dumps(frame).decode())


async def next_frame(ws: ClientConnection, *, pings: bool = False) -> dict:
    """The next frame (server pings skipped unless ``pings``)."""
    while True:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), HANG_GUARD_S))
        if pings or frame.get("op") != "ping":
            return frame


async def frame_with(ws: ClientConnection, op: str) -> dict:
    """The next frame whose ``op`` is ``op``; frames of other ops before it are an error,
    except pings."""
    frame = await next_frame(ws)
    assert frame["op"] == op, frame
    return frame


async def subscribe(ws: ClientConnection, channels: list[str], **extra: Any) -> dict:
    await send(ws, {"op": "subscribe", "channels": channels, **extra})
    return await frame_with(ws, "subscribed")


async def events(ws: ClientConnection, n: int) -> list[dict]:
    """The next ``n`` event frames (anything else in between fails)."""
    return [await frame_with(ws, "event") for _ in range(n)]
