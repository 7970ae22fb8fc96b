"""Stream control and visibility: ``GET /v1/{exchange}/streams``, ``POST /v1/streams/start|stop``.

Thin over :class:`exgate.streams.StreamSupervisor`. Start and stop are operator commands
(``Authorization: Bearer <EXGATE_ADMIN_TOKEN>``); they apply here and are published on the
control channel (``exgate:control``) so every instance sharing Redis applies them too.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from exgate.bus import BusUnavailable
from exgate.errors import NotSupported
from exgate.http.openapi import problem_responses
from exgate.http.routes import refuse_admin
from exgate.streams import StreamStatus, TierEntry

router = APIRouter(default_response_class=Response)

_JSON = "application/json"


class VenueStreams(BaseModel):
    """``GET /v1/{exchange}/streams``: whether the venue is streamed, what (tiers, with reason
    and lease expiry) and how each stream kind is doing."""

    exchange: str
    enabled: bool
    """False when the gateway runs without streams (``EXGATE_STREAMS=off``)."""
    running: bool
    """Whether this venue is being streamed (idle start and stop commands make it false)."""
    tiers: list[TierEntry]
    streams: list[StreamStatus]


class StreamsCommand(BaseModel):
    """``POST /v1/streams/start|stop``: the venues streamed on this instance afterwards, and how
    many listeners the command was published to, this instance's own included (``None``: it
    could not be published, e.g. Redis unreachable; it was applied on this instance)."""

    op: str
    exchange: str | None
    running: list[str]
    published_to: int | None = None


def _supervisor(request: Request):
    return getattr(request.app.state, "streams", None)


@router.get("/v1/{exchange}/streams", tags=["streams"], responses={200: {"model": VenueStreams},
                                                                   **problem_responses(404)})
async def venue_streams(request: Request, exchange: str) -> Response:
    """What the venue streams (tier 1: top N by 24 h quote volume plus configured bases; tier
    2: symbols read often, with their lease expiry) and each stream kind's status."""
    market_data = request.app.state.market_data
    adapter = market_data.adapter(exchange)  # 404 naming the served venues
    supervisor = _supervisor(request)
    if supervisor is None:
        body = VenueStreams(exchange=adapter.id, enabled=False, running=False, tiers=[], streams=[])
    else:
        running = adapter.id in supervisor.running
        body = VenueStreams(exchange=adapter.id, enabled=True, running=running,
                            tiers=list(supervisor.venues[adapter.id].plan) if running else [],
                            streams=await supervisor.statuses(adapter.id))
    return Response(body.model_dump_json(), media_type=_JSON)


async def _command(request: Request, op: str, exchange: str | None) -> Response:
    refused = refuse_admin(request, "stream control")
    if refused is not None:
        return refused
    supervisor = _supervisor(request)
    if supervisor is None:
        raise NotSupported("this gateway runs without streams (EXGATE_STREAMS=off)")
    if exchange is not None:
        supervisor.venue_ids(exchange)  # UnknownExchange (404) before anything is published
    running = await (supervisor.start(exchange) if op == "start" else supervisor.stop(exchange))
    control = getattr(request.app.state, "control", None)
    published = None
    if control is not None:
        try:
            published = await control.publish({"op": op, "exchange": exchange, "origin": supervisor.instance})
        except BusUnavailable:  # applied here; the other instances did not hear it (published_to null)
            published = None
    return Response(StreamsCommand(op=op, exchange=exchange, running=running, published_to=published)
                    .model_dump_json(), media_type=_JSON)


_EXCHANGE_Q = Query(None, description="one venue id (default: every venue)", max_length=64)


@router.post("/v1/streams/start", tags=["streams"], openapi_extra={"security": [{"adminToken": []}]},
             responses={200: {"model": StreamsCommand}, **problem_responses(401, 403, 404, 422)})
async def streams_start(request: Request, exchange: str | None = _EXCHANGE_Q) -> Response:
    """Start streaming ``exchange`` (default: every venue) on every instance (operators only)."""
    return await _command(request, "start", exchange)


@router.post("/v1/streams/stop", tags=["streams"], openapi_extra={"security": [{"adminToken": []}]},
             responses={200: {"model": StreamsCommand}, **problem_responses(401, 403, 404, 422)})
async def streams_stop(request: Request, exchange: str | None = _EXCHANGE_Q) -> Response:
    """Stop streaming ``exchange`` (default: every venue) on every instance (operators only);
    its reads go back to REST at once."""
    return await _command(request, "stop", exchange)
