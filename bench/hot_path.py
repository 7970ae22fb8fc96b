"""The hot path: exgate's L1 hits against what the server stack itself can do, in one run.

Run: ``make bench`` (or ``.venv/bin/python bench/hot_path.py``). It starts, each in its own
process with the same uvicorn settings (one worker, uvloop, httptools, access log off):

* a bare Starlette app returning constant bytes (the ceiling of this server stack),
* a bare FastAPI app returning the same bytes through one route with ``Response``,
* ``exgate serve`` over an ``exgate sandbox`` (all default venues, no Redis), and
* the same gateway built with ``create_app(..., fast_path=False)`` (FastAPI answers every
  L1 hit: the reference the fast path is measured against),

warms the cache, then runs wrk (``wrk -t2 -c64 -d5s --latency``; ``--threads``,
``--connections``, ``--seconds``) against each target in interleaved rounds (``--rounds``, 3)
and prints each target's median req/s and p99 with its ratio to bare Starlette and to bare
FastAPI measured in the same run. Target: an L1 hit >= 0.7x bare Starlette.

The gateways run with ``EXGATE_CACHE_TTL_MS`` of one hour for the measured types, so every
measured read stays an L1 hit for the whole run (checked: each target's ``X-Cache: hit``,
``X-Cache-Tier: l1`` before and after, and the L1 hit counter of ``/metrics`` grows by at
least the number of requests wrk completed). Without wrk on the PATH it falls back to the
Python load generator of ``bench/loadgen.py`` and says so (its own CPU cost shares the
machine with the server, so its figures are lower and noisier).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import run_load  # noqa: E402
from tests.conftest import free_port, spawn_exgate, stop_all, wait_ready  # noqa: E402

HOLD = "markets=3600000,prices=3600000,orderbook=3600000,trades=3600000,funding=3600000"
"""One-hour TTLs: every measured read is an L1 hit, never a refresh, during the run."""

CONSTANT = b'{"exchange":"bench","data":"' + b"x" * 700 + b'"}'
"""What the bare apps return (about the size of a 20-level order book answer's first kB)."""

EXGATE_ROUTES = {
    "exgate L1 hit orderbook": "/v1/bybit/markets/BTC/orderbook",
    "exgate L1 hit prices?symbols=BTC": "/v1/bybit/prices?symbols=BTC",
    "exgate L1 hit markets": "/v1/bybit/markets",
}


def _uvicorn(app, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, loop="uvloop", http="httptools",
                access_log=False, log_level="warning", lifespan="on")


def serve_bare(kind: str, port: int) -> None:
    """A bare Starlette or FastAPI app answering ``GET /`` (and ``/healthz``) with constant bytes."""
    from starlette.responses import Response

    if kind == "starlette":
        from starlette.applications import Starlette
        from starlette.routing import Route

        async def constant(request) -> Response:  # noqa: ANN001 - Starlette endpoint signature
            return Response(CONSTANT, media_type="application/json")

        app = Starlette(routes=[Route("/", constant), Route("/healthz", constant)])
    else:
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/")
        @app.get("/healthz")
        async def constant_fastapi() -> Response:
            return Response(CONSTANT, media_type="application/json")

    _uvicorn(app, port)


def serve_gateway(port: int, fast_path: bool) -> None:
    """The gateway as ``exgate serve`` builds it (settings from the environment), with or
    without the fast path."""
    from exgate.cli import _uvicorn_config
    from exgate.config import Settings
    from exgate.http.app import create_app
    from exgate.venues.registry import build_adapters
    from exgate.venues.upstream import parse_upstreams

    import uvicorn

    settings = Settings()
    adapters = build_adapters(settings.exchange_list(), parse_upstreams(settings.upstreams),
                              timeout_ms=settings.upstream_timeout_ms)
    app = create_app(adapters, settings=settings, fast_path=fast_path)
    config = _uvicorn_config(app, "127.0.0.1", port, "warning")
    config.loop, config.http = "uvloop", "httptools"
    uvicorn.Server(config).run()


@dataclass
class Run:
    rps: float
    p99_ms: float
    requests: int
    timeouts: int = 0


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNITS[unit]


def wrk(url: str, args: argparse.Namespace, script: str | None = None) -> Run:
    """One wrk run against ``url`` (with the Lua ``script`` file, e.g. one setting a POST body);
    fails on any non-2xx answer or socket error."""
    extra = ["-s", script] if script else []
    out = subprocess.run(["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds:g}s", "--latency",
                          *extra, url], capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if "Non-2xx" in out or (errors and any(int(n) for n in errors.groups()[:3])):
        raise SystemExit(f"wrk saw errors on {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return Run(rps, p99, requests, int(errors.group(4)) if errors else 0)  # timeout: no answer within 2 s


def pyload(url: str, args: argparse.Namespace) -> Run:
    """The fallback: ``bench/loadgen.py`` in this process."""
    parsed = httpx.URL(url)
    path = parsed.raw_path.decode()
    result = asyncio.run(run_load("127.0.0.1", parsed.port, path, connections=args.connections,
                                  seconds=args.seconds))
    if result.errors:
        raise SystemExit(f"{result.errors} non-2xx answers on {url}")
    return Run(result.rps, result.percentile(0.99), result.requests)


def l1_hits(base: str) -> float:
    """``exgate_cache_lookups_total{tier="l1",result="hit"}`` of one gateway."""
    text = httpx.get(base + "/metrics", timeout=10).text
    match = re.search(r'^exgate_cache_lookups_total\{result="hit",tier="l1"\} (\S+)$', text, re.M) or \
        re.search(r'^exgate_cache_lookups_total\{tier="l1",result="hit"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def check_hit(url: str) -> int:
    """The answer at ``url`` is an L1 hit; its body size."""
    r = httpx.get(url, timeout=30)
    assert r.status_code == 200, (url, r.status_code, r.text[:300])
    assert (r.headers.get("x-cache"), r.headers.get("x-cache-tier")) == ("hit", "l1"), (url, dict(r.headers))
    return len(r.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-reference", action="store_true", help="skip the gateway without the fast path")
    args = parser.parse_args()
    if args.serve:
        kind, port = args.serve[0], int(args.serve[1])
        if kind in ("starlette", "fastapi"):
            serve_bare(kind, port)
        else:
            serve_gateway(port, fast_path=kind == "gateway")
        return

    use_wrk = shutil.which("wrk") is not None
    load = wrk if use_wrk else pyload
    if not use_wrk:
        print("wrk not found on PATH (Debian: apt-get install wrk): using the Python load generator of "
              "bench/loadgen.py instead; it shares the CPU with the server, so its figures are lower and noisier")
    fixtures = os.environ.get("EXGATE_FIXTURES") or str(Path(__file__).resolve().parents[2] / "shared" / "fixtures")
    data = ["--data", fixtures] if Path(fixtures).is_dir() else []
    sandbox_port = free_port()
    procs = [spawn_exgate(["sandbox", "--port", str(sandbox_port), *data], {})]
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    env = {"EXGATE_UPSTREAMS": ",".join(f"{v}={sandbox}/{v}" for v in ("binanceusdm", "bybit", "hyperliquid",
                                                                         "pacifica")),
           "EXGATE_CACHE_TTL_MS": HOLD, "EXGATE_REDIS_URL": ""}
    ports = {name: free_port() for name in ("starlette", "fastapi", "exgate", "nofast")}
    base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    me = [sys.executable, str(Path(__file__).resolve()), "--serve"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    try:
        wait_ready(sandbox, "sandbox", procs[0], path="/__sandbox/stats")
        procs.append(subprocess.Popen([*me, "starlette", str(ports["starlette"])], **quiet))
        procs.append(subprocess.Popen([*me, "fastapi", str(ports["fastapi"])], **quiet))
        procs.append(spawn_exgate(["serve", "--port", str(ports["exgate"]), "--log-level", "warning"], env))
        gateways = ["exgate"]
        if not args.no_reference:
            procs.append(subprocess.Popen([*me, "reference", str(ports["nofast"])], env={**os.environ, **env},
                                          **quiet))
            gateways.append("nofast")
        for name, proc in zip(("starlette", "fastapi", *gateways), procs[1:]):
            wait_ready(base[name], name, proc, path="/healthz" if name in gateways else "/")
        targets: dict[str, str] = {"bare Starlette": base["starlette"] + "/", "bare FastAPI": base["fastapi"] + "/",
                                   "exgate /healthz": base["exgate"] + "/healthz"}
        sizes: dict[str, int] = {"bare Starlette": len(CONSTANT), "bare FastAPI": len(CONSTANT)}
        for gateway in gateways:
            suffix = "" if gateway == "exgate" else " (no fast path)"
            for name, path in EXGATE_ROUTES.items():
                if gateway != "exgate" and "orderbook" not in name and "prices" not in name:
                    continue
                url = base[gateway] + path
                httpx.get(url, timeout=30).raise_for_status()  # warm: markets loaded, entry cached
                targets[name + suffix] = url
                sizes[name + suffix] = check_hit(url)
        sizes["exgate /healthz"] = len(httpx.get(targets["exgate /healthz"]).content)
        runs: dict[str, list[Run]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, url in targets.items():
                gateway = next((g for g in gateways if url.startswith(base[g] + "/v1/")), None)
                before = l1_hits(base[gateway]) if gateway else 0.0
                run = load(url, args)
                runs[name].append(run)
                if gateway:
                    check_hit(url)
                    counted = l1_hits(base[gateway]) - before
                    if counted < run.requests:
                        raise SystemExit(f"{name}: {run.requests} requests but only {counted:.0f} L1 hits counted")
        rps = {name: statistics.median(r.rps for r in rs) for name, rs in runs.items()}
        p99 = {name: statistics.median(r.p99_ms for r in rs) for name, rs in runs.items()}
        tool = (f"wrk -t{args.threads} -c{args.connections} -d{args.seconds:g}s --latency" if use_wrk
                else f"bench/loadgen.py, {args.connections} connections, {args.seconds:g} s")
        print(f"hot path: {tool}; {args.rounds} interleaved rounds, medians; uvicorn 1 worker, uvloop, httptools, "
              f"access log off; gateways without Redis, EXGATE_CACHE_TTL_MS={HOLD} so every read stays an L1 hit")
        print(f"| target | body bytes | req/s | p99 | vs bare Starlette | vs bare FastAPI |")
        print("| --- | --- | --- | --- | --- | --- |")
        timeouts = sum(r.timeouts for rs in runs.values() for r in rs)
        for name in targets:
            star = rps[name] / rps["bare Starlette"]
            mark = " (target >= 0.70)" if name.startswith("exgate L1") and "no fast path" not in name else ""
            print(f"| {name} | {sizes[name]} | {rps[name]:.0f} | {p99[name]:.1f} ms | **{star:.2f}**{mark} "
                  f"| {rps[name] / rps['bare FastAPI']:.2f} |")
        if timeouts:
            print(f"note: wrk counted {timeouts} requests without an answer within 2 s (an overloaded machine)")
    finally:
        stop_all(procs)


if __name__ == "__main__":
    main()
