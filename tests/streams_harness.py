"""A sandbox and a streaming gateway for the stream tests: helpers, not tests."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from tests.conftest import ServerThread
from tests.ws_harness import ws_stats  # noqa: F401 - the stream tests take it from here

WS_VENUES = ("binanceusdm", "bybit", "hyperliquid", "pacifica")
KINDS = ("book", "trades", "ticker", "candle")


def stream_settings(**overrides: object):
    """Gateway settings that stream BTC on every venue (tier 1 by configuration only)."""
    from exgate.config import Settings, StreamsMode

    values = {"streams": StreamsMode.ON, "stream_top_n": 0, "stream_symbols": "BTC", "stream_stall_ms": 3000,
              "redis_url": None}
    values.update(overrides)
    return Settings(**values)


def gateway_app(sandbox_url: str, venues: tuple[str, ...], settings, clock: Callable[[], int] | None = None):
    """A gateway over ``venues``, every one pointed at the sandbox."""
    from exgate.http.app import create_app
    from exgate.venues.registry import build_adapters

    adapters = build_adapters(list(venues), {v: f"{sandbox_url}/{v}" for v in venues})
    kwargs = {"clock": clock} if clock is not None else {}
    return create_app(adapters, settings=settings, **kwargs)


def streams_of(gateway: ServerThread, venue: str) -> dict[str, dict]:
    """``GET /v1/{venue}/streams``'s statuses by kind."""
    body = httpx.get(f"{gateway.url}/v1/{venue}/streams", timeout=10).json()
    return {s["kind"]: s for s in body["streams"]}


def wait_for(check: Callable[[], object], what: str, timeout_s: float = 30.0, poll_s: float = 0.05,
             done: Callable[[object], bool] = bool):
    """Poll ``check`` until ``done`` of its answer (default: the answer is truthy), and return
    that answer (a hang guard, not a speed assertion); the last answer is in the failure."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if done(last):
            return last
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def not_from_stream(gateway: ServerThread, venue: str) -> dict[str, tuple[int, str | None]]:
    """The reads of :func:`read_all` not answered from a stream: kind → (status, X-Cache-Source)."""
    return {k: (r.status_code, r.headers.get("x-cache-source")) for k, r in read_all(gateway, venue).items()
            if r.headers.get("x-cache-source") != "stream"}


def until_streamed(gateway: ServerThread, venue: str, clock=None) -> None:
    """Wait until every read of :func:`read_all` is answered from a stream. With the gateway's
    manual ``clock``, each try moves it 1 s on (every 0.5 s): a REST answer kept while a stream
    was briefly absent is served while fresh, and a frozen clock would keep it fresh forever."""
    def check() -> tuple[dict, dict]:
        if clock is not None:
            clock.advance(1_000)
            time.sleep(0.5)
        return not_from_stream(gateway, venue), streams_of(gateway, venue)

    wait_for(check, f"{venue} reads from the streams", done=lambda v: not v[0])


def all_live(gateway: ServerThread, venue: str, kinds: tuple[str, ...] = KINDS) -> bool:
    """Whether every kind of ``venue`` is live."""
    statuses = streams_of(gateway, venue)
    return all(statuses.get(k, {}).get("state") == "live" for k in kinds)


def fresh_messages(gateway: ServerThread, venue: str, since: dict[str, int], kinds: tuple[str, ...] = KINDS) -> dict:
    """The kinds' message counts once every kind has had a message after ``since``; else ``{}``."""
    statuses = streams_of(gateway, venue)
    counts = {k: statuses[k]["messages"] for k in kinds}
    return counts if all(counts[k] > since.get(k, -1) for k in kinds) else {}


def rest_requests(sandbox: ServerThread, venue: str) -> dict[str, int]:
    """The REST requests the sandbox answered for ``venue`` since its last reset, by operation."""
    return httpx.get(f"{sandbox.url}/__sandbox/stats").json()["venues"][venue]["by_operation"]


def read_all(gateway: ServerThread, venue: str) -> dict[str, httpx.Response]:
    """One read of each streamed key of ``venue``'s BTC perpetual."""
    base = f"{gateway.url}/v1/{venue}"
    return {
        "book": httpx.get(f"{base}/markets/BTC/orderbook", params={"depth": 10}, timeout=10),
        "trades": httpx.get(f"{base}/markets/BTC/trades", params={"limit": 20}, timeout=10),
        "ticker": httpx.get(f"{base}/prices", params={"symbols": "BTC"}, timeout=10),
        "candle": httpx.get(f"{base}/markets/BTC/klines", params={"interval": "1m", "limit": 50}, timeout=10),
    }
