"""``exgate serve --sandbox``: no sandbox request can stall the gateway's routes.

Seen before the fix: ``klines?interval=1m&start=0&limit=5`` kept the in-process sandbox busy on
the gateway's own event loop for 96 s (every route, ``/healthz`` included, waited), then 503.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from exgate.sandbox.runner import ServerThread
from tests.conftest import free_port, spawn_exgate, stop_all, wait_ready

HANG_GUARD_S = 60  # a hang guard, not a speed assertion: the unfixed code held /healthz 96-171 s


async def test_start_zero_klines_answer_while_healthz_keeps_answering() -> None:
    port = free_port()
    proc = spawn_exgate(["serve", "--sandbox", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                        {})
    try:
        url = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(wait_ready, url, "exgate serve --sandbox", proc)
        async with httpx.AsyncClient(base_url=url, timeout=HANG_GUARD_S) as client:
            klines = asyncio.create_task(client.get("/v1/binanceusdm/markets/BTC/klines",
                                                    params={"interval": "1m", "start": 0, "limit": 5}))
            await asyncio.sleep(0)  # the klines request is on its way first
            health = await client.get("/healthz")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            answer = await klines
        assert answer.status_code == 200, answer.text
        candles = answer.json()["candles"]
        assert 0 < len(candles) <= 5 and all(c["closed"] for c in candles)
        first = candles[0]["open_time"]
        assert [c["open_time"] for c in candles] == [first + k * 60_000 for k in range(len(candles))]
        assert first == 1_569_398_400_000  # BTCUSDT's onboardDate: the sandbox's earliest candle
    finally:
        await asyncio.to_thread(stop_all, [proc])


async def test_a_blocked_sandbox_handler_leaves_the_callers_loop_running() -> None:
    """The runner `serve --sandbox` uses: a handler that blocks its own loop does not block ours."""
    entered, release = threading.Event(), threading.Event()

    async def blocking(request: Request) -> PlainTextResponse:
        entered.set()
        released = release.wait(HANG_GUARD_S)  # blocks the sandbox's loop (a CPU-bound handler would too)
        return PlainTextResponse("released" if released else "timed out")

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = uvicorn.Config(Starlette(routes=[Route("/block", blocking)]), log_level="warning", lifespan="off")
    runner = ServerThread(uvicorn.Server(config), [sock])
    runner.start()
    try:
        await runner.wait_started()
        async with httpx.AsyncClient(timeout=2 * HANG_GUARD_S) as client:
            request = asyncio.create_task(client.get(f"http://127.0.0.1:{sock.getsockname()[1]}/block"))
            while not entered.is_set():  # this loop keeps running while the handler blocks
                await asyncio.sleep(0.01)
            assert not request.done()
            release.set()  # reached from our loop while the sandbox's handler is still in flight
            answer = await request
        assert answer.text == "released"
    finally:
        release.set()
        runner.stop()
    assert not runner.alive
