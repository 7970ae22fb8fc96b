"""``exgate streams start|stop|status``: the ingest streams from the command line.

``start``/``stop`` publish a control command on the Redis channel ``exgate:control``
(``exgate:control:db{N}`` on database N; ``EXGATE_REDIS_URL``), which every gateway instance's ingest supervisor listens to; with
``--url http://gateway`` they call that gateway's ``POST /v1/streams/start|stop`` instead
(``EXGATE_ADMIN_TOKEN`` sent as the bearer token when set). ``status`` shows the status
records the supervisors keep in Redis (``exgate:stream:status:*``).
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

streams_app = typer.Typer(no_args_is_help=True, help="Ingest streams: start, stop, and see their status.")

_NO_REDIS = ("the control channel needs Redis: set EXGATE_REDIS_URL (the gateways' Redis), or pass"
             " --url http://gateway to ask one gateway over HTTP")

ExchangeOption = Annotated[str | None, typer.Option("--exchange", help="one venue id (default: every venue)")]
UrlOption = Annotated[str | None, typer.Option("--url", help="a gateway's base URL: use its HTTP route instead of Redis")]


def _send(op: str, exchange: str | None, url: str | None) -> None:
    from exgate.cli import _fail
    from exgate.cli_store import _run, _settings

    if url:
        _send_http(op, exchange, url)
        return
    settings = _settings()
    if not settings.redis_url:
        raise _fail(_NO_REDIS)

    async def work() -> tuple[str, int]:
        from exgate.bus.control import control_channel, publish_control
        from exgate.cache.client import redis_client

        client = redis_client(settings.redis_url, timeout_ms=settings.redis_timeout_ms)
        try:
            return control_channel(client), await publish_control(client, {"op": op, "exchange": exchange})
        finally:
            await client.aclose()

    channel, receivers = _run(work)
    target = exchange.lower() if exchange else "every venue"
    typer.echo(f"{op} ({target}) sent on {channel}: {receivers} listener{'s' if receivers != 1 else ''}"
               " received it")
    if receivers == 0:
        typer.echo("no gateway is listening on this Redis (is `exgate serve` running with the same"
                   " EXGATE_REDIS_URL?)", err=True)
        raise typer.Exit(1)


def _send_http(op: str, exchange: str | None, url: str) -> None:
    import os

    import httpx

    from exgate.cli import _fail

    headers = {}
    token = os.environ.get("EXGATE_ADMIN_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    endpoint = f"{url.rstrip('/')}/v1/streams/{op}"
    try:
        response = httpx.post(endpoint, params={"exchange": exchange} if exchange else None, headers=headers,
                              timeout=10)
    except httpx.HTTPError as exc:
        raise _fail(f"--url: {endpoint} did not answer ({type(exc).__name__})") from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise _fail(f"{endpoint}: {response.status_code} {detail}")
    typer.echo(response.text)


@streams_app.command("start")
def start(exchange: ExchangeOption = None, url: UrlOption = None) -> None:
    """Start the ingest streams of one venue (or every venue) on the gateways listening."""
    _send("start", exchange, url)


@streams_app.command("stop")
def stop(exchange: ExchangeOption = None, url: UrlOption = None) -> None:
    """Stop the ingest streams of one venue (or every venue)."""
    _send("stop", exchange, url)


def _age(now_ms: int, then_ms: int | None) -> str:
    if then_ms is None:
        return "-"
    seconds = max(0, now_ms - then_ms) / 1000
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _since(then_ms: int | None) -> str:
    if then_ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(then_ms / 1000)) + " UTC"


@streams_app.command("status")
def status(exchange: ExchangeOption = None) -> None:
    """Every stream's status as its owner last reported it (records in Redis, with a TTL)."""
    from rich.console import Console
    from rich.table import Table

    from exgate.cli import _fail
    from exgate.cli_store import _run, _settings

    settings = _settings()
    if not settings.redis_url:
        raise _fail("stream status records live in Redis: set EXGATE_REDIS_URL")

    async def work():
        from exgate.cache.client import redis_client

        from redis.exceptions import RedisError

        from exgate.bus import BusUnavailable

        client = redis_client(settings.redis_url, timeout_ms=settings.redis_timeout_ms)
        try:
            return await read_statuses(client, venue=exchange.lower() if exchange else None)
        except (RedisError, TimeoutError) as exc:
            raise BusUnavailable(f"Redis did not answer ({type(exc).__name__})") from None
        finally:
            await client.aclose()

    records = _run(work)
    if not records:
        typer.echo(f"no stream status records{f' for {exchange.lower()}' if exchange else ''} in Redis"
                   " (no supervisor is running streams, or their records expired)")
        return
    now = time.time_ns() // 1_000_000
    table = Table(title="exgate streams")
    for column in ("venue", "stream", "owner", "state", "connected since", "last message", "reconnects", "gaps",
                   "msgs/s"):
        table.add_column(column, justify="right" if column in ("reconnects", "gaps", "msgs/s") else "left")
    for r in records:
        table.add_row(r.venue, r.kind, r.owner or "-", r.state.value, _since(r.connected_since_ms),
                      _age(now, r.last_message_ms) + (" ago" if r.last_message_ms is not None else ""),
                      str(r.reconnects), str(r.gaps), f"{r.messages_per_s:.1f}")
    Console(width=200).print(table)


STATUS_PATTERN = "exgate:stream:status:*"
"""The supervisors' status records (:func:`exgate.streams.status.status_key`)."""


async def read_statuses(client, *, venue: str | None = None, limit: int = 10_000, timeout_ms: int = 5_000) -> list:
    """Every live :class:`~exgate.streams.StreamStatus` record in Redis (of ``venue`` only when
    given), sorted by venue and kind; unreadable records are skipped. ``SCAN`` (a cluster client
    scans every primary), then one ``GET`` per key.

    Raises:
        redis.RedisError, TimeoutError: Redis failed.
    """
    import asyncio

    from pydantic import ValidationError

    from exgate.streams import StreamStatus

    out = []
    async with asyncio.timeout(timeout_ms / 1000):
        keys = []
        async for key in client.scan_iter(match=STATUS_PATTERN, count=500):
            keys.append(key)
            if len(keys) >= limit:
                break
        for key in keys:
            raw = await client.get(key)
            if raw is None:
                continue  # expired between the scan and the read
            try:
                record = StreamStatus.model_validate_json(raw)
            except ValidationError:
                continue
            if venue is None or record.venue == venue:
                out.append(record)
    return sorted(out, key=lambda s: (s.venue, s.kind))


def register(app: typer.Typer) -> None:
    """Add ``streams`` to the ``exgate`` app."""
    app.add_typer(streams_app, name="streams")
