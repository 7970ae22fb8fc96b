"""Connector state that survives restarts: venues' clock offsets and markets snapshots,
persisted in SQL (``connector_state``) with TTLs and read through L1 → Redis → SQL, so a new
process starts without syncing (zero upstream calls when warm).

    state = ConnectorState(store.engine, cache.l2, offset_ttl_ms=900_000, markets_ttl_ms=3_600_000)
    async with state:
        adapter.attach_snapshots(MarketsSnapshots(state))   # first load: set_markets from a snapshot
        await ClockOffsets(state).prepare(private_client)   # sign with the venue's clock offset
        await state.invalidate("binanceusdm")               # -> entries invalidated
        state.stats()                                       # hits, misses, entries, by venue

Modules: :mod:`.entry` (keys, entries, what is corrupt), :mod:`.state` (the service),
:mod:`.sql` (the table, fail-open), :mod:`.uses` (markets snapshots, clock offsets).
"""

from exgate.connectors.entry import (DAY_MS, MAINNET, PUBLIC, Corrupt, Kind, StateEntry, StateKey, Synced,
                                     credential_scope, environment_of)
from exgate.connectors.state import ConnectorState
from exgate.connectors.uses import ClockOffsets, MarketsSnapshots

__all__ = ["DAY_MS", "MAINNET", "PUBLIC", "ClockOffsets", "ConnectorState", "Corrupt", "Kind", "MarketsSnapshots",
           "StateEntry", "StateKey", "Synced", "credential_scope", "environment_of"]
