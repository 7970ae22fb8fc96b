"""One market's client side of the book: resting client orders, the synthetic liquidity clients
consumed (gone until it refills) and the client prints, plus the overlay
:class:`~exgate.sandbox.sim.InstrumentSim` reads so every other reader sees them."""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from exgate.sandbox.matching.types import Order, Side

MAX_PRINTS = 10_000
"""Client prints one market keeps (the oldest go first)."""

CLIENT_TRADE_BASE = 10**15
"""Client prints' trade ids start here: a sequence of their own, above every synthetic id
(synthetic ids are ``second * fills_per_second + k``, about 1.8e10 today), increasing in time."""


def synthetic_book(sim, now_ms: int, depth: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The model's own book at ``now_ms`` as ``(ticks, lots)`` levels, best first (what
    :meth:`InstrumentSim.book` shows without clients)."""
    core = sim.core
    if not sim.is_active(now_ms) or depth <= 0:
        return [], []
    found = core.next_fill(now_ms)
    if found is None:
        return [], []
    fills, index = found
    return core.flow.book(fills, index, depth, 0)


class MarketBook:
    """Client state of one market (held by a :class:`~.engine.MatchingEngine`).

    Attributes:
        resting: open resting client orders by id.
        consumed: ``{(is_ask, ticks): deque[(time_ms, lots)]}`` synthetic liquidity clients took.
        prints: client trades ``{"id", "price", "size", "buyer_maker", "time"}``, oldest first.
        synced_ms: the time up to which the synthetic flow has been matched against resting orders.
    """

    def __init__(self, engine, sim, now_ms: int):
        self.engine = engine
        self.sim = sim
        self.symbol = sim.instrument.venue_id
        self.resting: dict[int, Order] = {}
        self.consumed: dict[tuple[bool, int], deque] = {}
        self.prints: deque[dict] = deque(maxlen=MAX_PRINTS)
        self.synced_ms = now_ms

    # -- consumed synthetic liquidity ----------------------------------------------------
    def taken(self, is_ask: bool, ticks: int, now_ms: int) -> int:
        """Lots of the synthetic level at ``ticks`` clients took less than ``refill_ms`` ago."""
        queue = self.consumed.get((is_ask, ticks))
        if not queue:
            return 0
        refill = self.engine.refill_ms
        while queue and queue[0][0] + refill <= now_ms:
            queue.popleft()
        if not queue:
            del self.consumed[(is_ask, ticks)]
            return 0
        return sum(lots for _, lots in queue)

    def take(self, is_ask: bool, ticks: int, lots: int, now_ms: int) -> None:
        self.consumed.setdefault((is_ask, ticks), deque()).append((now_ms, lots))

    def prune(self, now_ms: int) -> None:
        """Drop consumed entries that refilled (bounded memory)."""
        for key in list(self.consumed):
            self.taken(key[0], key[1], now_ms)

    # -- what readers see ------------------------------------------------------------------
    def side_orders(self, side: Side) -> list[Order]:
        """Resting orders of ``side`` in price-time priority (best price first, then oldest)."""
        orders = [o for o in self.resting.values() if o.side is side]
        sign = -1 if side is Side.BUY else 1
        return sorted(orders, key=lambda o: (sign * o.price, o.created, o.id))

    def levels(self, now_ms: int, depth: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The merged book ``(ticks, lots)``: synthetic levels less what clients took, plus the
        resting client orders at their levels; best first, ``depth`` a side."""
        sim = self.sim
        bids, asks = synthetic_book(sim, now_ms, depth + 50)
        lot, tick = sim.core.lot, sim.core.tick
        out = []
        for is_ask, levels, side in ((False, bids, Side.BUY), (True, asks, Side.SELL)):
            merged: dict[int, int] = {}
            for ticks, lots in levels:
                left = lots - self.taken(is_ask, ticks, now_ms)
                if left > 0:
                    merged[ticks] = merged.get(ticks, 0) + left
            for order in self.side_orders(side):
                ticks = int(order.price / tick)
                merged[ticks] = merged.get(ticks, 0) + int(order.remaining / lot)
            ordered = sorted(merged.items(), reverse=not is_ask)
            out.append(ordered[:depth])
        return out[0], out[1]

    def book(self, now_ms: int, depth: int) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """:meth:`InstrumentSim.book` with clients: synced to ``now_ms`` first."""
        self.engine.sync(self.sim, now_ms)
        bids, asks = self.levels(now_ms, depth)
        p, q = self.sim.core.price_of, self.sim.core.size_of
        return [(p(t), q(n)) for t, n in bids], [(p(t), q(n)) for t, n in asks]

    def trades_between(self, start_ms: int | None, end_ms: int, now_ms: int) -> list[dict]:
        """Client prints with ``start_ms <= time <= end_ms`` (synced to ``now_ms`` first)."""
        self.engine.sync(self.sim, now_ms)
        return [dict(t) for t in self.prints if (start_ms is None or t["time"] >= start_ms) and t["time"] <= end_ms]
