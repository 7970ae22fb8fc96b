"""Shared fixtures: recorded-payload location, real servers on loopback, a manual clock."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn


def fixtures_dir() -> Path | None:
    """The recorded payloads (``EXGATE_FIXTURES`` or ``../shared/fixtures``), or ``None``."""
    from tests import recorded

    return recorded.fixtures_root() if recorded.fixtures_available() else None


def require_fixtures() -> Path:
    """Skip (or, in CI with ``EXGATE_REQUIRE_FIXTURES=1``, fail) when the recordings are absent.

    Works at module level and inside fixtures.
    """
    root = fixtures_dir()
    if root is None:
        reason = "recorded payloads not found: expected ../shared/fixtures beside the checkout or EXGATE_FIXTURES"
        if os.environ.get("EXGATE_REQUIRE_FIXTURES") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason, allow_module_level=True)
    return root


def sandbox_data() -> Path | None:
    """The sandbox's data for tests that need a venue, not a recording: the recorded payloads
    when present, else ``None`` (each sandbox venue serves its synthetic data set), so the
    end-to-end tests run on a machine without ``../shared``. With ``EXGATE_REQUIRE_FIXTURES=1``
    (CI) absent recordings still fail."""
    root = fixtures_dir()
    if root is None and os.environ.get("EXGATE_REQUIRE_FIXTURES") == "1":
        require_fixtures()
    return root


def sandbox_data_args(flag: str = "--data") -> list[str]:
    """``[flag, DIR]`` for a spawned ``exgate sandbox`` / ``serve --sandbox`` on
    :func:`sandbox_data`; on synthetic data an empty folder, so a ``EXGATE_FIXTURES`` that
    names no recordings is not read."""
    global _EMPTY_DATA
    root = sandbox_data()
    if root is None:
        if _EMPTY_DATA is None:
            import tempfile

            _EMPTY_DATA = tempfile.TemporaryDirectory(prefix="exgate-synthetic-")  # removed at exit
        root = Path(_EMPTY_DATA.name)
    return [flag, str(root)]


_EMPTY_DATA = None


class ManualClock:
    """A clock in ms that moves only when a test says so."""

    def __init__(self, start_ms: int = 1_790_000_000_000):
        self.now = start_ms

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


class ServerThread:
    """Run an ASGI app under uvicorn on a free loopback port, in a thread with its own loop."""

    def __init__(self, app) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        for _ in range(600):
            if self.server.started:
                return self
            if not self.thread.is_alive():
                break
            threading.Event().wait(0.01)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def sandbox_stats(sandbox: ServerThread) -> dict:
    """``GET /__sandbox/stats`` of a running sandbox."""
    return httpx.get(f"{sandbox.url}/__sandbox/stats").json()


def path_count(stats: dict, venue: str, path: str) -> int:
    """Requests the sandbox answered for ``venue`` at ``path``."""
    return stats["venues"][venue]["by_path"].get(path, 0)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[ServerThread]:
    """One sandbox for the session, real clock: on recorded payloads when present, else on
    synthetic data (see :func:`sandbox_data`)."""
    from exgate.sandbox.app import create_sandbox_app

    with ServerThread(create_sandbox_app(sandbox_data())) as server:
        yield server


@pytest.fixture(scope="session")
def gateway_clock() -> ManualClock:
    """The clock of the session gateway: frozen unless a test advances it."""
    import time

    return ManualClock(time.time_ns() // 1_000_000)


@pytest.fixture(scope="session")
def gateway(sandbox: ServerThread, gateway_clock: ManualClock) -> Iterator[ServerThread]:
    """An ``exgate serve`` equivalent pointed at the sandbox for all four venues."""
    from exgate.http.app import create_app
    from exgate.venues.registry import DEFAULT_VENUES, build_adapters

    upstreams = {venue: f"{sandbox.url}/{venue}" for venue in DEFAULT_VENUES}
    app = create_app(build_adapters(DEFAULT_VENUES, upstreams), clock=gateway_clock)
    with ServerThread(app) as server:
        yield server


# -- Redis ------------------------------------------------------------------------------------
TEST_REDIS_URL = os.environ.get("EXGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A real Redis database for tests (``EXGATE_TEST_REDIS_URL``, default db 15 on the local
    server). Fails, never skips, when Redis is not there: ``.ci/run`` starts one."""
    import redis

    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis not reachable at {TEST_REDIS_URL} ({exc}); start it (see .ci/run)", pytrace=False)
    finally:
        client.close()
    return TEST_REDIS_URL


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    """``redis_url`` with its database emptied first."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    return redis_url


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- exgate processes ---------------------------------------------------------------------------
def spawn_exgate(args: list[str], env: dict[str, str]):
    """Start ``python -m exgate ARGS`` with ``env`` added to this process's environment."""
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "exgate", *args], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(url: str, what: str, proc, path: str = "/healthz", deadline_s: float = 60) -> None:
    """Block until ``url + path`` answers 200 (and, for a gateway, every venue is ready)."""
    import time

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            r = httpx.get(url + path, timeout=2)
            if r.status_code == 200 and (path != "/healthz" or set(r.json()["exchanges"].values()) == {"ready"}):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready at {url} after {deadline_s} s")


def stop_all(procs) -> None:
    """Terminate processes, killing those that do not exit within 10 s."""
    import subprocess

    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
