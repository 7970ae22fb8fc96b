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
themselves (markets, server time: the set-up; target warm: 0), counted by the sandbox; the
time from the port answering to the last of the first answers; the same reads sent again at
once (what the reads cost alone); and their difference, the set-up. The baseline is the cold
start measured in the same run; the issue's reference is 1,700 ms per connector against real
exchanges, where each set-up call is a network round trip (the sandbox answers in ms).
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


async def start_and_read(stack: SpawnedStack, users: list[User]) -> tuple[int, float, float, dict]:
    """Start one gateway, wait for its port, read every user's summary twice; returns (set-up
    calls, ms from the port answering to the last first answer, ms of the same reads again
    (the reads alone), the sandbox's set-up operations)."""
    port = free_port()
    # every first read goes to the venue (the previous start's answers stay in Redis 5 s otherwise)
    env = {**stack.gateway_env(cache_on=True), "EXGATE_CACHE_TTL_MS": "account=1"}
    proc = await stack.spawn("bench-gateway", stack.exgate_command("serve", "--port", str(port), "--log-level", "warning"),
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
            again = time.perf_counter()  # the same reads once set up: what the reads cost alone
            await asyncio.gather(*(first(u) for u in users))
            read_ms = (time.perf_counter() - again) * 1000
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
    return sum(setup.values()), elapsed_ms, read_ms, setup


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
            results: dict[str, list[tuple[int, float, float, dict]]] = {"cold": [], "warm (SQL)": [], "warm (Redis)": []}
            async with aiohttp.ClientSession() as session:
                for _ in range(args.rounds):
                    for kind in results:
                        if kind == "cold":
                            proc = await asyncio.create_subprocess_exec(
                                *stack.exgate_command("connectors", "invalidate"), env=env,
                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
                            if await proc.wait() != 0:
                                raise RuntimeError("exgate connectors invalidate failed")
                        if kind != "warm (Redis)":
                            await stack.flush_redis()
                        await control(session, stack)
                        results[kind].append(await start_and_read(stack, users))
    cold_ms = statistics.median(r[1] - r[2] for r in results["cold"])
    print(f"{args.connections} connections over {', '.join(VENUES)}; medians of {args.rounds} starts")
    print(f"{'start':<14} {'set-up calls':>12} {'first answers ms':>17} {'reads alone ms':>15} "
          f"{'set-up ms':>10} {'vs cold':>8}")
    for kind, runs in results.items():
        calls = statistics.median(r[0] for r in runs)
        first = statistics.median(r[1] for r in runs)
        alone = statistics.median(r[2] for r in runs)
        setup = statistics.median(r[1] - r[2] for r in runs)
        print(f"{kind:<14} {calls:>12.0f} {first:>17.0f} {alone:>15.0f} {setup:>10.0f} {setup / cold_ms:>7.2f}x")
    print("cold set-up calls:", dict(sorted(results["cold"][-1][3].items())))
    print("warm (SQL) set-up calls:", dict(sorted(results["warm (SQL)"][-1][3].items())) or "none")

if __name__ == "__main__":
    asyncio.run(main())
