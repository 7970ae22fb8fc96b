"""How long each kind of data stays fresh, then usable stale, in the cache (ms).

TTL defaults follow DESIGN.md (markets 5 min, prices 5 s, account 5 s, positions 5 s, open
orders 3 s, trade history 10 s). Choices exgate makes where the design is silent:

* order book 1 s: books move every few hundred ms; 1 s still collapses a burst of readers;
* public trades 2 s;
* candles 5 s while the range includes the candle still forming; closed candles never change,
  so a range of closed candles is kept 1 h;
* funding 10 s: the rate itself changes once per funding interval, mark/index move faster.

After its TTL a market-data value may be served stale for one more TTL while a background
refresh runs (``grace_ms``), and, only when the exchange fails, up to ``max_stale_ms`` past
expiry with ``X-Cache: stale``. Private data (account, positions, orders, fills) is never
served stale by default: a stale position is worse than a clear 503.

Overrides: ``EXGATE_CACHE_TTL_MS="prices=3000,orderbook=500"`` for TTLs, and a TOML file
(``EXGATE_CACHE_CONFIG``) for every window::

    [cache.prices]
    ttl_ms = 5000
    grace_ms = 5000
    max_stale_ms = 60000
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import replace
from enum import StrEnum
from pathlib import Path

from exgate.cache.entry import Freshness
from exgate.errors import ConfigError


class DataType(StrEnum):
    """Kinds of cached data; the value is used in cache keys, config and metrics."""

    MARKETS = "markets"
    PRICES = "prices"
    ORDER_BOOK = "orderbook"
    TRADES = "trades"
    CANDLES = "klines"
    CANDLES_CLOSED = "klines_closed"
    FUNDING = "funding"
    ACCOUNT = "account"
    POSITIONS = "positions"
    OPEN_ORDERS = "open_orders"
    TRADE_HISTORY = "trade_history"


DEFAULT_TTL_MS: dict[DataType, int] = {
    DataType.MARKETS: 300_000,
    DataType.PRICES: 5_000,
    DataType.ORDER_BOOK: 1_000,
    DataType.TRADES: 2_000,
    DataType.CANDLES: 5_000,
    DataType.CANDLES_CLOSED: 3_600_000,
    DataType.FUNDING: 10_000,
    DataType.ACCOUNT: 5_000,
    DataType.POSITIONS: 5_000,
    DataType.OPEN_ORDERS: 3_000,
    DataType.TRADE_HISTORY: 10_000,
}

_MAX_STALE_MS: dict[DataType, int] = {
    DataType.MARKETS: 3_600_000,
    DataType.PRICES: 60_000,
    DataType.ORDER_BOOK: 30_000,
    DataType.TRADES: 30_000,
    DataType.CANDLES: 60_000,
    DataType.CANDLES_CLOSED: 86_400_000,
    DataType.FUNDING: 120_000,
}

_PRIVATE = frozenset({DataType.ACCOUNT, DataType.POSITIONS, DataType.OPEN_ORDERS, DataType.TRADE_HISTORY})

DEFAULT_FRESHNESS: dict[DataType, Freshness] = {
    kind: Freshness(ttl_ms=ttl, grace_ms=0 if kind in _PRIVATE else ttl, max_stale_ms=_MAX_STALE_MS.get(kind, 0))
    for kind, ttl in DEFAULT_TTL_MS.items()
}

_FIELDS = ("ttl_ms", "grace_ms", "max_stale_ms")


def _data_type(name: str, source: str) -> DataType:
    try:
        return DataType(name.strip().lower())
    except ValueError:
        raise ConfigError(f"{source}: unknown data type {name!r}", field=source,
                          allowed=[t.value for t in DataType]) from None


def _ms(value: object, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{source}: expected a whole number of ms, got {value!r}", field=source)
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{source}: expected a whole number of ms, got {value!r}", field=source) from None
    if number < 0:
        raise ConfigError(f"{source}: must not be negative, got {number}", field=source)
    return number


def parse_ttl_overrides(spec: str) -> dict[DataType, int]:
    """``"prices=3000,orderbook=500"`` → ``{PRICES: 3000, ORDER_BOOK: 500}`` (ms).

    Raises:
        ConfigError: an item is not ``type=ms``, the type is unknown (``allowed`` lists the
            types) or the number is not a non-negative integer.
    """
    out: dict[DataType, int] = {}
    for item in spec.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"EXGATE_CACHE_TTL_MS: expected type=ms, got {item.strip()!r}",
                              field="EXGATE_CACHE_TTL_MS")
        out[_data_type(name, "EXGATE_CACHE_TTL_MS")] = _ms(value.strip(), f"EXGATE_CACHE_TTL_MS.{name.strip()}")
    return out


def load_freshness(ttl_spec: str = "", toml_path: Path | None = None) -> dict[DataType, Freshness]:
    """The freshness table: defaults, then the TOML file's ``[cache.<type>]`` tables, then the
    ``EXGATE_CACHE_TTL_MS`` overrides.

    Raises:
        ConfigError: the file cannot be read or parsed, or names an unknown type or field.
    """
    table = dict(DEFAULT_FRESHNESS)
    if toml_path is not None:
        try:
            doc = tomllib.loads(Path(toml_path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cache config {toml_path}: {exc}", field="EXGATE_CACHE_CONFIG") from None
        section = doc.get("cache", {})
        if not isinstance(section, Mapping):
            raise ConfigError(f"cache config {toml_path}: [cache] must be a table", field="cache")
        for name, values in section.items():
            kind = _data_type(name, f"cache.{name}")
            if not isinstance(values, Mapping):
                raise ConfigError(f"cache.{name} must be a table of {', '.join(_FIELDS)}", field=f"cache.{name}")
            unknown = set(values) - set(_FIELDS)
            if unknown:
                raise ConfigError(f"cache.{name}: unknown field(s) {sorted(unknown)}", field=f"cache.{name}",
                                  allowed=list(_FIELDS))
            table[kind] = replace(table[kind], **{k: _ms(v, f"cache.{name}.{k}") for k, v in values.items()})
    for kind, ttl in parse_ttl_overrides(ttl_spec).items():
        table[kind] = replace(table[kind], ttl_ms=ttl)
    return table
