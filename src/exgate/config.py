"""Gateway configuration from ``EXGATE_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import difflib
import enum
import re
import types
import typing
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from exgate.errors import ConfigError, ExgateError
from exgate.venues.registry import DEFAULT_VENUES


class CacheMode(enum.StrEnum):
    """``EXGATE_CACHE``: ``on`` (the two-tier read-through cache) or ``off`` (every read is its
    own upstream call, no coalescing: :class:`exgate.cache.passthrough.PassThroughCache`)."""

    ON = "on"
    OFF = "off"


class StreamsMode(enum.StrEnum):
    """``EXGATE_STREAMS``: whether ``exgate serve`` ingests WebSocket streams."""

    ON = "on"
    IDLE = "idle"
    OFF = "off"


class Settings(BaseSettings):
    """Settings of ``exgate serve``; each field reads ``EXGATE_<NAME>``.

    Attributes:
        exchanges: comma-separated ccxt ids to serve (default: the four core venues).
        upstreams: ``venue=url,venue=url`` origin overrides (see :mod:`exgate.venues.upstream`).
        cache: ``on`` (default) or ``off``: with ``off`` nothing is cached or coalesced, every
            read goes upstream (the ``direct`` mode of ``exgate loadtest``; see :class:`CacheMode`).
        redis_url: shared L2 cache, locks and events (``redis://host:port/db``); unset means
            in-process cache only.
        database_url: SQL state (tenants, exchange connections), an SQLAlchemy URL
            (``sqlite:///path``, ``postgresql://user@host/db``; unset: ``./exgate.db``, see
            :func:`exgate.store.database_url`).
        secret_keys: ``EXGATE_SECRET_KEYS``, comma-separated Fernet keys encrypting stored
            credentials (the first encrypts, all decrypt; see :class:`exgate.store.SecretBox`).
            Never logged or returned.
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
        cors_origins: comma-separated origins allowed cross-origin ``GET``/``HEAD`` (``*``: any;
            default none: no CORS headers, preflights answer 405).
        time_offset_ttl_ms: life of a venue's stored clock offset (:mod:`exgate.connectors`),
            ms; default 15 min.
        markets_snapshot_ttl_ms: life of a venue's stored markets snapshot, ms; default 1 h.
        streams: ``on`` (default): ``exgate serve`` ingests the venues' public WebSocket streams
            (:mod:`exgate.streams`); ``idle``: nothing until a start command; ``off``: never.
        stream_top_n: tier-1 markets per venue by 24 h quote volume (default 20).
        stream_symbols: comma-separated bases every venue streams (its main perpetual), e.g. ``BTC,ETH``.
        stream_lease_ms: a demand (tier-2) subscription's lease, renewed by reads (default 5 min).
        stream_owner_lease_ms: the ownership lease of a stream across instances (default 5 s).
        stream_stall_ms: silence after which a book stream counts as stalled (others: scaled).
        stream_interval: the candle interval streamed (default ``1m``).
    """

    model_config = SettingsConfigDict(env_prefix="EXGATE_", extra="ignore")

    exchanges: str = ",".join(DEFAULT_VENUES)
    upstreams: str = ""
    cache: CacheMode = CacheMode.ON
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
    secret_keys: SecretStr | None = None
    cors_origins: str = ""
    time_offset_ttl_ms: int = Field(default=900_000, gt=0)
    markets_snapshot_ttl_ms: int = Field(default=3_600_000, gt=0)
    streams: StreamsMode = StreamsMode.ON
    stream_top_n: int = Field(default=20, ge=0, le=500)
    stream_symbols: str = ""
    stream_lease_ms: int = Field(default=300_000, gt=0)
    stream_owner_lease_ms: int = Field(default=5_000, ge=500)
    stream_stall_ms: int = Field(default=5_000, ge=100)
    stream_interval: str = "1m"

    def lease_ms(self) -> int:
        """The fetch-lock lease: configured, or the upstream timeout plus 1 s."""
        return self.lock_lease_ms or self.upstream_timeout_ms + 1_000

    def exchange_list(self) -> list[str]:
        """The configured venue ids, lower-cased, in order, without duplicates."""
        return list(dict.fromkeys(v.strip().lower() for v in self.exchanges.split(",") if v.strip()))

    # -- validation of the settings that are strings with a grammar of their own: each raises
    # ValueError, which pydantic reports under the field's name (see :func:`load_settings`).

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        from exgate.cache.client import redis_client

        if not value:
            return None
        try:  # the one check: the client factory the cache and the budget store use (it never connects)
            redis_client(value)
        except ConfigError as exc:
            allowed = ", ".join(map(str, exc.extra.get("allowed", ())))
            raise ValueError(f"{exc.detail} (got {_masked(value)!r}; allowed: {allowed})") from None
        return value

    @field_validator("exchanges")
    @classmethod
    def _check_exchanges(cls, value: str) -> str:
        import ccxt.async_support as ccxt_async

        from exgate.venues.profiles import profile_for

        venues = [v.strip().lower() for v in value.split(",") if v.strip()]
        if not venues:
            raise ValueError(f"must name at least one ccxt exchange id, comma-separated (e.g. {','.join(DEFAULT_VENUES)})")
        for venue in venues:
            if profile_for(venue).exchange_class not in ccxt_async.exchanges:
                close = difflib.get_close_matches(venue, ccxt_async.exchanges, n=3)
                hint = f"did you mean {' or '.join(close)}? " if close else ""
                raise ValueError(f"unknown ccxt exchange id {venue!r} ({hint}allowed: comma-separated ids of"
                                 f" ccxt.exchanges, e.g. {','.join(DEFAULT_VENUES)})")
        return value

    @field_validator("upstreams")
    @classmethod
    def _check_upstreams(cls, value: str) -> str:
        from exgate.venues.upstream import parse_upstreams

        try:
            parse_upstreams(value)
        except ExgateError as exc:
            raise ValueError(f"{exc.detail}, comma-separated") from None
        return value

    @field_validator("cache_ttl_ms")
    @classmethod
    def _check_cache_ttl_ms(cls, value: str) -> str:
        from exgate.cache.ttl import parse_ttl_overrides

        try:
            parse_ttl_overrides(value)
        except ConfigError as exc:
            raise ValueError(_with_allowed(exc)) from None
        return value

    @field_validator("cache_config")
    @classmethod
    def _check_cache_config(cls, value: Path | None) -> Path | None:
        from exgate.cache.ttl import load_freshness

        if value is not None:
            try:
                load_freshness("", value)
            except ConfigError as exc:
                raise ValueError(_with_allowed(exc)) from None
        return value

    @field_validator("budgets")
    @classmethod
    def _check_budgets(cls, value: str) -> str:
        from exgate.budget.model import parse_limit_overrides

        parse_limit_overrides(value, "item")  # ValueError: "item 'x': expected venue=capacity/window_ms"
        return value


_SECRET_NAME = re.compile(r"token|secret|password|key", re.IGNORECASE)

_TYPE_WORDS: dict[object, str] = {int: "an integer", float: "a number", bool: "true or false",
                                  Path: "a file path", str: "text"}

_BOUND_WORDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))  # pydantic's Field(gt=...) metadata


def env_name(field: str) -> str:
    """The environment variable of a :class:`Settings` field (``upstream_timeout_ms`` →
    ``EXGATE_UPSTREAM_TIMEOUT_MS``)."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, str):
        return alias.upper()
    return f"{Settings.model_config.get('env_prefix', '')}{field}".upper()


def _masked(value: str) -> str:
    """``value`` with the password of a URL (``user:password@`` or ``?password=``) replaced by
    ``***`` (secrets are never printed)."""
    return re.sub(r"([?&](?:ssl_)?password=)[^&#]*", r"\1***", re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", value))


def _with_allowed(exc: ConfigError) -> str:
    allowed = exc.extra.get("allowed")
    return f"{exc.detail} (allowed: {', '.join(map(str, allowed))})" if allowed else exc.detail


def _allowed(field: str) -> str | None:
    """What a field accepts, from its type and bounds (``an integer > 0``), or ``None``."""
    info = Settings.model_fields.get(field)
    if info is None:
        return None
    annotation = info.annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = options[0] if len(options) == 1 else annotation
    words = _TYPE_WORDS.get(annotation)
    if words is None:
        return None
    bounds = [f"{sign} {getattr(m, attr)}" for m in info.metadata for attr, sign in _BOUND_WORDS
              if getattr(m, attr, None) is not None]
    return " ".join([words, *bounds])


def _error_line(field: str, error: dict) -> str:
    variable = env_name(field)
    if error["type"] == "value_error":
        message = str(error.get("ctx", {}).get("error", error["msg"]))
    else:
        allowed = _allowed(field)
        message = f"must be {allowed}" if allowed else re.sub(r"^Input should be", "must be", error["msg"])
        value = error.get("input")
        if isinstance(value, (str, int, float)) and not _SECRET_NAME.search(field):
            message += f" (got {_masked(str(value)) if isinstance(value, str) else value!r})"
    return message if message.startswith(variable) else f"{variable}: {message}"


def load_settings(**values: object) -> Settings:
    """:class:`Settings` from the environment (and ``values``), every field checked at once.

    Raises:
        ConfigError: one or more settings are invalid; ``detail`` has one line per bad
            variable, ``EXGATE_<NAME>: what is allowed (got ...)``, and ``extra['fields']``
            lists the variables.
    """
    try:
        return Settings(**values)
    except ValidationError as exc:
        lines: dict[str, str] = {}
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "settings"
            lines.setdefault(env_name(field), _error_line(field, error))
        raise ConfigError("\n".join(lines.values()), fields=list(lines)) from None
    except SettingsError as exc:  # a complex field (list, dict) whose value is not valid JSON
        match = re.search(r'field "([^"]+)"', str(exc))
        field = match.group(1) if match else "settings"
        raise ConfigError(f"{env_name(field)}: must be JSON for {Settings.model_fields[field].annotation}"
                          if field in Settings.model_fields else str(exc), fields=[env_name(field)]) from None
