"""Interval text such as ``"15m"`` or ``"8h"`` in milliseconds (candles, funding periods)."""

from __future__ import annotations

_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "M": 2_592_000_000}


def interval_ms(text: str | None) -> int | None:
    """``"15m"`` → 900000; ``"1M"`` counts 30 days.

    ``None`` when the text is absent, not ``<int><s|m|h|d|w|M>``, or zero long ("0h" says nothing).
    """
    if not text or len(text) < 2 or text[-1] not in _UNITS_MS or not text[:-1].isdigit():
        return None
    return int(text[:-1]) * _UNITS_MS[text[-1]] or None
