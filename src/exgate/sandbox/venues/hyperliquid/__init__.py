"""Hyperliquid, as the sandbox serves it under ``POST /hyperliquid/info``.

Split by concern: :mod:`.venue` (the ``/info`` types and their errors), :mod:`.grid` (price grid,
number printing, ``l2Book`` grouping) and :mod:`.spot` (the spot token catalogue and its
contexts); ``1M`` candles' calendar months come from :mod:`exgate.sandbox.venues.months`.
Hyperliquid's rate-limit answer is :func:`exgate.sandbox.limits.hyperliquid_reject`.
"""

from exgate.sandbox.venues.hyperliquid.grid import hl_price, num, price_decimals, price_tick
from exgate.sandbox.venues.hyperliquid.venue import Hyperliquid

__all__ = ["Hyperliquid", "hl_price", "num", "price_decimals", "price_tick"]
