"""Where connector state is used: venues' markets snapshots (for the adapters' first load) and
venues' clock offsets (for every connection's signed requests).

Scope of both: per venue (``public``) and environment. A venue has one server clock and one
market listing, the same for every connection on it, so one offset entry serves all of a
venue's connections (the per-credential scope exists in the table for state that would differ
per key, none yet).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from exgate.connectors.entry import PUBLIC, Corrupt, Kind, StateEntry, Synced, environment_of
from exgate.connectors.state import ConnectorState
from exgate.errors import ExgateError

log = structlog.get_logger("exgate.connectors")


class MarketsSnapshots:
    """The snapshot source of :meth:`exgate.venues.ccxt_adapter.CcxtAdapter.attach_snapshots`."""

    def __init__(self, state: ConnectorState):
        self.state = state
        self.loaded: dict[str, str] = {}
        """venue → where its first load came from: ``snapshot`` or ``venue``."""

    async def obtain(self, adapter: Any, fetch: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """A valid snapshot of ``adapter``'s venue, else one loaded by ``fetch`` (once across
        instances) and stored.

        Raises:
            ExgateError: ``fetch`` failed (nothing stored).
        """
        environment = environment_of(adapter.upstream)
        fetched = False

        async def sync() -> Synced:
            nonlocal fetched
            fetched = True
            return Synced(await fetch())

        entry = await self.state.obtain(adapter.id, PUBLIC, environment, Kind.MARKETS, sync)
        self.loaded[adapter.id] = "venue" if fetched else "snapshot"
        return entry.payload

    async def save(self, adapter: Any, snapshot: dict[str, Any]) -> None:
        """Store a snapshot ``adapter`` loaded from the venue (a reload); never raises."""
        try:
            await self.state.put(adapter.id, PUBLIC, environment_of(adapter.upstream), Kind.MARKETS, snapshot)
        except Corrupt as exc:
            log.warning("markets_snapshot_not_saved", exchange=adapter.id, reason=str(exc))


class ClockOffsets:
    """Clock offsets of the venues whose profile sets ``time_sync`` (Binance USD-M, Bybit).

    :meth:`prepare` applies the venue's valid offset to a new connection's ccxt instance (or
    syncs it once, through the budget, on a miss); :meth:`resync` is what a
    :class:`~exgate.venues.private.PrivateClient` calls after a timestamp refusal.
    """

    def __init__(self, state: ConnectorState):
        self.state = state

    @staticmethod
    def applies(adapter: Any) -> bool:
        return bool(getattr(adapter.profile, "time_sync", False)) and hasattr(adapter, "clock_offset")

    def _sync(self, adapter: Any) -> Callable[[], Awaitable[Synced]]:
        async def sync() -> Synced:
            offset, rtt = await adapter.clock_offset()
            log.info("clock_offset_synced", exchange=adapter.id, offset_ms=offset, rtt_ms=rtt)
            return Synced({"offset_ms": offset}, rtt)

        return sync

    async def offset(self, adapter: Any, *, newer_than: int | None = None) -> StateEntry:
        """The venue's offset entry: valid from the state, or synced now (once across callers).

        Raises:
            ExgateError: the sync failed.
        """
        return await self.state.obtain(adapter.id, PUBLIC, environment_of(adapter.upstream), Kind.TIME_OFFSET,
                                       self._sync(adapter), newer_than=newer_than)

    async def prepare(self, client: Any) -> None:
        """Apply the venue's offset to ``client`` (a new PrivateClient) and arm its recovery.
        A failed sync is logged and leaves ccxt's own default (no offset); never raises."""
        adapter = client.adapter
        if not self.applies(adapter):
            return
        client.clock_sync = self
        try:
            entry = await self.offset(adapter)
        except ExgateError as exc:
            log.warning("clock_offset_unavailable", exchange=adapter.id, error=exc.detail)
            return
        client.apply_offset(entry.offset_ms, entry.synced_at_ms)

    async def resync(self, client: Any) -> None:
        """After a timestamp refusal: invalidate the offset ``client`` signed with (only that
        one: a newer entry another caller synced meanwhile is used as it is), sync once, apply.

        Raises:
            ExgateError: the sync failed.
        """
        adapter = client.adapter
        stale = client.offset_synced_at
        environment = environment_of(adapter.upstream)
        if stale is None:
            entry = await self.offset(adapter)
        else:
            await self.state.invalidate(adapter.id, scope=PUBLIC, environment=environment, kind=Kind.TIME_OFFSET,
                                        synced_at_ms=stale)
            entry = await self.offset(adapter, newer_than=stale)
        log.info("clock_offset_resynced", exchange=adapter.id, offset_ms=entry.offset_ms)
        client.apply_offset(entry.offset_ms, entry.synced_at_ms)
