"""Gateway configuration from ``EXGATE_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from exgate.venues.registry import DEFAULT_VENUES


class Settings(BaseSettings):
    """Settings of ``exgate serve``; each field reads ``EXGATE_<NAME>``.

    Attributes:
        exchanges: comma-separated ccxt ids to serve (default: the four core venues).
        upstreams: ``venue=url,venue=url`` origin overrides (see :mod:`exgate.venues.upstream`).
        redis_url: shared L2 cache, locks and events (``redis://host:port/db``); unset means
            in-process cache only.
        database_url: SQL state (later issues).
        upstream_timeout_ms: per upstream request timeout.
        cache_max_entries: bound of the in-process cache (L1) in entries.
        cache_max_bytes: bound of L1 in body bytes.
        cache_ttl_ms: TTL overrides, ``type=ms,...`` (types: see :class:`~exgate.cache.DataType`).
        cache_config: TOML file with ``[cache.<type>]`` ttl_ms / grace_ms / max_stale_ms.
        l1_ttl_ms: longest an L1 copy is served while Redis is reachable (0: every read goes
            to Redis); bounds how long an invalidation missed by one instance can hide a write.
        redis_timeout_ms: a Redis call slower than this counts as a failure (fail-open).
        redis_failures_to_open: consecutive Redis failures that open the circuit.
        redis_cooldown_ms: how long the open circuit skips Redis before one probe.
        lock_lease_ms: lease of the cross-instance fetch lock (default: upstream timeout + 1 s).
        stale_after_ms: soft deadline of a read that has a copy within its max-stale age: past
            it, the copy is served ``stale`` while the fetch goes on (0: at once).
        budgets: per-venue override of the IP budget, ``venue=capacity/window_ms,...`` (e.g.
            a lowered budget for an IP shared with other software).
        budget_max_waiters: most requests queued for one venue's budget.
        admin_token: operator token for ``DELETE /v1/cache`` (``Authorization: Bearer ...``);
            unset: the route answers 403. Never logged or returned.
    """

    model_config = SettingsConfigDict(env_prefix="EXGATE_", extra="ignore")

    exchanges: str = ",".join(DEFAULT_VENUES)
    upstreams: str = ""
    redis_url: str | None = None
    database_url: str | None = None
    upstream_timeout_ms: int = Field(default=10_000, gt=0)
    cache_max_entries: int = Field(default=50_000, gt=0)
    cache_max_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    cache_ttl_ms: str = ""
    cache_config: Path | None = None
    l1_ttl_ms: int = Field(default=1_000, ge=0)
    redis_timeout_ms: int = Field(default=500, gt=0)
    redis_failures_to_open: int = Field(default=3, gt=0)
    redis_cooldown_ms: int = Field(default=1_000, gt=0)
    lock_lease_ms: int | None = Field(default=None, gt=0)
    stale_after_ms: int = Field(default=1_000, ge=0)
    budgets: str = ""
    budget_max_waiters: int = Field(default=1_000, gt=0)
    admin_token: SecretStr | None = None

    def lease_ms(self) -> int:
        """The fetch-lock lease: configured, or the upstream timeout plus 1 s."""
        return self.lock_lease_ms or self.upstream_timeout_ms + 1_000

    def exchange_list(self) -> list[str]:
        """The configured venue ids, lower-cased, in order, without duplicates."""
        return list(dict.fromkeys(v.strip().lower() for v in self.exchanges.split(",") if v.strip()))
