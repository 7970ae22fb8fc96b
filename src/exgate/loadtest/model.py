"""The user model of ``exgate loadtest``: who is online, what each user's app asks and when.

The figures are those trading apps plan with (see the README's scale table): of all users, a
share is online; of those, a share has a connected exchange account, whose app polls the
account summary, positions and open orders every ``poll_s`` (``poll_ws_s`` for the share whose
app WebSocket is up); online users whose WebSocket is down poll prices every ``price_poll_s``;
market-data page loads (markets, order book, trades, candles of one symbol) arrive at
``page_loads_per_1k_per_s`` per 1,000 users; orders at ``orders_per_user_per_min`` per user,
each followed by the app's positions read.

Arrivals are open-loop: :class:`Schedule` yields every event at its model time whatever the
answers' latency. Time compression: with speed ``K`` every interval is divided by ``K`` (so
every rate is multiplied by ``K``); the runner converts measured rates back by dividing by ``K``.
"""

from __future__ import annotations

import enum
import heapq
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace

from exgate.venues.registry import DEFAULT_VENUES


class Action(enum.StrEnum):
    """What one scheduled event makes the user's app do."""

    ACCOUNT_POLL = "account_poll"  # summary, positions and open orders, at once
    PRICE_POLL = "price_poll"  # the venue's price list
    PAGE_LOAD = "page_load"  # markets, order book, trades and candles of one symbol, at once
    ORDER = "order"  # one order, then the positions read


class RouteClass(enum.StrEnum):
    """Route classes latencies are reported by."""

    ACCOUNT = "account"  # /v1/account/summary|positions|orders/open (the order's positions read too)
    PRICES = "prices"  # /v1/{exchange}/prices
    MARKET = "market"  # markets, order book, trades, klines
    ORDER = "order"  # POST /v1/orders


@dataclass(frozen=True)
class UserModel:
    """The model's figures (every one a ``loadtest`` flag).

    Attributes:
        users: total users (offline ones included: page loads and orders scale with them).
        online: share of users online.
        connected: share of online users with a connected exchange account.
        poll_s: account poll interval of a connected user whose app WebSocket is down, model s.
        poll_ws_s: the same with the app WebSocket up, model s.
        ws_share: share of online users whose app WebSocket is up.
        price_poll_s: price poll interval of an online user whose WebSocket is down, model s.
        page_loads_per_1k_per_s: market-data page loads per second per 1,000 users.
        orders_per_user_per_min: orders per user per minute (10,000 users: 500 per minute).
        limit_share: share of orders that are (resting) limit orders; the rest are market orders.
        herd: every poller starts at phase 0 (a synchronized herd) instead of a random phase.
        venues: venues users are spread over, round-robin.
    """

    users: int
    online: float = 0.5
    connected: float = 0.5
    poll_s: float = 15.0
    poll_ws_s: float = 30.0
    ws_share: float = 0.5
    price_poll_s: float = 30.0
    page_loads_per_1k_per_s: float = 3.0
    orders_per_user_per_min: float = 0.05
    limit_share: float = 0.5
    herd: bool = False
    venues: tuple[str, ...] = tuple(DEFAULT_VENUES)

    def as_dict(self) -> dict[str, object]:
        """The figures as JSON-ready values (for the report)."""
        out = asdict(self)
        out["venues"] = list(self.venues)
        return out


@dataclass(frozen=True)
class Preset:
    """A named run: users, the speed ``K`` that fits this machine, the measured window and the
    warm-up before it (model seconds)."""

    users: int
    speed: float
    duration_s: float
    warmup_s: float


PRESETS: dict[str, Preset] = {
    "250": Preset(250, 8.0, 30.0, 5.0),
    "1k": Preset(1_000, 2.0, 30.0, 5.0),
    "5k": Preset(5_000, 0.4, 30.0, 5.0),
    "10k": Preset(10_000, 0.2, 30.0, 5.0),
}
"""Presets. ``speed`` keeps the busiest mode (``direct``, ~80 upstream calls/s per 1,000 users)
within what this 2-core machine serves with every process on it (~160 calls/s of wall time:
users × K is the same 2,000 for every preset); the 30 s window holds one 30 s poll cycle and
two 15 s ones (random phases make any window a steady state once caches are warm)."""

PROJECTIONS: dict[str, dict[str, list[int]]] = {
    "250": {"uncached": [20, 35]},
    "5000": {"uncached": [200, 300]},
    "10000": {"uncached": [400, 600], "cached": [40, 60]},
}
"""The planning table's upstream calls/s (users → mode → [low, high]) the report compares with."""


@dataclass(frozen=True)
class User:
    """One simulated user: ``index``, venue, the target instance it talks to (index into the
    target list), and what its app does."""

    index: int
    venue: str
    target: int
    online: bool
    connected: bool
    ws_up: bool

    @property
    def user_id(self) -> str:
        """The app's user id (``X-User-Id``)."""
        return f"lt-{self.index:05d}"


def population(model: UserModel, targets: int, seed: int) -> list[User]:
    """Every user of the model, spread round-robin over venues and target instances; online,
    connected and WebSocket states drawn as exact shares (not coin flips) so small runs keep
    the model's proportions.

    Raises:
        ValueError: no venue, no target, or a share outside [0, 1].
    """
    if not model.venues or targets < 1:
        raise ValueError("the model needs at least one venue and one target")
    for name in ("online", "connected", "ws_share", "limit_share"):
        share = getattr(model, name)
        if not 0 <= share <= 1:
            raise ValueError(f"{name} must be between 0 and 1 (got {share})")
    rng = random.Random(seed)
    order = list(range(model.users))
    rng.shuffle(order)
    online = set(order[:round(model.users * model.online)])
    online_list = [i for i in order if i in online]
    connected = set(online_list[:round(len(online_list) * model.connected)])
    ws_up = set(rng.sample(online_list, round(len(online_list) * model.ws_share)))
    return [User(i, model.venues[i % len(model.venues)], i % targets, i in online, i in connected, i in ws_up)
            for i in range(model.users)]


@dataclass(order=True)
class Event:
    """One scheduled action at ``at_s`` model seconds from the start (``user`` ``None``: the
    runner picks who, e.g. a page load's venue and symbol)."""

    at_s: float
    seq: int
    action: Action = field(compare=False)
    user: User | None = field(compare=False, default=None)
    period_s: float = field(compare=False, default=0.0)


class Schedule:
    """The open-loop arrival process of a population, in model seconds.

    Periodic pollers fire at ``phase + k * period`` (phase uniform in ``[0, period)``, or 0 with
    ``herd``); page loads and orders are Poisson processes at the model's rates. Iterate with
    :meth:`until`; every event comes in time order.
    """

    def __init__(self, model: UserModel, users: Sequence[User], seed: int):
        self.model = model
        self.rng = random.Random(seed + 1)
        self.traders = [u for u in users if u.connected]
        self._heap: list[Event] = []
        self._seq = 0
        for user in users:
            if user.connected:
                self._periodic(Action.ACCOUNT_POLL, user, model.poll_ws_s if user.ws_up else model.poll_s)
            if user.online and not user.ws_up:
                self._periodic(Action.PRICE_POLL, user, model.price_poll_s)
        self.page_rate = model.page_loads_per_1k_per_s * model.users / 1_000
        self.order_rate = model.orders_per_user_per_min * model.users / 60 if self.traders else 0.0
        self._poisson(Action.PAGE_LOAD, self.page_rate, 0.0)
        self._poisson(Action.ORDER, self.order_rate, 0.0)

    def _push(self, event: Event) -> None:
        heapq.heappush(self._heap, event)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _periodic(self, action: Action, user: User, period: float) -> None:
        if period <= 0:
            return
        phase = 0.0 if self.model.herd else self.rng.uniform(0, period)
        self._push(Event(phase, self._next_seq(), action, user, period))

    def _poisson(self, action: Action, rate: float, after: float) -> None:
        if rate > 0:
            self._push(Event(after + self.rng.expovariate(rate), self._next_seq(), action))

    def expected_per_s(self) -> dict[Action, float]:
        """Each action's mean rate in model events per second (requests: an account poll is 3,
        a page load 4, an order 2)."""
        rates = {a: 0.0 for a in Action}
        for event in self._heap:
            if event.period_s:
                rates[event.action] += 1 / event.period_s
        rates[Action.PAGE_LOAD] = self.page_rate
        rates[Action.ORDER] = self.order_rate
        return rates

    def until(self, end_s: float) -> Iterator[Event]:
        """Events with ``at_s < end_s``, in time order (periodic ones rescheduled as they go)."""
        while self._heap and self._heap[0].at_s < end_s:
            event = heapq.heappop(self._heap)
            if event.period_s:
                self._push(replace(event, at_s=event.at_s + event.period_s, seq=self._next_seq()))
            elif event.action is Action.PAGE_LOAD:
                self._poisson(Action.PAGE_LOAD, self.page_rate, event.at_s)
            else:
                self._poisson(Action.ORDER, self.order_rate, event.at_s)
                event = replace(event, user=self.rng.choice(self.traders))
            yield event


REQUESTS_PER_ACTION = {Action.ACCOUNT_POLL: 3, Action.PRICE_POLL: 1, Action.PAGE_LOAD: 4, Action.ORDER: 2}
