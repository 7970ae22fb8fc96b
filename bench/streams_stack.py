"""The processes of ``bench/streams.py``: Redis (private or a given database), the sandbox, a
migrated store and N streaming or non-streaming gateways, on ports of a given range.

Built on :class:`exgate.loadtest.stack.SpawnedStack` (same environment, logs and stopping), with
two differences the bench needs on a shared machine: ``--redis-url`` uses one database of an
existing Redis (emptied with ``FLUSHDB`` only, never ``FLUSHALL``) instead of a private
``redis-server``, and every port comes from ``--ports LO-HI`` when given.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import redis.asyncio

from exgate.errors import ConfigError
from exgate.loadtest.stack import SpawnedStack, _answers, _venues_ready, cache_config, free_port, scaled_ms


class PortPool:
    """Free TCP ports: from ``LO-HI`` in order, or (``spec`` ``None``) any the OS picks.

    Raises:
        ValueError: ``spec`` is not ``LO-HI`` with 1 <= LO <= HI <= 65535.
        ConfigError: every port of the range is taken.
    """

    def __init__(self, spec: str | None):
        self.range: tuple[int, int] | None = None
        self.next = 0
        if spec:
            lo, _, hi = spec.partition("-")
            if not (lo.isdigit() and hi.isdigit() and 1 <= int(lo) <= int(hi) <= 65535):
                raise ValueError(f"--ports must be LO-HI (e.g. 18500-18599), got {spec!r}")
            self.range = (int(lo), int(hi))
            self.next = int(lo)

    def take(self) -> int:
        """A port nothing listens on now (a range's ports are handed out once each)."""
        if self.range is None:
            return free_port()
        while self.next <= self.range[1]:
            port, self.next = self.next, self.next + 1
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        raise ConfigError(f"no free port left in {self.range[0]}-{self.range[1]}", field="--ports")


class BenchStack(SpawnedStack):
    """Redis, the sandbox, the store and the gateways of ``bench/streams.py``.

    Args:
        workdir: store, cache config and logs (``workdir/logs``).
        venues: venues the gateways serve (``EXGATE_EXCHANGES``).
        ports: where every port comes from.
        redis_url: an existing Redis database to use (emptied before each phase); ``None``:
            a private ``redis-server``.
        sandbox_data: recorded payloads for the sandbox (``None``: its synthetic data).

    Every process is stopped on exit (gateways first), whatever happened.
    """

    def __init__(self, workdir: Path, venues: list[str], ports: PortPool, *, redis_url: str | None,
                 sandbox_data: Path | None):
        super().__init__(1, workdir, venues, 1.0, lifted=True, sandbox_data=sandbox_data)
        self.ports = ports
        self.external_redis = redis_url
        self.redis_port = 0 if redis_url else ports.take()
        self.sandbox_port = ports.take()

    @property
    def redis_url(self) -> str:
        return self.external_redis or f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def gateway_pids(self) -> list[int]:
        """Process ids of the running gateways, in the order of :attr:`gateway_urls`."""
        return [proc.pid for _, proc in self._gateways]

    async def _start_base(self) -> None:
        if self.external_redis is None:
            server = shutil.which("redis-server")
            if server is None:
                raise ConfigError("needs redis-server on PATH (Debian: apt-get install redis-server) or --redis-url",
                                  field="--redis-url")
            proc = await self.spawn("redis", [server, "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                              "--save", "", "--appendonly", "no", "--dir", str(self.workdir)])
            self._base.append(("redis", proc))
            await self._ready("redis", proc, self._redis_up)
        elif not await self._redis_up():
            raise ConfigError(f"no Redis answers at {self.external_redis}", field="--redis-url")
        args = ["sandbox", "--port", str(self.sandbox_port), "--log-level", "warning"]
        for venue, (cap, window) in self.limits.items():
            args += ["--rate-limit", f"{venue}={cap}/{window}"]
        if self.sandbox_data is not None:
            args += ["--data", str(self.sandbox_data)]
        sandbox = await self.spawn("sandbox", self.exgate_command(*args))
        self._base.append(("sandbox", sandbox))
        (self.workdir / "cache.toml").write_text(cache_config(self.speed))
        await self._run("db-upgrade", self.exgate_command("db", "upgrade"), {"EXGATE_DATABASE_URL": self.database_url})
        await self._ready("sandbox", sandbox, lambda: _answers(f"{self.sandbox_url}/__sandbox/stats"))

    async def flush_redis(self) -> None:
        """Empty this run's Redis database (only it: ``FLUSHDB``)."""
        client = redis.asyncio.Redis.from_url(self.redis_url)
        try:
            await client.flushdb()
        finally:
            await client.aclose()

    async def close(self) -> None:
        """Stop every process; a ``--redis-url`` database is emptied after the gateways stop."""
        try:
            await self.stop_gateways()
            if self.external_redis is not None:
                await self.flush_redis()
        finally:
            await super().close()

    async def start(self, instances: int, streams: bool, top_n: int, symbols: str = "") -> list[str]:
        """Stop the running gateways, empty Redis, start ``instances`` gateways with streams on
        (tier 1: top ``top_n`` per venue plus the bases ``symbols``) or off; their base URLs once
        every one has loaded its venues' markets."""
        await self.stop_gateways()
        await self.flush_redis()
        env = {**self.gateway_env(cache_on=True), "EXGATE_EXCHANGES": ",".join(self.venues),
               "EXGATE_UPSTREAMS": ",".join(f"{v}={self.sandbox_url}/{v}" for v in self.venues),
               "EXGATE_STREAMS": "on" if streams else "off", "EXGATE_STREAM_TOP_N": str(top_n),
               "EXGATE_STREAM_SYMBOLS": symbols, "EXGATE_STREAM_STALL_MS": str(scaled_ms(5_000, self.speed))}
        self.gateway_urls = []
        for index in range(instances):
            port = self.ports.take()
            name = f"gateway-{'on' if streams else 'off'}-{instances}x{index}"
            proc = await self.spawn(name, self.exgate_command("serve", "--port", str(port), "--log-level", "warning"), env)
            self._gateways.append((name, proc))
            self.gateway_urls.append(f"http://127.0.0.1:{port}")
        for (name, proc), url in zip(self._gateways, self.gateway_urls, strict=True):
            await self._ready(name, proc, lambda url=url: _venues_ready(url))
        return list(self.gateway_urls)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, s) of process ``pid`` so far, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    # after the ")" of the command: state is field 3, utime 14 and stime 15 (1-based, man proc)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
