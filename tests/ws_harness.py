"""What the sandbox WebSocket tests share: a real ccxt.pro client pointed at the sandbox, a raw
socket, and waiting on a condition while the sandbox clock moves (never a timed assertion:
every wait ends when its condition holds, the timeout only bounds a broken run)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import websockets

from exgate.venues.upstream import rewrite_urls
from tests.conftest import ManualClock, ServerThread

WAIT_S = 20.0
"""Upper bound of any wait (a broken run fails instead of hanging)."""


def pro_client(venue: str, sandbox_url: str, config: dict | None = None):
    """A real ``ccxt.pro`` client of ``venue`` whose REST and WebSocket URLs point at the
    sandbox's ``/{venue}`` (exgate's upstream override, :func:`rewrite_urls`)."""
    import ccxt.pro as ccxtpro

    exchange = getattr(ccxtpro, venue)(dict(config or {}))
    exchange.urls["api"] = rewrite_urls(exchange.urls["api"], f"{sandbox_url}/{venue}", exchange.hostname)
    return exchange


async def drive(awaitable: Awaitable, clock: ManualClock | None = None, step_ms: int = 200) -> Any:
    """Await ``awaitable`` while moving ``clock`` by ``step_ms`` each ~30 ms of real time."""
    task = asyncio.ensure_future(awaitable)
    async with asyncio.timeout(WAIT_S):
        while not task.done():
            await asyncio.sleep(0.03)
            if clock is not None and not task.done():
                clock.advance(step_ms)
        return task.result()


async def watch_through_network_errors(watch: Callable[[], Awaitable], clock: ManualClock | None = None,
                                       attempts: int = 5) -> Any:
    """``watch()``'s first answer, calling it again after each ``ccxt.NetworkError`` (the watch
    pending when the server closed the socket fails; the next one opens a new connection)."""
    import ccxt

    for _ in range(attempts - 1):
        try:
            return await drive(watch(), clock)
        except ccxt.NetworkError:
            continue
    return await drive(watch(), clock)


async def until(check: Callable[[], Any], what: str) -> Any:
    """Poll ``check()`` (sync) until it is truthy; its value."""
    async with asyncio.timeout(WAIT_S):
        while True:
            value = check()
            if value:
                return value
            await asyncio.sleep(0.02)


def ws_stats(server: ServerThread, venue: str) -> dict:
    """``/__sandbox/stats``' ``venues.<venue>.ws``."""
    return httpx.get(f"{server.url}/__sandbox/stats").json()["venues"][venue]["ws"]


def fault(server: ServerThread, venue: str, name: str, **extra: Any) -> dict:
    """``POST /__sandbox/ws?venue=&fault=``; anything but a 200 fails the test."""
    answer = httpx.post(f"{server.url}/__sandbox/ws", params={"venue": venue, "fault": name, **extra})
    assert answer.status_code == 200, answer.text
    return answer.json()


class RawSocket:
    """A plain WebSocket to the sandbox, JSON in and out."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws = None

    async def __aenter__(self) -> RawSocket:
        self.ws = await websockets.connect(self.url, max_size=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def send(self, payload: Any) -> None:
        await self.ws.send(payload if isinstance(payload, str) else orjson.dumps(payload).decode())

    async def recv(self) -> Any:
        async with asyncio.timeout(WAIT_S):
            return orjson.loads(await self.ws.recv())

    async def recv_until(self, check: Callable[[Any], bool], clock: ManualClock | None = None,
                         step_ms: int = 100) -> list[Any]:
        """Messages up to and including the first ``check`` accepts, moving ``clock`` by
        ``step_ms`` whenever nothing is waiting."""
        out: list[Any] = []
        async with asyncio.timeout(WAIT_S):
            while True:
                try:
                    message = orjson.loads(await asyncio.wait_for(self.ws.recv(), 0.05))
                except TimeoutError:
                    if clock is not None:
                        clock.advance(step_ms)
                    continue
                out.append(message)
                if check(message):
                    return out
