"""The ``exgate`` command line (typer): ``serve`` and ``sandbox``."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from exgate.config import Settings
from exgate.errors import ExgateError
from exgate.venues.upstream import parse_upstreams

app = typer.Typer(add_completion=False, no_args_is_help=True, help="exgate: one gateway to many crypto exchanges.")


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the main server of the process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free port chosen by the OS)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(asgi_app, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(asgi_app, host=host, port=port, log_level=log_level, access_log=False,
                          loop="auto", http="auto", lifespan="on")


async def _serve(host: str, port: int, sandbox: bool, upstream: list[str], sandbox_data: Path | None,
                 log_level: str) -> None:
    from exgate.http.app import create_app
    from exgate.venues.registry import build_adapters

    settings = Settings()
    upstreams = parse_upstreams(settings.upstreams)
    upstreams.update(parse_upstreams(upstream))
    venues = settings.exchange_list()
    sandbox_thread = None
    if sandbox:
        from exgate.sandbox.app import create_sandbox_app
        from exgate.sandbox.runner import ServerThread

        sandbox_app = create_sandbox_app(sandbox_data)
        sock = _bind("127.0.0.1", 0)
        sandbox_port = sock.getsockname()[1]
        for venue in sandbox_app.state.venues:
            upstreams.setdefault(venue, f"http://127.0.0.1:{sandbox_port}/{venue}")
        # its own thread and event loop: no sandbox work can stall the gateway's loop
        sandbox_thread = ServerThread(_EmbeddedServer(_uvicorn_config(sandbox_app, "127.0.0.1", sandbox_port,
                                                                      "warning")), [sock])
        typer.echo(f"sandbox serving {', '.join(sandbox_app.state.venues)} on http://127.0.0.1:{sandbox_port}"
                   f" (data: {sandbox_app.state.data_dir or 'synthetic'})")
    adapters = build_adapters(venues, upstreams, timeout_ms=settings.upstream_timeout_ms)
    gateway = create_app(adapters, settings=settings)
    try:
        if sandbox_thread is not None:
            sandbox_thread.start()
            await sandbox_thread.wait_started()
        await uvicorn.Server(_uvicorn_config(gateway, host, port, log_level)).serve()
    finally:
        if sandbox_thread is not None:
            sandbox_thread.stop()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    sandbox: Annotated[bool, typer.Option("--sandbox", help="start the sandbox in-process and point every venue it serves at it")] = False,
    upstream: Annotated[list[str] | None, typer.Option(help="VENUE=URL origin override; repeatable")] = None,
    sandbox_data: Annotated[Path | None, typer.Option(help="recorded payloads for --sandbox")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Run the gateway (HTTP API on HOST:PORT)."""
    try:
        # the loop uvicorn.run would pick (uvloop when installed); asyncio.run would give the stdlib loop
        with asyncio.Runner(loop_factory=uvicorn.Config(app=None, loop="auto").get_loop_factory()) as runner:
            runner.run(_serve(host, port, sandbox, upstream or [], sandbox_data, log_level))
    except ExgateError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        pass


@app.command("sandbox")
def sandbox_cmd(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8900,
    data: Annotated[Path | None, typer.Option(help="folder of recorded payloads (default: EXGATE_SANDBOX_DATA or ../shared/fixtures)")] = None,
    seed: Annotated[int, typer.Option(help="random-walk seed")] = 7,
    rate_limit: Annotated[list[str] | None, typer.Option(
        help="VENUE=CAPACITY/WINDOW_MS replacing a venue's published IP budget; repeatable")] = None,
    ban_after: Annotated[int | None, typer.Option(help="429s in one window before a 418 ban")] = None,
    ban_ms: Annotated[int | None, typer.Option(help="length of a 418 ban, ms")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
) -> None:
    """Run the exchange sandbox: each venue's real REST paths under /{venue}/, with its
    published rate limits (429 with Retry-After past the budget, 418 after continued abuse)."""
    from exgate.sandbox.app import create_sandbox_app
    from exgate.budget.model import parse_limit_overrides

    try:
        limits = parse_limit_overrides(",".join(rate_limit or []), "--rate-limit")
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    sandbox_app = create_sandbox_app(data, seed=seed, limits=limits, ban_after=ban_after, ban_ms=ban_ms)
    typer.echo(f"sandbox serving {', '.join(sandbox_app.state.venues)} on http://{host}:{port}"
               f" (data: {sandbox_app.state.data_dir or 'synthetic'})")
    uvicorn.run(sandbox_app, host=host, port=port, log_level=log_level, access_log=False)


def main() -> None:
    """Entry point for ``python -m exgate``."""
    app()
