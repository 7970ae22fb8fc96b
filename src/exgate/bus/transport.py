"""The client stream's two transports over one :class:`~exgate.bus.session.ClientSession`:
the WebSocket protocol (:func:`serve_websocket`) and Server-Sent Events (:func:`sse_frames`).

WebSocket ``/v1/stream`` — client frames (JSON objects):
``{"op":"subscribe","channels":[...],"last_id"?: cursor}``, ``{"op":"unsubscribe","channels":[...]}``,
``{"op":"resume","last_id": cursor}``, ``{"op":"ping"}`` (answered ``pong``), ``{"op":"pong"}``.
Server frames: ``subscribed``/``unsubscribed`` (``channels``), ``event`` (``channel``,
``cursor``, ``event``), ``gap`` (events were trimmed before delivery), ``ping`` (``ts``, every
``ping_s`` of silence), ``pong``, ``error`` (``detail``; ``channel`` and ``allowed`` for a bad
channel, ``field`` for a bad cursor). A slow consumer gets the ``slow consumer`` error and the
close code 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from exgate.bus.base import BusUnavailable
from exgate.bus.session import OPS, ClientSession, SlowConsumer

log = structlog.get_logger("exgate.bus")

CLOSE_POLICY = 1008
CLOSE_UNAVAILABLE = 1011


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _dumps(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


async def _handle(session: ClientSession, text: str | bytes) -> None:
    """Apply one client frame to ``session`` (replies are queued on it)."""
    if len(text) > session.options.max_frame_bytes:
        session.handle_bad_frame(f"frame longer than {session.options.max_frame_bytes} bytes")
        return
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        session.handle_bad_frame("frame is not JSON: send an object with an `op`")
        return
    op = message.get("op") if isinstance(message, dict) else None
    if op not in OPS:
        session.handle_bad_frame(f"op must be one of {', '.join(OPS)}")
        return
    if op == "ping":
        session.pong()
    elif op == "pong":
        pass
    elif op == "resume":
        await session.resume(message.get("last_id"))
    else:
        channels = message.get("channels")
        if not isinstance(channels, list) or not channels:
            session.handle_bad_frame(f"`{op}` needs `channels`: a non-empty list of {{venue|*}}:{{kind}}[:{{asset}}]")
            return
        if op == "subscribe":
            await session.subscribe(channels, message.get("last_id"))
        else:
            session.unsubscribe(channels)


async def _read(ws: WebSocket, session: ClientSession) -> None:
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("text") if message.get("text") is not None else message.get("bytes")
        if data is not None:
            await _handle(session, data)


async def _send(ws: WebSocket, frame: dict[str, Any], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        await ws.send_text(_dumps(frame))


async def _write(ws: WebSocket, session: ClientSession, clock: Callable[[], int]) -> None:
    options = session.options
    while True:
        try:
            frame = await session.next_frame(options.ping_s)
        except SlowConsumer as slow:
            with contextlib.suppress(Exception):  # reaches a client that reads again within the timeout
                await _send(ws, slow.args[0], options.send_timeout_s)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await ws.close(CLOSE_POLICY, "slow consumer")
            return
        try:
            await _send(ws, frame if frame is not None else {"op": "ping", "ts": clock()}, options.send_timeout_s)
        except TimeoutError:
            session.mark_slow()  # the next round sends the error and closes


async def serve_websocket(ws: WebSocket, session: ClientSession, *, clock: Callable[[], int] = _now_ms) -> None:
    """Run one accepted WebSocket client until it leaves, falls behind or the bus fails.

    Owns two tasks in a :class:`asyncio.TaskGroup`: the reader (client frames → session) and
    the writer (session frames → client, pings in silences); when either ends the other is
    cancelled, then the session leaves every feed."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_read(ws, session)), group.create_task(_write(ws, session, clock))]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
    except* (WebSocketDisconnect, OSError, RuntimeError):
        pass  # the client went away
    except* BusUnavailable as group:
        detail = group.exceptions[0].detail  # type: ignore[attr-defined]
        if ws.client_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await _send(ws, {"op": "error", "detail": detail}, 1.0)
                async with asyncio.timeout(1.0):
                    await ws.close(CLOSE_UNAVAILABLE, "event bus unavailable")
    finally:
        session.close()


def sse_event(frame: dict[str, Any]) -> bytes:
    """One SSE message for a session frame: events get ``id: <cursor>`` and ``event: <kind>``,
    other frames ``event: <op>``; ``data:`` is the frame as JSON (one line)."""
    lines = []
    if frame.get("op") == "event":
        lines.append(f"id: {frame['cursor']}")
        lines.append(f"event: {frame['event']['kind']}")
    else:
        lines.append(f"event: {frame.get('op', 'message')}")
    lines.append(f"data: {_dumps(frame)}")
    return ("\n".join(lines) + "\n\n").encode()


async def sse_frames(session: ClientSession, *, clock: Callable[[], int] = _now_ms) -> AsyncIterator[bytes]:
    """The SSE body of an already subscribed ``session``: its frames, a ``ping`` event in
    every ``ping_s`` of silence, and, for a slow consumer or a bus failure, a last ``error``
    event. Leaves every feed when it ends or is closed."""
    try:
        while True:
            try:
                frame = await session.next_frame(session.options.ping_s)
            except SlowConsumer as slow:
                yield sse_event(slow.args[0])
                return
            except BusUnavailable as exc:
                yield sse_event({"op": "error", "detail": exc.detail})
                return
            yield sse_event(frame if frame is not None else {"op": "ping", "ts": clock()})
    finally:
        session.close()
