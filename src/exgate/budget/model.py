"""What an exchange meters and how exgate classes its own callers.

A venue declares its :class:`Metering` once (in :mod:`exgate.venues.metering`): the limits per
scope (IP, account, API key), each a capacity of weight per fixed window, and how much weight
each request costs. Callers wait for budget in :class:`Priority` order.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class Scope(StrEnum):
    """What an exchange counts a limit against."""

    IP = "ip"
    ACCOUNT = "account"
    KEY = "key"


class Priority(IntEnum):
    """Who goes first when budget is short: lower value first."""

    ORDER = 0
    """Order placement and cancellation."""
    ACCOUNT = 1
    """Account reads: balances, positions, open orders, fills."""
    MARKET_DATA = 2
    """Public market data (can fall back to stale cache)."""


_PRIORITY: contextvars.ContextVar[Priority] = contextvars.ContextVar("exgate_priority", default=Priority.MARKET_DATA)


def current_priority() -> Priority:
    """The priority class of the request being served (market data unless set)."""
    return _PRIORITY.get()


def set_priority(priority: Priority) -> contextvars.Token[Priority]:
    """Make upstream calls made from this context use ``priority`` (order routes use ORDER)."""
    return _PRIORITY.set(priority)


@contextlib.contextmanager
def priority(value: Priority) -> Iterator[None]:
    """Upstream calls made inside the block (and the tasks it starts) use ``value``."""
    token = _PRIORITY.set(value)
    try:
        yield
    finally:
        _PRIORITY.reset(token)


@dataclass(frozen=True, slots=True)
class Limit:
    """``capacity`` weight per fixed ``window_ms`` window (aligned on the epoch), per ``scope``."""

    scope: Scope
    capacity: int
    window_ms: int
    name: str = ""

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.window_ms <= 0:
            raise ValueError(f"limit {self.name or self.scope}: capacity and window must be positive")


_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000))
_WINDOW_SUFFIX = re.compile(r"_\d+(?:ms|s|m|h|d)$")


def window_label(window_ms: int) -> str:
    """``60000`` → ``"1m"``, ``10000`` → ``"10s"``, ``1500`` → ``"1500ms"`` (largest whole unit)."""
    for unit, size in _UNITS:
        if window_ms % size == 0:
            return f"{window_ms // size}{unit}"
    return f"{window_ms}ms"


def name_for_window(name: str, window_ms: int) -> str:
    """``name`` with its window suffix replaced by ``window_ms``'s: ``("requests_5s", 10000)`` →
    ``"requests_10s"``; a name without a suffix gets one; ``""`` stays ``""``."""
    if not name:
        return name
    return f"{_WINDOW_SUFFIX.sub('', name)}_{window_label(window_ms)}"


Weigh = Callable[[str, Mapping[str, object], int], int]
"""``(path, params, ccxt_cost) -> weight`` of one request."""


def ccxt_cost(path: str, params: Mapping[str, object], cost: int) -> int:
    """Weight = ccxt's own per-endpoint cost (its ``calculate_rate_limiter_cost``)."""
    return max(1, int(cost))


@dataclass(frozen=True)
class Metering:
    """How one venue meters its public REST API.

    Attributes:
        limits: the limits every public request counts against.
        weigh: weight of one request.
        used_header: response header carrying the weight already used in the current window
            (Binance ``X-MBX-USED-WEIGHT-1M``), for reconciliation.
        remaining_header: response header carrying what is left of the window (Bybit
            ``X-Bapi-Limit-Status``), with the capacity in ``capacity_header``.
        docs: where the limits are documented.
    """

    limits: tuple[Limit, ...]
    weigh: Weigh = ccxt_cost
    used_header: str = ""
    remaining_header: str = ""
    capacity_header: str = ""
    docs: str = ""
    account_limits: tuple[Limit, ...] = field(default=())
    """Limits on order placement per account, for the order routes (declared, not yet charged)."""


def parse_limit_overrides(spec: str, source: str = "EXGATE_BUDGETS") -> dict[str, tuple[int, int]]:
    """``"binanceusdm=240/10000,bybit=60/5000"`` → venue → (capacity, window ms).

    Used for the gateway's ``EXGATE_BUDGETS`` and the sandbox's ``--rate-limit``.

    Raises:
        ValueError: an item is not ``venue=capacity/window_ms`` with positive integers
            (the message names ``source`` and the item).
    """
    out: dict[str, tuple[int, int]] = {}
    for item in spec.split(","):
        if not item.strip():
            continue
        venue, _, rest = item.partition("=")
        capacity, _, window = rest.partition("/")
        try:
            cap, win = int(capacity), int(window)
        except ValueError:
            raise ValueError(f"{source} {item.strip()!r}: expected venue=capacity/window_ms") from None
        if cap <= 0 or win <= 0 or not venue.strip():
            raise ValueError(f"{source} {item.strip()!r}: capacity and window must be positive")
        out[venue.strip().lower()] = (cap, win)
    return out
