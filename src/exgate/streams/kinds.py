"""What a stream carries and how often a healthy one speaks."""

from __future__ import annotations

from enum import StrEnum


class StreamKind(StrEnum):
    """The public streams exgate ingests, one per (venue, kind, symbol)."""

    BOOK = "book"
    """Order book, kept whole from the venue's snapshot and deltas (ccxt ``watch_order_book``)."""
    TRADES = "trades"
    """Public trades (ccxt ``watch_trades``), kept as a recent buffer."""
    TICKER = "ticker"
    """Ticker: last, best bid/ask, 24 h statistics (ccxt ``watch_ticker``)."""
    CANDLE = "candle"
    """Candles of the streamed interval (ccxt ``watch_ohlcv``), on top of a REST history."""


CCXT_METHOD = {
    StreamKind.BOOK: "watchOrderBook",
    StreamKind.TRADES: "watchTrades",
    StreamKind.TICKER: "watchTicker",
    StreamKind.CANDLE: "watchOHLCV",
}
"""The ccxt.pro capability each kind needs (``exchange.has``)."""

STALL_SCALE = {StreamKind.BOOK: 1, StreamKind.TICKER: 2, StreamKind.CANDLE: 2, StreamKind.TRADES: 6}
"""Silence allowed per kind, in units of the configured stall time (``EXGATE_STREAM_STALL_MS``,
the book's): a book moves many times a second, tickers and candles about once a second, and a
quiet market may print no trade for a while."""
