"""L1: the in-process store, bounded by entries and bytes, least recently used evicted first.

It only stores; reading through, coalescing and staleness rules live in
:mod:`exgate.cache.tiered`. With an L2 below it, an L1 copy is kept at most ``l1_ttl_ms`` so
that an invalidation missed by this process (Redis unreachable) hides a write for no longer.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from exgate.cache.entry import Entry


@dataclass(frozen=True, slots=True)
class Slot:
    """An L1 copy: the entry and until when (ms) this copy may be served as fresh."""

    entry: Entry
    local_until_ms: int
    tags: tuple[str, ...] = ()


class MemoryStore:
    """Bounded LRU map of key → :class:`Slot`, with a tag index for invalidation.

    Args:
        max_entries: most entries kept.
        max_bytes: most body bytes kept.
    """

    def __init__(self, *, max_entries: int = 50_000, max_bytes: int = 256 * 1024 * 1024):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.evictions = 0
        self._slots: OrderedDict[str, Slot] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._slots)

    def get(self, key: str, now_ms: int) -> Slot | None:
        """The slot of ``key`` unless its entry is past every window (then it is dropped)."""
        slot = self._slots.get(key)
        if slot is None:
            return None
        if slot.entry.stale_until_ms <= now_ms:
            self.drop(key)
            return None
        self._slots.move_to_end(key)
        return slot

    def put(self, key: str, entry: Entry, local_until_ms: int, tags: tuple[str, ...] = ()) -> None:
        """Keep ``entry`` under ``key`` (serve it as fresh until ``local_until_ms`` at most)."""
        self.drop(key)
        self._slots[key] = Slot(entry, min(local_until_ms, entry.expires_ms), tags)
        self._bytes += len(entry.body)
        for tag in tags:
            self._tags.setdefault(tag, set()).add(key)
        while self._slots and (len(self._slots) > self.max_entries or self._bytes > self.max_bytes):
            self.drop(next(iter(self._slots)))
            self.evictions += 1

    def drop(self, key: str) -> None:
        """Forget ``key``."""
        slot = self._slots.pop(key, None)
        if slot is None:
            return
        self._bytes -= len(slot.entry.body)
        for tag in slot.tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[tag]

    def drop_tag(self, tag: str) -> list[str]:
        """Forget every key stored with ``tag``; returns those keys."""
        keys = sorted(self._tags.get(tag, ()))
        for key in keys:
            self.drop(key)
        return keys

    def clear(self) -> None:
        """Forget everything (after a gap in the invalidation feed)."""
        self._slots.clear()
        self._tags.clear()
        self._bytes = 0
