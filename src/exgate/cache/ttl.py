"""How long each kind of data stays fresh in the cache (ms).

Defaults follow DESIGN.md (markets 5 min, prices 5 s, account 5 s, positions 5 s, open orders
3 s, trade history 10 s). Choices exgate makes where the design is silent:

* order book 1 s: books move every few hundred ms; 1 s still collapses a burst of readers;
* public trades 2 s;
* candles 5 s while the range includes the candle still forming; closed candles never change,
  so a range of closed candles is kept 1 h;
* funding 10 s: the rate itself changes once per funding interval, mark/index move faster.
"""

from __future__ import annotations

from enum import StrEnum


class DataType(StrEnum):
    """Kinds of cached data; the value is used in cache keys and metrics."""

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
