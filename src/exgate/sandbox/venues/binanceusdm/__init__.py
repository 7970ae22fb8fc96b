"""Binance USD-M futures (``fapi``) as the sandbox serves it under ``/binanceusdm/``.

``venue`` holds the venue (instruments, books, trades, tickers, funding), ``general`` the
connectivity and status endpoints and the price/open-interest/derived-kline market data,
``errors`` Binance's error answers and parameter checks, ``private`` the signed account and
order endpoints (``auth`` their HMAC check, ``formats`` their payloads).
"""

from exgate.sandbox.venues.binanceusdm.venue import BinanceUsdm

__all__ = ["BinanceUsdm"]
