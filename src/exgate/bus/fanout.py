"""The shared fan-out: one reader per stream per process, feeding every client that follows it.

A :class:`Feed` reads one stream (``read_after`` with ``block_ms``) from the position where
it started (the stream's last id when its first client joined) and hands each event to every
:class:`Sink` joined to it, without waiting: a sink is a bounded queue, and a full one marks
its client as a slow consumer (the client is disconnected, the feed and the other clients go
on). So the number of Redis readers is the number of distinct streams in use (at most venues
× kinds), not the number of clients, and no client can slow another.

Joining returns the feed's position at that moment: the sink gets exactly the events after
it, which is what lets a resuming client replay up to it (``XRANGE``) and continue live with no
gap and no duplicate.

The :class:`Hub` owns the feeds' tasks in one :class:`asyncio.TaskGroup`; a feed stops when
its last sink leaves. A Redis failure makes a feed wait (backoff 0.1 s doubling to 5 s) and
read on from its position; if events it had not read were trimmed meanwhile, its sinks get a
gap notice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from exgate.bus.base import Bus, BusUnavailable
from exgate.bus.events import Event, parse_id

log = structlog.get_logger("exgate.bus")


class Sink(Protocol):
    """A client's end of a feed."""

    def offer(self, stream: str, event: Event) -> None:
        """Take ``event`` of ``stream`` now, never waiting (a full client marks itself slow)."""

    def lost(self, stream: str, after_id: str, upto_id: str) -> None:
        """Events of ``stream`` after ``after_id`` up to ``upto_id`` were trimmed before the feed read them."""


@dataclass(eq=False)
class Feed:
    """One stream's reader; ``position`` is the id of the last event handed out."""

    stream: str
    position: str = "0-0"
    sinks: set = field(default_factory=set)
    started: asyncio.Future | None = None
    task: asyncio.Task | None = None
    events: int = 0


class Hub:
    """The per-process fan-out over a :class:`~exgate.bus.base.Bus` (an async context manager
    owning the feeds' tasks).

    Args:
        bus: the bus to read.
        batch: most events read per call.
        block_ms: how long one read waits for events (then reads again).
        backoff_s: ``(first, last)`` wait after a failed read, doubling.
    """

    def __init__(self, bus: Bus, *, batch: int = 500, block_ms: int = 5_000,
                 backoff_s: tuple[float, float] = (0.1, 5.0),
                 sleep: Callable[[float], object] = asyncio.sleep) -> None:
        self.bus = bus
        self.batch = batch
        self.block_ms = block_ms
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._feeds: dict[str, Feed] = {}
        self.events_read: dict[str, int] = {}  # stream → events its feeds read (across restarts)
        self.slow_consumers = 0  # clients cut off (see ClientSession.mark_slow)
        self._group: asyncio.TaskGroup | None = None

    async def __aenter__(self) -> Hub:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for feed in list(self._feeds.values()):
            if feed.task is not None:
                feed.task.cancel()
        self._feeds.clear()
        group, self._group = self._group, None
        if group is not None:
            await group.__aexit__(*exc)

    @property
    def feeds(self) -> dict[str, Feed]:
        """The feeds running now, by stream key."""
        return dict(self._feeds)

    @property
    def streams(self) -> dict[str, int]:
        """Each stream read now → how many sinks it feeds."""
        return {key: len(feed.sinks) for key, feed in self._feeds.items()}

    async def join(self, stream: str, sink: Sink) -> str:
        """Feed ``sink`` with ``stream``'s events from now; returns the position it joins at
        (the sink gets exactly the events after it).

        Raises:
            BusUnavailable: the feed could not start (Redis down); nothing joined.
            RuntimeError: the hub is not open.
        """
        if self._group is None:
            raise RuntimeError("the hub is not open (use `async with Hub(bus)`)")
        feed = self._feeds.get(stream)
        if feed is None:
            feed = self._feeds[stream] = Feed(stream, started=asyncio.get_running_loop().create_future())
            feed.task = self._group.create_task(self._run(feed), name=f"bus-feed:{stream}")
        assert feed.started is not None
        await asyncio.shield(feed.started)  # one waiter cancelled must not cancel the start for all
        if self._feeds.get(stream) is not feed:  # stopped meanwhile (its last sink left): start anew
            return await self.join(stream, sink)
        feed.sinks.add(sink)
        return feed.position

    def leave(self, stream: str, sink: Sink) -> None:
        """Stop feeding ``sink`` with ``stream``; the feed stops with its last sink."""
        feed = self._feeds.get(stream)
        if feed is None:
            return
        feed.sinks.discard(sink)
        if not feed.sinks and feed.started is not None and feed.started.done():
            self._stop(feed)

    def _stop(self, feed: Feed) -> None:
        if self._feeds.get(feed.stream) is feed:
            del self._feeds[feed.stream]
        if feed.task is not None:
            feed.task.cancel()

    async def _run(self, feed: Feed) -> None:
        assert feed.started is not None
        try:
            feed.position = (await self.bus.info(feed.stream)).last_id
        except Exception as exc:  # noqa: BLE001 - BusUnavailable or a bug: the joiners get it, the Hub lives on
            self._feeds.pop(feed.stream, None)
            failure = exc if isinstance(exc, BusUnavailable) else BusUnavailable(
                f"the event stream {feed.stream} could not be opened ({type(exc).__name__})")
            feed.started.set_exception(failure)
            feed.started.exception()  # retrieved: joiners re-raise it
            return
        feed.started.set_result(None)
        wait = self.backoff_s[0]
        broken = False
        while True:
            try:
                if broken:
                    await self._check_trimmed(feed)
                    broken = False
                batch = await self.bus.read_after({feed.stream: feed.position}, self.batch, self.block_ms)
            except BusUnavailable as exc:
                log.warning("bus_feed_unavailable", stream=feed.stream, error=exc.detail, retry_s=wait)
                broken = True
            except Exception:  # noqa: BLE001 - a feed must outlive any error, or it would cancel the hub's group
                log.exception("bus_feed_failed", stream=feed.stream, retry_s=wait)
                broken = True
            else:
                wait = self.backoff_s[0]
                if batch:
                    self.events_read[feed.stream] = self.events_read.get(feed.stream, 0) + len(batch)
                for _, event in batch:
                    feed.position = event.id
                    feed.events += 1
                    for sink in list(feed.sinks):
                        sink.offer(feed.stream, event)
                if not feed.sinks:  # every joiner left (or none registered): stop reading
                    self._stop(feed)
                    return
                continue
            await self._sleep(wait)
            wait = min(wait * 2, self.backoff_s[1])

    async def _check_trimmed(self, feed: Feed) -> None:
        """After an outage: tell the sinks if events after the feed's position were trimmed."""
        info = await self.bus.info(feed.stream)
        if parse_id(info.trimmed_upto_id) > parse_id(feed.position):
            for sink in list(feed.sinks):
                sink.lost(feed.stream, feed.position, info.trimmed_upto_id)
            feed.position = info.trimmed_upto_id

