"""The connector state's figures, computed from entry rows (a pure function, for :meth:`stats`)."""

from __future__ import annotations

from typing import Any

Row = tuple[str, bool, int, int, int | None]
"""(venue, valid, synced_at_ms, expires_at_ms, stored hits or ``None``) of one entry."""


def figures(rows: list[Row], now_ms: int, hits: int, misses: int, syncs: int) -> dict[str, Any]:
    """``entries`` (total; valid: valid and unexpired; expired; invalid: the rest), ``hits``,
    ``misses``, ``hit_rate`` (``None`` before any read), ``syncs``, ``last_sync_age_ms`` (of
    the newest entry, ``None`` without entries) at ``now_ms``, and ``stored_hits``: the hit
    counts of the entries' rows, every process's (``None`` when not read from SQL)."""
    expired = sum(1 for _, _, _, expires, _ in rows if expires <= now_ms)
    valid = sum(1 for _, ok, _, expires, _ in rows if ok and expires > now_ms)
    last = max((synced for _, _, synced, _, _ in rows), default=None)
    stored = [count for *_, count in rows if count is not None]
    return {"entries": {"total": len(rows), "valid": valid, "expired": expired, "invalid": len(rows) - valid - expired},
            "hits": hits, "misses": misses, "hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
            "syncs": syncs, "last_sync_age_ms": max(0, now_ms - last) if last is not None else None,
            "stored_hits": sum(stored) if stored or not rows else None}
