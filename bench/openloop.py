"""An open-loop HTTP/1.1 load generator at a fixed rate, for the benches (run as its own process).

Request ``i`` is due at ``t0 + i / rate`` whatever the earlier ones did (open loop: a slow
server gets more requests in flight, not fewer requests, and latency is counted from the due
time, so a stall is not hidden by coordinated omission). Requests go round-robin over the
targets, each on an idle keep-alive connection to its host (a new one when none is idle, at
most ``max_connections`` per host; past that the request waits and is late). Every answer's
status and ``X-Cache-Source`` header are counted.

Why not wrk: Debian's ``wrk`` has no rate option (``-R`` is wrk2's), and pacing it with a Lua
``delay()`` makes each connection wait after its answer (closed loop: the rate falls as
latency grows). This loop costs a few % of a core at 200 req/s.

Run: ``python bench/openloop.py --rate 200 --seconds 30 < targets.json`` where the JSON is a
list of ``["http://host:port", "/path?query"]``; prints one JSON object (see :func:`run`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

import orjson


IDLE_S = 2.0
"""Longest an idle connection is reused: uvicorn closes keep-alive connections idle for 5 s,
and a request written to one it just closed fails with no answer."""


class _Pool:
    """Idle keep-alive connections to one ``host:port`` (most recently used first)."""

    def __init__(self, host: str, port: int, limit: int):
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.open = 0
        self.slots = asyncio.Semaphore(limit)

    async def get(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        await self.slots.acquire()
        now = time.perf_counter()
        while self.idle:
            reader, writer, since = self.idle.pop()
            if now - since < IDLE_S and not reader.at_eof():
                return reader, writer
            writer.close()
            self.open -= 1
        try:
            conn = await asyncio.open_connection(self.host, self.port)
        except BaseException:
            self.slots.release()
            raise
        self.open += 1
        return conn

    def put(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], reusable: bool) -> None:
        if reusable:
            self.idle.append((*conn, time.perf_counter()))
        else:
            conn[1].close()
            self.open -= 1
        self.slots.release()

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
                    ) -> tuple[int, str, bool]:
    """Send one request, read its answer; ``(status, X-Cache-Source or "", keep-alive)``."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked, source, keep = 0, False, "", True
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"x-cache-source":
            source = value.strip().decode()
        elif name == b"connection" and b"close" in value.lower():
            keep = False
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, source, keep


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(targets: list[tuple[str, str]], rate: float, seconds: float, max_connections: int = 64) -> dict:
    """GET ``targets`` (``(base url, path)``) round-robin at ``rate`` req/s for ``seconds``.

    Returns ``{"sent", "answered", "seconds", "rate", "by_status": {status: n},
    "by_source": {X-Cache-Source or "none": n}, "errors": {exception name: n}, "failed": {"status
    path": n} of the non-200 answers, "p50_ms",
    "p99_ms", "late": requests sent more than 10 ms after their due time}``."""
    pools: dict[str, _Pool] = {}
    prepared = []
    for base, path in targets:
        parts = urlsplit(base)
        key = f"{parts.hostname}:{parts.port}"
        pools.setdefault(key, _Pool(parts.hostname or "127.0.0.1", parts.port or 80, max_connections))
        prepared.append((pools[key], f"GET {path} HTTP/1.1\r\nHost: {key}\r\nConnection: keep-alive\r\n\r\n".encode(),
                         path.partition("?")[0]))
    by_status: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    latencies: list[float] = []
    late = 0

    async def one(pool: _Pool, request: bytes, path: str, due: float) -> None:
        nonlocal late
        try:
            conn = await pool.get()
        except OSError as exc:
            errors[type(exc).__name__] += 1
            return
        if time.perf_counter() - due > 0.010:
            late += 1
        ok = False
        try:
            status, source, keep = await asyncio.wait_for(_exchange(*conn, request), 30)
            ok = keep
            by_status[str(status)] += 1
            by_source[source or "none"] += 1
            if status != 200:
                failed[f"{status} {path}"] += 1
            latencies.append((time.perf_counter() - due) * 1000)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as exc:
            errors[type(exc).__name__] += 1
        finally:
            pool.put(conn, ok)

    tasks: set[asyncio.Task] = set()
    started = time.perf_counter()
    total = int(rate * seconds)
    try:
        for i in range(total):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pool, request, path = prepared[i % len(prepared)]
            task = asyncio.create_task(one(pool, request, path, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=30)
    finally:
        for task in tasks:
            task.cancel()
        for pool in pools.values():
            pool.close()
    elapsed = time.perf_counter() - started
    answered = sum(by_status.values())
    return {"sent": total, "answered": answered, "seconds": elapsed, "rate": answered / elapsed if elapsed else 0.0,
            "by_status": dict(by_status), "by_source": dict(by_source), "errors": dict(errors), "failed": dict(failed),
            "p50_ms": _percentile(latencies, 0.5), "p99_ms": _percentile(latencies, 0.99), "late": late}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, required=True, help="requests per second (total)")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--max-connections", type=int, default=64, help="per host")
    args = parser.parse_args()
    targets = [tuple(t) for t in orjson.loads(sys.stdin.buffer.read())]
    if not targets or args.rate <= 0 or args.seconds <= 0:
        parser.error("expected a non-empty target list on stdin, --rate > 0 and --seconds > 0")
    result = asyncio.run(run(targets, args.rate, args.seconds, args.max_connections))
    sys.stdout.buffer.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
