"""Streams on vs off: upstream REST calls under a steady read load, end-to-end lag to the client
stream, and the ingest's messages/s and CPU, for one gateway and for three sharing one Redis.

Run: ``.venv/bin/python bench/streams.py [--venues hyperliquid,pacifica] [--top-n 3]
[--rate 200] [--warmup 10] [--window 45] [--instances 1,3] [--redis-url URL] [--ports LO-HI]``
(part of ``make bench``; about 5 minutes with the defaults). Starts Redis (private, or one
database of ``--redis-url``, emptied with FLUSHDB), an ``exgate sandbox`` and per phase N
``exgate serve`` with ``EXGATE_STREAMS=on`` (tier 1: the top ``--top-n`` markets per venue
by 24 h quote volume) or ``off`` (the baseline, in the same run: the TTL cache alone). A
venue whose streams do not go live on the sandbox (no sandbox socket yet) is left out, said.

Per phase: an open-loop load of ``--rate`` req/s in total (``bench/openloop.py``, its own
process, round-robin over the gateways) over the tier-1 symbols' streamed keys (order book,
trades, 1 m klines, prices of the venue's symbols) for ``--warmup`` s, then
``POST /__sandbox/reset`` and the measured ``--window`` s:

1. upstream REST calls per minute, counted by the sandbox (target with streams on: 0 apart
   from resyncs; every operation counted with streams on is named);
2. with streams on, lag = receive time - the event's own ``timestamp`` (the sandbox stamps it
   with its clock, the wall clock of this machine) of every book and trades event on
   ``WS /v1/stream``, p50/p99; with 3 gateways each channel is read on a gateway that does not
   own its stream (owner → Redis stream → that gateway). ``bus`` is the part after the owner
   published (receive - the bus entry's ``ts_ms``);
3. messages/s ingested (the difference of the summed ``messages`` of ``GET /v1/{venue}/streams``)
   and each gateway's CPU share (utime + stime from ``/proc/<pid>/stat`` over wall time), against
   the same gateways with streams off under the same read load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from streams_probe import (LAG_KINDS, LagClients, bases, client_plan, messages, owners, percentile,  # noqa: E402
                           read_paths, rest_counts, statuses, wait_live, wait_streamed)
from streams_stack import BenchStack, PortPool, cpu_seconds  # noqa: E402

ALL_VENUES = ("binanceusdm", "bybit", "hyperliquid", "pacifica")


async def load(stack: BenchStack, targets: list[tuple[str, str]], rate: float, seconds: float) -> dict:
    """Run ``bench/openloop.py`` as a child process; its JSON result (stopped if we are)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "openloop.py"), "--rate", str(rate), "--seconds", str(seconds),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await proc.communicate(orjson.dumps(targets))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"openloop.py failed ({proc.returncode}): {err.decode()[-500:]}")
    return orjson.loads(out)


async def phase(stack: BenchStack, session: aiohttp.ClientSession, args: argparse.Namespace, instances: int,
                streams: bool, symbols: dict[str, list[str]] | None) -> dict:
    """One measured phase; returns its figures (see the module doc)."""
    label = f"{instances} x streams {'on' if streams else 'off'}"
    started = time.monotonic()
    urls = await stack.start(instances, streams, args.top_n)
    result: dict = {"instances": instances, "streams": streams, "notes": []}
    bodies: dict[str, dict] = {}
    if streams:
        bodies = await wait_live(session, urls[0], stack.venues, args.live_timeout)
        missing = [v for v in stack.venues if v not in bodies]
        if missing:
            result["missing"] = missing
            return result
        found = {v: bases(bodies[v]) for v in stack.venues}
        if symbols is not None and found != symbols:
            result["notes"].append(f"tier 1 differs from the first phase: {found}")
        symbols = symbols or found
    assert symbols is not None
    result["symbols"] = symbols
    paths = read_paths(symbols)
    targets = [(u, p) for p in paths for u in urls]
    if streams:
        left = await wait_streamed(session, urls, paths, args.live_timeout)
        if left:
            result["notes"].append(f"not from a stream before the warm-up: {left}")
    print(f"  {label}: ready in {time.monotonic() - started:.0f} s; warm-up {args.warmup:g} s", flush=True)
    await load(stack, targets, args.rate, args.warmup)
    pids = stack.gateway_pids
    plan = {}
    if streams:
        bodies = {v: await statuses(session, urls[0], v) for v in stack.venues}
        plan = client_plan(symbols, urls, owners(bodies, pids))
        result["owners"] = {f"{v}:{k}": i for (v, k), i in owners(bodies, pids).items() if k in LAG_KINDS}
        result["plan"] = {urls.index(u): len(c) for u, c in plan.items()}
    async with contextlib.AsyncExitStack() as clients:
        lag = await clients.enter_async_context(LagClients(plan)) if plan else None
        async with session.post(f"{stack.sandbox_url}/__sandbox/reset") as r:
            if r.status != 200:
                raise RuntimeError(f"sandbox reset: {r.status}")
        msgs0 = await messages(session, urls[0], stack.venues) if streams else 0
        cpu0 = [cpu_seconds(pid) for pid in pids]
        wall0 = time.monotonic()
        if lag is not None:
            lag.start()
        reads = await load(stack, targets, args.rate, args.window)
        wall = time.monotonic() - wall0
        cpu = [(cpu_seconds(pid) - c) / wall for pid, c in zip(pids, cpu0, strict=True)]
        rest = await rest_counts(session, stack.sandbox_url)
        msgs1 = await messages(session, urls[0], stack.venues) if streams else 0
    result.update(reads=reads, rest={v: ops for v, ops in rest.items() if v in stack.venues and ops}, wall=wall, cpu=cpu,
                  msgs_per_s=(msgs1 - msgs0) / wall if streams else None, keys=len(paths))
    if lag is not None:
        result["lag"] = {k: (percentile(lag.lags[k], 0.5), percentile(lag.lags[k], 0.99), len(lag.lags[k]))
                         for k in LAG_KINDS}
        result["bus_lag"] = {k: (percentile(lag.bus_lags[k], 0.5), percentile(lag.bus_lags[k], 0.99)) for k in LAG_KINDS}
        if lag.other:
            result["notes"].append(f"client stream frames: {dict(lag.other)}")
    await stack.stop_gateways()
    return result


def per_min(result: dict) -> float:
    """REST calls per minute of a phase's window."""
    return sum(sum(ops.values()) for ops in result["rest"].values()) * 60 / result["wall"]


def fmt_ms(pair: tuple | None) -> str:
    if not pair or pair[0] is None:
        return "-"
    return f"{pair[0]:.0f}/{pair[1]:.0f}"


def report(results: dict[tuple[int, bool], dict], args: argparse.Namespace, venues: list[str]) -> None:
    """The table, the ratios and one README line per figure."""
    first = next(iter(results.values()))
    symbols = first["symbols"]
    print()
    listed = "; ".join(f"{v} {', '.join(s)}" for v, s in symbols.items())
    print(f"venues: {listed} "
          f"(EXGATE_STREAM_TOP_N={args.top_n}); {args.rate:g} req/s over {first['keys']} keys; "
          f"warm-up {args.warmup:g} s, window {args.window:g} s")
    head = (f"{'gateways':>8} {'streams':>7} {'reads/s':>8} {'from stream':>11} {'p99 ms':>7} {'REST/min':>9} "
            f"{'book lag p50/p99':>16} {'trades lag p50/p99':>18} {'bus book':>9} {'bus trades':>10} "
            f"{'msgs/s':>7} {'CPU/gateway mean (max)':>22}")
    print(head)
    for (n, on), r in results.items():
        reads = r["reads"]
        stream_share = reads["by_source"].get("stream", 0) / max(1, reads["answered"])
        lag, bus = r.get("lag", {}), r.get("bus_lag", {})
        cpu = f"{sum(r['cpu']) / len(r['cpu']):.1%} ({max(r['cpu']):.1%})"
        print(f"{n:>8} {'on' if on else 'off':>7} {reads['rate']:>8.1f} {stream_share:>10.0%} "
              f"{reads['p99_ms'] or 0:>7.1f} {per_min(r):>9.1f} {fmt_ms(lag.get('book')):>16} "
              f"{fmt_ms(lag.get('trades')):>18} {fmt_ms(bus.get('book')):>9} {fmt_ms(bus.get('trades')):>10} "
              f"{r['msgs_per_s'] if r['msgs_per_s'] is not None else 0:>7.1f} {cpu:>22}")
    print("lag = receive - the event's sandbox timestamp (a trade's is when it happened: the sandbox sends a "
          "venue's trades once per 100 ms tick); bus = receive - the owner's publish (ts_ms); ms.\n"
          "msgs/s: WebSocket messages ingested (by the owners, with 3 gateways); CPU: share of one core")
    lines = []
    for n in args.instances:
        on, off = results.get((n, True)), results.get((n, False))
        if not on or not off:
            continue
        where = "1 gateway" if n == 1 else f"{n} gateways sharing one Redis"
        ops = {f"{v} {op}": c for v, o in on["rest"].items() for op, c in o.items()}
        ratio = per_min(on) / per_min(off) if per_min(off) else float("nan")
        print(f"{where}: REST calls/min streams on {per_min(on):.1f} vs off {per_min(off):.1f} "
              f"(ratio {ratio:.3f}); with streams on: {ops or 'none'}")
        for r in (on, off):
            bad = {k: v for k, v in r["reads"]["by_status"].items() if k != "200"}
            if bad or r["reads"]["errors"]:
                print(f"  streams {'on' if r['streams'] else 'off'}: non-200 answers {r['reads']['failed']}, "
                      f"errors {r['reads']['errors']}")
            for note in r["notes"]:
                print(f"  streams {'on' if r['streams'] else 'off'}: {note}")
        if n > 1:
            print(f"  owners (gateway index) {on.get('owners')}; lag clients per gateway (channels) {on.get('plan')}")
        lines.append(f"README: upstream REST calls/min under {args.rate:g} req/s of streamed reads, {where}: "
                     f"{per_min(on):.1f} with streams vs {per_min(off):.1f} with the TTL cache alone "
                     f"({'none' if not ops else ', '.join(f'{k} {v}' for k, v in ops.items())})")
        lag, bus = on["lag"], on["bus_lag"]
        client = "client on the gateway" if n == 1 else "client on a non-owner gateway (owner → Redis → it)"
        lines.append(f"README: end-to-end lag sandbox → WS /v1/stream, {where}, {client}: p50/p99 book "
                     f"{fmt_ms(lag['book'])} ms, trades {fmt_ms(lag['trades'])} ms (after the owner's publish: "
                     f"book {fmt_ms(bus['book'])}, trades {fmt_ms(bus['trades'])} ms)")
        if n == 1:
            cpu_on, cpu_off = on["cpu"][0], off["cpu"][0]
            print(f"1 gateway: ingest {on['msgs_per_s']:.1f} msgs/s; CPU {cpu_on:.1%} of a core with streams vs "
                  f"{cpu_off:.1%} without (ratio {cpu_on / cpu_off if cpu_off else float('nan'):.2f})")
            lines.append(f"README: one gateway ingests {on['msgs_per_s']:.0f} WebSocket messages/s "
                         f"({', '.join(venues)}, top {args.top_n}) at {cpu_on:.0%} of a core under {args.rate:g} req/s "
                         f"of reads, vs {cpu_off:.0%} with streams off ({cpu_on / cpu_off if cpu_off else float('nan'):.2f}x)")
    print()
    print("\n".join(lines))


async def main(args: argparse.Namespace) -> None:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # either stops every process (also when SIGINT was ignored)
        loop.add_signal_handler(sig, task.cancel)
    from tests.conftest import sandbox_data

    venues = list(args.venues)
    with tempfile.TemporaryDirectory(prefix="exgate-bench-streams-") as folder:
        async with BenchStack(Path(folder), venues, PortPool(args.ports), redis_url=args.redis_url,
                              sandbox_data=sandbox_data()) as stack, aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=30)) as session:
            results: dict[tuple[int, bool], dict] = {}
            symbols = None
            for n in args.instances:
                for on in (True, False):  # on first: it finds the venues with sockets and the tier-1 symbols
                    result = await phase(stack, session, args, n, on, symbols)
                    if result.get("missing"):
                        print(f"  no live streams from the sandbox for {', '.join(result['missing'])} "
                              f"within {args.live_timeout:g} s: left out", flush=True)
                        stack.venues = [v for v in stack.venues if v not in result["missing"]]
                        if not stack.venues:
                            raise SystemExit("no venue streams on this sandbox")
                        result = await phase(stack, session, args, n, on, symbols)
                        if result.get("missing"):
                            raise SystemExit(f"streams of {result['missing']} did not go live; see {stack.logs}")
                    symbols = result["symbols"]
                    results[(n, on)] = result
            report(results, args, stack.venues)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venues", default="hyperliquid,pacifica",
                        help=f"comma-separated, or 'all' ({','.join(ALL_VENUES)}); those without sandbox sockets are left out")
    parser.add_argument("--top-n", type=int, default=3, help="EXGATE_STREAM_TOP_N (tier 1 per venue)")
    parser.add_argument("--rate", type=float, default=200.0, help="reads per second, in total")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before each window")
    parser.add_argument("--window", type=float, default=45.0, help="measured seconds per phase")
    parser.add_argument("--instances", default="1,3", help="gateway counts, comma-separated")
    parser.add_argument("--live-timeout", type=float, default=30.0, help="seconds for streams to go live")
    parser.add_argument("--redis-url", default=None, help="use this Redis database (emptied!) instead of a private server")
    parser.add_argument("--ports", default=None, help="take every port from LO-HI (default: any free port)")
    args = parser.parse_args()
    venues = ALL_VENUES if args.venues == "all" else tuple(v.strip() for v in args.venues.split(",") if v.strip())
    unknown = [v for v in venues if v not in ALL_VENUES]
    if unknown or not venues:
        parser.error(f"--venues: unknown {unknown}; allowed: {', '.join(ALL_VENUES)} or all")
    try:
        args.instances = [int(x) for x in args.instances.split(",") if x.strip()]
    except ValueError:
        parser.error("--instances must be comma-separated whole numbers, e.g. 1,3")
    if not args.instances or min(args.instances) < 1 or args.top_n < 1 or args.rate <= 0 or args.window <= 0:
        parser.error("expected --instances >= 1, --top-n >= 1, --rate > 0 and --window > 0")
    args.venues = list(venues)
    return args


if __name__ == "__main__":
    arguments = parse()
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(main(arguments))
