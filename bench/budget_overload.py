"""Upstream budget under overload: 3 gateways sharing Redis, offered 3x a sandbox budget.

Run: ``make bench`` (or ``.venv/bin/python bench/budget_overload.py``). Starts an
``exgate sandbox`` whose Binance USD-M budget is lowered to ``--capacity`` weight per
``--window-ms`` and three ``exgate serve`` processes with the same budget on one Redis
database, then offers 3x that budget of uncacheable candle reads (weight 1 each) for
``--windows`` whole windows. Meanwhile this process takes order-class (high priority) weight
from the same shared budget once a second, as the order routes will. It prints the weight the
exchange admitted per window against its budget (target 95-100 %, never over), the 429/418
count the exchange sent (target 0), and the wait p99 of the high-priority class.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import free_port, spawn_exgate, stop_all, wait_ready  # noqa: E402
from tests.test_budget_overload import offer_load  # noqa: E402


async def order_probe(redis_url: str, capacity: int, window_ms: int, stop: asyncio.Event) -> list[float]:
    """Acquire 1 weight at order priority every second from the shared budget; the waits (s)."""
    from exgate.budget import BudgetGate, Priority, RedisBudgetStore
    from exgate.venues.metering import METERING, with_override

    store = RedisBudgetStore(redis_url)
    waits: list[float] = []
    try:
        async with BudgetGate("binanceusdm", with_override(METERING["binanceusdm"], capacity, window_ms), store) as gate:
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                started = loop.time()
                await gate.acquire(1, Priority.ORDER)
                waits.append(loop.time() - started)
                await asyncio.sleep(1.0)
    finally:
        await store.close()
    return waits


async def run(urls: list[str], sandbox: str, redis_url: str, capacity: int, window_ms: int,
              windows: int) -> tuple[list[int], dict, list[float], list[httpx.Response]]:
    now_ms = time.time_ns() // 1_000_000
    first = (now_ms // window_ms + 1) * window_ms  # measure whole windows only
    await asyncio.sleep((first - now_ms) / 1000)
    stop = asyncio.Event()
    probe = asyncio.create_task(order_probe(redis_url, capacity, window_ms, stop))
    responses = await offer_load(urls, windows * window_ms / 1000 + 1.0, weight_per_s=3 * capacity * 1000 / window_ms)
    stop.set()
    waits = await probe
    await asyncio.sleep(window_ms / 1000)  # let the last measured window close
    venue = httpx.get(sandbox + "/__sandbox/stats").json()["venues"]["binanceusdm"]
    per_window = {start: used for start, used in venue["limit"]["windows"]}
    admitted = [per_window.get(first + i * window_ms, 0) for i in range(windows)]
    return admitted, venue, waits, responses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--capacity", type=int, default=240)
    parser.add_argument("--window-ms", type=int, default=10_000)
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10", help="a database the bench may empty")
    args = parser.parse_args()
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    fixtures = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
    data = ["--data", str(fixtures)] if fixtures.is_dir() else []
    limit = f"binanceusdm={args.capacity}/{args.window_ms}"
    sandbox_port = free_port()
    procs = [spawn_exgate(["sandbox", "--port", str(sandbox_port), *data, "--rate-limit", limit], {})]
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    try:
        wait_ready(sandbox, "sandbox", procs[0], path="/__sandbox/stats")
        env = {"EXGATE_REDIS_URL": args.redis_url, "EXGATE_EXCHANGES": "binanceusdm", "EXGATE_BUDGETS": limit,
               "EXGATE_UPSTREAMS": f"binanceusdm={sandbox}/binanceusdm"}
        ports = [free_port() for _ in range(3)]
        procs += [spawn_exgate(["serve", "--port", str(p), "--log-level", "warning"], env) for p in ports]
        for port, proc in zip(ports, procs[1:]):
            wait_ready(f"http://127.0.0.1:{port}", "gateway", proc)
        admitted, venue, waits, responses = asyncio.run(
            run([f"http://127.0.0.1:{p}" for p in ports], sandbox, args.redis_url, args.capacity, args.window_ms,
                args.windows))
    finally:
        stop_all(procs)
    budget = args.capacity * args.windows
    order_weight = min(len(waits), args.windows * args.window_ms // 1000)
    used = sum(admitted) + order_weight
    throttled = sum(n for status, n in venue["by_status"].items() if status in ("429", "418"))
    codes = {c: sum(1 for r in responses if r.status_code == c) for c in sorted({r.status_code for r in responses})}
    waits_ms = sorted(w * 1000 for w in waits)
    p99 = waits_ms[min(len(waits_ms) - 1, int(0.99 * len(waits_ms)))] if waits_ms else float("nan")
    print(f"budget overload: 3 gateways + 1 order-priority client on one Redis, offered 3x "
          f"{args.capacity} weight / {args.window_ms} ms for {args.windows} windows")
    print(f"  shared budget used                {used} of {budget} ({100 * used / budget:.1f} %, target 95-100 %):"
          f" {sum(admitted)} admitted by the exchange (per window {admitted}, capacity {args.capacity})"
          f" + ~{order_weight} order-class")
    print(f"  429/418 answers from the exchange {throttled} (target 0)")
    print(f"  order-class wait                  p50 {statistics.median(waits_ms):.1f} ms, p99 {p99:.1f} ms"
          f" ({len(waits_ms)} acquires)")
    print(f"  client answers                    {codes} (503 = no budget before the deadline, with Retry-After)")


if __name__ == "__main__":
    main()
