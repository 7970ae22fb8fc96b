"""The standalone sandbox's throughput per venue, as a ratio of a bare Starlette app in one run.

Run: ``make bench`` (or ``.venv/bin/python bench/sandbox_throughput.py``). The sandbox is the
load test's exchange, so it must serve more than the gateway asks of it. This starts, each in
its own process, a bare Starlette app returning constant bytes (the server stack's ceiling,
:func:`hot_path.serve_bare`) and ``exgate sandbox`` with the recorded payloads and every
venue's rate limit raised out of the way (``--rate-limit VENUE=100000000/1000``), then runs wrk
(``-t2 -c32 -d3s``; ``--threads``, ``--connections``, ``--seconds``, ``--rounds``) against
each venue's hot public reads: book, ticker, 500 one-minute candles, 500 recent trades
(Hyperliquid's are POSTs to ``/info``, sent by a wrk Lua script). It prints each target's
median req/s, p99 and ratio to bare Starlette. Every answer must be a 2xx: a 429 or a 5xx
fails the run. Without wrk it uses ``bench/loadgen.py`` (GETs only: Hyperliquid is skipped).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from hot_path import Run, pyload, wrk  # noqa: E402
from tests.conftest import free_port, spawn_exgate, stop_all, wait_ready  # noqa: E402

VENUES = ("binanceusdm", "bybit", "hyperliquid", "pacifica")

GETS = {
    "binanceusdm": {
        "book (100 levels)": "/binanceusdm/fapi/v1/depth?symbol=BTCUSDT&limit=100",
        "ticker 24 h": "/binanceusdm/fapi/v1/ticker/24hr?symbol=BTCUSDT",
        "500 1m candles": "/binanceusdm/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=500",
        "500 trades": "/binanceusdm/fapi/v1/trades?symbol=BTCUSDT&limit=500",
    },
    "bybit": {
        "book (50 levels)": "/bybit/v5/market/orderbook?category=linear&symbol=BTCUSDT&limit=50",
        "ticker": "/bybit/v5/market/tickers?category=linear&symbol=BTCUSDT",
        "500 1m candles": "/bybit/v5/market/kline?category=linear&symbol=BTCUSDT&interval=1&limit=500",
        "500 trades": "/bybit/v5/market/recent-trade?category=linear&symbol=BTCUSDT&limit=500",
    },
    "pacifica": {
        "book": "/pacifica/api/v1/book?symbol=BTC",
        "prices (all markets)": "/pacifica/api/v1/info/prices",
        "trades": "/pacifica/api/v1/trades?symbol=BTC",
    },
}
"""Per venue, name -> GET path and query (the sandbox's real venue paths)."""


def hyperliquid_bodies(now_ms: int) -> dict[str, dict]:
    """Hyperliquid's ``/info`` POST bodies: book, all mids, 500 one-minute candles."""
    return {
        "book (l2Book)": {"type": "l2Book", "coin": "BTC"},
        "all mids": {"type": "allMids"},
        "500 1m candles": {"type": "candleSnapshot", "req": {"coin": "BTC", "interval": "1m",
                                                              "startTime": now_ms - 500 * 60_000, "endTime": now_ms}},
    }


def pacifica_candles(now_ms: int) -> str:
    """Pacifica's kline path for 500 one-minute candles ending now."""
    return f"/pacifica/api/v1/kline?symbol=BTC&interval=1m&start_time={now_ms - 500 * 60_000}&end_time={now_ms}"


def lua_post(body: dict, folder: str, name: str) -> str:
    """A wrk Lua script sending ``body`` as a JSON POST; its path."""
    path = os.path.join(folder, name + ".lua")
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = {json.dumps(json.dumps(body))}\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.serve:
        from hot_path import serve_bare

        serve_bare(args.serve[0], int(args.serve[1]))
        return

    use_wrk = shutil.which("wrk") is not None
    if not use_wrk:
        print("wrk not found on PATH (Debian: apt-get install wrk): using bench/loadgen.py, GETs only "
              "(Hyperliquid skipped); its figures are lower and noisier")
    fixtures = os.environ.get("EXGATE_FIXTURES") or str(Path(__file__).resolve().parents[2] / "shared" / "fixtures")
    data = ["--data", fixtures] if Path(fixtures).is_dir() else []
    unlimited = [arg for venue in VENUES for arg in ("--rate-limit", f"{venue}=100000000/1000")]
    ports = {"sandbox": free_port(), "starlette": free_port()}
    base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    procs = [spawn_exgate(["sandbox", "--port", str(ports["sandbox"]), *data, *unlimited], {}),
             subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", "starlette",
                               str(ports["starlette"])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    folder = tempfile.mkdtemp(prefix="exgate-bench-")
    try:
        wait_ready(base["sandbox"], "sandbox", procs[0], path="/__sandbox/stats")
        wait_ready(base["starlette"], "starlette", procs[1], path="/")
        now_ms = time.time_ns() // 1_000_000  # the sandbox runs on the wall clock
        targets: dict[str, tuple[str, str | None]] = {"bare Starlette, constant bytes": (base["starlette"] + "/", None)}
        for venue, paths in GETS.items():
            for name, path in paths.items():
                targets[f"{venue} {name}"] = (base["sandbox"] + path, None)
        targets["pacifica 500 1m candles"] = (base["sandbox"] + pacifica_candles(now_ms), None)
        if use_wrk:
            for name, body in hyperliquid_bodies(now_ms).items():
                targets[f"hyperliquid {name}"] = (base["sandbox"] + "/hyperliquid/info",
                                                  lua_post(body, folder, f"hl{len(targets)}"))
        sizes: dict[str, int] = {}
        for name, (url, script) in targets.items():  # every target answers 2xx before it is loaded
            body = json.loads(open(script).read().split("wrk.body = ", 1)[1]) if script else None
            r = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=30) if script \
                else httpx.get(url, timeout=30)
            if r.status_code // 100 != 2:
                raise SystemExit(f"{name}: {url} answered {r.status_code}: {r.text[:300]}")
            sizes[name] = len(r.content)
        runs: dict[str, list[Run]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, (url, script) in targets.items():
                runs[name].append(wrk(url, args, script) if use_wrk else pyload(url, args))
        rps = {name: statistics.median(r.rps for r in rs) for name, rs in runs.items()}
        p99 = {name: statistics.median(r.p99_ms for r in rs) for name, rs in runs.items()}
        bare = rps["bare Starlette, constant bytes"]
        tool = (f"wrk -t{args.threads} -c{args.connections} -d{args.seconds:g}s --latency" if use_wrk
                else f"bench/loadgen.py, {args.connections} connections, {args.seconds:g} s")
        print(f"sandbox throughput: {tool}; {args.rounds} interleaved rounds, medians; one `exgate sandbox` "
              f"process (uvicorn, one worker), rate limits raised")
        print("| target | body bytes | req/s | p99 | vs bare Starlette |")
        print("| --- | --- | --- | --- | --- |")
        for name in targets:
            print(f"| {name} | {sizes[name]} | {rps[name]:.0f} | {p99[name]:.1f} ms | **{rps[name] / bare:.2f}** |")
    finally:
        stop_all(procs)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
