"""Upstream override: point every REST and WebSocket URL of a venue at another origin.

``binanceusdm=http://127.0.0.1:8900/binanceusdm`` turns
``https://fapi.binance.com/fapi/v1/depth`` into
``http://127.0.0.1:8900/binanceusdm/fapi/v1/depth``: the scheme and host are replaced, the
original path is kept after the override's own path. WebSocket URLs get the matching
``ws``/``wss`` scheme. One base URL thus serves a testnet, the sandbox or any fake.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from exgate.errors import BadRequest

_WS_SCHEME = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


def parse_upstreams(spec: str | list[str] | None) -> dict[str, str]:
    """Parse ``venue=url,venue=url`` (or a list of ``venue=url``) into a dict.

    Raises:
        BadRequest: an item has no ``=``, an empty venue, or a URL without scheme and host.
    """
    items: list[str] = []
    if isinstance(spec, str):
        items = [part for part in spec.split(",") if part.strip()]
    elif spec:
        for part in spec:
            items.extend(p for p in part.split(",") if p.strip())
    out: dict[str, str] = {}
    for item in items:
        venue, sep, url = item.strip().partition("=")
        parts = urlsplit(url.strip())
        if not sep or not venue.strip() or parts.scheme not in _WS_SCHEME or not parts.netloc:
            raise BadRequest(
                f"upstream override {item!r} must look like VENUE=http://host:port/path",
                field="upstream",
            )
        out[venue.strip().lower()] = url.strip().rstrip("/")
    return out


def rewrite_url(url: str, base: str) -> str:
    """Replace the origin of ``url`` with ``base``, keeping ``url``'s path and query after it."""
    original = urlsplit(url)
    target = urlsplit(base)
    scheme = target.scheme
    if original.scheme in ("ws", "wss"):
        scheme = _WS_SCHEME[target.scheme]
    path = target.path.rstrip("/") + original.path
    return urlunsplit((scheme, target.netloc, path, original.query, original.fragment))


def rewrite_urls(api_urls: Any, base: str, hostname: str | None = None) -> Any:
    """Apply :func:`rewrite_url` to every URL string in ccxt's ``urls['api']`` structure.

    ``{hostname}`` placeholders are filled with ``hostname`` first; nested dicts and lists
    are walked; non-URL values are returned unchanged.
    """
    if isinstance(api_urls, str):
        url = api_urls.replace("{hostname}", hostname) if hostname else api_urls
        return rewrite_url(url, base) if "://" in url else url
    if isinstance(api_urls, Mapping):
        return {key: rewrite_urls(value, base, hostname) for key, value in api_urls.items()}
    if isinstance(api_urls, list):
        return [rewrite_urls(value, base, hostname) for value in api_urls]
    return api_urls
