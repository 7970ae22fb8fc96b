"""The one place a Redis URL becomes a redis-py asyncio client (cache L2 and budgets alike).

One server (``redis://``, ``rediss://``, ``unix://``) gives :class:`redis.asyncio.Redis`; a
Redis Cluster (``redis+cluster://host:port[,host:port...]``) gives
:class:`redis.asyncio.cluster.RedisCluster`. Both answer the commands, pipelines, scripts and
pub/sub exgate uses; on a cluster every key group one script or one command touches shares a
hash tag (see :mod:`exgate.cache.keys`).
"""

from __future__ import annotations

import inspect
from typing import Any, Final
from urllib.parse import SplitResult, parse_qs, urlsplit

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS, SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from exgate.errors import ConfigError

Client = redis.Redis | RedisCluster
"""What :func:`redis_client` builds: one server, or a cluster."""

SCHEMES: Final = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
URL_FORMS: Final = ("redis://[user:password@]host[:port][/db]", "rediss://[user:password@]host[:port][/db]",
                    "unix:///path/to.sock[?db=N]", "redis+cluster://[user:password@]host:port[,host:port...]",
                    "rediss+cluster://[user:password@]host:port[,host:port...]")
"""The forms ``EXGATE_REDIS_URL`` takes (the ``allowed`` of a :class:`ConfigError` about its form);
each also takes redis-py's connection options as ``?option=value``."""
_FIELD: Final = "EXGATE_REDIS_URL"


def _refused(problem: str, allowed: tuple[str, ...] | list[str] = URL_FORMS) -> ConfigError:
    """The error for a URL exgate cannot use. ``problem`` never quotes the URL (it may hold a
    password): the settings check adds the masked value."""
    return ConfigError(f"{_FIELD}: {problem}", field=_FIELD, allowed=list(allowed))


def redis_client(url: str, *, timeout_ms: int = 500, max_connections: int = 64) -> Client:
    """The redis-py asyncio client for ``url`` (the value of ``EXGATE_REDIS_URL``); also the one
    check of that setting (:mod:`exgate.config` calls it at start-up).

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
    under one). Nothing connects until the first call: one connection object is built here
    (never connected) so that an option redis-py does not take fails now, not at that call.

    Raises:
        ConfigError: ``field="EXGATE_REDIS_URL"``, ``allowed`` the URL forms (or, for a bad
            option, the options): an unknown scheme, no host (no socket path for ``unix://``),
            a port or database that is not a number, a cluster seed that is not ``host:port``,
            a cluster URL naming a database other than 0, or a query option redis-py does not
            take or cannot parse. The message never quotes the URL.
    """
    scheme, sep, _ = url.partition("://")
    if not sep or scheme not in SCHEMES:
        shown = f"{scheme}://" if sep else "none"
        raise _refused(f"unknown scheme ({shown})")
    timeout_s = timeout_ms / 1000
    common: dict[str, Any] = {"socket_timeout": None, "socket_connect_timeout": timeout_s,
                              "retry": Retry(NoBackoff(), 0), "health_check_interval": 0}
    if not scheme.endswith("+cluster"):
        _check_one_server(urlsplit(url))
        try:
            pool = redis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout_s,
                                                         **common)
        except ValueError as exc:
            raise _refused(str(exc).rstrip(".")) from None
        try:
            pool.make_connection()  # built, never connected: what the first call would build
        except (TypeError, ValueError, RedisError) as exc:
            raise _bad_option(url, exc, pool.connection_class, "max_connections", "timeout") from None
        return redis.Redis(connection_pool=pool)
    return _cluster(url, scheme.removesuffix("+cluster"), max_connections, common)


def _check_one_server(parts: SplitResult) -> None:
    """What redis-py would silently default or ignore: no host (it would use localhost), no
    socket path, a database path that is not a number (it would use 0)."""
    if parts.scheme == "unix":
        if not parts.path:
            raise _refused("a unix:// URL needs the socket's path")
        return
    if not parts.hostname:
        raise _refused(f"a {parts.scheme}:// URL needs a host")
    try:
        parts.port  # noqa: B018 - urllib checks it on access
    except ValueError:
        raise _refused("port must be a number (0-65535)") from None
    if parts.path.strip("/") and not parts.path.strip("/").isdigit():
        raise _refused("database must be a number (the path /N)")


def _cluster(url: str, base: str, max_connections: int, common: dict[str, Any]) -> RedisCluster:
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    seeds = [h.strip() for h in hosts.split(",") if h.strip()]
    nodes = []
    for seed in seeds:
        host, _, port = seed.rpartition(":")
        if not host or not port.isdigit():
            raise _refused(f"cluster seed {seed!r} is not host:port")
        if int(port) > 65535:
            raise _refused("port must be a number (0-65535)")
        nodes.append(ClusterNode(host.strip("[]"), int(port)))
    if not nodes:
        raise _refused("a cluster URL needs at least one host:port")
    if parts.path not in ("", "/", "/0"):
        raise _refused(f"a Redis Cluster has only database 0, not {parts.path.lstrip('/')!r}")
    credentials = f"{userinfo}@" if userinfo else ""
    query = f"?{parts.query}" if parts.query else ""
    try:  # credentials, TLS and query options read the way redis-py reads a one-server URL
        options: dict[str, Any] = dict(parse_url(f"{base}://{credentials}{seeds[0]}{query}"))
    except ValueError as exc:
        raise _refused(str(exc).rstrip(".")) from None
    db = options.pop("db", 0)
    if db != 0:
        raise _refused(f"a Redis Cluster has only database 0, not {db!r}")
    for name in ("host", "port"):
        options.pop(name, None)
    ssl = options.pop("connection_class", None) is SSLConnection
    try:
        client = RedisCluster(startup_nodes=nodes, max_connections=max_connections, ssl=ssl, **{**common, **options})
        seed = next(iter(client.nodes_manager.startup_nodes.values()))
        seed.connection_class(**seed.connection_kwargs)  # built, never connected, as for one server
    except (TypeError, ValueError, RedisError) as exc:
        raise _bad_option(url, exc, RedisCluster) from None
    return client


def _keywords(cls: type) -> set[str]:
    """The keyword arguments ``cls(...)`` takes, following ``**kwargs`` up its bases."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def _bad_option(url: str, exc: Exception, target: type, *also: str) -> ConfigError:
    """The error for a query option that redis-py's ``target`` (the connection class, or
    :class:`RedisCluster`) refused: the unknown names with, as ``allowed``, the options it
    takes that a URL can carry (the ones redis-py parses from a URL query, TLS files and
    names); otherwise redis-py's own message."""
    taken = _keywords(target) | set(also)
    unknown = [name for name in parse_qs(urlsplit(url).query) if name not in taken]
    if not unknown:
        return _refused(f"a query option was refused: {exc}")
    allowed = sorted(name for name in taken if name in URL_QUERY_ARGUMENT_PARSERS or name.startswith("ssl_")
                     or name in ("client_name", "username", "password"))
    names = ", ".join(repr(name) for name in unknown)
    return _refused(f"unknown option{'s' if len(unknown) > 1 else ''} {names} in the URL's query", allowed)


def client_db(client: Client) -> int:
    """The database number ``client`` works in (always 0 on a cluster)."""
    if isinstance(client, RedisCluster):
        return 0
    return int(client.connection_pool.connection_kwargs.get("db", 0) or 0)
