"""A small closed-loop HTTP/1.1 load generator (keep-alive, N connections) for the benches.

Used instead of an external tool so ``make bench`` runs on a fresh machine. It measures
requests per second and latency percentiles of GETs against one URL path on loopback.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass
class LoadResult:
    """Outcome of one run: completed requests, non-2xx answers, wall seconds, latencies (s)."""

    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Latency at quantile ``q`` (0..1) in ms."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _worker(host: str, port: int, request: bytes, deadline: float, result: LoadResult) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            status = await _read_response(reader)
            result.latencies.append(time.perf_counter() - started)
            result.requests += 1
            if not 200 <= status < 300:
                result.errors += 1
    finally:
        writer.close()


async def run_load(host: str, port: int, path: str, *, connections: int, seconds: float) -> LoadResult:
    """GET ``path`` over ``connections`` keep-alive connections for ``seconds``."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: keep-alive\r\n\r\n".encode()
    result = LoadResult(0, 0, 0.0, [])
    started = time.perf_counter()
    deadline = started + seconds
    async with asyncio.TaskGroup() as group:
        for _ in range(connections):
            group.create_task(_worker(host, port, request, deadline, result))
    result.seconds = time.perf_counter() - started
    return result
