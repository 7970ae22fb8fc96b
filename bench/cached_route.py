"""Cached-route throughput as a ratio of a trivial pre-encoded route on the same server.

Run: ``make bench`` (or ``.venv/bin/python bench/cached_route.py``). Starts one gateway
process (``--sandbox`` data, one uvicorn worker) with an extra route that returns constant
bytes, warms the cache, then alternates load rounds on the trivial route and on cached routes
from a separate process, and prints each route's req/s, p50/p99 and its ratio to the
trivial route measured in the same run. Target: ratio >= 0.7 for cache hits.
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
    "markets (hit)": "/v1/binanceusdm/markets",
    "prices ?symbols=BTC (hit)": "/v1/bybit/prices?symbols=BTC",
}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env={**os.environ})
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
        print(f"cached-route throughput vs a trivial pre-encoded route, same server, "
              f"{args.connections} connections, {args.rounds}x{args.seconds:g}s rounds (medians)")
        print(f"  {'trivial pre-encoded':28s} {trivial:8.0f} req/s  p99 {statistics.median(p99['trivial']):6.1f} ms")
        for name in ROUTES:
            value = statistics.median(rps[name])
            print(f"  {name:28s} {value:8.0f} req/s  p99 {statistics.median(p99[name]):6.1f} ms"
                  f"  ratio {value / trivial:.2f} (target >= 0.70)")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
