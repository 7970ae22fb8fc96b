"""Cached-route throughput as a ratio of a trivial pre-encoded route on the same server, for
L1 hits (in-process) and L2 hits (Redis), and the upstream requests of a 3-instance burst.

Run: ``make bench`` (or ``.venv/bin/python bench/cached_route.py``). For each tier it starts
one gateway process (sandbox data, one uvicorn worker) with an extra route that returns
constant bytes, warms the cache, then alternates load rounds on the trivial route and on
cached routes from a separate process, and prints each route's req/s, p99 and its ratio to
the trivial route measured in the same run and the same server. The L2 server runs with
``EXGATE_L1_TTL_MS=0`` so every read goes to Redis. Targets: L1 >= 0.7, L2 >= 0.4. (L1 hits
are answered by the fast path of :mod:`exgate.http.fastpath`, the trivial route by FastAPI;
``bench/hot_path.py`` measures them against bare Starlette and bare FastAPI.)
Then 3 ``exgate serve`` processes share one ``exgate sandbox``, with and without Redis, and
300 concurrent identical requests go round-robin over them: the upstream requests are
counted by the sandbox (target with Redis: 1).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import run_load  # noqa: E402

TRIVIAL = "/__bench/static"
ROUTES = {
    "markets": "/v1/binanceusdm/markets",
    "orderbook": "/v1/bybit/markets/BTC/orderbook",
    "prices ?symbols=BTC": "/v1/bybit/prices?symbols=BTC",
}
HOLD = "markets=3600000,prices=3600000,orderbook=3600000"
"""Long TTLs so every measured read is a hit, not a refresh."""


def serve(port: int) -> None:
    """The server side: gateway + in-process sandbox + one constant route."""
    import uvicorn
    from starlette.responses import Response

    from exgate.http.app import create_app
    from exgate.sandbox.app import create_sandbox_app
    from exgate.venues.registry import DEFAULT_VENUES, build_adapters

    sandbox = create_sandbox_app()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sandbox_port = sock.getsockname()[1]
    upstreams = {v: f"http://127.0.0.1:{sandbox_port}/{v}" for v in DEFAULT_VENUES}
    app = create_app(build_adapters(DEFAULT_VENUES, upstreams))
    body = b'{"exchange":"bench","data":"' + b"x" * 700 + b'"}'

    async def static() -> Response:
        return Response(body, media_type="application/json")

    app.add_api_route(TRIVIAL, static)

    async def main() -> None:
        sandbox_server = uvicorn.Server(uvicorn.Config(sandbox, log_level="warning"))
        task = asyncio.create_task(sandbox_server.serve(sockets=[sock]))
        await uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                            access_log=False)).serve()
        sandbox_server.should_exit = True
        await task

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("gateway did not start")


def tier_bench(args: argparse.Namespace, label: str, target: float, env: dict[str, str]) -> None:
    """Throughput and p99 of cached routes on one gateway, against its own trivial route."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)],
                              env={**os.environ, "EXGATE_CACHE_TTL_MS": HOLD, **env})
    try:
        wait_ready(base)
        for path in ROUTES.values():  # warm: markets loaded, entries cached
            r = httpx.get(base + path, timeout=30)
            assert r.status_code == 200, (path, r.status_code, r.text)
        rps: dict[str, list[float]] = {"trivial": [], **{name: [] for name in ROUTES}}
        p99: dict[str, list[float]] = {name: [] for name in rps}
        for _ in range(args.rounds):
            for name, path in (("trivial", TRIVIAL), *ROUTES.items()):
                result = asyncio.run(run_load("127.0.0.1", port, path, connections=args.connections,
                                              seconds=args.seconds))
                assert result.errors == 0, f"{name}: {result.errors} non-2xx answers"
                rps[name].append(result.rps)
                p99[name].append(result.percentile(0.99))
        trivial = statistics.median(rps["trivial"])
        print(f"{label}: cached-route throughput vs a trivial pre-encoded route, same server, "
              f"{args.connections} connections, {args.rounds}x{args.seconds:g}s rounds (medians)")
        print(f"  {'trivial pre-encoded':28s} {trivial:8.0f} req/s  p99 {statistics.median(p99['trivial']):6.1f} ms")
        for name in ROUTES:
            value = statistics.median(rps[name])
            print(f"  {name:28s} {value:8.0f} req/s  p99 {statistics.median(p99[name]):6.1f} ms"
                  f"  ratio {value / trivial:.2f} (target >= {target:.2f})")
    finally:
        server.terminate()
        server.wait(timeout=10)


def burst_bench(fixtures: str | None, redis_url: str | None, requests: int = 300) -> int:
    """Upstream order-book requests made by 3 instances for ``requests`` concurrent reads."""
    sandbox_port = free_port()
    data = ["--data", fixtures] if fixtures else []
    procs = [subprocess.Popen([sys.executable, "-m", "exgate", "sandbox", "--port", str(sandbox_port), *data],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    env = {**os.environ, "EXGATE_EXCHANGES": "bybit", "EXGATE_UPSTREAMS": f"bybit={sandbox}/bybit",
           "EXGATE_CACHE_TTL_MS": HOLD}
    env.pop("EXGATE_REDIS_URL", None)
    if redis_url:
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        env["EXGATE_REDIS_URL"] = redis_url
    ports = [free_port() for _ in range(3)]
    procs += [subprocess.Popen([sys.executable, "-m", "exgate", "serve", "--port", str(p), "--log-level", "warning"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
    try:
        for p in ports:
            wait_ready(f"http://127.0.0.1:{p}")
        time.sleep(1.0)  # markets loaded everywhere

        async def burst() -> None:
            limits = httpx.Limits(max_connections=requests, max_keepalive_connections=requests)
            async with httpx.AsyncClient(timeout=60, limits=limits) as client:
                answers = await asyncio.gather(*(client.get(f"http://127.0.0.1:{ports[i % 3]}{ROUTES['orderbook']}")
                                                 for i in range(requests)))
            assert all(a.status_code == 200 for a in answers)

        asyncio.run(burst())
        stats = httpx.get(f"{sandbox}/__sandbox/stats").json()
        return stats["venues"]["bybit"]["by_path"].get("/v5/market/orderbook", 0)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11", help="a database the bench may empty")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    tier_bench(args, "L1 hits (in-process, no Redis)", 0.7, {"EXGATE_REDIS_URL": ""})
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    tier_bench(args, "L2 hits (Redis, EXGATE_L1_TTL_MS=0)", 0.4,
               {"EXGATE_REDIS_URL": args.redis_url, "EXGATE_L1_TTL_MS": "0"})
    fixtures = os.environ.get("EXGATE_FIXTURES") or str(Path(__file__).resolve().parents[2] / "shared" / "fixtures")
    fixtures = fixtures if Path(fixtures).is_dir() else None
    alone = burst_bench(fixtures, None)
    shared = burst_bench(fixtures, args.redis_url)
    print("300 concurrent identical order-book reads, round-robin over 3 exgate serve processes:")
    print(f"  upstream requests without Redis (each instance coalesces alone): {alone}")
    print(f"  upstream requests sharing Redis (target 1):                      {shared}")


if __name__ == "__main__":
    main()
