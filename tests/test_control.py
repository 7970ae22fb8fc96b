"""The control channel (``exgate:control`` on a real Redis, and in-process), the stream status
records, and ``exgate streams start|stop|status``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner

from exgate.bus.control import ControlCommand, ControlListener, ControlOp, LocalControl, control_channel, publish_control
from exgate.cli_streams import read_statuses
from exgate.streams import StreamState, StreamStatus
from exgate.streams.status import status_key
from exgate.errors import BadRequest
from tests.conftest import flush_redis

HANG_GUARD_S = 30


class Inbox:
    """A callback that collects commands and lets a test await the n-th."""

    def __init__(self) -> None:
        self.commands: list[ControlCommand] = []
        self._changed = asyncio.Condition()

    async def __call__(self, command: ControlCommand) -> None:
        async with self._changed:
            self.commands.append(command)
            self._changed.notify_all()

    async def wait_for(self, n: int) -> list[ControlCommand]:
        async with asyncio.timeout(HANG_GUARD_S), self._changed:
            await self._changed.wait_for(lambda: len(self.commands) >= n)
        return self.commands


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    flush_redis(redis_url)
    c = aioredis.Redis.from_url(redis_url)
    yield c
    await c.aclose()


async def _ready(*listeners: ControlListener) -> None:
    async with asyncio.timeout(HANG_GUARD_S):
        for listener in listeners:
            await listener.ready.wait()


def test_each_database_has_its_own_control_channel(redis_url):
    """Redis pub/sub is server-wide: gateways on another database must not hear these commands."""
    import redis.asyncio as r

    assert control_channel() == "exgate:control"
    assert control_channel(r.Redis.from_url("redis://127.0.0.1:6379/0")) == "exgate:control"
    assert control_channel(r.Redis.from_url("redis://127.0.0.1:6379/13")) == "exgate:control:db13"


async def test_a_command_reaches_every_listener_on_the_redis(redis_url, client):
    one, two = Inbox(), Inbox()
    async with ControlListener(redis_url, one) as a, ControlListener(redis_url, two) as b:
        await _ready(a, b)
        receivers = await publish_control(client, {"op": "start", "exchange": "Bybit", "stream": "liquidation"})
        assert receivers == 2
        for inbox in (one, two):
            [command] = await inbox.wait_for(1)
            assert command.op is ControlOp.START and command.exchange == "bybit"
            assert command.get("stream") == "liquidation"
        assert await publish_control(client, {"op": "stop", "exchange": None}) == 2
        assert (await one.wait_for(2))[1].op is ControlOp.STOP and one.commands[1].exchange is None


async def test_malformed_messages_are_ignored_and_the_listener_goes_on(redis_url, client):
    inbox = Inbox()
    async with ControlListener(redis_url, inbox) as listener:
        await _ready(listener)
        for raw in (b"not json", b"[1, 2]", b'{"op": "dance"}', b'{"op": "start", "exchange": 7}',
                    b'{"op": "lifecycle", "venue": "bybit"}'):
            await client.publish(control_channel(client), raw)
        await publish_control(client, {"op": "lifecycle", "instance": "host-a:42", "venue": "bybit",
                                       "stream": "ticker:BTC/USDT:USDT", "state": "connected"})
        [command] = await inbox.wait_for(1)  # messages are handled in order: the bad ones went first
        assert command.op is ControlOp.LIFECYCLE and command.exchange == "bybit"
        assert command.get("instance") == "host-a:42" and command.get("state") == "connected"
        assert (listener.received, listener.ignored) == (1, 5)


async def test_a_failing_callback_does_not_stop_the_listener(redis_url, client):
    seen: list[str | None] = []
    second = asyncio.Event()

    async def flaky(command: ControlCommand) -> None:
        seen.append(command.exchange)
        if command.exchange == "pacifica":
            second.set()
        if command.exchange == "bybit":
            raise RuntimeError("boom")

    async with ControlListener(redis_url, flaky) as listener:
        await _ready(listener)
        await publish_control(client, {"op": "start", "exchange": "bybit"})
        await publish_control(client, {"op": "start", "exchange": "pacifica"})
        await asyncio.wait_for(second.wait(), HANG_GUARD_S)
    assert seen == ["bybit", "pacifica"]


async def test_the_listener_reconnects_after_its_connection_is_killed(redis_url, client):
    inbox = Inbox()
    name = f"exgate-control-test-{time.time_ns()}"
    async with ControlListener(f"{redis_url}?client_name={name}", inbox) as listener:
        await _ready(listener)
        mine = [c for c in await client.client_list() if c.get("name") == name]
        assert mine
        for c in mine:  # only this listener's own connections
            await client.client_kill_filter(_id=c["id"])
        async with asyncio.timeout(HANG_GUARD_S):
            await listener.wait_subscribed(2)
        assert listener.reconnects == 1
        assert await publish_control(client, {"op": "start", "exchange": "hyperliquid"}) == 1
        assert (await inbox.wait_for(1))[0].exchange == "hyperliquid"


async def test_bad_commands_are_refused_before_publishing(client):
    with pytest.raises(BadRequest) as caught:
        await publish_control(client, {"op": "restart"})
    assert caught.value.extra["field"] == "op" and caught.value.extra["allowed"] == ["start", "stop", "lifecycle"]
    with pytest.raises(BadRequest) as caught:
        await publish_control(client, {"op": "start", "exchange": "no such venue!"})
    assert caught.value.extra["field"] == "exchange"


async def test_the_in_process_channel_has_the_same_interface():
    local = LocalControl()
    one, two = Inbox(), Inbox()
    async with ControlListener(local, one), ControlListener(local, two):
        assert await publish_control(local, {"op": "stop", "exchange": "binanceusdm"}) == 2
        for inbox in (one, two):
            assert (await inbox.wait_for(1))[0].exchange == "binanceusdm"
        local.publish(b"garbage")
        assert await publish_control(local, {"op": "start"}) == 2
        assert (await one.wait_for(2))[1].op is ControlOp.START
    assert await publish_control(local, {"op": "start"}) == 0  # nobody listens any more


# -- status records and the CLI ---------------------------------------------------------------
async def write_status(client, status: StreamStatus, ttl_ms: int = 60_000) -> None:
    """What the supervisor's heartbeat writes (exgate.streams.supervisor)."""
    await client.set(status_key(status.venue, status.kind), status.model_dump_json(), px=ttl_ms)


async def test_status_records_are_read_back_and_bad_ones_skipped(client):
    now = time.time_ns() // 1_000_000
    record = StreamStatus(venue="bybit", kind="trades", state=StreamState.LIVE, owner="host-a:1",
                          connected_since_ms=now - 60_000, last_message_ms=now - 500, reconnects=2, gaps=1,
                          messages_per_s=12.5)
    await write_status(client, record)
    await write_status(client, StreamStatus(venue="binanceusdm", kind="book", state=StreamState.RECONNECTING))
    await client.set(status_key("pacifica", "book"), b"not json", px=60_000)
    assert [r.venue for r in await read_statuses(client)] == ["binanceusdm", "bybit"]
    assert await read_statuses(client, venue="bybit") == [record]


def _cli(args: list[str], env: dict[str, str]):
    from exgate.cli import app

    return CliRunner().invoke(app, args, env=env)


async def test_cli_streams_start_reaches_a_listener(redis_url, client):
    inbox = Inbox()
    async with ControlListener(redis_url, inbox) as listener:
        await _ready(listener)
        result = await asyncio.to_thread(_cli, ["streams", "start", "--exchange", "bybit"],
                                         {"EXGATE_REDIS_URL": redis_url})
        assert result.exit_code == 0, result.output
        assert "1 listener received it" in result.output
        [command] = await inbox.wait_for(1)
        assert command.op is ControlOp.START and command.exchange == "bybit"
        result = await asyncio.to_thread(_cli, ["streams", "stop"], {"EXGATE_REDIS_URL": redis_url})
        assert result.exit_code == 0 and (await inbox.wait_for(2))[1].op is ControlOp.STOP


async def test_cli_streams_without_redis_or_listeners_says_so(redis_url, client):
    result = await asyncio.to_thread(_cli, ["streams", "start"], {"EXGATE_REDIS_URL": ""})
    assert result.exit_code == 2 and "needs Redis" in result.output and "--url" in result.output
    result = await asyncio.to_thread(_cli, ["streams", "start"], {"EXGATE_REDIS_URL": redis_url})
    assert result.exit_code == 1 and "0 listeners" in result.output and "no gateway is listening" in result.output
    result = await asyncio.to_thread(_cli, ["streams", "start", "--exchange", "Not A Venue"],
                                     {"EXGATE_REDIS_URL": redis_url})
    assert result.exit_code == 2 and "exchange" in result.output


async def test_cli_streams_status_shows_the_records(redis_url, client):
    result = await asyncio.to_thread(_cli, ["streams", "status"], {"EXGATE_REDIS_URL": redis_url})
    assert result.exit_code == 0 and "no stream status records" in result.output
    now = time.time_ns() // 1_000_000
    await write_status(client, StreamStatus(venue="bybit", kind="trades", state=StreamState.LIVE, owner="host-a:1",
                                            connected_since_ms=now - 60_000, last_message_ms=now - 1_500,
                                            reconnects=3, gaps=1, messages_per_s=42.0))
    result = await asyncio.to_thread(_cli, ["streams", "status"], {"EXGATE_REDIS_URL": redis_url})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "bybit" in line)
    for cell in ("trades", "host-a:1", "live", "UTC", "ago", "3", "1", "42.0"):
        assert cell in row, (cell, row)
    for header in ("venue", "stream", "owner", "state", "connected since", "last message", "reconnects", "gaps",
                   "msgs/s"):
        assert header in result.output


async def test_exgate_streams_start_and_stop_reach_an_idle_gateways_supervisor(redis_url, client):
    """End to end: `exgate streams start|stop` on Redis → the gateway's listener → its supervisor."""
    from exgate.config import Settings
    from exgate.http.app import create_app
    from exgate.venues.registry import build_adapters
    from tests.conftest import ServerThread

    venues = ["bybit", "pacifica"]
    adapters = build_adapters(venues, {v: f"http://127.0.0.1:9/{v}" for v in venues})  # nothing answers there
    app = create_app(adapters, preload=False, settings=Settings(redis_url=redis_url, exchanges=",".join(venues),
                                                                streams="idle"))
    with ServerThread(app):
        supervisor = app.state.streams
        assert supervisor.running == set()

        async def until(check) -> None:  # the supervisor lives in the server's thread: no event to await here
            async with asyncio.timeout(HANG_GUARD_S):
                while not await check():
                    await asyncio.sleep(0.01)

        async def listening() -> bool:
            return bool((await client.pubsub_numsub(control_channel(client)))[0][1])

        async def running(expected: set[str]) -> bool:
            return supervisor.running == expected

        await until(listening)
        result = await asyncio.to_thread(_cli, ["streams", "start", "--exchange", "bybit"],
                                         {"EXGATE_REDIS_URL": redis_url})
        assert result.exit_code == 0, result.output
        await until(lambda: running({"bybit"}))
        result = await asyncio.to_thread(_cli, ["streams", "stop"], {"EXGATE_REDIS_URL": redis_url})
        assert result.exit_code == 0, result.output
        await until(lambda: running(set()))



async def test_a_gateway_publishes_each_streams_state_changes_as_lifecycle_events(redis_url, client):
    """A streaming gateway on this Redis tells every listener when its streams go live and stop."""
    from exgate.sandbox.app import create_sandbox_app
    from tests.conftest import ServerThread, sandbox_data
    from tests.streams_harness import gateway_app, stream_settings

    inbox = Inbox()
    async with ControlListener(redis_url, inbox) as listener:
        await _ready(listener)
        settings = stream_settings(redis_url=redis_url, admin_token="op-token")
        with ServerThread(create_sandbox_app(sandbox_data(), venues=["hyperliquid"])) as sandbox, \
                ServerThread(gateway_app(sandbox.url, ("hyperliquid",), settings)) as gateway:
            def live_kinds() -> set[str]:
                return {c.get("stream") for c in inbox.commands
                        if c.op is ControlOp.LIFECYCLE and c.get("state") == "live"}

            async with asyncio.timeout(HANG_GUARD_S):
                while live_kinds() != {"book", "trades", "ticker", "candle"}:
                    await asyncio.sleep(0.05)
            first = next(c for c in inbox.commands if c.op is ControlOp.LIFECYCLE)
            assert first.exchange == "hyperliquid" and first.get("instance") and first.get("ts_ms")
            seen = len(inbox.commands)
            stop = await asyncio.to_thread(lambda: __import__("httpx").post(
                f"{gateway.url}/v1/streams/stop", headers={"Authorization": "Bearer op-token"}))
            assert stop.status_code == 200
            async with asyncio.timeout(HANG_GUARD_S):
                while {c.get("stream") for c in inbox.commands[seen:] if c.get("state") == "stopped"} != {
                        "book", "trades", "ticker", "candle"}:
                    await asyncio.sleep(0.05)
