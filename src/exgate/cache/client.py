"""The one place a Redis URL becomes a redis-py asyncio client (cache L2 and budgets alike).

One server (``redis://``, ``rediss://``, ``unix://``) gives :class:`redis.asyncio.Redis`; a
Redis Cluster (``redis+cluster://host:port[,host:port...]``) gives
:class:`redis.asyncio.cluster.RedisCluster`. Both answer the commands, pipelines, scripts and
pub/sub exgate uses; on a cluster every key group one script or one command touches shares a
hash tag (see :mod:`exgate.cache.keys`).
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from exgate.errors import ConfigError

Client = redis.Redis | RedisCluster
"""What :func:`redis_client` builds: one server, or a cluster."""

SCHEMES: Final = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
_FIELD: Final = "EXGATE_REDIS_URL"


def redis_client(url: str, *, timeout_ms: int = 500, max_connections: int = 64) -> Client:
    """The redis-py asyncio client for ``url`` (the value of ``EXGATE_REDIS_URL``).

    - ``redis://[user:pass@]host:port/db``, ``rediss://...`` (TLS), ``unix:///path?db=N``:
      one server, :class:`redis.asyncio.Redis` over a pool of at most ``max_connections``;
      a call waits at most ``timeout_ms`` for a free connection.
    - ``redis+cluster://[user:pass@]host:port[,host:port...][?option=value]``
      (``rediss+cluster://`` for TLS): a Redis Cluster, :class:`RedisCluster`, which
      discovers every node from the seeds given; at most ``max_connections`` per node (one
      more is an error, not a wait). A cluster has only database 0, so a path other than
      ``/`` or ``/0`` is refused.

    Connecting takes at most ``timeout_ms`` (ms); redis-py retries nothing (the caller decides:
    the cache's circuit breaker, the budget's in-process fallback), though a cluster client
    still follows MOVED/ASK redirections. No socket read timeout: callers bound each call
    with ``asyncio.timeout`` (redis-py 8.1 swallows a cancellation that lands while it reads
    under one). Nothing connects until the first call.

    Raises:
        ConfigError: ``field="EXGATE_REDIS_URL"``: an unknown scheme (``allowed`` lists the
            schemes), a cluster seed that is not ``host:port``, a cluster URL naming a
            database other than 0, or a query option redis-py cannot parse.
    """
    scheme, sep, _ = url.partition("://")
    if not sep or scheme not in SCHEMES:
        shown = f"{scheme}://" if sep else "none"
        raise ConfigError(f"{_FIELD}: unknown scheme ({shown}); expected one of {', '.join(s + '://' for s in SCHEMES)}",
                          field=_FIELD, allowed=[f"{s}://" for s in SCHEMES])
    timeout_s = timeout_ms / 1000
    common: dict[str, Any] = {"socket_timeout": None, "socket_connect_timeout": timeout_s,
                              "retry": Retry(NoBackoff(), 0), "health_check_interval": 0}
    if not scheme.endswith("+cluster"):
        try:
            pool = redis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout_s,
                                                         **common)
        except ValueError as exc:
            raise ConfigError(f"{_FIELD}: {exc}", field=_FIELD) from None
        return redis.Redis(connection_pool=pool)
    return _cluster(url, scheme.removesuffix("+cluster"), max_connections, common)


def _cluster(url: str, base: str, max_connections: int, common: dict[str, Any]) -> RedisCluster:
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    seeds = [h.strip() for h in hosts.split(",") if h.strip()]
    nodes = []
    for seed in seeds:
        host, _, port = seed.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{_FIELD}: cluster seed {seed!r} is not host:port", field=_FIELD)
        nodes.append(ClusterNode(host.strip("[]"), int(port)))
    if not nodes:
        raise ConfigError(f"{_FIELD}: a cluster URL needs at least one host:port", field=_FIELD)
    if parts.path not in ("", "/", "/0"):
        raise ConfigError(f"{_FIELD}: a Redis Cluster has only database 0, not {parts.path.lstrip('/')!r}", field=_FIELD)
    credentials = f"{userinfo}@" if userinfo else ""
    query = f"?{parts.query}" if parts.query else ""
    try:  # credentials, TLS and query options read the way redis-py reads a one-server URL
        options: dict[str, Any] = dict(parse_url(f"{base}://{credentials}{seeds[0]}{query}"))
    except ValueError as exc:
        raise ConfigError(f"{_FIELD}: {exc}", field=_FIELD) from None
    for name in ("host", "port", "db"):
        options.pop(name, None)
    ssl = options.pop("connection_class", None) is SSLConnection
    return RedisCluster(startup_nodes=nodes, max_connections=max_connections, ssl=ssl, **{**common, **options})


def client_db(client: Client) -> int:
    """The database number ``client`` works in (always 0 on a cluster)."""
    if isinstance(client, RedisCluster):
        return 0
    return int(client.connection_pool.connection_kwargs.get("db", 0) or 0)
