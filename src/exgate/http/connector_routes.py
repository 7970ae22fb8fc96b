"""``GET /v1/connectors/stats``: the connector state's figures (thin over
:meth:`exgate.connectors.ConnectorState.stats`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import Response

router = APIRouter(default_response_class=Response)


class EntryCounts(BaseModel):
    """Entries in the shared store (SQL; this process's own when the database is down)."""

    total: int
    valid: int
    expired: int
    invalid: int


class ConnectorFigures(BaseModel):
    """Figures of all venues, or of one."""

    entries: EntryCounts
    hits: int
    misses: int
    hit_rate: float | None
    """hits / (hits + misses) of this process's reads; ``None`` before any read."""
    syncs: int
    """Syncs with the venue this process made (clock offsets measured, markets loaded)."""
    last_sync_age_ms: int | None
    """Age of the most recent sync of any entry, ms."""
    stored_hits: int | None
    """Hits recorded in the entries' rows by every process (flushed every 5 s); ``None``
    when the database does not answer."""


class DatabaseState(BaseModel):
    """The SQL tier: answering at its last call, warnings logged (at most one), failed calls."""

    available: bool
    warnings: int
    failures: int


class ConnectorStats(ConnectorFigures):
    """``GET /v1/connectors/stats``."""

    coalesced: int
    """Syncs this process waited for instead of making (another caller's or instance's)."""
    discarded: int
    """Corrupt entries dropped (unparseable, negative TTL, absurd offset)."""
    database: DatabaseState
    by_venue: dict[str, ConnectorFigures]
    enabled: bool
    """False when neither a database nor Redis is configured (nothing outlives the process)."""


_EMPTY = {"entries": {"total": 0, "valid": 0, "expired": 0, "invalid": 0}, "hits": 0, "misses": 0, "hit_rate": None,
          "syncs": 0, "last_sync_age_ms": None, "stored_hits": None, "coalesced": 0, "discarded": 0,
          "database": {"available": False, "warnings": 0, "failures": 0}, "by_venue": {}}


@router.get("/v1/connectors/stats", tags=["ops"], response_model=ConnectorStats,
            responses={200: {"model": ConnectorStats}})
async def connector_stats(request: Request) -> Response:
    """Connector state (venues' clock offsets and markets snapshots, kept across restarts):
    entries total/valid/expired, hits, misses, hit rate, syncs, last sync age, by venue."""
    state = getattr(request.app.state, "connectors", None)
    if state is None:
        body = ConnectorStats(**_EMPTY, enabled=False)
    else:
        await state.refresh()
        body = ConnectorStats(**state.stats(), enabled=True)
    return Response(body.model_dump_json(), media_type="application/json")
