"""The ingest supervisor: which streams run, who owns them, and their health.

:class:`StreamSupervisor` owns every stream task of the gateway under one TaskGroup. Once a
second it reconciles each running venue: it computes the symbols to stream (tiers, see
:mod:`exgate.streams.tiers`), takes or renews the ownership lease of each stream kind
(:mod:`exgate.streams.owner`), starts one :class:`~exgate.streams.worker.SymbolStream` per
(kind, symbol) it owns and should run, cancels the rest, and writes each kind's status
(:mod:`exgate.streams.status`). A venue whose streams fail keeps serving over REST: stream
entries are only read while fresh.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from exgate import errors
from exgate.models import Market
from exgate.streams.kinds import CCXT_METHOD, STALL_SCALE, StreamKind
from exgate.streams.live import LiveView
from exgate.streams.outbox import Outbox
from exgate.streams.owner import OwnerLease
from exgate.streams.status import StreamState, StreamStatus, read_status, status_key, status_of, write_status
from exgate.streams.tiers import Demand, TierEntry, TopVolume, plan_venue
from exgate.streams.worker import Counters, SymbolStream
from exgate.venues.streaming import StreamClient

log = structlog.get_logger("exgate.streams")


@dataclass(frozen=True)
class StreamConfig:
    """How the supervisor streams (``EXGATE_STREAM_*`` settings).

    Attributes:
        top_n: tier-1 markets per venue by 24 h quote volume.
        symbols: bases every venue streams (its main perpetual of each).
        lease_ms: a demand (tier-2) lease, renewed by reads.
        demand_reads: reads within a minute past which a symbol is leased.
        owner_lease_ms: the ownership lease across instances.
        stall_ms: a book's allowed silence (other kinds: scaled by :data:`STALL_SCALE`).
        interval: the candle interval streamed.
        kinds: the stream kinds run.
        tick_ms: how often the supervisor reconciles and heartbeats.
        max_demand: most tier-2 symbols per venue (the most recently read first): a client
            polling every market must not subscribe every market.
        top_refresh_ms: how often the tier-1 pool is recomputed (one tickers read per venue:
            the only REST read streams make while healthy, besides seeds and resyncs).
    """

    top_n: int = 20
    symbols: tuple[str, ...] = ()
    lease_ms: int = 300_000
    demand_reads: int = 3
    owner_lease_ms: int = 5_000
    stall_ms: int = 5_000
    interval: str = "1m"
    kinds: tuple[StreamKind, ...] = tuple(StreamKind)
    tick_ms: int = 1_000
    top_refresh_ms: int = 300_000
    max_demand: int = 50


@dataclass
class _Venue:
    adapter: Any
    client: StreamClient | None = None
    unsupported: str | None = None
    leases: dict[StreamKind, OwnerLease] = field(default_factory=dict)
    counters: dict[StreamKind, Counters] = field(default_factory=dict)
    tasks: dict[tuple[StreamKind, str], asyncio.Task[None]] = field(default_factory=dict)
    streams: dict[tuple[StreamKind, str], SymbolStream] = field(default_factory=dict)
    plan: list[TierEntry] = field(default_factory=list)
    top: TopVolume | None = None
    messages_at_beat: dict[StreamKind, tuple[int, int]] = field(default_factory=dict)
    states: dict[StreamKind, StreamState] = field(default_factory=dict)


class StreamSupervisor:
    """Runs the gateway's public streams (see the module doc).

    Args:
        market_data: the gateway's :class:`~exgate.service.MarketData` (adapters, cache,
            and the tickers tier 1 ranks by).
        config: :class:`StreamConfig`.
        bus: where updates are published (``async publish(venue, kind, data, *, symbol, asset,
            name)``), or ``None``.
        control: the control channel (:class:`exgate.bus.control.ControlChannel`) on which
            each stream kind's state changes are published as ``lifecycle`` events, or ``None``.
        instance: this instance's id (default: host name and pid).
        autostart: stream every venue from the start; ``False`` (``serve --idle``): nothing
            until :meth:`start`.

    Use as an async context manager (it owns every stream task).
    """

    def __init__(self, market_data: Any, config: StreamConfig | None = None, *, bus: Any = None,
                 control: Any = None, instance: str | None = None, autostart: bool = True,
                 clock: Callable[[], int] | None = None) -> None:
        self.market_data = market_data
        self.config = config or StreamConfig()
        self.bus = bus
        self.outbox = Outbox(bus) if bus is not None else None
        """The bounded queue between the workers and the bus (its ``dropped`` counts)."""
        self.control = control
        self.instance = instance or f"{socket.gethostname()}:{os.getpid()}"
        self.clock = clock or market_data.clock
        self.cache = market_data.cache
        self.store = getattr(self.cache, "l2", None)
        self.view = LiveView(self.cache)
        self.demand = Demand(self.clock, threshold=self.config.demand_reads, lease_ms=self.config.lease_ms,
                             store=self.store)
        self.venues = {vid: _Venue(adapter) for vid, adapter in market_data.adapters.items()}
        self.running: set[str] = set(self.venues) if autostart else set()
        self._group: asyncio.TaskGroup | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._outbox_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._reconciling = asyncio.Lock()
        """Held by each venue's reconcile and by a stop: a stop arriving mid-reconcile (a control
        command) must not be followed by that reconcile starting tasks and writing a status."""

    # -- lifecycle ------------------------------------------------------------------------
    async def __aenter__(self) -> StreamSupervisor:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._loop_task = self._group.create_task(self._loop())
        self._outbox_task = self._group.create_task(self.outbox.run()) if self.outbox is not None else None
        return self

    async def __aexit__(self, *exc: object) -> None:
        group, self._group = self._group, None
        if self._loop_task is not None:
            self._loop_task.cancel()
        if self._outbox_task is not None:
            self._outbox_task.cancel()
        for venue in self.venues.values():
            for task in venue.tasks.values():
                task.cancel()
        try:
            if group is not None:
                await group.__aexit__(None, None, None)
        finally:
            for venue in self.venues.values():
                venue.tasks.clear()
                for lease in venue.leases.values():
                    await lease.release()
                if venue.client is not None:
                    await venue.client.close()

    def venue_ids(self, exchange: str | None) -> list[str]:
        """The venue ids ``exchange`` names (``None``: every venue).

        Raises:
            UnknownExchange: not served here.
        """
        if exchange is None:
            return list(self.venues)
        vid = exchange.lower()
        if vid not in self.venues:
            raise errors.UnknownExchange(f"exchange {errors.echo(exchange)} is not served by this gateway",
                                         field="exchange", available=sorted(self.venues))
        return [vid]

    async def start(self, exchange: str | None = None) -> list[str]:
        """Stream ``exchange`` (default: every venue). Returns the venues now running.

        Raises:
            UnknownExchange: not served here.
        """
        self.running.update(self.venue_ids(exchange))
        self._wake.set()
        return sorted(self.running)

    async def stop(self, exchange: str | None = None) -> list[str]:
        """Stop streaming ``exchange`` (default: every venue): its tasks end, its entries are
        withdrawn (reads go to REST) and its leases are given up. Returns the venues still running.

        Raises:
            UnknownExchange: not served here.
        """
        for vid in self.venue_ids(exchange):
            self.running.discard(vid)
            async with self._reconciling:
                await self._stop_venue(self.venues[vid])
        return sorted(self.running)

    async def _stop_venue(self, venue: _Venue) -> None:
        # all at once, with no unsubscribe each: the sockets are closed right after
        await self._cancel_all(venue, list(venue.tasks), unsubscribe=False)
        for lease in venue.leases.values():
            await lease.release()
        if self.store is not None:
            await self.store.delete([status_key(venue.adapter.id, k.value) for k in venue.leases])
        await self._close_sockets(venue)
        for kind in list(venue.states):
            if venue.states.pop(kind) is not StreamState.STOPPED:
                await self._lifecycle(venue.adapter.id, kind.value, StreamState.STOPPED)

    async def _close_sockets(self, venue: _Venue) -> None:
        """Close the venue's sockets once no stream task of it runs here: a cancelled ccxt.pro
        watch leaves its subscription on the socket, which would keep the venue streaming to
        this instance after a stop or a lost lease. A new client is made when streams start again."""
        if venue.tasks or venue.client is None:
            return
        clients = getattr(venue.client.exchange, "clients", {})
        if any(not c.closed() for c in clients.values()):
            client, venue.client = venue.client, None
            await client.close()

    async def _cancel(self, venue: _Venue, key: tuple[StreamKind, str]) -> None:
        await self._cancel_all(venue, [key])

    async def _cancel_all(self, venue: _Venue, keys: list[tuple[StreamKind, str]], *, unsubscribe: bool = True,
                          lost: bool = False) -> None:
        """End the streams of ``keys`` together (each unsubscribing at the venue, at most 2 s,
        when ``unsubscribe``; ``lost``: another instance owns them now, so only this process's
        copies of their entries go, not the new owner's)."""
        tasks = []
        for key in keys:
            task = venue.tasks.pop(key, None)
            stream = venue.streams.pop(key, None)
            if stream is not None:
                stream.unsubscribe_on_cancel = unsubscribe
                stream.local_only = lost
            if task is not None:
                task.cancel()
                tasks.append(task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)  # their ends are all we need

    def streamable(self, vid: str, method: str) -> bool:
        """Whether ``vid`` is streamed here and its ccxt.pro client has ``method`` (``watchTrades``...)."""
        venue = self.venues.get(vid)
        return (vid in self.running and venue is not None and venue.client is not None
                and venue.client.supports(method))

    # -- demand ---------------------------------------------------------------------------
    def note_read(self, venue: str, symbol: str, *, force: bool = False) -> None:
        """A read of ``symbol`` on ``venue`` (tier-2 demand; ``force``: lease it now)."""
        if venue in self.venues:
            self.demand.note(venue, symbol, force=force)
            if force:
                self._wake.set()

    # -- the loop -------------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            for vid, venue in self.venues.items():
                async with self._reconciling:
                    if vid not in self.running:
                        continue
                    try:
                        await self._reconcile(venue)
                    except errors.ExgateError as exc:
                        log.warning("stream_reconcile_failed", venue=vid, error=str(exc))
                    except Exception as exc:  # noqa: BLE001 - one venue's failure must not stop the others' streams
                        log.error("stream_reconcile_failed", venue=vid, error=repr(exc), exc_info=True)
            try:
                await self.demand.flush()
            except Exception as exc:  # noqa: BLE001 - demand reaches Redis next time
                log.warning("stream_demand_flush_failed", error=repr(exc))
            self._wake.clear()
            try:  # at least every third of the owner lease, so the owner renews it before it lapses
                async with asyncio.timeout(min(self.config.tick_ms, self.config.owner_lease_ms / 3) / 1000):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def plan(self, vid: str) -> list[TierEntry]:
        """The symbols ``vid`` streams now and why (tier 1, then tier 2; see :func:`plan_venue`)."""
        venue = self.venues[vid]
        venue.top, venue.plan = await plan_venue(self.market_data, venue.adapter, self.config, self.demand,
                                                 venue.top, self.clock())
        return venue.plan

    async def _reconcile(self, venue: _Venue) -> None:
        adapter = venue.adapter
        if adapter.market_count is None or venue.unsupported:
            return
        if venue.client is None:
            try:
                venue.client = StreamClient(adapter)
            except errors.NotSupported as exc:
                venue.unsupported = str(exc)
                return
        plan = await self.plan(adapter.id)
        wanted = {e.symbol for e in plan}
        for kind in self.config.kinds:
            if not venue.client.supports(CCXT_METHOD[kind]):
                continue
            lease = venue.leases.setdefault(kind, OwnerLease(self.store, adapter.id, kind.value, self.instance,
                                                             self.config.owner_lease_ms))
            counters = venue.counters.setdefault(kind, Counters())
            owned = await lease.refresh()
            await self._cancel_all(venue, [k for k in venue.tasks if k[0] is kind and (not owned or k[1] not in wanted)],
                                   unsubscribe=owned, lost=not owned)
            if owned and self._group is not None:
                for symbol in sorted(wanted):
                    if (kind, symbol) not in venue.tasks:
                        market = adapter.loaded_market(symbol)
                        if market is None:
                            continue
                        stream = venue.streams[(kind, symbol)] = self._stream(venue, market, kind, counters)
                        venue.tasks[(kind, symbol)] = self._group.create_task(stream.run())
            if owned:
                await self._beat(venue, kind, counters, sorted(wanted))
        await self._close_sockets(venue)  # every lease of the venue lost (or nothing wanted)

    def _stream(self, venue: _Venue, market: Market, kind: StreamKind, counters: Counters) -> SymbolStream:
        adapter = venue.adapter

        async def publish(kind: StreamKind, symbol: str, data: dict) -> None:
            if self.outbox is not None:
                self.outbox.put(adapter.id, kind.value, adapter.name, data, symbol, market.base)

        return SymbolStream(venue.client, adapter, market, kind, self.view, publish, counters,
                            stall_ms=self.config.stall_ms * STALL_SCALE[kind], clock=self.clock,
                            interval=self.config.interval)

    # -- status ---------------------------------------------------------------------------
    def _local_status(self, venue: _Venue, kind: StreamKind, counters: Counters, symbols: list[str]) -> StreamStatus:
        resets = sum(venue.client.guard.resets.values()) if kind is StreamKind.BOOK and venue.client is not None else 0
        return status_of(venue.adapter.id, kind.value, counters, owner=self.instance, symbols=symbols,
                         now_ms=self.clock(), stall_ms=self.config.stall_ms * STALL_SCALE[kind],
                         since_beat=venue.messages_at_beat.get(kind), resets=resets)

    async def _beat(self, venue: _Venue, kind: StreamKind, counters: Counters, symbols: list[str]) -> None:
        status = self._local_status(venue, kind, counters, symbols)
        venue.messages_at_beat[kind] = (self.clock(), counters.messages)
        if self.store is not None:
            await write_status(self.store, status, 3 * max(self.config.tick_ms, 1000))
        if venue.states.get(kind) is not status.state:
            venue.states[kind] = status.state
            await self._lifecycle(venue.adapter.id, kind.value, status.state, status.last_error)

    async def _lifecycle(self, vid: str, kind: str, state: StreamState, detail: str | None = None) -> None:
        """Tell every instance a stream changed state (control channel ``lifecycle`` event);
        best effort: a failed publish is logged."""
        if self.control is None:
            return
        event = {"op": "lifecycle", "instance": self.instance, "venue": vid, "stream": kind, "state": state.value,
                 "ts_ms": self.clock(), "detail": detail}
        try:
            await self.control.publish(event)
        except Exception as exc:  # noqa: BLE001 - lifecycle events inform; streaming goes on without them
            log.warning("stream_lifecycle_unpublished", venue=vid, stream=kind, error=repr(exc))

    def local_figures(self) -> list[tuple[str, str, StreamStatus]]:
        """``(venue, kind, status)`` of every stream kind this instance runs or
        stands by for, without any Redis call (``/metrics``)."""
        out = []
        for vid, venue in self.venues.items():
            if vid not in self.running:
                continue
            for kind, counters in venue.counters.items():
                lease = venue.leases.get(kind)
                status = self._local_status(venue, kind, counters, [])
                if lease is not None and not lease.held:
                    status.state = StreamState.STANDBY
                out.append((vid, kind.value, status))
        return out

    def sockets(self) -> dict[str, int]:
        """Open WebSocket connections per venue on this instance (ccxt.pro's clients)."""
        out = {}
        for vid, venue in self.venues.items():
            clients = getattr(venue.client.exchange, "clients", {}) if venue.client is not None else {}
            out[vid] = sum(1 for c in clients.values() if not c.closed())
        return out

    async def statuses(self, vid: str) -> list[StreamStatus]:
        """Every stream kind of ``vid``: this instance's own status where it owns the stream,
        the owner's record (from Redis) where another instance does, ``stopped`` when the venue
        is not streamed, ``standby`` when nobody's record is there."""
        venue = self.venues[vid]
        out = []
        kinds = [k for k in self.config.kinds if venue.client is None or venue.client.supports(CCXT_METHOD[k])]
        for kind in kinds:
            lease = venue.leases.get(kind)
            counters = venue.counters.get(kind)
            if vid not in self.running:
                out.append(StreamStatus(venue=vid, kind=kind.value, state=StreamState.STOPPED,
                                        last_error=venue.unsupported))
            elif lease is not None and lease.held and counters is not None:
                out.append(self._local_status(venue, kind, counters, sorted(e.symbol for e in venue.plan)))
            else:
                out.append(await read_status(self.store, vid, kind.value, self.clock()))
        return out
