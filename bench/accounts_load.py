"""Private-side load: upstream calls per order by venue, and the account-read hit rate of many
users polling every 15 s, each beside what apps that call the venues directly make today.

Run: ``make bench`` (or ``.venv/bin/python bench/accounts_load.py``; ``--users 1000`` and the
other flags for bigger runs). Everything runs in this process on loopback: the sandbox (real
clock, every venue's IP limit raised so no 429 blurs a count), a migrated SQLite store with one
tenant, and gateway instances (``tests.accounts_harness.gateways``' recipe, no Redis).

1. **Order burst** (the four venues): ``--accounts`` connected sandbox accounts per venue place
   ``--orders`` market orders (buy/sell alternating) and ``--orders`` resting limit orders (buy
   at 80% of the mark), each limit order then canceled, accounts concurrently. Market data is
   warmed first and held (``EXGATE_CACHE_TTL_MS`` markets/prices 1 h), so the sandbox's
   ``/__sandbox/stats`` counts order traffic only. Two runs: without and with a positions poll
   before each order (apps poll; the order then computes the position from that cached
   snapshot instead of reading it). Printed: the sandbox's count per order, the answers'
   ``confirmation.upstream_requests``, and the ratio to the 5 calls per order apps make today
   (the order, 3 trade-history lookups retried because history is eventually consistent, then a
   positions read). Target: 1, plus at most 1 follow-up where the venue's answer lacks the fill.
2. **Polling** (``--poll-venues``): ``--users`` users, each with a connected account, poll
   summary, positions and open orders every ``--period`` s (phases uniform over the period),
   for ``--duration`` s of a simulated clock (the gateway's clock is a ``ManualClock`` advanced
   in ``--tick-ms`` steps; cache TTLs follow it: account 5 s, open orders 3 s); then the same
   with ``--tabs`` pollers per user (an app's backend instances or browser tabs) within
   ``--tab-spread`` s of each other. Printed: hit rate (``X-Cache`` not ``miss``), upstream
   calls per simulated second from the sandbox's stats, and the uncached baseline (one
   upstream call per read).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
if not os.environ.get("EXGATE_FIXTURES") and (ROOT.parent / "shared" / "fixtures").is_dir():
    os.environ["EXGATE_FIXTURES"] = str(ROOT.parent / "shared" / "fixtures")

from tests.accounts_harness import (SECRET_KEY, VENUES, btc_market, create_tenant, make_store,  # noqa: E402
                                    min_size, price_below, run, wait_markets)
from tests.conftest import ManualClock, ServerThread, sandbox_data  # noqa: E402

BASELINE_PER_ORDER = 5
"""Today's apps: the order, 3 trade-history lookups (retried, history lags), a positions read."""
HOLD = "markets=3600000,prices=3600000,orderbook=3600000"
"""Market data held for the run: only private traffic reaches the sandbox after warming."""
UNLIMITED = 1_000_000_000
READS = ("summary", "positions", "orders/open")
CONNECT_CONCURRENCY = 2
"""Connections created at once: more, and SQLite (every transaction BEGIN IMMEDIATE) answers
some with "database is locked" (500) after its 5 s busy timeout."""
TIMINGS: dict[str, float] = {}
"""Wall time per phase, printed at the end (the run must stay short)."""


def server_thread(app) -> ServerThread:
    """``tests.conftest.ServerThread`` with TCP_NODELAY on its socket: built without
    ``IPPROTO_TCP``, asyncio leaves Nagle on for its connections, and each answer then waits for
    the client's delayed ACK (~40 ms per request on loopback), which would only slow the run."""
    server = ServerThread(app)
    server.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return server


@contextlib.contextmanager
def gateway(sandbox_url: str, db_url: str, venues, *, clock=None):
    """One gateway instance over the sandbox and the store, its IP budgets raised: the bench
    counts calls, not pacing (``bench/budget_overload.py`` measures that), and a manual clock
    never refills a window. The per-account order limits (Binance 300/10 s) stay."""
    from starlette.responses import Response

    from exgate.config import Settings
    from exgate.http.app import create_app
    from exgate.store import SecretBox, Store
    from exgate.venues.registry import build_adapters

    budgets = ",".join(f"{v}={UNLIMITED}/60000" for v in venues)
    settings = Settings(redis_url=None, exchanges=",".join(venues), cache_ttl_ms=HOLD, budgets=budgets)
    kwargs = {"clock": clock} if clock is not None else {}
    app = create_app(build_adapters(list(venues), {v: f"{sandbox_url}/{v}" for v in venues}),
                     settings=settings, store=Store(db_url, SecretBox([SECRET_KEY])), **kwargs)
    t0 = time.monotonic()
    async def close_clients() -> Response:
        # ClientPool.close awaits each ccxt instance's close (~250 ms apiece) one after another:
        # closed together here, so leaving a gateway with 50 connections takes 0.3 s, not 12 s
        pool = app.state.accounts.pool
        clients = list(pool._clients.values())
        pool._clients.clear()
        await asyncio.gather(*(c.close() for c in clients))
        return Response(status_code=204)

    app.add_api_route("/__bench/close-clients", close_clients, methods=["POST"])
    with server_thread(app) as server:
        wait_markets(server.url, venues)
        TIMINGS[f"gateway {'+'.join(venues)} up"] = time.monotonic() - t0
        yield server
        t0 = time.monotonic()
        httpx.post(f"{server.url}/__bench/close-clients", timeout=30)
    TIMINGS[f"gateway {'+'.join(venues)} down"] = time.monotonic() - t0


def requests_of(sandbox_url: str, venue: str) -> int:
    return httpx.get(f"{sandbox_url}/__sandbox/stats").json()["venues"][venue]["requests"]


def paths_of(sandbox_url: str, venue: str) -> Counter:
    """The sandbox's requests of ``venue`` by path and, as ``status NNN``, by status."""
    stats = httpx.get(f"{sandbox_url}/__sandbox/stats").json()["venues"][venue]
    return Counter(stats["by_path"]) + Counter({f"status {k}": v for k, v in stats["by_status"].items()})


async def connect_all(client: httpx.AsyncClient, gw: str, sandbox_url: str, tenant, venue: str, users: list[str]):
    """A funded sandbox account connected (primary) for each user, a few at a time."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(user: str) -> None:
        async with gate:
            account = (await client.post(f"{sandbox_url}/__sandbox/accounts",
                                         json={"venue": venue, "balance": "1000000"})).json()
            r = await client.post(f"{gw}/v1/connections", headers=tenant.headers(user),
                                  json={"exchange": venue, "credentials": account["credentials"], "is_primary": True})
            assert r.status_code == 201, r.text

    await asyncio.gather(*(one(u) for u in users))


# -- 1. order burst -----------------------------------------------------------------------------------
async def order_burst(gw: str, sandbox_url: str, tenant, venue: str, args, poll_first: bool) -> dict:
    """Per-phase sandbox counts and summed confirmation counts of one venue's burst."""
    market = btc_market(gw, venue)
    symbol = market["symbol"]
    low = price_below(gw, venue, market)
    size = min_size(market, price=Decimal(low))
    users = [f"burst-{venue}-{'poll' if poll_first else 'cold'}-{i}" for i in range(args.accounts)]
    per_account = [args.orders // args.accounts + (i < args.orders % args.accounts) for i in range(args.accounts)]
    out: dict = {"confirmed": Counter(), "sources": Counter()}
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as client:
        await connect_all(client, gw, sandbox_url, tenant, venue, users)
        params = {"exchange": venue}

        async def poll(user: str) -> None:
            if poll_first:
                r = await client.get(f"{gw}/v1/account/positions", params=params, headers=tenant.headers(user))
                assert r.status_code == 200, r.text

        async def order(user: str, body: dict, kind: str) -> str:
            await poll(user)
            r = await client.post(f"{gw}/v1/orders", params=params, headers=tenant.headers(user),
                                  json={"symbol": symbol, "size": size, **body})
            assert r.status_code == 201, r.text
            answer = r.json()
            out["confirmed"][kind] += answer["confirmation"]["upstream_requests"]
            out["sources"][(kind, answer["confirmation"]["position_source"])] += 1
            return answer["order"]["id"]

        async def markets(user: str, n: int) -> None:
            for j in range(n):
                await order(user, {"type": "market", "side": "buy" if j % 2 == 0 else "sell"}, "market")

        async def limits(user: str, n: int) -> list[tuple[str, str]]:
            return [(user, await order(user, {"type": "limit", "side": "buy", "price": low}, "limit"))
                    for _ in range(n)]

        async def cancels(pairs: list[tuple[str, str]]) -> None:
            for user, order_id in pairs:
                r = await client.delete(f"{gw}/v1/orders/{order_id}", params={**params, "symbol": symbol},
                                        headers=tenant.headers(user))
                assert r.status_code == 200, r.text
                out["confirmed"]["cancel"] += r.json()["upstream_requests"]

        before, paths = requests_of(sandbox_url, venue), paths_of(sandbox_url, venue)
        await asyncio.gather(*(markets(u, n) for u, n in zip(users, per_account)))
        mid = requests_of(sandbox_url, venue)
        out["market_paths"] = paths_of(sandbox_url, venue) - paths
        placed = await asyncio.gather(*(limits(u, n) for u, n in zip(users, per_account)))
        late = requests_of(sandbox_url, venue)
        await asyncio.gather(*(cancels(pairs) for pairs in placed))
        end = requests_of(sandbox_url, venue)
        out["statuses"] = Counter({k: v for k, v in (paths_of(sandbox_url, venue) - paths).items()
                                   if k.startswith("status ")})
    out["sandbox"] = {"market": mid - before, "limit": late - mid, "cancel": end - late}
    out["orders"] = args.orders
    return out


def print_orders(results: dict, args) -> None:
    n = args.orders
    print(f"1. Upstream calls per order, by venue: {n} market orders (buy/sell alternating) and {n} resting limit "
          f"orders (+ {n} cancels) per venue over {args.accounts} accounts, counted by the sandbox (/__sandbox/stats, "
          f"market data warmed and held) and in each answer's confirmation.upstream_requests; baseline: "
          f"{BASELINE_PER_ORDER} calls per order as apps make today (the order, 3 trade-history lookups, a positions "
          "read)")
    print("| venue | app polls positions before each order | market order: sandbox / answers | position in the "
          "answer from | limit order: sandbox / answers | cancel | the poll (the app's own read) | market vs 5 | "
          "limit vs 5 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (venue, poll_first), r in results.items():
        s, c = r["sandbox"], r["confirmed"]
        polls = s["market"] + s["limit"] - c["market"] - c["limit"]
        sources = ", ".join(f"{src or 'none'} {k}" for (kind, src), k in sorted(r["sources"].items(), key=str)
                            if kind == "market")
        poll = f"{polls / (2 * n):.2f} per poll" if poll_first else "-"
        print(f"| {venue} | {'yes' if poll_first else 'no'} | {s['market'] / n:.2f} / {c['market'] / n:.2f} "
              f"| {sources} | {s['limit'] / n:.2f} / {c['limit'] / n:.2f} | {s['cancel'] / n:.2f} | {poll} | "
              f"**{c['market'] / n / BASELINE_PER_ORDER:.2f}** | **{c['limit'] / n / BASELINE_PER_ORDER:.2f}** |")
    print("  Market-order requests by path (sandbox), showing the order, its follow-up and the position reads:")
    for (venue, poll_first), r in results.items():
        paths = ", ".join(f"{p} {k}" for p, k in sorted(r["market_paths"].items()) if not p.startswith("status "))
        print(f"    {venue}{' (poll first)' if poll_first else ''}: {paths}")
    bad = {f"{venue}{' poll' if p else ''}": dict(r["statuses"]) for (venue, p), r in results.items()
           if set(r["statuses"]) - {"status 200", "status 201"}}
    print(f"  Answers other than 2xx from the sandbox during the bursts: {bad or 'none'}.")
    print("  Reading: the order is 1 call; Bybit and Pacifica add 1 follow-up for a market fill (their order answer "
          "has no fill: the order read by id), Binance (RESULT) and Hyperliquid (filled) none; limit orders and "
          "cancels 1. The position in the answer is free when the account's snapshot is cached (the app's poll "
          "just read it: 'computed' = snapshot + fill); without one the order reads it from the venue once "
          "('venue': +1 call on Binance/Hyperliquid, +2 on Bybit/Pacifica, balance and positions), which also "
          "refills the cache, so the same account's next order within 5 s computes it. In the 'yes' rows the "
          "sandbox count includes the poll (a read the app makes anyway, today too).")


# -- 2. polling -------------------------------------------------------------------------------------------
async def poll_sim(gw: str, sandbox_url: str, clock: ManualClock, tenant, venue: str, users: list[str],
                   args, tabs: int, seed: int) -> dict:
    """Simulate ``args.duration`` s of polling; X-Cache tally and upstream calls."""
    rng = random.Random(seed)
    period, duration = int(args.period * 1000), int(args.duration * 1000)
    events: list[tuple[int, str]] = []
    for user in users:
        phase = rng.randrange(period)
        for tab in range(tabs):
            offset = phase + (rng.randrange(int(args.tab_spread * 1000)) if tab else 0)
            events += [(t, user) for t in range(offset, duration, period)]
    events.sort()
    tally: Counter = Counter()
    start = clock.now
    before = requests_of(sandbox_url, venue)
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async def one_poll(user: str) -> None:
            answers = await asyncio.gather(*(client.get(f"{gw}/v1/account/{read}", params={"exchange": venue},
                                                        headers=tenant.headers(user)) for read in READS))
            for read, r in zip(READS, answers):
                assert r.status_code == 200, r.text
                tally[(read, r.headers["X-Cache"])] += 1

        i = 0
        for tick in range(0, duration, args.tick_ms):
            clock.now = start + tick
            batch = []
            while i < len(events) and events[i][0] < tick + args.tick_ms:
                batch.append(events[i][1])
                i += 1
            if batch:
                await asyncio.gather(*(one_poll(u) for u in batch))
        clock.now = start + duration + 60_000  # every entry expired before the next case
    return {"tally": tally, "upstream": requests_of(sandbox_url, venue) - before, "polls": len(events)}


def print_polls(rows: list[tuple[str, int, dict]], args) -> None:
    print(f"\n2. Account reads: {args.users} users per venue, each with a connected account, polling summary + "
          f"positions + open orders every {args.period:g} s (phases uniform over the period; the 3 reads of a poll "
          f"sent together), {args.duration:g} s of simulated gateway clock; TTLs account 5 s (summary and positions "
          f"share it), open orders 3 s; 'N pollers' = N backend instances/tabs per user polling within "
          f"{args.tab_spread:g} s of each other. Uncached baseline: 1 upstream call per read.")
    print("| venue | pollers per user | reads | hit rate: all / summary+positions / open orders | upstream calls/s: "
          "exgate | uncached baseline | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for venue, tabs, r in rows:
        t = r["tally"]
        reads = sum(t.values())

        def rate(names) -> float:
            total = sum(v for (k, _), v in t.items() if k in names)
            return 1 - sum(t[(k, "miss")] for k in names) / max(1, total)

        exgate, baseline = r["upstream"] / args.duration, reads / args.duration
        print(f"| {venue} | {tabs} | {reads} | **{rate(READS):.0%}** / {rate(READS[:2]):.0%} / "
              f"{rate(READS[2:]):.0%} | {exgate:.1f} | {baseline:.1f} | **{exgate / baseline:.2f}** |")
    singles = {venue: r for venue, tabs, r in rows if tabs == 1}
    if singles:
        users = 2_500  # the load: 10,000 users, half online, half of those connected
        scaled = ", ".join(f"{venue} {r['upstream'] / args.duration / args.users * users:.0f}/s"
                           for venue, r in singles.items())
        print(f"  Scaled to the issue's {users:,} connected users online, one poller each: uncached "
              f"{users * len(READS) / args.period:.0f} calls/s; through exgate {scaled} (linear: no account is "
              "shared between users).")
    print(f"  Note: with 5 s TTLs and one poller per user every {args.period:g} s, no entry outlives the gap between "
          "a user's polls: the TTL cache alone absorbs only what one upstream answer fills twice, summary and "
          "positions from one snapshot (1 call on Binance (/fapi/v2/account, ccxt fetchBalance) and Hyperliquid (clearinghouseState), so "
          "1 read in 3 is a hit and calls drop by a third; on Bybit and Pacifica the snapshot is 2 calls, so the "
          "hits save nothing), and open orders always miss. Shared pollers of one account (several instances or "
          "tabs within the TTL) are where it pays: their extra reads cost no upstream call at all. Cutting single-"
          "user polling further takes something other than the TTL: longer TTLs kept exact by the invalidation every "
          "order already does, or the venues' private push streams.")


# -- main -------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venues", default=",".join(VENUES), help="order-burst venues")
    parser.add_argument("--orders", type=int, default=20, help="market orders and limit orders per venue (each)")
    parser.add_argument("--accounts", type=int, default=4, help="accounts per venue in the burst")
    parser.add_argument("--poll-venues", default="binanceusdm,bybit")
    parser.add_argument("--users", type=int, default=40,
                        help="users per poll venue (the hit rate does not depend on it: no account is shared "
                             "between users; ~80 reads/s in-process bound the run)")
    parser.add_argument("--period", type=float, default=15.0, help="s between one poller's polls")
    parser.add_argument("--duration", type=float, default=60.0, help="simulated s of polling")
    parser.add_argument("--tabs", type=int, default=3, help="pollers per user in the shared case")
    parser.add_argument("--tab-spread", type=float, default=3.0, help="s within which a user's pollers poll")
    parser.add_argument("--tick-ms", type=int, default=100, help="simulated clock step")
    parser.add_argument("--skip-orders", action="store_true")
    parser.add_argument("--skip-polls", action="store_true")
    args = parser.parse_args()
    import structlog, logging

    logging.getLogger().setLevel(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    from exgate.sandbox.app import create_sandbox_app

    started = time.monotonic()
    timings = TIMINGS
    sandbox = create_sandbox_app(sandbox_data(), limits={v: (UNLIMITED, 1000) for v in VENUES})
    with tempfile.TemporaryDirectory(prefix="exgate-accbench-") as folder, server_thread(sandbox) as sb:
        db_url = f"sqlite+aiosqlite:///{folder}/exgate.db"
        run(make_store(db_url).close())
        tenant = create_tenant(db_url, "bench")
        if not args.skip_orders:
            venues = [v for v in args.venues.split(",") if v]
            results = {}
            with gateway(sb.url, db_url, venues) as gw:
                for venue in venues:
                    for poll_first in (False, True):
                        t0 = time.monotonic()
                        results[(venue, poll_first)] = run(order_burst(gw.url, sb.url, tenant, venue, args, poll_first))
                        timings[f"burst {venue}{' poll first' if poll_first else ''}"] = time.monotonic() - t0
            print_orders(results, args)
        if not args.skip_polls:
            rows = []
            for venue in [v for v in args.poll_venues.split(",") if v]:
                clock = ManualClock(time.time_ns() // 1_000_000)
                with gateway(sb.url, db_url, [venue], clock=clock) as gw:
                    users = [f"poller-{venue}-{i}" for i in range(args.users)]

                    async def setup() -> None:
                        async with httpx.AsyncClient(timeout=60) as client:
                            await connect_all(client, gw.url, sb.url, tenant, venue, users)

                    t0 = time.monotonic()
                    run(setup())
                    timings[f"connect {args.users} on {venue}"] = time.monotonic() - t0
                    clock.advance(60_000)  # the connection checks' traces expire
                    for tabs in (1, args.tabs):
                        t0 = time.monotonic()
                        rows.append((venue, tabs, run(poll_sim(gw.url, sb.url, clock, tenant, venue, users, args,
                                                               tabs, seed=tabs))))
                        timings[f"poll {venue} x{tabs}"] = time.monotonic() - t0
            print_polls(rows, args)
    print(f"\n(run took {time.monotonic() - started:.0f} s: " +
          ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()) + ")")


if __name__ == "__main__":
    main()
