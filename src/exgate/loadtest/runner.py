"""One load test: provision the users, then per mode drive the schedule open-loop and measure.

Modes (each on a fresh sandbox counter):

- ``direct``: the gateway with caching and coalescing off (``EXGATE_CACHE=off``): what the app
  does today, one exchange call per read;
- ``cached``: the TTL cache as configured;
- ``streams``: the cache fed by the venues' public streams (``EXGATE_STREAMS=on``; tier 1:
  the top markets by volume and the markets the users read, tier 2: whatever is read often):
  market reads become stream hits, account reads stay REST (user streams come later).

With ``--targets`` the deployment is whatever it is: its mode is only a label
(``--mode``), and its TTLs are not scaled by ``K``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from exgate.loadtest.measure import cache_report, client_report, scrape_lookups, upstream_report
from exgate.loadtest.model import PROJECTIONS, Schedule, User, UserModel, population
from exgate.loadtest.stack import SpawnedStack
from exgate.loadtest.traffic import TIMEOUT_S, Recorder, Traffic, discover, provision

MAX_OUTSTANDING = 20_000
"""Events in flight beyond this are dropped (and counted): the generator's own bound."""

LATE_S = 0.25
"""An event fired this much (wall s) after its time counts as late: the generator fell behind."""


@dataclass(frozen=True)
class Mode:
    """A gateway configuration compared in one run."""

    name: str
    cache_on: bool
    available: Callable[[], str | None]
    streams: bool = False
    """Whether the gateways ingest the venues' public WebSocket streams."""
    """``None`` when the mode can run here, else why not."""


MODES: dict[str, Mode] = {
    "direct": Mode("direct", cache_on=False, available=lambda: None),
    "cached": Mode("cached", cache_on=True, available=lambda: None),
    "streams": Mode("streams", cache_on=True, available=lambda: None, streams=True),
}


@dataclass
class Plan:
    """What to run: the model, the speed ``K``, the window and warm-up (model s), the modes."""

    model: UserModel
    speed: float
    duration_s: float
    warmup_s: float
    modes: list[str]
    seed: int = 7
    preset: str | None = None
    command: str = ""
    limits: str = "lifted"


Progress = Callable[[str, float, dict], None]
"""Called with (mode, fraction of the mode done 0..1, live counters) while a mode runs."""


async def drive(plan: Plan, users: list[User], traffic: Traffic, sandbox_url: str, targets: list[str],
                progress: Progress | None = None, mode: str = "") -> dict:
    """Run the schedule open-loop for warm-up + window and measure the window.

    Events fire at their time (wall time = model time / K) whatever the answers' latency; the
    sandbox's counters are reset and the gateways' ``/metrics`` read as the window opens, and
    both read again as it closes (requests still in flight are then awaited, up to the client
    timeout, and their latencies recorded)."""
    loop = asyncio.get_running_loop()
    schedule = Schedule(plan.model, users, plan.seed)
    end_s = plan.warmup_s + plan.duration_s
    outstanding: set[asyncio.Task] = set()
    recorder = Recorder()
    late = dropped = 0
    window_open = False
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as control:
        async def open_window() -> tuple[Counter[str], float]:
            """Reset the sandbox's counters and read the gateways' lookups: the window starts."""
            await _post(control, f"{sandbox_url}/__sandbox/reset")
            return await scrape_lookups(control, targets), loop.time()

        before: Counter[str] = Counter()
        started_wall = loop.time()
        window_wall = started_wall
        for event in schedule.until(end_s):
            if not window_open and event.at_s >= plan.warmup_s:
                (before, window_wall), window_open = await open_window(), True
            due = started_wall + event.at_s / plan.speed
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > LATE_S:
                late += 1
            if len(outstanding) >= MAX_OUTSTANDING:
                dropped += 1
                continue
            task = loop.create_task(traffic.fire(event.action, event.user, recorder if window_open else None))
            outstanding.add(task)
            task.add_done_callback(outstanding.discard)
            if progress is not None and event.seq % 50 == 0:
                progress(mode, min(1.0, event.at_s / end_s), {"requests": recorder.requests,
                                                               "errors": sum(recorder.errors.values()),
                                                               "in_flight": len(outstanding)})
        remaining = started_wall + end_s / plan.speed - loop.time()
        if remaining > 0:
            await asyncio.sleep(remaining)
        if not window_open:  # a window with no event at all
            before, window_wall = await open_window()
        wall_s = loop.time() - window_wall
        async with control.get(f"{sandbox_url}/__sandbox/stats") as r:
            stats = await r.json()
        after = await scrape_lookups(control, targets)
        if outstanding:
            await asyncio.wait(set(outstanding), timeout=TIMEOUT_S + 1)
    model_s = max(wall_s * plan.speed, 1e-9)
    if progress is not None:
        progress(mode, 1.0, {"requests": recorder.requests, "errors": sum(recorder.errors.values()), "in_flight": 0})
    return {"wall_s": wall_s, "model_s": model_s,
            "client": client_report(recorder, model_s, late, dropped),
            "upstream": upstream_report(stats, model_s),
            "cache": cache_report(before, after)}


async def _post(session: aiohttp.ClientSession, url: str) -> None:
    async with session.post(url) as r:
        if r.status != 200:
            raise RuntimeError(f"POST {url} answered {r.status}")


async def measure_mode(plan: Plan, mode: str, users: list[User], targets: list[str], sandbox_url: str,
                       tenant_key: str, progress: Progress | None) -> dict:
    """One mode's run entry: the venues' markets read through the first target (the app's first
    page), then :func:`drive`, and what the cache did not absorb."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        markets = await discover(session, targets[0], list(plan.model.venues))
    async with Traffic(targets, tenant_key, markets, plan.seed, limit_share=plan.model.limit_share) as traffic:
        measured = await drive(plan, users, traffic, sandbox_url, targets, progress, mode)
    run = {"mode": mode, "status": "ran", "reason": None, **measured}
    run["unabsorbed"] = _unabsorbed(run)
    return run


def _unabsorbed(run: dict) -> dict:
    by_class = run.get("upstream", {}).get("by_class", {})
    reads = {k: v for k, v in by_class.items() if k != "write"}
    return {"per_s": sum(reads.values()), "by_class": reads}


def base_result(plan: Plan, targets: dict) -> dict:
    """The result's header (see :mod:`exgate.loadtest.report` for the whole shape)."""
    return {"exgate_loadtest": 1, "command": plan.command, "preset": plan.preset, "users": plan.model.users,
            "speed": plan.speed, "duration_model_s": plan.duration_s, "warmup_model_s": plan.warmup_s,
            "model": plan.model.as_dict(), "targets": targets, "limits": plan.limits,
            "started_ms": time.time_ns() // 1_000_000, "projections": PROJECTIONS, "runs": [], "notes": []}


NOTES = [
    "Time compression: with speed K every interval, TTL and lease is divided by K, so every rate in the "
    "model (polls, page loads, orders, cache expiries, rate-limit windows) is multiplied by the same K; "
    "dividing measured rates by K gives the uncompressed model's rates, and ratios (hit rate, reads per "
    "user) are unchanged. Latencies are wall-clock and not scaled.",
    "Upstream calls are the sandbox's own counts over the window (POST /__sandbox/reset as it opens); "
    "hit rate is from the gateways' exgate_cache_lookups_total over the same window.",
]


async def run_spawned(plan: Plan, instances: int, workdir: Path, progress: Progress | None = None,
                      log: Callable[[str], None] = print, sandbox_data: Path | None = None) -> dict:
    """The whole ``--spawn`` run: start the stack, provision once, run each mode on freshly
    started gateways (Redis emptied, sandbox counters reset), stop everything.

    Raises:
        ConfigError: a process of the stack does not start.
        RuntimeError: no user could be connected, or the gateways serve no market.
    """
    venues = list(plan.model.venues)
    async with SpawnedStack(instances, workdir, venues, plan.speed, lifted=plan.limits == "lifted",
                            sandbox_data=sandbox_data) as stack:
        result = base_result(plan, {"spawn": instances, "urls": [], "sandbox": stack.sandbox_url})
        result["notes"] = list(NOTES)
        users = population(plan.model, instances, plan.seed)
        provisioned = False
        for name in plan.modes:
            mode = MODES[name]
            why_not = mode.available()
            if why_not is not None:
                result["runs"].append({"mode": name, "status": "skipped", "reason": why_not})
                log(f"{name}: skipped ({why_not})")
                continue
            targets = await stack.start_gateways(mode.cache_on, streams=mode.streams)
            result["targets"]["urls"] = targets
            if not provisioned:
                log(f"connecting {sum(u.connected for u in users)} accounts through {len(targets)} gateway(s)")
                outcomes = await provision(stack.sandbox_url, targets, stack.tenant_key, users)
                result["provisioned"] = dict(outcomes)
                provisioned = True
            result["runs"].append(await measure_mode(plan, name, users, targets, stack.sandbox_url, stack.tenant_key,
                                                     progress))
        await stack.stop_gateways()
    result["finished_ms"] = time.time_ns() // 1_000_000
    return result


async def run_targets(plan: Plan, targets: list[str], sandbox_url: str, tenant_key: str,
                      progress: Progress | None = None, log: Callable[[str], None] = print) -> dict:
    """A run against a running deployment: one mode (``plan.modes[0]``, a label), the users
    provisioned through it, upstream counted at its sandbox.

    Raises:
        RuntimeError: no user could be connected, or the deployment serves no market.
    """
    result = base_result(plan, {"spawn": None, "urls": targets, "sandbox": sandbox_url})
    result["notes"] = [*NOTES, "Run against --targets: the deployment's own TTLs and limits apply (not scaled by K)."]
    users = population(plan.model, len(targets), plan.seed)
    log(f"connecting {sum(u.connected for u in users)} accounts through {len(targets)} target(s)")
    result["provisioned"] = dict(await provision(sandbox_url, targets, tenant_key, users))
    result["runs"].append(await measure_mode(plan, plan.modes[0], users, targets, sandbox_url, tenant_key, progress))
    result["finished_ms"] = time.time_ns() // 1_000_000
    return result
