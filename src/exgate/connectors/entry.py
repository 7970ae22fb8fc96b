"""What one connector-state entry is: its key, its payload, its life, and when it is corrupt."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, replace
from typing import Any

import orjson

DAY_MS = 86_400_000
"""An offset beyond ±1 day is no clock drift but a corrupted entry."""
PUBLIC = "public"
"""The scope of state every connection of a venue shares (its server clock, its markets)."""
MAINNET = "mainnet"
"""The environment of a venue reached at its own URLs."""


class Kind(enum.StrEnum):
    """What an entry holds: the venue's clock offset, or its markets snapshot."""

    TIME_OFFSET = "time_offset"
    MARKETS = "markets"


def credential_scope(identifier: str) -> str:
    """The non-secret scope id of a connection or account id: its sha256 hex (never a key)."""
    return hashlib.sha256(identifier.encode()).hexdigest()


def environment_of(upstream: str | None) -> str:
    """``mainnet`` for a venue at its own URLs; ``override-<12 hex>`` (sha256 of the override
    URL) when ``EXGATE_UPSTREAMS`` points it elsewhere (a testnet, the sandbox, a fake): state
    learnt from one upstream is never applied to another."""
    if not upstream:
        return MAINNET
    return "override-" + hashlib.sha256(upstream.rstrip("/").encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class StateKey:
    """The lookup key (venue, scope, environment, kind) of one entry."""

    venue: str
    scope: str
    environment: str
    kind: Kind

    @property
    def redis_key(self) -> str:
        """``connector:{venue}:scope:environment:kind`` (the braces: the venue's Redis Cluster slot)."""
        return f"connector:{{{self.venue}}}:{self.scope}:{self.environment}:{self.kind.value}"

    @classmethod
    def from_redis(cls, name: str) -> StateKey | None:
        """The key of a Redis name made by :attr:`redis_key`, ``None`` for any other name."""
        parts = name.split(":")
        if len(parts) != 5 or parts[0] != "connector" or not parts[1].startswith("{") or not parts[1].endswith("}"):
            return None
        try:
            return cls(parts[1][1:-1], parts[2], parts[3], Kind(parts[4]))
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class StateEntry:
    """One entry: ``payload`` (``{"offset_ms": int}`` or ccxt's ``{"markets", "currencies",
    "funding_intervals"}``), the round trip of the measurement (ms), when it was synced and
    until when it is valid (ms since the epoch), whether it still is, and its hit count."""

    key: StateKey
    payload: dict[str, Any]
    rtt_ms: int | None
    synced_at_ms: int
    expires_at_ms: int
    valid: bool = True
    hits: int = 0

    @property
    def offset_ms(self) -> int:
        """The clock offset (``time_offset`` entries): local time minus the venue's server time,
        ms (ccxt's ``options['timeDifference']``)."""
        return int(self.payload["offset_ms"])

    def usable(self, now_ms: int) -> bool:
        """Valid and not expired at ``now_ms``."""
        return self.valid and now_ms < self.expires_at_ms

    def remaining_ms(self, now_ms: int) -> int:
        return max(0, self.expires_at_ms - now_ms)

    def with_hits(self, hits: int) -> StateEntry:
        return replace(self, hits=hits)

    def encode(self) -> bytes:
        """The Redis form (JSON)."""
        return orjson.dumps({"payload": self.payload, "rtt_ms": self.rtt_ms, "synced_at_ms": self.synced_at_ms,
                             "expires_at_ms": self.expires_at_ms, "valid": self.valid}, default=str)

    @classmethod
    def decode(cls, key: StateKey, raw: bytes | str) -> StateEntry:
        """The entry of a Redis value. Raises :class:`Corrupt` for anything unreadable."""
        try:
            data = orjson.loads(raw)
            entry = cls(key, data["payload"], data.get("rtt_ms"), int(data["synced_at_ms"]),
                        int(data["expires_at_ms"]), bool(data.get("valid", True)))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise Corrupt("unparseable") from None
        entry.check()
        return entry

    @classmethod
    def from_row(cls, key: StateKey, payload: str, rtt_ms: int | None, synced_at_ms: int, expires_at_ms: int,
                 valid: bool, hits: int) -> StateEntry:
        """The entry of an SQL row. Raises :class:`Corrupt` for anything unreadable."""
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise Corrupt("unparseable") from None
        entry = cls(key, data, rtt_ms, int(synced_at_ms), int(expires_at_ms), bool(valid), int(hits or 0))
        entry.check()
        return entry

    def check(self) -> None:
        """Raise :class:`Corrupt` (with the reason) unless the entry makes sense: a JSON object
        payload, an expiry not before its sync (no negative TTL), an integer offset within
        ±1 day, a non-empty markets dict with a currencies dict."""
        if not isinstance(self.payload, dict):
            raise Corrupt("unparseable")
        if self.expires_at_ms < self.synced_at_ms:
            raise Corrupt("negative ttl")
        if self.key.kind is Kind.TIME_OFFSET:
            offset = self.payload.get("offset_ms")
            if not isinstance(offset, int) or isinstance(offset, bool):
                raise Corrupt("unparseable")
            if abs(offset) > DAY_MS:
                raise Corrupt("absurd offset")
        else:
            markets = self.payload.get("markets")
            if not isinstance(markets, dict) or not markets or not isinstance(self.payload.get("currencies"), dict):
                raise Corrupt("unparseable")


class Corrupt(ValueError):
    """An entry that cannot be used (``args[0]``: why); it is discarded and overwritten."""


@dataclass(frozen=True, slots=True)
class Synced:
    """What one sync with the venue gave: the payload and the round trip it took (ms)."""

    payload: dict[str, Any]
    rtt_ms: int | None = None
