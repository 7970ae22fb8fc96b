"""Building the set of adapters a gateway serves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from exgate.venues.base import ExchangeAdapter
from exgate.venues.ccxt_adapter import DEFAULT_TIMEOUT_MS, CcxtAdapter
from exgate.venues.profiles import profile_for

DEFAULT_VENUES: tuple[str, ...] = ("binanceusdm", "bybit", "hyperliquid", "pacifica")
"""The venues served on the embedded defaults."""


def build_adapters(venues: Iterable[str], upstreams: Mapping[str, str] | None = None,
                   timeout_ms: int = DEFAULT_TIMEOUT_MS) -> dict[str, ExchangeAdapter]:
    """One adapter per venue id, each pointed at its upstream override if one is given.

    Raises:
        exgate.errors.BadRequest: a venue id is not a ccxt exchange.
    """
    upstreams = upstreams or {}
    return {
        venue: CcxtAdapter(profile_for(venue), upstream=upstreams.get(venue), timeout_ms=timeout_ms)
        for venue in dict.fromkeys(v.strip().lower() for v in venues if v.strip())
    }
