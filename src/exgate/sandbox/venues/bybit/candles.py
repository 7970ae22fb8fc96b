"""Bybit v5 klines: intervals, calendar (``W``/``M``) periods and rows on the wire.

https://bybit-exchange.github.io/docs/v5/market/kline (and mark-kline, index-kline,
preimum-index-kline): ``interval`` is one of ``1 3 5 15 30 60 120 240 360 720 D W M``; ``W``
candles start on Monday 00:00 UTC, ``M`` on the 1st. Rows are newest first; a trade kline is
``[startTime, open, high, low, close, volume, turnover]``, a mark/index/premium kline
``[startTime, open, high, low, close]``. Prices print without trailing zeros (``"42548"``);
premium-index values are rates.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from exgate.sandbox.data import fmt
from exgate.sandbox.sim import InstrumentSim

_MINUTE = 60_000
_DAY = 86_400_000
KLINE_MS = {code: int(code) * _MINUTE for code in ("1", "3", "5", "15", "30", "60", "120", "240", "360", "720")}
KLINE_MS["D"] = _DAY


def trim(value: Decimal) -> str:
    """A number as Bybit prints it in books and klines: no trailing zeros (``"42548"``)."""
    text = fmt(value)
    return text.rstrip("0").rstrip(".") if "." in text else text


def week_floor(ms: int) -> int:
    """Start of the Monday-based UTC week containing ``ms`` (Bybit's ``W`` candles)."""
    day = ms // _DAY
    return (day - (day + 3) % 7) * _DAY  # day 0 (1970-01-01) was a Thursday


def month_floor(ms: int) -> int:
    """Start of the UTC calendar month containing ``ms`` (Bybit's ``M`` candles)."""
    when = datetime.fromtimestamp(ms / 1000, UTC)
    return int(datetime(when.year, when.month, 1, tzinfo=UTC).timestamp()) * 1000


CALENDAR: dict[str, tuple[Callable[[int], int], Callable[[int], int]]] = {
    "W": (week_floor, lambda start: start + 7 * _DAY),
    "M": (month_floor, lambda start: month_floor(start + 31 * _DAY)),
}
"""``W``/``M``: (floor of a time to its period's start, start of the following period)."""

INTERVALS = frozenset(KLINE_MS) | frozenset(CALENDAR)


def periods(floor: Callable[[int], int], following: Callable[[int], int], now: int, start: int | None,
            end: int | None, limit: int) -> list[int]:
    """Starts of the calendar periods to return, oldest first (Bybit's start/end/limit rules)."""
    last = floor(min(now, end) if end is not None else now)
    if start is None:
        out = [last]
        while len(out) < limit:
            out.insert(0, floor(out[0] - 1))
        return out
    out, begin = [], floor(start)
    begin = begin if begin >= start else following(begin)
    while begin <= last and len(out) < limit:
        out.append(begin)
        begin = following(begin)
    return out


def candles(sim: InstrumentSim, interval: str, now: int, start: int | None, end: int | None, limit: int,
            kind: str = "last") -> list[dict]:
    """The model's candles (``kind``: last, mark, index or premium), oldest first; ``W``/``M``
    on calendar bounds, none before the listing's period. Work is O(limit)."""
    if interval in KLINE_MS:
        return sim.candles(KLINE_MS[interval], now, start_ms=start, end_ms=end, limit=limit, kind=kind)
    floor, following = CALENDAR[interval]
    listed = floor(sim.earliest_ms)
    starts = periods(floor, following, now, max(start, listed) if start is not None else None, end, limit)
    return sim.span_candles([(begin, following(begin)) for begin in starts if begin >= listed], now, kind=kind)


def rows(found: list[dict], kind: str) -> list[list[str]]:
    """Candles (oldest first) as Bybit's kline rows, newest first."""
    if kind == "last":
        return [[str(c["open_time"]), trim(c["open"]), trim(c["high"]), trim(c["low"]), trim(c["close"]),
                 fmt(c["volume"]), trim(c["quote_volume"].quantize(Decimal("0.0001")))] for c in reversed(found)]
    return [[str(c["open_time"]), trim(c["open"]), trim(c["high"]), trim(c["low"]), trim(c["close"])]
            for c in reversed(found)]
