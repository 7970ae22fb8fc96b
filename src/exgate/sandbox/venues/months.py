"""Calendar intervals of the venues' candles: a ``1M`` candle is a calendar month (UTC), not 30 days."""

from __future__ import annotations

from datetime import datetime, timezone


def month_spans(start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """``(open_ms, next_open_ms)`` of the calendar months (UTC) overlapping ``[start_ms, end_ms]``:
    ``1M`` candles (Hyperliquid, Pacifica) open on the first of the month."""
    if end_ms < start_ms:
        return []
    first = datetime.fromtimestamp(max(0, start_ms) / 1000, tz=timezone.utc)
    year, month = first.year, first.month
    spans = []
    while True:
        opened = _month_ms(year, month)
        if opened > end_ms:
            break
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        spans.append((opened, _month_ms(year, month)))
    return spans


def _month_ms(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=timezone.utc).timestamp()) * 1000
