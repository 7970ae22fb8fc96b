"""Which symbols each venue streams: a shared pool (tier 1) and demand (tier 2).

- Tier 1: the venue's top ``top_n`` markets by 24 h quote volume (from its tickers, read
  through the cache) plus the configured bases (``EXGATE_STREAM_SYMBOLS``: each venue's main
  perpetual of those bases).
- Tier 2: a symbol read over REST more than ``threshold`` times within a minute gets a lease of
  ``lease_ms`` (``EXGATE_STREAM_LEASE_MS``); every later read renews it, and the symbol is
  dropped once the lease runs out. With Redis the leases are shared
  (``exgate:stream:demand:{venue}``, a sorted set of symbol → expiry ms), so the reads of every
  instance count towards the one owner's subscriptions.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import structlog
from pydantic import BaseModel

from exgate.errors import ExgateError
from exgate.models import MarketType

log = structlog.get_logger("exgate.streams")


class TierEntry(BaseModel):
    """One streamed symbol of a venue and why (``GET /v1/{exchange}/streams``).

    ``tier`` 1 (shared pool) or 2 (demand); ``reason`` in words; ``lease_expires_ms`` the end of
    a demand lease (ms since the epoch; ``None`` for tier 1)."""

    symbol: str
    tier: int
    reason: str
    lease_expires_ms: int | None = None


def demand_key(venue: str) -> str:
    """Redis key of a venue's demand leases."""
    return "exgate:stream:demand:{" + venue + "}"


class Demand:
    """REST reads counted per (venue, symbol) and the leases they earn (see the module doc).

    Args:
        clock: ms since the epoch.
        threshold: reads within ``window_ms`` past which a symbol is leased.
        lease_ms: how long a lease lasts after the last read.
        store: the cache's :class:`~exgate.cache.RedisStore` to share leases through, or ``None``.
        max_symbols: most symbols tracked per venue (older counts are forgotten first).
    """

    def __init__(self, clock: Callable[[], int], *, threshold: int = 3, window_ms: int = 60_000,
                 lease_ms: int = 300_000, store: Any = None, max_symbols: int = 2_000) -> None:
        self.clock = clock
        self.threshold = threshold
        self.window_ms = window_ms
        self.lease_ms = lease_ms
        self.store = store
        self.max_symbols = max_symbols
        self._reads: defaultdict[str, dict[str, deque[int]]] = defaultdict(dict)
        self._leases: defaultdict[str, dict[str, int]] = defaultdict(dict)
        self._pending: defaultdict[str, dict[str, int]] = defaultdict(dict)
        self._shared_at: dict[tuple[str, str], int] = {}

    def note(self, venue: str, symbol: str, *, force: bool = False) -> None:
        """Count one read of ``symbol`` (``force``: lease it now, e.g. a read only a stream can
        answer). Cheap and synchronous; Redis is written by :meth:`flush`."""
        now = self.clock()
        leases = self._leases[venue]
        if symbol in leases or force:
            self._lease(venue, symbol, now)
            return
        reads = self._reads[venue]
        times = reads.get(symbol)
        if times is None:
            if len(reads) >= self.max_symbols:
                reads.pop(next(iter(reads)))
            times = reads[symbol] = deque(maxlen=self.threshold + 1)
        times.append(now)
        while times and times[0] <= now - self.window_ms:
            times.popleft()
        if len(times) > self.threshold:
            del reads[symbol]
            self._lease(venue, symbol, now)

    def _lease(self, venue: str, symbol: str, now: int) -> None:
        expires = now + self.lease_ms
        self._leases[venue][symbol] = expires
        last = self._shared_at.get((venue, symbol))
        if last is None or now - last >= self.lease_ms // 10:  # renewals reach Redis at most 10x per lease
            self._pending[venue][symbol] = expires
            self._shared_at[(venue, symbol)] = now

    async def flush(self) -> None:
        """Write the leases earned or renewed since the last flush to Redis (``ZADD GT``)."""
        if self.store is None:
            self._pending.clear()
            return
        pending, self._pending = self._pending, defaultdict(dict)
        for venue, members in pending.items():
            if members:
                client = self.store.client
                done = await self.store.call(lambda: client.zadd(demand_key(venue), members, gt=True))
                if not isinstance(done, int):  # Redis down: keep them for the next flush
                    for symbol, until in members.items():
                        self._pending[venue].setdefault(symbol, until)

    async def leases(self, venue: str) -> dict[str, int]:
        """Live leases of ``venue``: symbol → expiry ms (this instance's and, with Redis,
        every instance's); expired ones are forgotten."""
        now = self.clock()
        mine = self._leases[venue]
        for symbol in [s for s, until in mine.items() if until <= now]:
            del mine[symbol]
        out = dict(mine)
        if self.store is not None:
            client = self.store.client
            key = demand_key(venue)

            async def read() -> list:
                pipe = client.pipeline(transaction=False)
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zrange(key, 0, -1, withscores=True)
                return (await pipe.execute())[1]

            rows = await self.store.call(read)
            if isinstance(rows, list):
                for member, score in rows:
                    symbol = member.decode() if isinstance(member, bytes) else str(member)
                    out[symbol] = max(out.get(symbol, 0), int(score))
        return out


@dataclass
class TopVolume:
    """The venue's tier-1 pool as last computed: symbols best first, and when (ms)."""

    symbols: list[str]
    computed_ms: int


def top_by_volume(tickers: list[dict], n: int, eligible: set[str]) -> list[str]:
    """The ``n`` symbols of ``eligible`` with the largest ``quote_volume_24h`` in ``tickers``
    (prices-page rows; decimal strings), largest first; ties by symbol."""
    def volume(row: dict) -> Decimal:
        try:
            return Decimal(str(row.get("quote_volume_24h") or 0))
        except ArithmeticError:
            return Decimal(0)

    rows = [r for r in tickers if r.get("symbol") in eligible]
    rows.sort(key=lambda r: (-volume(r), r["symbol"]))
    return [r["symbol"] for r in rows[:n]]


async def plan_venue(market_data: Any, adapter: Any, config: Any, demand: Demand, top: TopVolume | None,
                     now_ms: int) -> tuple[TopVolume | None, list[TierEntry]]:
    """What ``adapter``'s venue streams now: tier 1 (the ``config.top_n`` pool, recomputed
    every ``config.top_refresh_ms`` from the venue's tickers, and ``config.symbols``), then
    tier 2 (``demand``'s leases, at most ``config.max_demand``, the most recently read first).
    Returns the pool as kept (``top``; a failed recompute keeps the previous one) and the plan."""
    if top is None or now_ms - top.computed_ms >= config.top_refresh_ms:
        symbols = await _top(market_data, adapter, config.top_n)
        if symbols is not None:
            top = TopVolume(symbols, now_ms)
    entries: dict[str, TierEntry] = {}
    for rank, symbol in enumerate(top.symbols if top is not None else [], 1):
        entries[symbol] = TierEntry(symbol=symbol, tier=1, reason=f"top {config.top_n} by 24 h quote volume (#{rank})")
    for base in config.symbols:
        market = adapter.loaded_market(base)
        if market is not None and market.symbol not in entries:
            entries[market.symbol] = TierEntry(symbol=market.symbol, tier=1, reason=f"configured: {base}")
    leased = sorted((await demand.leases(adapter.id)).items(), key=lambda item: (-item[1], item[0]))
    for symbol, until in leased[:config.max_demand]:
        if symbol not in entries and adapter.loaded_market(symbol) is not None:
            entries[symbol] = TierEntry(symbol=symbol, tier=2, reason="demand: read over REST", lease_expires_ms=until)
    return top, list(entries.values())


async def _top(market_data: Any, adapter: Any, n: int) -> list[str] | None:
    """The venue's top ``n`` perpetuals (else markets) by 24 h quote volume; ``None`` when its
    tickers could not be read within 2 s (the caller keeps the pool it has: a lapse must not
    drop tier 1, and a slow venue must not hold up the other venues' lease renewals)."""
    if n <= 0:
        return []
    try:
        async with asyncio.timeout(2.0):
            page = await market_data.prices(adapter.id)
    except (ExgateError, TimeoutError) as exc:
        log.warning("stream_top_unavailable", venue=adapter.id, error=repr(exc))
        return None
    markets = await adapter.markets()
    perps = {m.symbol for m in markets if m.type is MarketType.PERPETUAL and m.active}
    return top_by_volume(orjson.loads(page.body)["prices"], n, perps or {m.symbol for m in markets if m.active})
