"""One client of the client stream (WebSocket or SSE): its channels, cursors and frames.

A :class:`ClientSession` is a :class:`~exgate.bus.fanout.Sink` of the hub's feeds. Frames
leave it in this order of priority: replies (``subscribed``, ``error``, ``pong``, ``gap``),
then replays (a resumed stream read with ``range_after`` up to where its live feed joined),
then live events. Each stream has a ``floor``: the newest id the client already has or is
being replayed; a live event at or below it is a duplicate and is skipped. That is what makes
resume exact: join the feed (live events after position ``J`` queue up), replay ``(cursor, J]``,
then deliver the queue.

Bounded everywhere: the live queue holds ``queue_size`` events, the replies 256 frames; a
client that lets either fill is a slow consumer: its next frame is the ``slow consumer``
error and the transport closes it. Nothing here waits on the client.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

import structlog

from exgate.bus.base import Bus, BusUnavailable
from exgate.bus.channels import Channel, ChannelError, allowed_forms, parse_channels, KINDS
from exgate.bus.cursor import CursorError, decode_cursor, encode_cursor
from exgate.bus.events import STREAM_PREFIX, Event, parse_id
from exgate.bus.fanout import Hub

log = structlog.get_logger("exgate.bus")

MAX_REPLIES: Final = 256
OPS: Final = ("subscribe", "unsubscribe", "resume", "ping", "pong")


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Client stream settings (``app.state.stream_options``).

    Attributes:
        queue_size: live events held per client before it counts as a slow consumer.
        ping_s: seconds between server pings when nothing else is sent.
        replay_batch: events read per ``range_after`` call of a replay.
        max_channels: channels one client may follow.
        send_timeout_s: a frame the client does not take within it makes it a slow consumer.
        max_frame_bytes: longest client frame accepted.
    """

    queue_size: int = 2_048
    ping_s: float = 15.0
    replay_batch: int = 500
    max_channels: int = 100
    send_timeout_s: float = 10.0
    max_frame_bytes: int = 65_536


def _short(stream: str) -> str:
    return stream[len(STREAM_PREFIX):]


class SlowConsumer(Exception):
    """The session's client stopped taking frames; its last frame is the error to send."""


class ClientSession:
    """Channels, cursors and the outgoing frames of one client.

    Args:
        hub: the process's fan-out.
        bus: the bus (replays, stream info).
        venues: venue ids served (channels naming others are refused).
        options: limits and timers.
    """

    def __init__(self, hub: Hub, bus: Bus, venues: list[str], options: StreamOptions = StreamOptions()) -> None:
        self.hub, self.bus, self.venues, self.options = hub, bus, sorted(venues), options
        self.channels: list[Channel] = []
        self.cursor: dict[str, str] = {}  # followed stream → id of the last event the client got
        self._floor: dict[str, tuple[int, int]] = {}
        self._live: asyncio.Queue[tuple[str, Event]] = asyncio.Queue(maxsize=options.queue_size)
        self._replies: deque[dict[str, Any]] = deque()
        self._replays: deque[tuple[str, str, str, bool]] = deque()  # (stream, after id, up to id, check gap)
        self._ready: deque[dict[str, Any]] = deque()  # replayed frames of the batch being sent
        self._wake = asyncio.Event()
        self._pending_resume: dict[str, str] | None = None
        self._holding = 0
        self.slow = False
        self.became_slow = asyncio.Event()
        self.closed = False

    # -- Sink ------------------------------------------------------------------------------
    def offer(self, stream: str, event: Event) -> None:
        """Queue a live event (never waits; a full queue marks the client slow and leaves
        every feed)."""
        if self.slow or self.closed:
            return
        try:
            self._live.put_nowait((stream, event))
        except asyncio.QueueFull:
            self.mark_slow()
        self._wake.set()

    def lost(self, stream: str, after_id: str, upto_id: str) -> None:
        """The feed met trimmed events: tell the client."""
        self._reply(self._gap_frame(stream, after_id, upto_id))
        self._floor[stream] = max(self._floor.get(stream, (0, 0)), parse_id(upto_id))

    def mark_slow(self) -> None:
        """Treat the client as a slow consumer: leave every feed; its next frame is the error."""
        if not self.slow:
            self.slow = True
            self.became_slow.set()
            self.hub.slow_consumers += 1
            log.info("stream_slow_consumer", channels=[c.name for c in self.channels][:10],
                     queued=self._live.qsize(), replies=len(self._replies))
            self.close()  # off the feeds at once: nothing more queues up while the error is sent
        self._wake.set()

    def _reply(self, frame: dict[str, Any]) -> None:
        if len(self._replies) >= MAX_REPLIES:
            self.mark_slow()
            return
        self._replies.append(frame)
        self._wake.set()

    def _error(self, detail: str, **extra: Any) -> dict[str, Any]:
        return {"op": "error", "detail": detail, **extra}

    def _channel_error(self, exc: ChannelError) -> dict[str, Any]:
        return self._error(exc.detail, channel=exc.channel, allowed=allowed_forms(self.venues),
                           kinds=list(KINDS), venues=self.venues)

    def _gap_frame(self, stream: str, after_id: str, upto_id: str) -> dict[str, Any]:
        return {"op": "gap", "stream": _short(stream), "after_id": after_id, "lost_upto_id": upto_id,
                "detail": f"events of {_short(stream)} after {after_id} up to {upto_id} were trimmed before"
                          " delivery (the bus keeps a bounded number of events per stream): they are lost"}

    # -- client operations -------------------------------------------------------------------
    def handle_bad_frame(self, detail: str) -> None:
        """Answer a frame that is no valid operation."""
        self._reply(self._error(detail, allowed=list(OPS)))

    def pong(self) -> None:
        """Answer a client ``ping``."""
        self._reply({"op": "pong"})

    def check_resume(self, last_id: object) -> dict[str, str] | None:
        """The positions of cursor ``last_id`` (``None`` given: ``None``); a bad one is
        answered with an error frame naming ``last_id`` and gives ``None``."""
        if last_id is None:
            return None
        try:
            return decode_cursor(last_id)  # type: ignore[arg-type]
        except CursorError as exc:
            self._reply(self._error(str(exc), field="last_id"))
            return None

    async def subscribe(self, texts: list[object], last_id: object = None) -> list[Channel]:
        """Follow the good channels of ``texts`` (each bad one answered with an error frame
        naming it), replaying from cursor ``last_id`` where given; answers ``subscribed``.
        Returns the channels added.

        Raises:
            BusUnavailable: a stream's feed could not start (nothing of this call kept).
        """
        resume = self.check_resume(last_id) if last_id is not None else self._pending_resume
        self._pending_resume = None
        good, bad = parse_channels(texts, self.venues)
        for exc in bad:
            self._reply(self._channel_error(exc))
        new = [c for c in good if c not in self.channels]
        room = self.options.max_channels - len(self.channels)
        for extra in new[max(room, 0):]:
            self._reply(self._error(f"at most {self.options.max_channels} channels per client", channel=extra.name))
        new = new[:max(room, 0)]
        if resume:  # streams already followed rewind now, before any await lets a live event out
            self._rewind({k: v for k, v in resume.items() if k in self.cursor})
        joined: list[str] = []
        self._holding += 1  # events wait until `subscribed` is queued: it comes first
        try:
            for channel in new:
                for stream in channel.streams(self.venues):
                    if stream in self.cursor or stream in joined:
                        continue
                    position = await self.hub.join(stream, self)
                    if self.closed:  # cut off (or gone) while joining: leave what it just joined
                        self.hub.leave(stream, self)
                        continue
                    joined.append(stream)
                    self.cursor[stream] = position
                    self._floor[stream] = parse_id(position)
                    if resume and stream in resume:  # at once: its live events wait behind the replay
                        self._rewind({stream: resume[stream]})
        except BusUnavailable:
            for stream in joined:
                self.hub.leave(stream, self)
                self.cursor.pop(stream, None)
                self._floor.pop(stream, None)
            self._replays = deque(r for r in self._replays if r[0] not in joined)
            raise
        finally:
            self._holding -= 1
            self._wake.set()
        self.channels.extend(new)
        if good:
            self._reply({"op": "subscribed", "channels": [c.name for c in good]})
        return new

    async def resume(self, last_id: object) -> None:
        """Replay every followed stream from cursor ``last_id``, then go on live (before any
        subscribe: kept for the next one)."""
        positions = self.check_resume(last_id)
        if positions is None:
            return
        if not self.channels:
            self._pending_resume = positions
            return
        self._rewind(positions)

    def _rewind(self, positions: dict[str, str]) -> None:
        """Queue the replay of each followed stream of ``positions`` from its id up to the
        stream's floor (synchronous: no live event of it can be sent before its replay)."""
        for stream, after in positions.items():
            if stream not in self.cursor or parse_id(after) >= self._floor[stream]:
                continue  # no longer followed, or the client is already there
            self.cursor[stream] = after
            self._replays.append((stream, after, "-".join(map(str, self._floor[stream])), True))
        self._wake.set()

    def unsubscribe(self, texts: list[object]) -> None:
        """Stop following the named channels; streams no channel needs any more are left."""
        good, bad = parse_channels(texts, self.venues)
        for exc in bad:
            self._reply(self._channel_error(exc))
        self.channels = [c for c in self.channels if c not in good]
        needed = {s for c in self.channels for s in c.streams(self.venues)}
        for stream in [s for s in self.cursor if s not in needed]:
            self.hub.leave(stream, self)
            del self.cursor[stream]
            self._floor.pop(stream, None)
        self._replays = deque(r for r in self._replays if r[0] in needed)
        if good:
            self._reply({"op": "unsubscribed", "channels": [c.name for c in good]})

    def close(self) -> None:
        """Leave every feed; nothing is queued any more (idempotent)."""
        self.closed = True
        for stream in list(self.cursor):
            self.hub.leave(stream, self)

    # -- frames out -----------------------------------------------------------------------
    def _event_frame(self, stream: str, event: Event) -> dict[str, Any] | None:
        channel = next((c for c in self.channels if c.matches(event)), None)
        self.cursor[stream] = event.id
        if channel is None:
            return None
        return {"op": "event", "channel": channel.name, "cursor": encode_cursor(self.cursor), "event": event.to_dict()}

    async def _replay_batch(self) -> None:
        stream, after, upto, check = self._replays[0]
        if check:  # first batch: were events after the cursor trimmed away?
            info = await self.bus.info(stream)
            if parse_id(info.trimmed_upto_id) > parse_id(after):
                self._ready.append(self._gap_frame(stream, after, info.trimmed_upto_id))
            self._replays[0] = (stream, after, upto, False)
            return
        limit = parse_id(upto)
        events = await self.bus.range_after(stream, after, self.options.replay_batch)
        last = after
        for event in events:
            if parse_id(event.id) > limit:
                break
            last = event.id
            frame = self._event_frame(stream, event)
            if frame is not None:
                self._ready.append(frame)
        if len(events) < self.options.replay_batch or parse_id(last) >= limit or last == after:
            self._replays.popleft()
            self.cursor[stream] = "-".join(map(str, max(parse_id(self.cursor[stream]), limit)))
            if self._ready and self._ready[-1].get("op") == "event":  # the last frame carries the finished cursor
                self._ready[-1]["cursor"] = encode_cursor(self.cursor)
        else:
            self._replays[0] = (stream, last, upto, False)

    async def next_frame(self, timeout_s: float) -> dict[str, Any] | None:
        """The next frame to send, waiting at most ``timeout_s`` (``None``: nothing came, send
        a ping).

        Raises:
            SlowConsumer: the client fell behind; ``args[0]`` is the error frame to send last.
            BusUnavailable: a replay could not be read.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if self.slow:
                raise SlowConsumer(self._error(
                    f"slow consumer: more than {self.options.queue_size} events waited for this client;"
                    " disconnected (reconnect and resume with the last cursor)"))
            if self._replies:
                return self._replies.popleft()
            if self._holding:
                pass  # a subscribe is joining its feeds: wait for its reply
            elif self._ready:
                return self._ready.popleft()
            elif self._replays:
                await self._replay_batch()
                continue
            elif not self._live.empty():
                stream, event = self._live.get_nowait()
                floor = self._floor.get(stream)
                if floor is None or parse_id(event.id) <= floor:
                    continue  # no longer followed, or already delivered by a replay
                self._floor[stream] = parse_id(event.id)
                frame = self._event_frame(stream, event)
                if frame is not None:
                    return frame
                continue
            self._wake.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                return None
