"""Binance USD-M futures (``fapi``) as the sandbox serves it under ``/binanceusdm/``.

``venue`` holds the venue (instruments, books, trades, tickers, funding), ``general`` the
connectivity and status endpoints and the price/open-interest/derived-kline market data,
``errors`` Binance's error answers and parameter checks.
"""

from exgate.sandbox.venues.binanceusdm.venue import BinanceUsdm

__all__ = ["BinanceUsdm"]
