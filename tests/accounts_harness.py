"""Shared set-up of the accounts tests: a sandbox with accounts, a migrated store with tenants,
and gateway instances over both (sharing Redis when asked), all real, on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import httpx

from tests.conftest import ServerThread, flush_redis, sandbox_data

VENUES = ("binanceusdm", "bybit", "hyperliquid", "pacifica")
PROBLEM = "application/problem+json"
T = 30  # request timeout, s


def run(coro):
    """Run a coroutine to completion from sync test code (its own loop)."""
    return asyncio.run(coro)


@dataclass
class Tenant:
    name: str
    key: str

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "X-User-Id": user}


def make_store(url: str):
    """A migrated store at ``url`` with one fixed encryption key (the instances must share it)."""
    from exgate.store import SecretBox, Store, upgrade

    upgrade(url)
    return Store(url, SecretBox([SECRET_KEY]))


SECRET_KEY = "m1fJ4c1n5s1bAhD5fW5Zy0q8mD8Q8T3uN6pS2zv0c0Q="
"""A Fernet key (32 url-safe base64 bytes) for the tests' stores."""


def create_tenant(url: str, name: str) -> Tenant:
    from exgate.store import SecretBox, Store

    async def make() -> Tenant:
        store = Store(url, SecretBox([SECRET_KEY]))
        try:
            _, key = await store.create_tenant(name)
        finally:
            await store.close()
        return Tenant(name, key)

    return run(make())


@contextlib.contextmanager
def gateways(sandbox_url: str, db_url: str, count: int = 1, *, redis_url: str | None = None,
             timeout_ms: int = 10_000, venues=VENUES) -> Iterator[list[ServerThread]]:
    """``count`` gateway instances over the sandbox and the store (and Redis when given)."""
    from exgate.config import Settings
    from exgate.http.app import create_app
    from exgate.store import SecretBox, Store
    from exgate.venues.registry import build_adapters

    if redis_url:
        flush_redis(redis_url)
    with contextlib.ExitStack() as stack:
        servers = []
        for _ in range(count):
            settings = Settings(redis_url=redis_url, exchanges=",".join(venues), upstream_timeout_ms=timeout_ms)
            app = create_app(build_adapters(list(venues), {v: f"{sandbox_url}/{v}" for v in venues},
                                            timeout_ms=timeout_ms),
                             settings=settings, store=Store(db_url, SecretBox([SECRET_KEY])))
            servers.append(stack.enter_context(ServerThread(app)))
        for server in servers:
            wait_markets(server.url, venues)
        yield servers


def wait_markets(url: str, venues) -> None:
    import time

    for _ in range(600):
        r = httpx.get(f"{url}/healthz", timeout=5)
        if r.status_code == 200 and all(r.json()["exchanges"].get(v) == "ready" for v in venues):
            return
        time.sleep(0.05)
    raise RuntimeError("venues not ready")


def sandbox_app(history_lag_ms: int = 0):
    from exgate.sandbox.app import create_sandbox_app

    return create_sandbox_app(sandbox_data(), history_lag_ms=history_lag_ms)


def new_account(sandbox_url: str, venue: str, balance: str = "100000") -> dict:
    r = httpx.post(f"{sandbox_url}/__sandbox/accounts", json={"venue": venue, "balance": balance})
    assert r.status_code == 201, r.text
    return r.json()


def arm(sandbox_url: str, venue: str, fault: str, count: int = 1, **extra) -> None:
    """Inject ``fault`` (timeout, 5xx, 429) on the venue's next ``count`` order requests."""
    r = httpx.post(f"{sandbox_url}/__sandbox/faults",
                   params={"venue": venue, "fault": fault, "count": count, **{k: str(v) for k, v in extra.items()}})
    assert r.status_code == 200, r.text


def venue_requests(sandbox_url: str, venue: str) -> int:
    return httpx.get(f"{sandbox_url}/__sandbox/stats").json()["venues"][venue]["requests"]


def venue_paths(sandbox_url: str, venue: str) -> dict[str, int]:
    return httpx.get(f"{sandbox_url}/__sandbox/stats").json()["venues"][venue]["by_path"]


def sandbox_state(sandbox_url: str, venue: str, account_id: str) -> dict:
    r = httpx.get(f"{sandbox_url}/__sandbox/accounts/{venue}/{account_id}")
    assert r.status_code == 200, r.text
    return r.json()


def btc_market(gateway_url: str, venue: str) -> dict:
    """The venue's main BTC perpetual as the gateway lists it (tick, lot, min size)."""
    markets = httpx.get(f"{gateway_url}/v1/{venue}/markets").json()["markets"]
    return next(m for m in markets if m["base"] == "BTC" and m["type"] == "perpetual"
                and m["settle"] in ("USDT", "USDC"))


def price_below(gateway_url: str, venue: str, market: dict, fraction: str = "0.8") -> str:
    """A limit price ``fraction`` of the mark, on the tick grid (rests: far below the market)."""
    ticker = httpx.get(f"{gateway_url}/v1/{venue}/prices", params={"symbols": market["symbol"]}).json()["prices"][0]
    mark = Decimal(ticker["mark"] or ticker["last"])
    tick = Decimal(market["tick_size"])
    return str((mark * Decimal(fraction) / tick).to_integral_value() * tick)


def min_size(market: dict, notional_floor: Decimal = Decimal("12"), price: Decimal | None = None) -> str:
    """The smallest size the market takes, raised to a notional of at least ``notional_floor``
    (Hyperliquid and Pacifica refuse orders under $10) at ``price``."""
    lot = Decimal(market["lot_size"])
    size = max(Decimal(market["min_size"] or lot), lot)
    if price is not None:
        while size * price < notional_floor:
            size += lot
    return str(size.normalize())


def user() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


def connect(gateway: ServerThread, sandbox: ServerThread, tenant: Tenant, who: str, venue: str,
            balance: str = "100000", **extra) -> tuple[dict, dict]:
    """A funded sandbox account on ``venue`` connected for ``who``: (account, connection)."""
    account = new_account(sandbox.url, venue, balance)
    r = httpx.post(f"{gateway.url}/v1/connections", headers=tenant.headers(who), timeout=T,
                   json={"exchange": venue, "credentials": account["credentials"], **extra})
    assert r.status_code == 201, r.text
    return account, r.json()


def assert_problem(r: httpx.Response, status: int, *words: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body = r.json()
    assert body["status"] == status
    for word in words:
        assert word.lower() in r.text.lower(), (word, r.text)
    return body


def order_count(sandbox_url: str, venue: str, account_id: str) -> int:
    """Orders the sandbox holds for the account: open ones plus the distinct orders of its fills."""
    state = sandbox_state(sandbox_url, venue, account_id)
    return len(state["open_orders"]) + len({f["order_id"] for f in state["fills"]})


def market_order(gateway_url: str, venue: str) -> dict:
    market = btc_market(gateway_url, venue)
    mark = Decimal(price_below(gateway_url, venue, market, "1"))
    return {"symbol": market["symbol"], "side": "buy", "type": "market", "size": min_size(market, price=mark)}
