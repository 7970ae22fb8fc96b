"""Helpers for the Hyperliquid and Pacifica sandbox WebSocket tests: a raw socket that reads
JSON frames and a wait on the WS counters; the ccxt.pro client, the fault switch and the
counters are :mod:`tests.ws_harness`'s."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import aiohttp
import orjson

from tests.conftest import ServerThread
from tests.ws_harness import fault, pro_client, ws_stats  # noqa: F401 - the tests take them from here too

HANG_GUARD_S = 20
"""A hang guard for waits on a frame or a counter, not a speed assertion."""


async def within(awaitable):
    """``awaitable``'s result, with a hang guard of :data:`HANG_GUARD_S` (not a speed assertion)."""
    return await asyncio.wait_for(awaitable, HANG_GUARD_S)


class RawSocket:
    """A plain WebSocket to the sandbox: send objects or text, read JSON frames."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, frame: object) -> None:
        await self.ws.send_str(frame if isinstance(frame, str) else orjson.dumps(frame).decode())

    async def recv(self) -> dict:
        """The next text frame, decoded (fails on a close)."""
        msg = await asyncio.wait_for(self.ws.receive(), HANG_GUARD_S)
        assert msg.type is aiohttp.WSMsgType.TEXT, f"expected a text frame, got {msg.type} {msg.data!r}"
        return orjson.loads(msg.data)

    async def recv_until(self, accept: Callable[[dict], bool]) -> dict:
        """The first frame ``accept`` takes (the others are skipped)."""
        while True:
            frame = await self.recv()
            if accept(frame):
                return frame


@contextlib.asynccontextmanager
async def raw_socket(box: ServerThread, path: str) -> AsyncIterator[RawSocket]:
    """A raw socket to ``ws://sandbox{path}``."""
    async with aiohttp.ClientSession() as http, http.ws_connect(box.url.replace("http", "ws", 1) + path) as ws:
        yield RawSocket(ws)


async def wait_stats(box: ServerThread, venue: str, accept: Callable[[dict], bool]) -> dict:
    """Poll the venue's WS counters until ``accept`` takes them (hang guard: :data:`HANG_GUARD_S`)."""
    async def poll() -> dict:
        while True:
            snap = await asyncio.to_thread(ws_stats, box, venue)
            if accept(snap):
                return snap
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), HANG_GUARD_S)
