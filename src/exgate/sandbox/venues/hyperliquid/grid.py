"""Hyperliquid's number rules: the perp price grid, how it prints numbers and book aggregation.

Perp prices carry at most 5 significant figures (integers always allowed) and at most
``6 - szDecimals`` decimals (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/tick-and-lot-size).
``l2Book``'s optional ``nSigFigs`` (2-5, or null for full precision) groups the book to that many
significant figures, and ``mantissa`` (1, 2 or 5, only with ``nSigFigs`` 5) to steps of that
many units of the fifth figure (info-endpoint, "L2 book snapshot").
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

PERP_MAX_DECIMALS = 6
SIG_FIGS = 5
SIG_FIG_CHOICES = (2, 3, 4, 5)
"""``nSigFigs`` values Hyperliquid accepts (null: full precision)."""
MANTISSA_CHOICES = (1, 2, 5)
"""``mantissa`` values Hyperliquid accepts, with ``nSigFigs`` 5 only."""


def price_decimals(price: Decimal, sz_decimals: int) -> int:
    """Decimals a perp price may carry: 5 significant figures, at most ``6 - szDecimals``."""
    if price <= 0:
        return PERP_MAX_DECIMALS - sz_decimals
    exponent = price.adjusted()  # floor(log10(price))
    return max(0, min(PERP_MAX_DECIMALS - sz_decimals, SIG_FIGS - 1 - exponent))


def price_tick(price: Decimal, sz_decimals: int) -> Decimal:
    """The smallest valid price step at ``price``."""
    return Decimal(1).scaleb(-price_decimals(price, sz_decimals))


def hl_price(price: Decimal, sz_decimals: int, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """``price`` rounded onto Hyperliquid's perp price grid."""
    return price.quantize(price_tick(price, sz_decimals), rounding=rounding)


def num(value: Decimal) -> str:
    """A Decimal as Hyperliquid prints it: no exponent, no trailing zeros, ``.0`` on integers."""
    text = f"{value.normalize():f}"
    return text if "." in text else text + ".0"


def bucket_step(price: Decimal, sz_decimals: int, n_sig_figs: int | None, mantissa: int | None) -> Decimal:
    """The price step of ``l2Book`` grouping at ``price``: ``nSigFigs`` significant figures
    (times ``mantissa`` units of the last one), never finer than the asset's own tick."""
    tick = price_tick(price, sz_decimals)
    if n_sig_figs is None or price <= 0:
        return tick
    step = Decimal(mantissa or 1).scaleb(price.adjusted() - n_sig_figs + 1)
    return max(step, tick)


def aggregate(levels: Iterable[tuple[Decimal, Decimal, int]], sz_decimals: int, *, bid: bool,
              n_sig_figs: int | None = None, mantissa: int | None = None,
              limit: int | None = None) -> list[tuple[Decimal, Decimal, int]]:
    """Book levels ``(price, size, orders)`` best first, grouped as Hyperliquid lists them: each
    price rounded onto its bucket (bids down, asks up; the asset's grid when ``n_sig_figs`` is
    None), sizes and order counts summed; at most ``limit`` levels."""
    rounding = ROUND_FLOOR if bid else ROUND_CEILING
    merged: dict[Decimal, list] = {}
    for price, size, orders in levels:
        step = bucket_step(price, sz_decimals, n_sig_figs, mantissa)
        px = ((price / step).to_integral_value(rounding=rounding) * step).normalize()
        if px not in merged:
            if limit is not None and len(merged) >= limit:
                break
            merged[px] = [Decimal(0), 0]
        merged[px][0] += size
        merged[px][1] += orders
    return [(px, size, count) for px, (size, count) in merged.items()]
