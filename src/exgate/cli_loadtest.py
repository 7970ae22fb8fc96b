"""``exgate loadtest``: a trading app's user model against gateway instances (see :mod:`exgate.loadtest`)."""

from __future__ import annotations

import asyncio
import enum
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer


class Limits(enum.StrEnum):
    LIFTED = "lifted"
    REAL = "real"


class PresetName(enum.StrEnum):
    P250 = "250"
    P1K = "1k"
    P5K = "5k"
    P10K = "10k"


def _fail(detail: str) -> typer.Exit:
    from exgate.cli import _fail as fail

    return fail(detail)


def _share(name: str, value: float) -> float:
    if not 0 <= value <= 1:
        raise _fail(f"{name}: must be between 0 and 1 (got {value})")
    return value


def loadtest(
    preset: Annotated[PresetName | None, typer.Option(help="users, speed and window of a named run")] = None,
    users: Annotated[int | None, typer.Option(help="total users (default: the preset's, else 250)", min=1)] = None,
    spawn: Annotated[int | None, typer.Option(help="start N gateways, a private Redis and a sandbox for the run",
                                              min=1, max=16)] = None,
    targets: Annotated[str | None, typer.Option(help="comma-separated base URLs of a running deployment")] = None,
    sandbox: Annotated[str | None, typer.Option(help="--targets: the sandbox the deployment's venues point at")] = None,
    tenant_key: Annotated[str | None, typer.Option(envvar="EXGATE_LOADTEST_TENANT_KEY",
                                                   help="--targets: a tenant key of the deployment")] = None,
    modes: Annotated[str, typer.Option(help="--spawn: modes compared, comma-separated (direct, cached, streams)")
                     ] = "direct,cached,streams",
    mode: Annotated[str, typer.Option(help="--targets: the label of the deployment's mode")] = "cached",
    speed: Annotated[float | None, typer.Option(help="K: every interval, TTL and lease divided by K", min=0.01,
                                                max=100)] = None,
    duration: Annotated[float | None, typer.Option(help="measured window, model seconds", min=1)] = None,
    warmup: Annotated[float | None, typer.Option(help="warm-up before the window, model seconds", min=0)] = None,
    online: Annotated[float, typer.Option(help="share of users online")] = 0.5,
    connected: Annotated[float, typer.Option(help="share of online users with a connected account")] = 0.5,
    poll_s: Annotated[float, typer.Option(help="account poll interval, app WebSocket down, s", min=0.1)] = 15.0,
    poll_ws_s: Annotated[float, typer.Option(help="account poll interval, app WebSocket up, s", min=0.1)] = 30.0,
    ws_share: Annotated[float, typer.Option(help="share of online users whose app WebSocket is up")] = 0.5,
    price_poll_s: Annotated[float, typer.Option(help="price poll interval, WebSocket down, s", min=0.1)] = 30.0,
    page_loads: Annotated[float, typer.Option(help="market-data page loads per 1,000 users per s", min=0)] = 3.0,
    orders: Annotated[float, typer.Option(help="orders per user per minute", min=0)] = 0.05,
    limit_share: Annotated[float, typer.Option(help="share of orders that are resting limit orders")] = 0.5,
    herd: Annotated[bool, typer.Option("--herd", help="every poller starts at phase 0")] = False,
    venues: Annotated[str, typer.Option(help="venues users are spread over, comma-separated")
                      ] = "binanceusdm,bybit,hyperliquid,pacifica",
    limits: Annotated[Limits, typer.Option(help="--spawn: venue limits as published (scaled by K) or lifted x1000 "
                                                "so the table measures demand")] = Limits.LIFTED,
    out: Annotated[Path, typer.Option(help="folder for report.md, report.json and upstream.png")] = Path("loadtest-report"),
    seed: Annotated[int, typer.Option(help="seed of every random draw")] = 7,
    sandbox_data: Annotated[Path | None, typer.Option(help="--spawn: the sandbox's recorded payloads")] = None,
) -> None:
    """Drive a trading app's user model open-loop against gateways and report upstream calls,
    hit rate and latency per mode (Markdown, JSON and a PNG chart in --out)."""
    from exgate.loadtest.model import PRESETS, UserModel
    from exgate.loadtest.runner import MODES, Plan

    if (spawn is None) == (targets is None):
        raise _fail("give exactly one of --spawn N (start the gateways here) or --targets URL,... (a deployment)")
    chosen = PRESETS[preset.value] if preset is not None else None
    venue_list = [v.strip().lower() for v in venues.split(",") if v.strip()]
    if not venue_list:
        raise _fail("--venues: name at least one venue")
    model = UserModel(users=users or (chosen.users if chosen else 250), online=_share("--online", online),
                      connected=_share("--connected", connected), poll_s=poll_s, poll_ws_s=poll_ws_s,
                      ws_share=_share("--ws-share", ws_share), price_poll_s=price_poll_s,
                      page_loads_per_1k_per_s=page_loads, orders_per_user_per_min=orders,
                      limit_share=_share("--limit-share", limit_share), herd=herd, venues=tuple(venue_list))
    mode_list = [m.strip() for m in modes.split(",") if m.strip()] if spawn is not None else [mode]
    unknown = [m for m in mode_list if m not in MODES] if spawn is not None else []
    if unknown or not mode_list:
        raise _fail(f"--modes: unknown {', '.join(unknown) or 'none given'} (allowed: {', '.join(MODES)})")
    plan = Plan(model=model, speed=speed or (chosen.speed if chosen else 1.0),
                duration_s=duration or (chosen.duration_s if chosen else 60.0),
                warmup_s=warmup if warmup is not None else (chosen.warmup_s if chosen else 10.0),
                modes=mode_list, seed=seed, preset=preset.value if preset else None,
                command=shlex.join(["exgate", *sys.argv[1:]]), limits=limits.value)
    if targets is not None and (not sandbox or not tenant_key):
        raise _fail("--targets needs --sandbox URL (upstream calls are counted there) and --tenant-key "
                    "(or EXGATE_LOADTEST_TENANT_KEY)")
    try:
        result = asyncio.run(_run(plan, spawn, targets, sandbox, tenant_key, sandbox_data))
    except KeyboardInterrupt:
        raise _fail("interrupted; every process the run started was stopped") from None
    except Exception as exc:  # noqa: BLE001 - one line for the operator, never a stack trace
        from exgate.errors import ExgateError

        raise _fail(exc.detail if isinstance(exc, ExgateError) else f"{type(exc).__name__}: {exc}") from None
    from exgate.loadtest.report import write_report

    files = write_report(result, out)
    typer.echo(f"report: {files['markdown']} ({files['json'].name}, {files['chart'].name})")


async def _run(plan, spawn: int | None, targets: str | None, sandbox: str | None, tenant_key: str | None,
               sandbox_data: Path | None) -> dict:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from exgate.loadtest.runner import run_spawned, run_targets

    columns = (TextColumn("{task.description:<8}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TextColumn("{task.fields[live]}"), TimeElapsedColumn())
    with Progress(*columns, transient=not sys.stderr.isatty()) as bar:
        tasks: dict[str, int] = {}

        def progress(mode: str, fraction: float, live: dict) -> None:
            if mode not in tasks:
                tasks[mode] = bar.add_task(mode, total=1.0, live="")
            text = f"{live['requests']} req · {live['errors']} err · {live['in_flight']} in flight"
            bar.update(tasks[mode], completed=fraction, live=text)

        def log(line: str) -> None:
            bar.console.print(line)

        if spawn is not None:
            with tempfile.TemporaryDirectory(prefix="exgate-loadtest-") as workdir:
                return await run_spawned(plan, spawn, Path(workdir), progress, log, sandbox_data)
        urls = [u.strip().rstrip("/") for u in (targets or "").split(",") if u.strip()]
        return await run_targets(plan, urls, (sandbox or "").rstrip("/"), tenant_key or "", progress, log)


def register(app: typer.Typer) -> None:
    """Add ``loadtest`` to the ``exgate`` app."""
    app.command("loadtest")(loadtest)

