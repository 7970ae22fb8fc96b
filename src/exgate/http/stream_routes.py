"""The client stream: ``WS /v1/stream`` and ``GET /v1/stream/sse`` (thin over :mod:`exgate.bus`).

The app's lifespan puts the bus on ``app.state.bus`` and the fan-out on ``app.state.stream_hub``;
``app.state.stream_options`` (:class:`~exgate.bus.StreamOptions`) holds the limits, and
``app.state.stream_venues`` may name the venues channels may use (default: the served venues,
``app.state.market_data.adapters``).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, WebSocket
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from exgate.bus import BusUnavailable, ClientSession, StreamOptions
from exgate.bus.channels import CHANNEL_FORM, KINDS, allowed_forms, parse_channels
from exgate.bus.cursor import CursorError, decode_cursor
from exgate.bus.transport import serve_websocket, sse_frames
from exgate.errors import BadRequest
from exgate.http.manners import split_list
from exgate.http.openapi import problem_responses
from exgate.metrics import ORIGINAL_METHOD

router = APIRouter()

WS_PROTOCOL = f"""
**WebSocket `/v1/stream`** (not listed as an operation: OpenAPI has no WebSockets) speaks the same
channels. Client frames: `{{"op":"subscribe","channels":["binanceusdm:ticker:BTC","*:liquidation"]}}`
(optionally with `"last_id": <cursor>`), `{{"op":"unsubscribe","channels":[...]}}`,
`{{"op":"resume","last_id":<cursor>}}` (with or after subscribe: replays from the cursor, then
live, no gap, no duplicate), `{{"op":"ping"}}` (answered `pong`), `{{"op":"pong"}}`.
Server frames: `{{"op":"subscribed","channels":[...]}}`, `{{"op":"event","channel":...,"cursor":...,
"event":{{"id","venue","kind","symbol","asset","data","source_exchange_id","source_exchange_name",
"ts_ms"}}}}`, `{{"op":"gap",...}}` (events older than the bus keeps were lost), `{{"op":"ping","ts":ms}}`,
`{{"op":"error","detail":...,"channel"?,"allowed"?}}`. A client that lets its queue fill is sent
`{{"op":"error","detail":"slow consumer..."}}` and closed (1008).

Channels: `{CHANNEL_FORM}`; kinds: {", ".join(KINDS)}.
"""

SSE_DESCRIPTION = f"""Server-Sent Events of the bus's channels (comma list in `channels`).

Each event: `id:` its cursor (send it back as `Last-Event-ID` or `last_id` to resume with no gap
and no duplicate), `event:` its kind, `data:` the frame as JSON
(`{{"op":"event","channel","cursor","event":{{...}}}}`, the event carrying `source_exchange_id`
and `source_exchange_name`). Also `event: gap` (events were lost), `event: ping` (keep-alive),
`event: error` (a slow consumer or a bus outage; the stream then ends).
{WS_PROTOCOL}"""


def _venues(app: Any) -> list[str]:
    venues = getattr(app.state, "stream_venues", None)
    if venues is None:
        market_data = getattr(app.state, "market_data", None)
        venues = list(market_data.adapters) if market_data is not None else []
    return sorted(venues)


def _options(app: Any) -> StreamOptions:
    return getattr(app.state, "stream_options", None) or StreamOptions()


def _session(app: Any) -> ClientSession:
    return ClientSession(app.state.stream_hub, app.state.bus, _venues(app), _options(app))


@router.websocket("/v1/stream")
async def stream_ws(websocket: WebSocket) -> None:
    """The WebSocket client stream (protocol in :mod:`exgate.bus.transport`)."""
    await websocket.accept()
    await serve_websocket(websocket, _session(websocket.app))


class _EventStream(StreamingResponse):
    """SSE body that ends (and closes the connection) when its client turns slow, and always
    leaves the session's feeds, even if the body never started."""

    def __init__(self, session: ClientSession, head: bool) -> None:
        super().__init__(sse_frames(session) if not head else iter(()), media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.session = session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                body = group.create_task(super().__call__(scope, receive, send))
                watch = group.create_task(self._until_slow())
                await asyncio.wait([body, watch], return_when=asyncio.FIRST_COMPLETED)
                body.cancel()
                watch.cancel()
        finally:
            self.session.close()

    async def _until_slow(self) -> None:
        """Return once the session is slow and its frame is not taken within the send timeout
        (the client stopped reading): the body is then cancelled and the connection closed."""
        await self.session.became_slow.wait()
        await asyncio.sleep(self.session.options.send_timeout_s)  # room for the body to send its error and end


@router.get(
    "/v1/stream/sse", summary="Stream bus events (Server-Sent Events)", description=SSE_DESCRIPTION,
    response_class=Response,
    responses={200: {"description": "an endless `text/event-stream`",
                     "content": {"text/event-stream": {"schema": {"type": "string"}}}},
               **problem_responses(422, 503)},
)
async def stream_sse(
    request: Request,
    channels: Annotated[list[str], Query(description=f"comma list of channels `{CHANNEL_FORM}`",
                                         min_length=1)],
    last_id: Annotated[str | None, Query(description="resume after this cursor", max_length=8192)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=8192,
                                                description="resume after this cursor (SSE reconnection)")] = None,
) -> Response:
    """Subscribe, then stream (see the description)."""
    app = request.app
    venues = _venues(app)
    texts = split_list(channels)
    good, bad = parse_channels(texts, venues)
    if bad or not good:
        detail = bad[0].detail if bad else "channels: at least one channel"
        raise BadRequest(f"channels: {detail}", field="channels", allowed=allowed_forms(venues),
                         channel=bad[0].channel if bad else None)
    cursor = last_id if last_id is not None else last_event_id
    if cursor is not None:
        try:
            decode_cursor(cursor)
        except CursorError as exc:
            raise BadRequest(str(exc), field="last_id") from None
    session = _session(app)
    head = request.scope.get(ORIGINAL_METHOD) == "HEAD"
    if not head:
        try:
            await session.subscribe(texts, cursor)
        except BusUnavailable:
            session.close()
            raise
    return _EventStream(session, head)
