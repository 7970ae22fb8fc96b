"""Streams across instances: real ``exgate serve`` processes sharing one Redis (the test database)
and one spawned sandbox.

Each upstream stream (venue, kind) has exactly one owner (the leased Redis lock
``exgate:stream:owner:{venue}:{kind}``): the sandbox sees each topic subscribed once however
many instances run, every instance serves the streamed keys from the owner's entries (non-owners
through Redis), a SIGKILLed owner is replaced within its lease with no error reaching readers,
and idle instances start and stop together on one control command.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import flush_redis, migrated_database_url, sandbox_data_args, stop_all, wait_ready
from tests.streams_harness import KINDS, wait_for

VENUES = ("hyperliquid", "pacifica")
LEASE_MS = 2_000
ADMIN_TOKEN = "owners-admin-token"
HANG_GUARD_S = 45.0
_used: set[int] = set()


def port() -> int:
    """A free port in this suite's range (18400-18499)."""
    for candidate in range(18400, 18500):
        if candidate in _used:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        _used.add(candidate)
        return candidate
    raise RuntimeError("no free port left in 18400-18499")


class Proc:
    """One spawned ``python -m exgate`` process, its URL and its log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path, url: str) -> None:
        self.name, self.url = name, url
        self.log = logs / f"{name}.log"
        with open(self.log, "wb") as out:
            self.popen = subprocess.Popen([sys.executable, "-m", "exgate", *args], env={**os.environ, **env},
                                          stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    @property
    def instance(self) -> str:
        """The supervisor's instance id (``hostname:pid``, see :class:`~exgate.streams.StreamSupervisor`)."""
        return f"{socket.gethostname()}:{self.popen.pid}"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@contextmanager
def processes(logs: Path) -> Iterator[list[Proc]]:
    """Every process added to the list is stopped on exit (killed if it will not stop); on a
    failure the logs' ends are printed."""
    procs: list[Proc] = []
    try:
        yield procs
    except BaseException:
        for p in procs:
            print(f"--- {p.name} ({p.url}) ---\n{p.tail()}")
        raise
    finally:
        stop_all([p.popen for p in procs if p.popen.poll() is None])


def gateway_env(redis_url: str, sandbox_url: str, streams: str = "on") -> dict[str, str]:
    return {
        "EXGATE_EXCHANGES": ",".join(VENUES),
        "EXGATE_UPSTREAMS": ",".join(f"{v}={sandbox_url}/{v}" for v in VENUES),
        "EXGATE_REDIS_URL": redis_url,
        "EXGATE_DATABASE_URL": migrated_database_url(),
        "EXGATE_STREAMS": streams,
        "EXGATE_STREAM_TOP_N": "0",
        "EXGATE_STREAM_SYMBOLS": "BTC",
        "EXGATE_STREAM_OWNER_LEASE_MS": str(LEASE_MS),
        "EXGATE_ADMIN_TOKEN": ADMIN_TOKEN,
    }


def start_gateways(procs: list[Proc], logs: Path, n: int, env: dict[str, str], *extra: str,
                   prefix: str = "gateway") -> list[Proc]:
    started = []
    for i in range(n):
        p = port()
        started.append(Proc(f"{prefix}-{i}", ["serve", "--port", str(p), "--log-level", "warning", *extra], env, logs,
                            f"http://127.0.0.1:{p}"))
    procs.extend(started)
    for g in started:
        wait_ready(g.url, g.name, g.popen)
    return started


# -- what the sandbox, Redis and the gateways say ------------------------------------------------
def ws(sandbox: str, venue: str) -> dict:
    return httpx.get(f"{sandbox}/__sandbox/stats", timeout=10).json()["venues"][venue]["ws"]


def rest_calls(sandbox: str) -> dict[str, dict[str, int]]:
    stats = httpx.get(f"{sandbox}/__sandbox/stats", timeout=10).json()["venues"]
    return {v: stats[v]["by_operation"] for v in VENUES}


def streams_body(gateway: Proc, venue: str) -> dict:
    return httpx.get(f"{gateway.url}/v1/{venue}/streams", timeout=10).json()


def statuses(gateway: Proc, venue: str) -> dict[str, dict]:
    return {s["kind"]: s for s in streams_body(gateway, venue)["streams"]}


def owners(client: redis.Redis, venue: str) -> dict[str, str | None]:
    """The lease holder of each stream kind of ``venue`` (from the lock itself)."""
    from exgate.streams.owner import owner_key

    out = {}
    for kind in KINDS:
        raw = client.get(owner_key(venue, kind))
        out[kind] = raw.decode() if raw is not None else None
    return out


def connections(gateway: Proc, venue: str) -> int:
    """``exgate_stream_connections{exchange=venue}`` on ``gateway``'s /metrics."""
    for line in httpx.get(f"{gateway.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(f'exgate_stream_connections{{exchange="{venue}"}}'):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def reads(base: str, venue: str) -> dict[str, httpx.Response]:
    """One read of each streamed key of ``venue``'s BTC perpetual."""
    url = f"{base}/v1/{venue}"
    with httpx.Client(timeout=10) as c:
        return {
            "book": c.get(f"{url}/markets/BTC/orderbook", params={"depth": 10}),
            "trades": c.get(f"{url}/markets/BTC/trades", params={"limit": 20}),
            "ticker": c.get(f"{url}/prices", params={"symbols": "BTC"}),
            "candle": c.get(f"{url}/markets/BTC/klines", params={"interval": "1m", "limit": 50}),
        }


def one_owner_each(sandbox: str, client: redis.Redis, gateways: list[Proc], venue: str) -> dict | None:
    """The owner of each kind once the streams of ``venue`` are settled: every kind leased by one
    of ``gateways`` and live in that owner's status, each sandbox topic subscribed by exactly one
    session, and the sandbox's open sockets those the owners report; else ``None``."""
    by_instance = {g.instance: g for g in gateways}
    held = owners(client, venue)
    if any(o not in by_instance for o in held.values()):
        return None
    for kind, owner in held.items():
        status = statuses(by_instance[owner], venue)[kind]
        if status["state"] != "live" or status["owner"] != owner:
            return None
    sockets = ws(sandbox, venue)
    topics = sockets["by_topic"]
    if len(topics) < len(KINDS) or set(topics.values()) != {1}:
        return None
    if sockets["sockets_open"] != sum(connections(g, venue) for g in gateways):
        return None
    return {"owners": held, "ws": sockets}


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stream-instances")


@pytest.fixture(scope="module")
def sandbox(logs: Path) -> Iterator[str]:
    with processes(logs) as procs:
        p = port()
        url = f"http://127.0.0.1:{p}"
        procs.append(Proc("sandbox", ["sandbox", "--port", str(p), *sandbox_data_args()], {}, logs, url))
        wait_ready(url, "sandbox", procs[0].popen, path="/__sandbox/stats")
        yield url


@pytest.fixture(scope="module")
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="class")
def trio(sandbox: str, redis_url: str, logs: Path, rclient: redis.Redis) -> Iterator[list[Proc]]:
    """Three streaming gateways, each stream settled on one owner; stopped after the class (the
    idle test after it needs the sandbox's sockets and the control channel to itself)."""
    flush_redis(redis_url)
    with processes(logs) as procs:
        gateways = start_gateways(procs, logs, 3, gateway_env(redis_url, sandbox))
        for venue in VENUES:
            wait_for(lambda: one_owner_each(sandbox, rclient, gateways, venue), f"one live owner per {venue} stream",
                     timeout_s=HANG_GUARD_S, poll_s=0.2)
        yield gateways


class TestThreeInstances:
    """Three streaming instances on one Redis."""

    @pytest.mark.parametrize("venue", VENUES)
    def test_each_stream_has_one_upstream_subscription_and_every_instance_serves_it(self, sandbox, rclient, trio,
                                                                                    venue):
        settled = one_owner_each(sandbox, rclient, trio, venue)
        assert settled is not None
        held = settled["owners"]
        # one socket per instance owning at least one kind of the venue, whatever the split
        assert settled["ws"]["sockets_open"] == len(set(held.values())), settled
        by_instance = {g.instance: g for g in trio}
        httpx.post(f"{sandbox}/__sandbox/reset", timeout=10)
        for gateway in trio:
            for kind, response in reads(gateway.url, venue).items():
                assert response.status_code == 200, (gateway.name, kind, response.text)
                assert response.headers["x-cache-source"] == "stream", (gateway.name, kind)
                # the owner answers from its own copy; the others read the owner's entry in Redis
                tier = "l1" if held[kind] == gateway.instance else "l2"
                assert response.headers["x-cache-tier"] == tier, (gateway.name, kind, held[kind])
        assert rest_calls(sandbox) == {v: {} for v in VENUES}
        # an instance that does not own a kind shows that kind's owner's status record
        for kind, owner in held.items():
            for gateway in trio:
                if gateway.instance == owner:
                    continue
                status = statuses(gateway, venue)[kind]
                assert status["owner"] == owner and status["state"] == "live", (gateway.name, status)
                assert status["messages"] > 0 and status["symbols"] == statuses(by_instance[owner], venue)[kind][
                    "symbols"]

    def test_a_killed_owner_is_replaced_and_readers_see_no_error(self, sandbox, rclient, trio):
        victim_id = statuses(trio[0], "hyperliquid")["book"]["owner"]
        [victim] = [g for g in trio if g.instance == victim_id]
        survivors = [g for g in trio if g is not victim]
        seen: list[tuple[str, str, str, int, str | None]] = []
        stop = threading.Event()

        def poll(gateway: Proc) -> None:
            while not stop.is_set():
                for venue in VENUES:
                    for kind, r in reads(gateway.url, venue).items():
                        seen.append((gateway.name, venue, kind, r.status_code, r.headers.get("x-cache-source")))

        pollers = [threading.Thread(target=poll, args=(g,), daemon=True) for g in survivors]
        for t in pollers:
            t.start()
        try:
            wait_for(lambda: len(seen) >= 8, "the readers to start", timeout_s=HANG_GUARD_S)
            victim.popen.send_signal(signal.SIGKILL)
            victim.popen.wait(timeout=10)
            for venue in VENUES:
                settled = wait_for(lambda: one_owner_each(sandbox, rclient, survivors, venue),
                                   f"{venue}: every stream owned by a survivor, once", timeout_s=HANG_GUARD_S,
                                   poll_s=0.2)
                assert victim_id not in settled["owners"].values()
                for gateway in survivors:  # every survivor sees the new owners' records (written each heartbeat)
                    wait_for(lambda: {k: (s["owner"], s["state"]) for k, s in statuses(gateway, venue).items()},
                             f"{gateway.name} to show the new {venue} owners live", timeout_s=HANG_GUARD_S,
                             done=lambda got: got == {k: (o, "live") for k, o in settled["owners"].items()})
            reads_after = len(seen)
            wait_for(lambda: len(seen) >= reads_after + 16, "reads after the handover", timeout_s=HANG_GUARD_S)
        finally:
            stop.set()
            for t in pollers:
                t.join(timeout=30)
        errors = [s for s in seen if s[3] >= 400]
        assert not errors, errors[:20]
        assert {s[4] for s in seen} <= {"stream", "rest"}
        # once settled, the survivors serve every key from the new owners' streams again
        for gateway in survivors:
            for venue in VENUES:
                wait_for(lambda: {k: r.headers.get("x-cache-source") for k, r in reads(gateway.url, venue).items()},
                         f"{gateway.name} {venue} reads from the streams", timeout_s=HANG_GUARD_S,
                         done=lambda got: set(got.values()) == {"stream"})


def test_idle_instances_start_and_stop_together(sandbox, redis_url, logs, rclient):
    from exgate.bus.control import control_channel

    flush_redis(redis_url)
    # the trio has gone: its sockets close with it
    for venue in VENUES:
        wait_for(lambda: ws(sandbox, venue), f"{venue}: no socket left", timeout_s=HANG_GUARD_S,
                 done=lambda s: s["sockets_open"] == 0 and s["by_topic"] == {})
    with processes(logs) as procs:
        pair = start_gateways(procs, logs, 2, gateway_env(redis_url, sandbox), "--idle", prefix="idle")
        for gateway in pair:
            for venue in VENUES:
                body = streams_body(gateway, venue)
                assert body["enabled"] and not body["running"], body
                assert {s["state"] for s in body["streams"]} == {"stopped"}, body
        for venue in VENUES:
            assert ws(sandbox, venue)["by_topic"] == {} and ws(sandbox, venue)["sockets_open"] == 0

        channel = control_channel(rclient)
        wait_for(lambda: rclient.pubsub_numsub(channel)[0][1], "both control listeners", timeout_s=HANG_GUARD_S,
                 done=lambda n: n == 2)
        cli = subprocess.run([sys.executable, "-m", "exgate", "streams", "start", "--exchange", "hyperliquid"],
                             env={**os.environ, "EXGATE_REDIS_URL": redis_url}, capture_output=True, text=True,
                             timeout=60)
        assert cli.returncode == 0, cli.stdout + cli.stderr
        assert "2 listeners received it" in cli.stdout
        for gateway in pair:
            wait_for(lambda: streams_body(gateway, "hyperliquid")["running"], f"{gateway.name} running",
                     timeout_s=HANG_GUARD_S)
        settled = wait_for(lambda: one_owner_each(sandbox, rclient, pair, "hyperliquid"),
                           "one live owner per hyperliquid stream", timeout_s=HANG_GUARD_S, poll_s=0.2)
        assert set(settled["owners"].values()) <= {g.instance for g in pair}
        for gateway in pair:
            assert not streams_body(gateway, "pacifica")["running"]
            assert {k: r.headers.get("x-cache-source") for k, r in reads(gateway.url, "hyperliquid").items()} == \
                {k: "stream" for k in KINDS}
        assert ws(sandbox, "pacifica")["by_topic"] == {}

        refused = httpx.post(f"{pair[0].url}/v1/streams/stop", params={"exchange": "hyperliquid"}, timeout=10)
        assert refused.status_code == 401
        stopped = httpx.post(f"{pair[0].url}/v1/streams/stop", params={"exchange": "hyperliquid"},
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["running"] == []
        for gateway in pair:
            wait_for(lambda: streams_body(gateway, "hyperliquid"), f"{gateway.name} stopped", timeout_s=HANG_GUARD_S,
                     done=lambda b: not b["running"] and {s["state"] for s in b["streams"]} == {"stopped"})
        wait_for(lambda: ws(sandbox, "hyperliquid"), "hyperliquid sockets closed", timeout_s=HANG_GUARD_S,
                 done=lambda s: s["sockets_open"] == 0 and s["by_topic"] == {})
        assert owners(rclient, "hyperliquid") == {k: None for k in KINDS}
        httpx.post(f"{sandbox}/__sandbox/reset", timeout=10)
        for gateway in pair:
            answers = reads(gateway.url, "hyperliquid")
            answers.pop("trades")  # Hyperliquid has no REST trades: without its stream there is no source
            for kind, response in answers.items():
                assert response.status_code == 200, (gateway.name, kind, response.text)
                assert response.headers["x-cache-source"] == "rest", (gateway.name, kind)
        assert rest_calls(sandbox)["hyperliquid"], "the reads went to the venue's REST API"


def test_a_short_owner_lease_is_renewed_before_it_expires(sandbox, redis_url, logs, rclient):
    """``EXGATE_STREAM_OWNER_LEASE_MS`` accepts 500 ms, less than the supervisor's 1 s heartbeat:
    the owner must still renew in time (every third of the lease), or its streams flap between
    instances and their entries are withdrawn at each change."""
    from exgate.streams.owner import owner_key

    flush_redis(redis_url)
    env = {**gateway_env(redis_url, sandbox), "EXGATE_EXCHANGES": "hyperliquid", "EXGATE_STREAM_OWNER_LEASE_MS": "500"}
    with processes(logs) as procs:
        pair = start_gateways(procs, logs, 2, env, prefix="short")
        settled = wait_for(lambda: one_owner_each(sandbox, rclient, pair, "hyperliquid"),
                           "one live owner per hyperliquid stream", timeout_s=HANG_GUARD_S, poll_s=0.2)
        book = settled["owners"]["book"]
        before = statuses(pair[0], "hyperliquid")["book"]["messages"]
        samples = []
        # some 6 lease lengths (more than 3 heartbeats), sampled ten times per lease: the lock never lapses nor moves
        while statuses(pair[0], "hyperliquid")["book"]["messages"] < before + 5 or len(samples) < 60:
            raw = rclient.get(owner_key("hyperliquid", "book"))
            samples.append(raw.decode() if raw is not None else None)
            threading.Event().wait(0.05)
            assert len(samples) < 1_000, "the book stream stopped getting messages"
        assert set(samples) == {book}, {o: samples.count(o) for o in set(samples)}
