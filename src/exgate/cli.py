"""The ``exgate`` command line (typer): ``serve``, ``sandbox``, the store's ``db``, ``tenants``,
``secrets`` (:mod:`exgate.cli_store`) and ``loadtest`` (:mod:`exgate.cli_loadtest`)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from uvicorn.config import LOG_LEVELS

from exgate.config import StreamsMode, load_settings
from exgate.errors import ExgateError
from exgate.venues.upstream import parse_upstreams

app = typer.Typer(add_completion=False, no_args_is_help=True, help="exgate: one gateway to many crypto exchanges.")


_EMBEDDED = contextvars.ContextVar("exgate_embedded_server", default=False)
"""True inside the tasks of an embedded server (the in-process sandbox of ``serve --sandbox``)."""


class _QuietEmbedded(logging.Filter):
    """Drop uvicorn's info lines ("Started server process", "Application startup complete")
    logged by an embedded server: every uvicorn server of a process logs to the same
    ``uvicorn.error`` logger, whose level the gateway's ``--log-level`` sets, so without this
    each start-up line printed twice. Warnings and errors of the embedded server still print."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not _EMBEDDED.get()


_QUIET_EMBEDDED = _QuietEmbedded()


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the main server of the process and
    keeps its start-up lines out of the gateway's log."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        _EMBEDDED.set(True)  # this task's context only; the tasks uvicorn starts inherit it
        logging.getLogger("uvicorn.error").addFilter(_QUIET_EMBEDDED)  # idempotent
        await super().serve(sockets)


def _fail(detail: str) -> typer.Exit:
    """Print ``detail`` as ``error: ...`` lines on stderr (one per bad setting); exit code 2."""
    for line in detail.splitlines():
        typer.echo(f"error: {line}", err=True)
    return typer.Exit(2)


def _check_log_level(log_level: str) -> None:
    if log_level.lower() not in LOG_LEVELS:
        raise _fail(f"--log-level: must be one of {', '.join(LOG_LEVELS)} (got {log_level!r})")


def _check_sandbox_data(flag: str, value: Path | None) -> None:
    """A sandbox data folder given by ``flag`` or, without it, by ``EXGATE_SANDBOX_DATA`` /
    ``EXGATE_FIXTURES`` (the first set wins, as in :func:`exgate.sandbox.data.default_data_dir`)
    must be an existing folder; an empty folder means synthetic data."""
    source, path = flag, value
    if path is None:
        source, raw = next(((env, os.environ[env]) for env in ("EXGATE_SANDBOX_DATA", "EXGATE_FIXTURES")
                            if os.environ.get(env)), (None, None))
        path = Path(raw) if raw else None
    if path is not None and not path.is_dir():
        raise _fail(f"{source}: must be a folder of recorded payloads (got {str(path)!r}: no such folder)")


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free port chosen by the OS)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(asgi_app, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(asgi_app, host=host, port=port, log_level=log_level, access_log=False,
                          loop="auto", http="auto", lifespan="on")


async def _open_store(settings, sandbox: bool):
    """The SQL store ``serve`` uses, and why private routes are off (``None``: they are on).

    Raises:
        ConfigError: the database is not migrated (the detail names ``exgate db upgrade``) or
            ``EXGATE_SECRET_KEYS`` is malformed.
    """
    from exgate.store import SecretBox, Store, database_url, require_migrated

    url = database_url(settings.database_url)
    await require_migrated(url)
    box = SecretBox.from_env(settings.secret_keys.get_secret_value() if settings.secret_keys else None)
    unavailable = None
    if box is None and sandbox:
        box = SecretBox.generate()
        typer.echo("EXGATE_SECRET_KEYS is not set: generated an encryption key for this run only "
                   "(credentials stored now cannot be read by another run)")
    elif box is None:
        unavailable = "EXGATE_SECRET_KEYS is not set: private routes are off until the gateway has encryption keys"
        typer.echo("EXGATE_SECRET_KEYS is not set: private routes answer 503", err=True)
    return Store(url, box), unavailable


async def _serve(host: str, port: int, sandbox: bool, upstream: list[str], sandbox_data: Path | None,
                 log_level: str, history_lag_ms: int = 1500, sandbox_port: int = 0, idle: bool = False) -> None:
    from exgate.http.app import create_app
    from exgate.venues.registry import build_adapters

    settings = load_settings()
    if idle and settings.streams is StreamsMode.ON:
        settings = settings.model_copy(update={"streams": StreamsMode.IDLE})
    store, private_unavailable = await _open_store(settings, sandbox)
    upstreams = parse_upstreams(settings.upstreams)
    upstreams.update(parse_upstreams(upstream))
    venues = settings.exchange_list()
    sandbox_thread = None
    if sandbox:
        from exgate.sandbox.app import create_sandbox_app
        from exgate.sandbox.runner import ServerThread

        sandbox_app = create_sandbox_app(sandbox_data, history_lag_ms=history_lag_ms)
        sock = _bind("127.0.0.1", sandbox_port)
        sandbox_port = sock.getsockname()[1]
        for venue in sandbox_app.state.venues:
            upstreams.setdefault(venue, f"http://127.0.0.1:{sandbox_port}/{venue}")
        # its own thread and event loop: no sandbox work can stall the gateway's loop
        sandbox_thread = ServerThread(_EmbeddedServer(_uvicorn_config(sandbox_app, "127.0.0.1", sandbox_port,
                                                                      "warning")), [sock])
        typer.echo(f"sandbox serving {', '.join(sandbox_app.state.venues)} on http://127.0.0.1:{sandbox_port}"
                   f" (data: {sandbox_app.state.data_dir or 'synthetic'})")
    adapters = build_adapters(venues, upstreams, timeout_ms=settings.upstream_timeout_ms)
    gateway = create_app(adapters, settings=settings, store=store, private_unavailable=private_unavailable)
    try:
        if sandbox_thread is not None:
            sandbox_thread.start()
            await sandbox_thread.wait_started()
        await uvicorn.Server(_uvicorn_config(gateway, host, port, log_level)).serve()
    finally:
        if sandbox_thread is not None:
            sandbox_thread.stop()
        await store.close()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=0, max=65535)] = 8000,
    sandbox: Annotated[bool, typer.Option("--sandbox", help="start the sandbox in-process and point every venue it serves at it")] = False,
    upstream: Annotated[list[str] | None, typer.Option(help="VENUE=URL origin override; repeatable")] = None,
    sandbox_data: Annotated[Path | None, typer.Option(help="recorded payloads for --sandbox")] = None,
    history_lag_ms: Annotated[int, typer.Option(help="--sandbox: delay before a fill shows in trade history, ms",
                                                min=0)] = 1500,
    sandbox_port: Annotated[int, typer.Option(help="--sandbox: its port on 127.0.0.1 (0: a free one)",
                                              min=0, max=65535)] = 0,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    idle: Annotated[bool, typer.Option("--idle", help="start with no streams until a start command"
                                       " (POST /v1/streams/start, exgate streams start)")] = False,
) -> None:
    """Run the gateway (HTTP API on HOST:PORT); it ingests the venues' WebSocket streams unless
    --idle or EXGATE_STREAMS=idle|off."""
    _check_log_level(log_level)
    try:
        parse_upstreams(upstream or [])
    except ExgateError as exc:
        raise _fail(f"--upstream: {exc.detail}") from None
    if sandbox:
        _check_sandbox_data("--sandbox-data", sandbox_data)
    try:
        # the loop uvicorn.run would pick (uvloop when installed); asyncio.run would give the stdlib loop
        with asyncio.Runner(loop_factory=uvicorn.Config(app=None, loop="auto").get_loop_factory()) as runner:
            runner.run(_serve(host, port, sandbox, upstream or [], sandbox_data, log_level, history_lag_ms,
                              sandbox_port, idle))
    except ExgateError as exc:
        raise _fail(exc.detail) from None
    except KeyboardInterrupt:
        pass


@app.command("sandbox")
def sandbox_cmd(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=0, max=65535)] = 8900,
    data: Annotated[Path | None, typer.Option(help="folder of recorded payloads (default: EXGATE_SANDBOX_DATA or ../shared/fixtures)")] = None,
    seed: Annotated[int, typer.Option(help="random-walk seed")] = 7,
    rate_limit: Annotated[list[str] | None, typer.Option(
        help="VENUE=CAPACITY/WINDOW_MS replacing a venue's published IP budget; repeatable")] = None,
    ban_after: Annotated[int | None, typer.Option(help="429s in one window before a 418 ban", min=1)] = None,
    ban_ms: Annotated[int | None, typer.Option(help="length of a 418 ban, ms", min=1)] = None,
    history_lag_ms: Annotated[int, typer.Option(help="delay before a fill shows in trade history, ms", min=0)] = 1500,
    clock_skew: Annotated[list[str] | None, typer.Option(
        help="VENUE=[+|-]MS: the venue's server clock runs MS ms ahead (or behind) of the sandbox's; "
             "repeatable; change it at run time with POST /__sandbox/clock")] = None,
    replay: Annotated[Path | None, typer.Option(
        help="a recorded Binance USD-M capture (cryptofeed's BINANCE_FUTURES.ws.1.0, its .http and .0 files "
             "beside it) binanceusdm serves instead, released with POST /__sandbox/replay?step=N")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
) -> None:
    """Run the exchange sandbox: each venue's real REST paths under /{venue}/ (public and, for
    accounts made with POST /__sandbox/accounts, private), with its published rate limits (429
    with Retry-After past the budget, 418 after continued abuse) and, with --clock-skew, a
    server clock of its own (time endpoints and signed-request windows)."""
    from exgate.sandbox.app import create_sandbox_app
    from exgate.budget.model import parse_limit_overrides
    from exgate.sandbox.clock import parse_clock_skew
    from exgate.sandbox.venues import VENUES

    _check_log_level(log_level)
    _check_sandbox_data("--data", data)
    try:
        limits = parse_limit_overrides(",".join(rate_limit or []), "--rate-limit")
        skews = parse_clock_skew(clock_skew or [], VENUES, "--clock-skew")
    except ValueError as exc:
        raise _fail(str(exc)) from None
    try:
        sandbox_app = create_sandbox_app(data, seed=seed, limits=limits, ban_after=ban_after, ban_ms=ban_ms,
                                         history_lag_ms=history_lag_ms, clock_skew=skews, replay=replay)
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc).replace("replay:", "--replay:", 1) if replay is not None else str(exc)) from None
    typer.echo(f"sandbox serving {', '.join(sandbox_app.state.venues)} on http://{host}:{port}"
               f" (data: {sandbox_app.state.data_dir or 'synthetic'})")
    uvicorn.run(sandbox_app, host=host, port=port, log_level=log_level, access_log=False)


from exgate.cli_store import register as _register_store_commands  # noqa: E402  (after _fail, which it uses)

_register_store_commands(app)

from exgate.cli_loadtest import register as _register_loadtest  # noqa: E402

_register_loadtest(app)

from exgate.cli_connectors import register as _register_connectors  # noqa: E402

_register_connectors(app)

from exgate.cli_streams import register as _register_streams  # noqa: E402

_register_streams(app)


def main() -> None:
    """Entry point of ``exgate`` and ``python -m exgate``: a bad flag prints one plain line
    ``error: ...`` naming it, exit code 2 (typer's usage errors, without the box)."""
    if len(sys.argv) <= 1:
        app()  # typer's help
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.echo("aborted", err=True)
        code = 1
    except typer.TyperException as exc:
        if not hasattr(exc, "format_message"):
            raise
        if exc.format_message():  # empty: a group run without a command, its help printed already
            typer.echo(f"error: {exc.format_message()}", err=True)
        code = getattr(exc, "exit_code", 2)
    sys.exit(code if isinstance(code, int) else 0)
