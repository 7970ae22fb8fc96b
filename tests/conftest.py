"""Shared fixtures: recorded-payload location, real servers on loopback, a manual clock."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

# Gateways built by tests (and the ones they spawn) stream nothing unless a test says so: the
# stream tests turn it on; every other test counts the REST calls it causes exactly.
os.environ.setdefault("EXGATE_STREAMS", "off")


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
        # IPPROTO_TCP given: asyncio sets TCP_NODELAY on accepted sockets only when the listening
        # socket says it is TCP; without it every answer waited ~40 ms for the client's delayed ACK
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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


def ccxt_client(venue: str, sandbox_url: str, config: dict | None = None):
    """A real ``ccxt.async_support`` client of ``venue`` (a ccxt id, built with ``config``) whose
    every API URL points at the sandbox's ``/{venue}`` under ``sandbox_url``."""
    import ccxt.async_support as ccxt_async

    from exgate.venues.upstream import rewrite_urls

    exchange = getattr(ccxt_async, venue)(dict(config or {}))
    exchange.urls["api"] = rewrite_urls(exchange.urls["api"], f"{sandbox_url}/{venue}", exchange.hostname)
    return exchange


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


REDIS_BACKENDS = ("redis", "cluster")
"""The shared-Redis backends the Redis suites run over: one server, and a 3-master cluster."""


def flush_redis(url: str) -> None:
    """Empty the test database (``redis://``) or every primary of the cluster (``redis+cluster://``)."""
    import redis
    from redis.cluster import ClusterNode, RedisCluster

    if url.startswith("redis+cluster://"):
        seeds = [ClusterNode(*seed.rsplit(":", 1)) for seed in url.removeprefix("redis+cluster://").split(",")]
        cluster = RedisCluster(startup_nodes=seeds)
        cluster.flushdb(target_nodes=RedisCluster.PRIMARIES)
        cluster.close()
        return
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def clean_redis_url(request: pytest.FixtureRequest, backend: str) -> str:
    """A clean URL of ``backend`` ("redis": ``EXGATE_TEST_REDIS_URL``; "cluster": the session's
    local Redis Cluster), usable from fixtures that choose the backend themselves."""
    url = request.getfixturevalue("redis_url" if backend == "redis" else "redis_cluster")
    flush_redis(url)
    return url


@pytest.fixture(params=REDIS_BACKENDS)
def clean_redis(request: pytest.FixtureRequest) -> str:
    """A clean shared Redis: each test using it runs once on one server, once on a cluster."""
    return clean_redis_url(request, request.param)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local 3-master Redis Cluster for the session (no replicas): ``redis+cluster://`` URL.
    Fails, never skips, without redis-server and redis-cli."""
    with local_redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as (url, _):
        yield url


@contextlib.contextmanager
def local_redis_cluster(workdir: Path, node_timeout_ms: int = 15_000) -> Iterator[tuple[str, list]]:
    """Start three ``redis-server --cluster-enabled yes`` on free loopback ports (and free bus
    ports), join them with ``redis-cli --cluster create`` (no replicas), wait for
    ``cluster_state:ok``; yield the ``redis+cluster://`` URL and the server processes (in the
    URL's order); stop them after."""
    import shutil
    import subprocess
    import time

    import redis

    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.fail("redis-server and redis-cli are needed to start a local Redis Cluster", pytrace=False)
    chosen: set[int] = set()
    while len(chosen) < 6:  # three client ports and three cluster-bus ports, all distinct
        chosen.add(free_port())
    ports, bus_ports = sorted(chosen)[:3], sorted(chosen)[3:]
    procs = []
    try:
        for port, bus_port in zip(ports, bus_ports):
            procs.append(subprocess.Popen(
                [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-port", str(bus_port), "--cluster-config-file", str(workdir / f"nodes-{port}.conf"),
                 "--cluster-node-timeout", str(node_timeout_ms), "--save", "", "--appendonly", "no",
                 "--dir", str(workdir), "--daemonize", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        nodes = [redis.Redis(port=port, socket_connect_timeout=0.5) for port in ports]

        def answers(node: redis.Redis) -> bool:
            try:
                return bool(node.ping())
            except redis.ConnectionError:
                return False

        deadline = time.monotonic() + 20
        while not all(answers(node) for node in nodes):
            if time.monotonic() > deadline or any(proc.poll() is not None for proc in procs):
                raise RuntimeError("a cluster redis-server did not start")
            time.sleep(0.05)
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{port}" for port in ports),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        while not all(node.cluster("info")["cluster_state"] == "ok" for node in nodes):
            if time.monotonic() > deadline + 40:
                raise RuntimeError("the local Redis Cluster never reached cluster_state:ok")
            time.sleep(0.05)
        for node in nodes:
            node.close()
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports), procs
    finally:
        stop_all(procs)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- exgate processes ---------------------------------------------------------------------------
_MIGRATED_DB: dict[str, str] = {}


def migrated_database_url() -> str:
    """An SQLite database at the head revision, made once per test session (``serve`` refuses
    an unmigrated one): for the ``exgate serve`` processes tests start."""
    if "url" not in _MIGRATED_DB:
        import tempfile

        from exgate.store import upgrade

        folder = tempfile.mkdtemp(prefix="exgate-db-")
        url = f"sqlite+aiosqlite:///{folder}/exgate.db"
        upgrade(url)
        _MIGRATED_DB["url"] = url
    return _MIGRATED_DB["url"]


def spawn_exgate(args: list[str], env: dict[str, str]):
    """Start ``python -m exgate ARGS`` with ``env`` added to this process's environment (and,
    for ``serve``, a migrated database unless ``env`` names one)."""
    import subprocess
    import sys

    if args[:1] == ["serve"] and "EXGATE_DATABASE_URL" not in env:
        env = {**env, "EXGATE_DATABASE_URL": migrated_database_url()}
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
