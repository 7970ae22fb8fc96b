"""Gateway configuration from ``EXGATE_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from exgate.venues.registry import DEFAULT_VENUES


class Settings(BaseSettings):
    """Settings of ``exgate serve``; each field reads ``EXGATE_<NAME>``.

    Attributes:
        exchanges: comma-separated ccxt ids to serve (default: the four core venues).
        upstreams: ``venue=url,venue=url`` origin overrides (see :mod:`exgate.venues.upstream`).
        redis_url: shared L2 cache (later issue); unset means in-process cache only.
        database_url: SQL state (later issues).
        upstream_timeout_ms: per upstream request timeout.
        cache_max_entries: bound of the in-process cache.
    """

    model_config = SettingsConfigDict(env_prefix="EXGATE_", extra="ignore")

    exchanges: str = ",".join(DEFAULT_VENUES)
    upstreams: str = ""
    redis_url: str | None = None
    database_url: str | None = None
    upstream_timeout_ms: int = Field(default=10_000, gt=0)
    cache_max_entries: int = Field(default=50_000, gt=0)

    def exchange_list(self) -> list[str]:
        """The configured venue ids, lower-cased, in order, without duplicates."""
        return list(dict.fromkeys(v.strip().lower() for v in self.exchanges.split(",") if v.strip()))
