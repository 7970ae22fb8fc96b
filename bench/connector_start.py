"""Cold vs warm start of ``exgate serve``: connector set-up before the first private answer.

Run: ``.venv/bin/python bench/connector_start.py [--connections 10] [--rounds 3]`` (part of
``make bench``). Starts a private ``redis-server``, an ``exgate sandbox`` and a migrated SQLite
store, makes ``--connections`` connections spread over the four venues through a first gateway,
then starts one ``exgate serve`` at a time and, as soon as its port answers, asks every
connection's account summary at once. Three starts are compared, each measured ``--rounds``
times (medians):

- ``cold``: connector state emptied (``exgate connectors invalidate``) and Redis flushed: the
  gateway loads every venue's markets and syncs each signed venue's clock with the exchange;
- ``warm (SQL)``: the state kept in the store, Redis flushed: read from the store once;
- ``warm (Redis)``: the state in the store and in Redis: no query, no call.

Printed per start: upstream calls before the first private answers other than the reads
themselves (markets, server time: the set-up; target warm: 0), counted by the sandbox, and the
time from the port answering to the last of the first answers (connector set-up plus one read
each; the baseline is the cold start measured in the same run, and the issue's reference is
the 1,700 ms per connector one app measured).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from exgate.loadtest.measure import classify  # noqa: E402
from exgate.loadtest.model import User  # noqa: E402
from exgate.loadtest.stack import SpawnedStack, free_port  # noqa: E402
from exgate.loadtest.traffic import provision  # noqa: E402
from tests.conftest import sandbox_data  # noqa: E402

VENUES = ["binanceusdm", "bybit", "hyperliquid", "pacifica"]


async def _get(session: aiohttp.ClientSession, url: str, **kw) -> tuple[int, bytes]:
    async with session.get(url, **kw) as r:
        return r.status, await r.read()


async def start_and_read(stack: SpawnedStack, users: list[User]) -> tuple[int, float, dict]:
    """Start one gateway, wait for its port, read every user's summary; returns (set-up calls,
    ms from the port answering to the last first answer, the sandbox's set-up operations)."""
    port = free_port()
    env = stack.gateway_env(cache_on=True)
    proc = await stack._spawn("bench-gateway", stack._exgate("serve", "--port", str(port), "--log-level", "warning"),
                              env)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            while True:
                if proc.returncode is not None:
                    raise RuntimeError("the gateway exited; see its log in the bench's folder")
                try:
                    await _get(session, f"{url}/healthz")
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.005)
            started = time.perf_counter()

            async def first(user: User) -> None:
                headers = {"Authorization": f"Bearer {stack.tenant_key}", "X-User-Id": user.user_id}
                while True:
                    status, body = await _get(session, f"{url}/v1/account/summary", headers=headers)
                    if status == 200:
                        return
                    if status not in (503,):
                        raise RuntimeError(f"first read of {user.user_id}: {status} {body[:200]!r}")
                    await asyncio.sleep(0.01)

            await asyncio.gather(*(first(u) for u in users))
            elapsed_ms = (time.perf_counter() - started) * 1000
            status, body = await _get(session, f"{stack.sandbox_url}/__sandbox/stats")
    finally:
        proc.terminate()
        await proc.wait()
    import orjson

    setup: dict[str, int] = {}
    for venue, counters in orjson.loads(body)["venues"].items():
        for operation, count in counters.get("by_operation", {}).items():
            if classify(venue, operation) != "account":
                setup[f"{venue} {operation}"] = count
    return sum(setup.values()), elapsed_ms, setup


async def control(session: aiohttp.ClientSession, stack: SpawnedStack) -> None:
    async with session.post(f"{stack.sandbox_url}/__sandbox/reset") as r:
        assert r.status == 200


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="exgate-bench-start-") as folder:
        async with SpawnedStack(1, Path(folder), VENUES, 1.0, lifted=True, sandbox_data=sandbox_data()) as stack:
            users = [User(i, VENUES[i % len(VENUES)], 0, True, True, False) for i in range(args.connections)]
            urls = await stack.start_gateways(cache_on=True)
            await provision(stack.sandbox_url, urls, stack.tenant_key, users)
            await stack.stop_gateways()
            env = {**os.environ, "EXGATE_DATABASE_URL": stack.database_url, "EXGATE_REDIS_URL": stack.redis_url}
            results: dict[str, list[tuple[int, float, dict]]] = {"cold": [], "warm (SQL)": [], "warm (Redis)": []}
            async with aiohttp.ClientSession() as session:
                for _ in range(args.rounds):
                    for kind in results:
                        if kind == "cold":
                            proc = await asyncio.create_subprocess_exec(
                                *stack._exgate("connectors", "invalidate"), env=env,
                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
                            if await proc.wait() != 0:
                                raise RuntimeError("exgate connectors invalidate failed")
                        if kind != "warm (Redis)":
                            await stack._flush_redis()
                        await control(session, stack)
                        results[kind].append(await start_and_read(stack, users))
    cold_ms = statistics.median(ms for _, ms, _ in results["cold"])
    print(f"{args.connections} connections over {', '.join(VENUES)}; medians of {args.rounds} starts")
    print(f"{'start':<14} {'set-up calls':>12} {'ms to first answers':>20} {'vs cold':>8}")
    for kind, runs in results.items():
        calls = statistics.median(c for c, _, _ in runs)
        ms = statistics.median(m for _, m, _ in runs)
        print(f"{kind:<14} {calls:>12.0f} {ms:>20.0f} {ms / cold_ms:>7.2f}x")
    print("cold set-up calls:", dict(sorted(results["cold"][-1][2].items())))
    print("warm (SQL) set-up calls:", dict(sorted(results["warm (SQL)"][-1][2].items())) or "none")


if __name__ == "__main__":
    asyncio.run(main())
