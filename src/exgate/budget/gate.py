"""The budget gate of one venue: every upstream request waits here for weight, by priority.

A request that finds budget and nobody queued goes at once. Otherwise it joins a bounded
priority queue (order placement, then account reads, then market data; first come first
served within a class) and one pump task grants the head whenever the shared budget allows:
at the next window, or at once when a higher-priority caller arrives. Each caller has a
deadline; past it, or with the queue full, it gets :class:`~exgate.errors.UpstreamRateLimited`
with ``Retry-After``, which the cache turns into stale data where it holds some.

Each priority class may use the capacity minus a small reserve, so market data alone never
takes the last weight of a window from order placement, on any instance.

:meth:`BudgetGate.observe` reads every upstream response: usage headers raise the shared
count to what the exchange reports (other users of the same IP or key), and 429/418 record a
ban every instance honours until ``Retry-After`` has passed. Nothing is retried here.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, Protocol

import structlog

from exgate.budget.model import Limit, Metering, Priority, current_priority
from exgate.budget.store import Grant
from exgate.cache.entry import wall_clock_ms
from exgate.errors import UpstreamRateLimited

log = structlog.get_logger("exgate.budget")

DEFAULT_RESERVE: Mapping[Priority, float] = MappingProxyType(
    {Priority.ORDER: 0.0, Priority.ACCOUNT: 0.02, Priority.MARKET_DATA: 0.05})
"""Share of each window a class may not use (kept for the classes above it)."""

DEFAULT_DEADLINE_MS: Mapping[Priority, int] = MappingProxyType(
    {Priority.ORDER: 10_000, Priority.ACCOUNT: 5_000, Priority.MARKET_DATA: 2_000})
"""How long a caller of each class waits for budget before giving up."""

BAN_DEFAULT_S = {429: 60, 418: 120}
"""Ban length when a 429/418 carries no Retry-After."""


class BudgetStore(Protocol):
    """Where usage is kept (:class:`MemoryBudgetStore` or :class:`RedisBudgetStore`)."""

    async def acquire(self, venue: str, limits: Any, cost: int, now_ms: int, guard_ms: int) -> Grant: ...
    async def reconcile(self, venue: str, limit: Limit, used: int, now_ms: int) -> None: ...
    async def ban(self, venue: str, until_ms: int, now_ms: int) -> None: ...
    async def banned_until(self, venue: str, now_ms: int) -> int: ...
    async def used(self, venue: str, limit: Limit, now_ms: int) -> int: ...


class BudgetGate:
    """Priority queue in front of one venue's shared budget.

    Args:
        venue: the venue id (budget keys are per venue).
        metering: the venue's limits and weights.
        store: where usage is kept.
        clock: current time in ms (windows and bans).
        max_waiters: queue bound; a caller beyond it fails at once.
        deadline_ms: per class, how long a caller waits.
        guard_ms: grants this close to a window's end are charged to the next window too.
        reserve: per class, the share of capacity it may not use.
        on_wait: metrics hook, (priority, seconds waited).
        on_throttled: metrics hook, (HTTP status) for every 429/418 received.
    """

    def __init__(self, venue: str, metering: Metering, store: BudgetStore, *,
                 clock: Callable[[], int] = wall_clock_ms, max_waiters: int = 1_000,
                 deadline_ms: Mapping[Priority, int] = DEFAULT_DEADLINE_MS, guard_ms: int = 250,
                 reserve: Mapping[Priority, float] = DEFAULT_RESERVE,
                 on_wait: Callable[[Priority, float], None] | None = None,
                 on_throttled: Callable[[int], None] | None = None):
        self.venue = venue
        self.metering = metering
        self.store = store
        self.clock = clock
        self.max_waiters = max_waiters
        self.deadline_ms = dict(deadline_ms)
        self.guard_ms = guard_ms
        self.caps = {p: [(limit, max(1, math.floor(limit.capacity * (1 - reserve.get(p, 0.0)))))
                         for limit in metering.limits] for p in Priority}
        self.on_wait = on_wait
        self.on_throttled = on_throttled
        self.banned_until_ms = 0
        self._seen: dict[Limit, tuple[int, int]] = {}  # limit -> (window index, weight used), this instance's view
        self._queue: list[tuple[int, int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._tasks: asyncio.TaskGroup | None = None

    async def __aenter__(self) -> BudgetGate:
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        self._pump_task = self._tasks.create_task(self._pump())
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        tasks, self._tasks = self._tasks, None
        self._pump_task.cancel()
        for *_, future in self._queue:
            future.cancel()
        if tasks is not None:  # the body's own exception propagates as it is, not in a group
            await tasks.__aexit__(None, None, None)

    @property
    def waiting(self) -> int:
        """Callers queued now."""
        return sum(1 for *_, f in self._queue if not f.done())

    def used_ratio(self) -> float:
        """Highest share (0..1, above 1 if the exchange reports more) of any limit's capacity
        used in its current window, as this instance saw it: the weight it was granted, raised
        to what the exchange's usage headers report (which include every other user of the IP
        or key). No store call; with several instances and no usage headers each sees its own
        part only."""
        now = self.clock()
        return max((used / limit.capacity for limit, (window, used) in self._seen.items()
                    if window == now // limit.window_ms), default=0.0)

    def _see(self, limit: Limit, used: int, now: int, *, add: bool) -> None:
        window, before = self._seen.get(limit, (-1, 0))
        before = before if window == now // limit.window_ms else 0
        self._seen[limit] = (now // limit.window_ms, before + used if add else max(before, used))

    def wake(self) -> None:
        """Make the pump look at the queue now (new arrival, or a test that moved the clock)."""
        self._wake.set()

    def retry_after_s(self) -> int:
        """Whole seconds until budget is expected back: the end of a ban, else the end of the
        current window of the longest limit."""
        now = self.clock()
        if self.banned_until_ms > now:
            return max(1, math.ceil((self.banned_until_ms - now) / 1000))
        window = max((limit.window_ms for limit in self.metering.limits), default=1_000)
        return max(1, math.ceil(((now // window + 1) * window - now) / 1000))

    def _rate_limited(self, detail: str) -> UpstreamRateLimited:
        return UpstreamRateLimited(f"{self.venue}: {detail}", retry_after_s=self.retry_after_s())

    async def acquire(self, cost: int, priority: Priority | None = None) -> None:
        """Wait until ``cost`` weight is granted to this caller.

        Raises:
            UpstreamRateLimited: the queue is full, or the caller's deadline passed first
                (``retry_after_s``: when budget is expected back).
        """
        priority = current_priority() if priority is None else priority
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline_ms = self.deadline_ms[priority]
        if not self._queue:
            grant = await self._try(priority, cost)
            if grant.granted:
                self._report(priority, 0.0)
                return
            self._note(grant)
            if grant.retry_ms > deadline_ms:  # waiting cannot help: fail now, not at the deadline
                raise self._rate_limited("banned after a 429/418" if grant.banned else "budget spent for this window")
        if self._tasks is None:
            raise RuntimeError("BudgetGate is not open; use 'async with'")
        if len(self._queue) >= self.max_waiters:
            raise self._rate_limited(f"{len(self._queue)} requests already wait for budget")
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._queue, (int(priority), next(self._seq), cost, future))
        self._wake.set()
        try:
            done, _ = await asyncio.wait({future}, timeout=deadline_ms / 1000)
        except asyncio.CancelledError:
            future.cancel()
            self._wake.set()  # the pump may be waiting on this caller as the head
            raise
        if not done:
            future.cancel()
            self._wake.set()
            self._report(priority, loop.time() - started)
            raise self._rate_limited(f"no budget within {deadline_ms} ms")
        future.result()
        self._report(priority, loop.time() - started)

    def _report(self, priority: Priority, seconds: float) -> None:
        if self.on_wait is not None:
            self.on_wait(priority, seconds)

    def _note(self, grant: Grant) -> None:
        if grant.banned:
            self.banned_until_ms = max(self.banned_until_ms, self.clock() + grant.retry_ms)

    async def _try(self, priority: Priority, cost: int) -> Grant:
        """One attempt on the shared budget; a ban this instance saw itself is honoured even
        if writing it to Redis failed."""
        now = self.clock()
        if self.banned_until_ms > now:
            return Grant(False, self.banned_until_ms - now, banned=True)
        grant = await self.store.acquire(self.venue, self.caps[priority], cost, now, self.guard_ms)
        if grant.granted:
            for limit in self.metering.limits:
                self._see(limit, cost, now, add=True)
        return grant

    async def _pump(self) -> None:
        """Grant queued callers, head first, as budget allows; sleep until a window turns."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                head = heapq.heappop(self._queue)  # taken out while asking: a caller arriving
                priority, _, cost, future = head   # meanwhile can never be granted in its place
                if future.done():
                    continue
                grant = await self._try(Priority(priority), cost)
                if grant.granted:
                    if not future.done():
                        future.set_result(None)
                    continue
                heapq.heappush(self._queue, head)
                self._note(grant)
                try:  # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
                    async with asyncio.timeout(max(grant.retry_ms, 5) / 1000):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                self._wake.clear()

    # -- what the exchange says -----------------------------------------------------------
    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Read one upstream response: reconcile usage from its headers; on 429/418 record
        a ban for ``Retry-After`` seconds (or :data:`BAN_DEFAULT_S`) shared by every instance."""
        lower = {k.lower(): v for k, v in headers.items()}
        now = self.clock()
        metering = self.metering
        used: int | None = None
        try:
            if metering.used_header and metering.used_header.lower() in lower:
                used = int(lower[metering.used_header.lower()])
            elif metering.remaining_header and metering.remaining_header.lower() in lower:
                capacity = int(lower.get(metering.capacity_header.lower(), metering.limits[0].capacity))
                used = capacity - int(lower[metering.remaining_header.lower()])
        except ValueError:
            log.warning("budget_header_unreadable", exchange=self.venue)
        if used is not None and metering.limits:
            first = metering.limits[0]
            # just after a turn the count may still be the old window's: skip rather than misfile
            if now % first.window_ms >= min(1_000, first.window_ms // 10):
                self._see(first, used, now, add=False)
                self._spawn(self.store.reconcile(self.venue, first, used, now))
        if status in (418, 429):
            try:
                retry_after_s = int(float(lower.get("retry-after", BAN_DEFAULT_S[status])))
            except ValueError:
                retry_after_s = BAN_DEFAULT_S[status]
            until = now + max(1, retry_after_s) * 1000
            self.banned_until_ms = max(self.banned_until_ms, until)
            log.warning("upstream_throttled", exchange=self.venue, status=status, retry_after_s=retry_after_s)
            if self.on_throttled is not None:
                self.on_throttled(status)
            self._spawn(self.store.ban(self.venue, until, now))

    def _spawn(self, coro: Any) -> None:
        if self._tasks is None:
            coro.close()
            return
        self._tasks.create_task(coro)

    async def snapshot(self) -> dict[str, Any]:
        """Budget state for ``/v1/exchanges``: each limit's use in the current window, the ban."""
        now = self.clock()
        limits = [{"scope": limit.scope.value, "name": limit.name, "capacity": limit.capacity,
                   "window_ms": limit.window_ms, "used": await self.store.used(self.venue, limit, now)}
                  for limit in self.metering.limits]
        banned = max(await self.store.banned_until(self.venue, now), self.banned_until_ms if self.banned_until_ms > now else 0)
        return {"limits": limits, "banned_until_ms": banned or None, "waiting": self.waiting}
