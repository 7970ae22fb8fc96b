"""``exgate loadtest --spawn N``: the processes of a run, started and stopped by the load test.

One private ``redis-server`` on a free port (no persistence), one ``exgate sandbox``, a
migrated SQLite store with one tenant, and per mode ``N`` ``exgate serve`` instances sharing
them. Every time constant of the servers is divided by the speed ``K`` (cache TTLs, grace and
max-stale, the L1 copy's life, the soft deadline, the fetch-lock lease, the venues' rate-limit
windows on both sides, the sandbox's trade-history lag), so the whole system runs ``K`` times
faster or slower, not only the users. Each process logs to ``WORKDIR/logs/``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import redis
import redis.asyncio
from cryptography.fernet import Fernet

from exgate.cache.ttl import DEFAULT_FRESHNESS
from exgate.errors import ConfigError
from exgate.sandbox.limits import DEFAULT_RULES
from exgate.venues.metering import METERING

LIFT = 1_000
"""Factor venue limits are raised by with ``--limits lifted`` (the table then measures demand)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scaled_ms(ms: int, speed: float) -> int:
    """``ms`` divided by the speed ``K``, at least 1 (a TTL of 0 stays 0)."""
    return 0 if ms == 0 else max(1, round(ms / speed))


def cache_config(speed: float) -> str:
    """A cache config TOML (``EXGATE_CACHE_CONFIG``) with every default TTL, grace and
    max-stale divided by ``speed``."""
    lines = []
    for kind, fresh in DEFAULT_FRESHNESS.items():
        lines += [f"[cache.{kind.value}]", f"ttl_ms = {scaled_ms(fresh.ttl_ms, speed)}",
                  f"grace_ms = {scaled_ms(fresh.grace_ms, speed)}",
                  f"max_stale_ms = {scaled_ms(fresh.max_stale_ms, speed)}", ""]
    return "\n".join(lines)


def venue_limits(venues: list[str], speed: float, lifted: bool) -> dict[str, tuple[int, int]]:
    """Per venue, the IP budget ``(capacity, window ms)`` both the sandbox enforces and the
    gateway's budget keeps: the published one with its window divided by ``speed`` and, when
    ``lifted``, its capacity multiplied by :data:`LIFT`."""
    out = {}
    for venue in venues:
        rules = DEFAULT_RULES.get(venue)
        metering = METERING.get(venue)
        if rules is None or metering is None:
            continue
        out[venue] = (rules.capacity * (LIFT if lifted else 1), scaled_ms(rules.window_ms, speed))
    return out


def published_limit_per_min(venue: str) -> float | None:
    """The venue's published IP budget in weight per minute (``None``: not known)."""
    rules = DEFAULT_RULES.get(venue)
    return None if rules is None else rules.capacity * 60_000 / rules.window_ms


def _limits_spec(limits: Mapping[str, tuple[int, int]]) -> str:
    return ",".join(f"{v}={cap}/{window}" for v, (cap, window) in limits.items())


class SpawnedStack:
    """Redis, the sandbox, the store and ``instances`` gateways of one load test.

    Args:
        instances: gateways per mode.
        workdir: where the store, the cache config and the logs go.
        venues: venues served.
        speed: the run's ``K``.
        lifted: raise every venue limit by :data:`LIFT` (see :func:`venue_limits`).
        sandbox_data: recorded payloads for the sandbox (``None``: its default).

    Use as an async context manager; :meth:`start_gateways` per mode. Every process is stopped
    on exit, whatever happened.

    Raises:
        ConfigError: ``redis-server`` is not installed, or a process does not start (the
            detail names it and its log file).
    """

    def __init__(self, instances: int, workdir: Path, venues: list[str], speed: float, *, lifted: bool,
                 sandbox_data: Path | None = None):
        self.instances = instances
        self.workdir = workdir
        self.venues = venues
        self.speed = speed
        self.limits = venue_limits(venues, speed, lifted)
        self.sandbox_data = sandbox_data
        self.logs = workdir / "logs"
        self.redis_port = free_port()
        self.sandbox_port = free_port()
        self.database_url = f"sqlite+aiosqlite:///{workdir / 'exgate.db'}"
        self.secret_key = Fernet.generate_key().decode()
        self.tenant_key = ""
        self.gateway_urls: list[str] = []
        self._base: list[tuple[str, asyncio.subprocess.Process]] = []
        self._gateways: list[tuple[str, asyncio.subprocess.Process]] = []

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    async def __aenter__(self) -> SpawnedStack:
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            await self._start_base()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def spawn(self, name: str, args: list[str], env: Mapping[str, str] | None = None
                    ) -> asyncio.subprocess.Process:
        """Start ``args`` with ``env`` added, logging to ``logs/{name}.log``; the caller stops it."""
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            return await asyncio.create_subprocess_exec(*args, stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL,
                                                        env={**os.environ, **(env or {})})
        finally:
            log.close()

    def exgate_command(self, *args: str) -> list[str]:
        """``python -m exgate ARGS`` with this interpreter."""
        return [sys.executable, "-m", "exgate", *args]

    async def _start_base(self) -> None:
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise ConfigError("--spawn needs redis-server on PATH (Debian: apt-get install redis-server)",
                              field="--spawn")
        self._base.append(("redis", await self.spawn("redis", [
            redis_server, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.workdir)])))
        sandbox_args = ["sandbox", "--port", str(self.sandbox_port), "--log-level", "warning",
                        "--history-lag-ms", str(scaled_ms(1_500, self.speed))]
        for venue, (cap, window) in self.limits.items():
            sandbox_args += ["--rate-limit", f"{venue}={cap}/{window}"]
        if self.sandbox_data is not None:
            sandbox_args += ["--data", str(self.sandbox_data)]
        self._base.append(("sandbox", await self.spawn("sandbox", self.exgate_command(*sandbox_args))))
        (self.workdir / "cache.toml").write_text(cache_config(self.speed))
        env = {"EXGATE_DATABASE_URL": self.database_url}
        await self._run("db-upgrade", self.exgate_command("db", "upgrade"), env)
        out = await self._run("tenant", self.exgate_command("tenants", "create", f"loadtest-{os.getpid()}"), env)
        self.tenant_key = out.strip().splitlines()[-1].strip()
        await self._ready("redis", self._base[0][1], self._redis_up)
        await self._ready("sandbox", self._base[1][1], lambda: _answers(f"{self.sandbox_url}/__sandbox/stats"))

    async def _run(self, name: str, args: list[str], env: Mapping[str, str]) -> str:
        proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT, env={**os.environ, **env})
        out, _ = await proc.communicate()
        (self.logs / f"{name}.log").write_bytes(out)
        if proc.returncode != 0:
            raise ConfigError(f"{' '.join(args[2:])} failed (exit {proc.returncode}); see {self.logs / name}.log")
        return out.decode()

    async def _redis_up(self) -> bool:
        client = redis.asyncio.Redis.from_url(self.redis_url, socket_connect_timeout=1)
        try:
            return bool(await client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            await client.aclose()

    async def _ready(self, name: str, proc: asyncio.subprocess.Process, probe, deadline_s: float = 90) -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if proc.returncode is not None:
                raise ConfigError(f"{name} exited with {proc.returncode}; see {self.logs / name}.log")
            if await probe():
                return
            await asyncio.sleep(0.1)
        raise ConfigError(f"{name} did not start within {deadline_s:.0f} s; see {self.logs / name}.log")

    def gateway_env(self, cache_on: bool, streams: bool = False) -> dict[str, str]:
        """The environment of one gateway: shared Redis and store, the sandbox as every venue's
        upstream, the scaled cache config, lease, soft deadline and budgets, and streams on or
        off (never inherited: a mode says)."""
        timeout_ms = 10_000
        return {
            "EXGATE_EXCHANGES": ",".join(self.venues),
            "EXGATE_UPSTREAMS": ",".join(f"{v}={self.sandbox_url}/{v}" for v in self.venues),
            "EXGATE_REDIS_URL": self.redis_url,
            "EXGATE_DATABASE_URL": self.database_url,
            "EXGATE_SECRET_KEYS": self.secret_key,
            "EXGATE_CACHE": "on" if cache_on else "off",
            "EXGATE_CACHE_CONFIG": str(self.workdir / "cache.toml"),
            "EXGATE_L1_TTL_MS": str(scaled_ms(1_000, self.speed)),
            "EXGATE_STALE_AFTER_MS": str(scaled_ms(1_000, self.speed)),
            "EXGATE_LOCK_LEASE_MS": str(max(timeout_ms + 1_000, scaled_ms(timeout_ms + 1_000, self.speed))),
            "EXGATE_UPSTREAM_TIMEOUT_MS": str(timeout_ms),
            "EXGATE_BUDGETS": _limits_spec(self.limits),
            "EXGATE_BUDGET_MAX_WAITERS": "5000",
            "EXGATE_STREAMS": "on" if streams else "off",
        }

    async def start_gateways(self, cache_on: bool, streams: bool = False) -> list[str]:
        """Stop the running gateways (if any), empty Redis, and start ``instances`` new ones with
        the cache on or off and streams on or off; returns their base URLs once every one is
        ready (with streams: once every venue's streams are live, or after 60 s)."""
        await self.stop_gateways()
        await self.flush_redis()
        env = self.gateway_env(cache_on, streams)
        self.gateway_urls = []
        for index in range(self.instances):
            port = free_port()
            name = f"gateway-{index}"
            proc = await self.spawn(name, self.exgate_command("serve", "--port", str(port), "--log-level", "warning"), env)
            self._gateways.append((name, proc))
            self.gateway_urls.append(f"http://127.0.0.1:{port}")
        for (name, proc), url in zip(self._gateways, self.gateway_urls, strict=True):
            await self._ready(name, proc, lambda url=url: _venues_ready(url))
        if streams:
            end = time.monotonic() + 60
            while time.monotonic() < end and not await _streams_live(self.gateway_urls[0], self.venues):
                await asyncio.sleep(0.2)
        return list(self.gateway_urls)

    async def flush_redis(self) -> None:
        """Empty the run's Redis (cache, budgets, locks) before a mode starts."""
        client = redis.asyncio.Redis.from_url(self.redis_url)
        try:
            await client.flushall()
        finally:
            await client.aclose()

    async def stop_gateways(self) -> None:
        gateways, self._gateways = self._gateways, []
        await _stop(gateways)

    async def close(self) -> None:
        """Stop every process (gateways first), killing any that does not exit within 10 s."""
        await self.stop_gateways()
        base, self._base = self._base, []
        await _stop(list(reversed(base)))


async def _answers(url: str) -> bool:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session, session.get(url) as r:
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


async def _venues_ready(url: str) -> bool:
    """Whether the gateway at ``url`` has loaded every venue's markets (``/healthz``)."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session, \
                session.get(f"{url}/healthz") as r:
            body = await r.json() if r.status == 200 else {}
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        return False
    statuses = set(body.get("exchanges", {}).values())
    return bool(statuses) and statuses == {"ready"}


async def _streams_live(url: str, venues: list[str]) -> bool:
    """Whether every stream kind of every venue is live (``GET /v1/{venue}/streams``)."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            for venue in venues:
                async with session.get(f"{url}/v1/{venue}/streams") as r:
                    body = await r.json() if r.status == 200 else {}
                states = {s.get("state") for s in body.get("streams", [])}
                if not states or states != {"live"}:
                    return False
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        return False
    return True


async def _stop(procs: list[tuple[str, asyncio.subprocess.Process]]) -> None:
    for _, proc in procs:
        if proc.returncode is None:
            proc.terminate()
    for _, proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
