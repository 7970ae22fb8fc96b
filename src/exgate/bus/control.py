"""The control channel: start/stop commands for the ingest supervisor, and its lifecycle events.

Redis pub/sub channel ``exgate:control`` (``exgate:control:db{N}`` for a database N other than 0:
Redis pub/sub is server-wide, and gateways on different databases are different deployments;
see :func:`control_channel`) (every instance's :class:`ControlListener` hears each
message once; pub/sub keeps nothing, so a command sent while no instance listens is lost:
:func:`publish_control` returns how many received it). Messages are JSON objects:

- ``{"op": "start"|"stop", "exchange": "<venue id>"|null, ...}``: start or stop the streams of
  one venue (``null``: every venue); other keys (``stream``, ``autostart``...) are passed on.
- ``{"op": "lifecycle", "instance", "venue", "stream", "state", "ts_ms", "detail"}``: a stream
  kind changed state on the instance that runs it (``state``: a
  :class:`~exgate.streams.StreamState`: ``starting``, ``live``, ``stalled``, ``reconnecting``,
  ``stopped``), for the others to see.

Without Redis, :class:`LocalControl` is the same channel inside one process.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import orjson
import structlog
from redis.exceptions import RedisClusterException, RedisError

from exgate.bus.base import BusUnavailable
from exgate.cache.client import Client, redis_client
from exgate.errors import BadRequest, echo

log = structlog.get_logger("exgate.bus")

CONTROL_CHANNEL: Final = "exgate:control"


def control_channel(client: Client | None = None) -> str:
    """The control channel of ``client``'s database: ``exgate:control`` on database 0 (and on a
    cluster), ``exgate:control:db{N}`` on database N."""
    from exgate.cache.client import client_db

    db = client_db(client) if client is not None else 0
    return CONTROL_CHANNEL if db == 0 else f"{CONTROL_CHANNEL}:db{db}"

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_TEXT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}$")
_ERRORS: Final = (RedisError, RedisClusterException, OSError, asyncio.TimeoutError)
MAX_MESSAGE_BYTES: Final = 65_536


class ControlOp(StrEnum):
    """What a control message asks or tells."""

    START = "start"
    STOP = "stop"
    LIFECYCLE = "lifecycle"


@dataclass(frozen=True, slots=True)
class ControlCommand:
    """A valid control message.

    Attributes:
        op: start, stop or lifecycle.
        exchange: the venue of a start/stop (``None``: every venue); for lifecycle, its ``venue``.
        fields: the whole message as sent (``op`` and every other key).
    """

    op: ControlOp
    exchange: str | None
    fields: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """A key of the message (``stream``, ``instance``, ``state``...)."""
        return self.fields.get(key, default)


def _name(message: dict[str, Any], key: str, *, required: bool, venue: bool = True) -> str | None:
    """``message[key]``: a venue id (lower-cased) or, with ``venue=False``, a name such as a
    stream (``ticker:BTC/USDT:USDT``), an instance (``host:pid``) or a state."""
    value = message.get(key)
    if value is None and not required:
        return None
    pattern, form = (_NAME, "a venue id ([a-z0-9_.-], at most 64)") if venue else \
        (_TEXT, "a name ([A-Za-z0-9_.:/@-], at most 128)")
    if not isinstance(value, str) or not pattern.match(value.lower() if venue else value):
        need = "required: " if value is None else ""
        raise BadRequest(f"{key}: {need}{form}, got {echo(value)}", field=key)
    return value.lower() if venue else value


def parse_command(message: object) -> ControlCommand:
    """The :class:`ControlCommand` of a control message (a dict, or JSON text/bytes of one).

    Raises:
        BadRequest: not a JSON object, longer than 64 KiB, an unknown ``op`` (``allowed`` lists
            them), or a missing/malformed ``exchange``, ``instance``, ``venue``, ``stream``, ``state``.
    """
    if isinstance(message, (bytes, str)):
        if len(message) > MAX_MESSAGE_BYTES:
            raise BadRequest(f"control message longer than {MAX_MESSAGE_BYTES} bytes", field="message")
        try:
            message = orjson.loads(message)
        except orjson.JSONDecodeError:
            raise BadRequest("control message is not JSON", field="message") from None
    if not isinstance(message, dict):
        raise BadRequest("control message must be a JSON object", field="message")
    try:
        op = ControlOp(message.get("op"))
    except ValueError:
        raise BadRequest(f"op: unknown {echo(message.get('op'))}", field="op",
                         allowed=[o.value for o in ControlOp]) from None
    if op is ControlOp.LIFECYCLE:
        for key in ("instance", "stream", "state"):
            _name(message, key, required=True, venue=False)
        return ControlCommand(op, _name(message, "venue", required=True), dict(message))
    exchange = _name(message, "exchange", required=False)
    if message.get("stream") is not None:
        _name(message, "stream", required=True, venue=False)
    return ControlCommand(op, exchange, {**message, "exchange": exchange})


class LocalControl:
    """The control channel inside one process (no Redis): each listener gets every message
    through its own bounded queue (a full one drops the message, with a warning)."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[bytes]] = set()

    def publish(self, payload: bytes) -> int:
        """Deliver ``payload`` to every listener now; returns how many took it."""
        taken = 0
        for queue in list(self._queues):
            try:
                queue.put_nowait(payload)
                taken += 1
            except asyncio.QueueFull:
                log.warning("control_message_dropped", reason="listener queue full")
        return taken

    def attach(self, queue: asyncio.Queue[bytes]) -> None:
        self._queues.add(queue)

    def detach(self, queue: asyncio.Queue[bytes]) -> None:
        self._queues.discard(queue)


async def publish_control(target: Client | LocalControl, command: dict[str, Any], *, timeout_ms: int = 1_000) -> int:
    """Publish one control message on the control channel (:func:`control_channel`); returns how many listeners received it
    (Redis: subscribers of every instance; :class:`LocalControl`: this process's listeners).

    Args:
        target: a redis-py asyncio client (one server or a cluster), or a :class:`LocalControl`.
        command: ``{"op": "start"|"stop", "exchange": str|None, ...}`` or a lifecycle event.
        timeout_ms: the publish gives up after it.

    Raises:
        BadRequest: ``command`` is not a valid control message (see :func:`parse_command`).
        BusUnavailable: Redis failed or timed out.
    """
    parsed = parse_command(command)
    payload = orjson.dumps(parsed.fields)
    if isinstance(target, LocalControl):
        return target.publish(payload)
    try:
        async with asyncio.timeout(timeout_ms / 1000):
            return int(await target.publish(control_channel(target), payload))
    except _ERRORS as exc:
        raise BusUnavailable(f"control channel unavailable: Redis did not take the message ({type(exc).__name__})"
                             ) from None


Callback = Callable[[ControlCommand], Awaitable[None]]


class ControlListener:
    """Calls ``callback`` with every valid control message, ignoring (and logging) malformed
    ones. An async context manager owning two tasks in a :class:`asyncio.TaskGroup`: the
    subscriber (reconnects after any Redis error, backoff 0.1 s doubling to 5 s; a silent
    connection is found by a ping every ``ping_every_s``) and the dispatcher (one callback at a
    time, each bounded by ``callback_timeout_s``; a callback that raises is logged). Between
    them a queue of ``queue_size`` messages: when a slow callback lets it fill, new messages
    are dropped with a warning, never buffered without bound.

    Args:
        source: a redis-py asyncio client, a Redis URL (the listener owns the client it
            builds), or a :class:`LocalControl`.
        callback: ``async (ControlCommand) -> None``.

    Attributes:
        ready: set while subscribed (await it before relying on receiving; see also
            :meth:`wait_subscribed`).
        subscriptions / reconnects: subscriptions made, failures recovered from.
        received / ignored / dropped: valid messages handled, malformed ones, ones dropped.
    """

    def __init__(self, source: Client | LocalControl | str, callback: Callback, *, channel: str | None = None,
                 queue_size: int = 256, backoff_s: tuple[float, float] = (0.1, 5.0), ping_every_s: float = 5.0,
                 timeout_ms: int = 1_000, callback_timeout_s: float = 30.0) -> None:
        self._owned = isinstance(source, str)
        self.source = redis_client(source, timeout_ms=timeout_ms) if isinstance(source, str) else source
        self.callback = callback
        self.channel = channel or (control_channel(self.source) if not isinstance(self.source, LocalControl)
                                   else CONTROL_CHANNEL)
        self.backoff_s = backoff_s
        self.ping_every_s = ping_every_s
        self.timeout_s = timeout_ms / 1000
        self.callback_timeout_s = callback_timeout_s
        self.ready = asyncio.Event()
        self.subscriptions = 0
        self._subscribed = asyncio.Condition()
        self.received = self.ignored = self.dropped = self.reconnects = 0
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_size)
        self._group: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task] = []

    async def wait_subscribed(self, times: int = 1) -> None:
        """Return once the listener has subscribed ``times`` times in all (2: after its first
        reconnection) and is subscribed now. Bound it with a timeout of your own."""
        async with self._subscribed:
            await self._subscribed.wait_for(lambda: self.subscriptions >= times and self.ready.is_set())

    async def __aenter__(self) -> ControlListener:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        if isinstance(self.source, LocalControl):
            self.source.attach(self._queue)
            self.ready.set()
        else:
            self._tasks.append(self._group.create_task(self._subscribe(), name="control-subscriber"))
        self._tasks.append(self._group.create_task(self._dispatch(), name="control-dispatcher"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        if isinstance(self.source, LocalControl):
            self.source.detach(self._queue)
        group, self._group = self._group, None
        try:
            if group is not None:
                await group.__aexit__(*exc)
        finally:
            if self._owned:
                await self.source.aclose()  # type: ignore[union-attr]

    def _take(self, payload: bytes) -> None:
        try:
            self._queue.put_nowait(payload)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("control_message_dropped", reason="callback too slow: queue full", channel=self.channel)

    async def _subscribe(self) -> None:
        wait = self.backoff_s[0]
        loop = asyncio.get_running_loop()
        while True:
            pubsub = self.source.pubsub()  # type: ignore[union-attr]
            try:
                async with asyncio.timeout(self.timeout_s):
                    await pubsub.subscribe(self.channel)
                self.ready.set()
                async with self._subscribed:
                    self.subscriptions += 1
                    self._subscribed.notify_all()
                wait = self.backoff_s[0]
                last_seen = last_ping = loop.time()
                while True:
                    now = loop.time()
                    if now - last_seen > 3 * self.ping_every_s:
                        raise ConnectionError("control connection silent: no answer to pings")
                    if now - last_ping >= self.ping_every_s:
                        last_ping = now
                        async with asyncio.timeout(self.timeout_s):
                            await pubsub.ping()
                    message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=min(self.ping_every_s, 1.0))
                    if message is None:
                        continue
                    last_seen = loop.time()
                    if message.get("type") == "message":
                        self._take(message["data"])
            except Exception as exc:  # noqa: BLE001 - the subscriber must outlive any client error
                self.ready.clear()
                self.reconnects += 1
                log.warning("control_listener_reconnecting", error=repr(exc), retry_s=wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, self.backoff_s[1])
            finally:
                self.ready.clear()
                try:
                    async with asyncio.timeout(self.timeout_s):
                        await pubsub.aclose()
                except Exception:  # noqa: BLE001, S110 - closing a broken subscription
                    pass

    async def _dispatch(self) -> None:
        while True:
            payload = await self._queue.get()
            try:
                command = parse_command(payload)
            except BadRequest as exc:
                self.ignored += 1
                log.warning("control_message_ignored", detail=exc.detail, size=len(payload))
                continue
            self.received += 1
            try:
                async with asyncio.timeout(self.callback_timeout_s):
                    await self.callback(command)
            except Exception:  # noqa: BLE001 - one failed command must not stop the listener
                log.exception("control_callback_failed", op=command.op.value, exchange=command.exchange)


class ControlChannel:
    """``app.state.control``: the control channel over a Redis client or a :class:`LocalControl`.

    ``await channel.publish({"op": "start", "exchange": "bybit"})`` → receivers (see
    :func:`publish_control`); ``async with channel.listen(callback)`` → a :class:`ControlListener`.
    """

    def __init__(self, target: Client | LocalControl) -> None:
        self.target = target

    @property
    def local(self) -> bool:
        """Whether it reaches this process only (no Redis)."""
        return isinstance(self.target, LocalControl)

    async def publish(self, command: dict[str, Any]) -> int:
        """See :func:`publish_control` (raises ``BadRequest``, ``BusUnavailable``)."""
        return await publish_control(self.target, command)

    def listen(self, callback: Callback, **options: Any) -> ControlListener:
        """A :class:`ControlListener` on this channel (enter it to start listening)."""
        return ControlListener(self.target, callback, **options)


def supervisor_commands(supervisor: Any) -> Callback:
    """The listener callback that applies start/stop commands to a
    :class:`~exgate.streams.StreamSupervisor` (``start(exchange)``/``stop(exchange)``), except the
    ones this instance published itself (``origin`` equal to ``supervisor.instance``: it has
    applied them already); lifecycle events are left to other listeners. A venue this
    instance does not serve is logged and skipped."""
    from exgate.errors import UnknownExchange

    async def apply(command: ControlCommand) -> None:
        if command.op is ControlOp.LIFECYCLE or command.get("origin") == getattr(supervisor, "instance", None):
            return
        try:
            if command.op is ControlOp.START:
                await supervisor.start(command.exchange)
            else:
                await supervisor.stop(command.exchange)
        except UnknownExchange:
            log.info("control_command_skipped", op=command.op.value, exchange=command.exchange,
                     reason="venue not served here")

    return apply
