"""What ``bench/streams.py`` reads from the gateways and the sandbox: stream statuses, the
streamed symbols, the read paths, REST counts and the client-stream lag."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict

import aiohttp
import orjson

LAG_KINDS = ("book", "trades")
"""Client-stream channels whose lag is measured."""


async def get_json(session: aiohttp.ClientSession, url: str) -> dict:
    async with session.get(url) as r:
        if r.status != 200:
            raise RuntimeError(f"GET {url}: {r.status} {(await r.read())[:200]!r}")
        return orjson.loads(await r.read())


async def statuses(session: aiohttp.ClientSession, gateway: str, venue: str) -> dict:
    """``GET /v1/{venue}/streams`` of ``gateway``."""
    return await get_json(session, f"{gateway}/v1/{venue}/streams")


async def wait_live(session: aiohttp.ClientSession, gateway: str, venues: list[str], timeout_s: float
                    ) -> dict[str, dict]:
    """Poll until every stream kind of each venue is live (or ``timeout_s``); the last body per
    venue whose streams all went live (venues missing from the answer never did)."""
    live: dict[str, dict] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(live) < len(venues):
        for venue in venues:
            if venue in live:
                continue
            body = await statuses(session, gateway, venue)
            kinds = body.get("streams", [])
            if body.get("tiers") and kinds and all(s["state"] == "live" for s in kinds):
                live[venue] = body
        await asyncio.sleep(0.25)
    return live


def bases(body: dict) -> list[str]:
    """The tier-1 bases of a ``/streams`` answer (``BTC/USDC:USDC`` → ``BTC``), in rank order."""
    return [t["symbol"].split("/")[0] for t in body["tiers"] if t["tier"] == 1]


def read_paths(symbols: dict[str, list[str]]) -> list[str]:
    """The streamed read keys: per venue and symbol its order book, trades and 1 m candles, and
    per venue one prices read of all its symbols."""
    paths = []
    for venue, names in symbols.items():
        for base in names:
            paths += [f"/v1/{venue}/markets/{base}/orderbook?depth=10", f"/v1/{venue}/markets/{base}/trades?limit=20",
                      f"/v1/{venue}/markets/{base}/klines?interval=1m&limit=50"]
        paths.append(f"/v1/{venue}/prices?symbols={','.join(names)}")
    return paths


async def sources(session: aiohttp.ClientSession, gateways: list[str], paths: list[str]) -> dict[str, str]:
    """``X-Cache-Source`` of one read of every path on every gateway (``"status N"`` for a failure),
    by ``gateway path``."""
    out = {}
    for gateway in gateways:
        for path in paths:
            async with session.get(gateway + path) as r:
                await r.read()
                out[f"{gateway} {path}"] = r.headers.get("x-cache-source", "none") if r.status == 200 else f"status {r.status}"
    return out


async def wait_streamed(session: aiohttp.ClientSession, gateways: list[str], paths: list[str], timeout_s: float
                        ) -> dict[str, str]:
    """Poll until every read on every gateway comes from a stream; the reads that still do not."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = {k: v for k, v in (await sources(session, gateways, paths)).items() if v != "stream"}
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.5)


async def rest_counts(session: aiohttp.ClientSession, sandbox: str) -> dict[str, dict[str, int]]:
    """The sandbox's REST requests since its last reset: venue → operation → count."""
    body = await get_json(session, f"{sandbox}/__sandbox/stats")
    return {venue: dict(v.get("by_operation", {})) for venue, v in body["venues"].items()}


async def messages(session: aiohttp.ClientSession, gateway: str, venues: list[str]) -> int:
    """Sum of ``messages`` over every stream status of ``venues`` as ``gateway`` reports them."""
    total = 0
    for venue in venues:
        total += sum(s.get("messages", 0) for s in (await statuses(session, gateway, venue))["streams"])
    return total


def owners(bodies: dict[str, dict], pids: list[int]) -> dict[tuple[str, str], int | None]:
    """Per (venue, kind), the index of the gateway owning the stream (its status's ``owner`` is
    ``host:pid``); ``None`` when unknown."""
    index = {pid: i for i, pid in enumerate(pids)}
    out = {}
    for venue, body in bodies.items():
        for status in body["streams"]:
            owner = (status.get("owner") or "").rpartition(":")[2]
            out[(venue, status["kind"])] = index.get(int(owner)) if owner.isdigit() else None
    return out


def client_plan(symbols: dict[str, list[str]], gateways: list[str], owner: dict[tuple[str, str], int | None]
                ) -> dict[str, list[str]]:
    """Which channels each lag client subscribes to: with several gateways, every channel on a
    gateway that does not own its stream (the next one after the owner), so its events travel
    owner → Redis → that gateway; with one, everything on it."""
    plan: dict[str, list[str]] = defaultdict(list)
    for venue, names in symbols.items():
        for kind in LAG_KINDS:
            own = owner.get((venue, kind))
            at = 0 if len(gateways) == 1 else ((own if own is not None else 0) + 1) % len(gateways)
            plan[gateways[at]] += [f"{venue}:{kind}:{base}" for base in names]
    return dict(plan)


class LagClients:
    """WebSocket clients of ``/v1/stream`` recording, per event kind, ``receive ms - event
    data timestamp`` (sandbox → client) and ``receive ms - event ts_ms`` (owner's publish →
    client). Use as an async context manager; measuring starts with :meth:`start`."""

    def __init__(self, plan: dict[str, list[str]]):
        self.plan = plan
        self.lags: dict[str, list[float]] = defaultdict(list)
        self.bus_lags: dict[str, list[float]] = defaultdict(list)
        self.other: dict[str, int] = defaultdict(int)
        self.recording = False
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task] = []
        self._subscribed = 0

    async def __aenter__(self) -> LagClients:
        self._session = aiohttp.ClientSession()
        try:
            for gateway, channels in self.plan.items():
                ws = await self._session.ws_connect(f"{gateway}/v1/stream", timeout=10)
                await ws.send_str(orjson.dumps({"op": "subscribe", "channels": channels}).decode())
                self._tasks.append(asyncio.create_task(self._read(ws)))
            deadline = time.monotonic() + 10
            while self._subscribed < len(self.plan) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    def start(self) -> None:
        self.recording = True

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.time_ns() / 1e6
            frame = orjson.loads(message.data)
            op = frame.get("op")
            if op == "subscribed":
                self._subscribed += 1
            elif op == "event" and self.recording:
                event = frame["event"]
                kind = event.get("kind", "?")
                stamp = event.get("data", {}).get("timestamp") if isinstance(event.get("data"), dict) else None
                if isinstance(stamp, int):
                    self.lags[kind].append(now - stamp)
                if isinstance(event.get("ts_ms"), int):
                    self.bus_lags[kind].append(now - event["ts_ms"])
            elif op in ("error", "gap"):
                self.other[op] += 1

    async def __aexit__(self, *exc: object) -> None:
        self.recording = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await task
        if self._session is not None:
            await self._session.close()


def percentile(values: list[float], q: float) -> float | None:
    """Value at quantile ``q`` (0..1) of ``values``; ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
