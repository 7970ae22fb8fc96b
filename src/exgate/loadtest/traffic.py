"""What each scheduled event sends: the app's HTTP requests, timed and recorded per route class.

Reads use the gateway's public contract only (``/v1/...``), so the same traffic runs against
any deployment. Accounts are made at the sandbox (``POST /__sandbox/accounts``) and connected
through ``POST /v1/connections`` by :func:`provision`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from urllib.parse import quote

import aiohttp

from exgate.loadtest.model import Action, RouteClass, User

TIMEOUT_S = 30.0
"""A client request unanswered after this long counts as ``timeout``."""

ORDER_NOTIONAL = Decimal("150")
"""Quote-currency notional of each order (above every venue's minimum)."""


@dataclass
class VenueMarkets:
    """One venue as the app sees it: its symbols weighted by 24 h quote volume, and the main
    perpetual orders go to (its lot, tick and last price)."""

    venue: str
    symbols: list[str]
    weights: list[float]
    order_symbol: str
    lot: Decimal
    tick: Decimal
    min_size: Decimal
    price: Decimal
    page: tuple[str, ...] = ("markets", "orderbook", "trades", "klines")
    """The reads of a page load the venue offers (Hyperliquid has no public trades)."""

    def order_size(self) -> Decimal:
        """The smallest size on the lot grid worth :data:`ORDER_NOTIONAL` (and at least the minimum)."""
        lots = (ORDER_NOTIONAL / self.price / self.lot).to_integral_value(ROUND_CEILING)
        return max(lots * self.lot, self.min_size)

    def limit_price(self, side: str) -> Decimal:
        """A resting limit price on the tick grid, 10% away from the last price on the passive side."""
        factor = Decimal("0.9") if side == "buy" else Decimal("1.1")
        ticks = (self.price * factor / self.tick).to_integral_value(ROUND_FLOOR)
        return ticks * self.tick


async def discover(session: aiohttp.ClientSession, url: str, venues: list[str]) -> dict[str, VenueMarkets]:
    """Each venue's markets and prices from the gateway at ``url`` (the app's first page load).

    Raises:
        RuntimeError: a venue answers no markets or no price for its main perpetual.
    """
    out = {}
    async with session.get(f"{url}/v1/exchanges") as r:
        offered = {e["id"]: e.get("capabilities", {}) for e in (await r.json()).get("exchanges", [])} \
            if r.status == 200 else {}
    for venue in venues:
        capabilities = offered.get(venue, {})
        page = tuple(read for read, capability in (("markets", "markets"), ("orderbook", "order_book"),
                                                   ("trades", "trades"), ("klines", "candles"))
                     if capabilities.get(capability, True))
        async with session.get(f"{url}/v1/{venue}/markets") as r:
            markets = (await r.json())["markets"] if r.status == 200 else []
        async with session.get(f"{url}/v1/{venue}/prices") as r:
            prices = (await r.json())["prices"] if r.status == 200 else []
        async with session.get(f"{url}/v1/{venue}/markets/BTC/orderbook?depth=5") as r:
            book = await r.json() if r.status == 200 else {}
        if not markets or not book.get("symbol"):
            raise RuntimeError(f"{venue}: the gateway at {url} serves no markets or no BTC perpetual")
        volume = {t["symbol"]: float(Decimal(t.get("quote_volume_24h") or "0")) for t in prices}
        symbols = [m["symbol"] for m in markets if m.get("active", True)]
        weights = [max(volume.get(s, 0.0), 1.0) for s in symbols]
        main = next(m for m in markets if m["symbol"] == book["symbol"])
        last = next((Decimal(t["last"]) for t in prices if t["symbol"] == main["symbol"] and t.get("last")), None)
        if last is None:
            raise RuntimeError(f"{venue}: no last price for {main['symbol']}")
        out[venue] = VenueMarkets(venue, symbols, weights, main["symbol"], Decimal(main["lot_size"]),
                                  Decimal(main["tick_size"]), Decimal(main.get("min_size") or main["lot_size"]), last,
                                  page)
    return out


@dataclass
class Recorder:
    """Latencies (ms) per route class and outcomes of the requests started inside the window."""

    latencies: dict[RouteClass, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    requests: int = 0

    def add(self, route: RouteClass, ms: float, outcome: str) -> None:
        self.requests += 1
        self.latencies[route].append(ms)
        if outcome != "ok":
            self.errors[outcome] += 1


class Traffic:
    """Turns events into requests against ``targets`` (one aiohttp session each).

    Args:
        targets: gateway base URLs; a user talks to ``targets[user.target]``.
        tenant_key: the tenant's bearer key.
        markets: :func:`discover`'s answer.
        seed: the draw of page-load venues and symbols.
        limit_share: share of orders that are resting limit orders (the rest: market orders).
    """

    def __init__(self, targets: list[str], tenant_key: str, markets: dict[str, VenueMarkets], seed: int, *,
                 limit_share: float = 0.5, connections_per_target: int = 512):
        self.targets = targets
        self.tenant_key = tenant_key
        self.markets = markets
        self.rng = random.Random(seed + 2)
        self.limit_share = limit_share
        self.connections_per_target = connections_per_target
        self.sessions: list[aiohttp.ClientSession] = []
        self._sides: dict[int, str] = {}

    async def __aenter__(self) -> Traffic:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
        self.sessions = [aiohttp.ClientSession(base_url=url, timeout=timeout, connector=aiohttp.TCPConnector(
            limit=self.connections_per_target, ttl_dns_cache=None)) for url in self.targets]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(s.close() for s in self.sessions))

    def _headers(self, user: User) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tenant_key}", "X-User-Id": user.user_id}

    async def _request(self, route: RouteClass, target: int, method: str, path: str, *,
                       headers: dict[str, str] | None = None, json: dict | None = None,
                       recorder: Recorder | None) -> int:
        started = time.perf_counter()
        try:
            async with self.sessions[target].request(method, path, headers=headers, json=json) as r:
                await r.read()
                status = r.status
            outcome = "ok" if status < 400 else str(status)
        except TimeoutError:
            status, outcome = 0, "timeout"
        except aiohttp.ClientError as exc:
            status, outcome = 0, f"connection: {type(exc).__name__}"
        if recorder is not None:
            recorder.add(route, (time.perf_counter() - started) * 1000, outcome)
        return status

    async def fire(self, action: Action, user: User | None, recorder: Recorder | None) -> None:
        """Send the requests of one event, recorded in ``recorder`` (``None``: the warm-up)."""
        if action is Action.ACCOUNT_POLL and user is not None:
            headers = self._headers(user)
            await asyncio.gather(*(self._request(RouteClass.ACCOUNT, user.target, "GET", path, headers=headers,
                                                 recorder=recorder)
                                   for path in ("/v1/account/summary", "/v1/account/positions",
                                                "/v1/account/orders/open")))
        elif action is Action.PRICE_POLL and user is not None:
            await self._request(RouteClass.PRICES, user.target, "GET", f"/v1/{user.venue}/prices", recorder=recorder)
        elif action is Action.PAGE_LOAD:
            await self._page_load(recorder)
        elif action is Action.ORDER and user is not None:
            await self._order(user, recorder)

    async def _page_load(self, recorder: Recorder | None) -> None:
        venue = self.rng.choice(list(self.markets))
        info = self.markets[venue]
        symbol = quote(self.rng.choices(info.symbols, info.weights)[0], safe="")
        target = self.rng.randrange(len(self.targets))
        reads = {"markets": f"/v1/{venue}/markets", "orderbook": f"/v1/{venue}/markets/{symbol}/orderbook?depth=20",
                 "trades": f"/v1/{venue}/markets/{symbol}/trades?limit=50",
                 "klines": f"/v1/{venue}/markets/{symbol}/klines?interval=1m&limit=100"}
        paths = [reads[read] for read in info.page]
        await asyncio.gather(*(self._request(RouteClass.MARKET, target, "GET", p, recorder=recorder) for p in paths))

    async def _order(self, user: User, recorder: Recorder | None) -> None:
        info = self.markets[user.venue]
        limit = self.rng.random() < self.limit_share
        if limit:
            side = self.rng.choice(("buy", "sell"))
            body = {"symbol": "BTC", "side": side, "type": "limit", "size": str(info.order_size()),
                    "price": str(info.limit_price(side)), "time_in_force": "GTC"}
        else:  # market orders alternate per user, so positions stay small
            side = self._sides.get(user.index, "sell")
            side = "buy" if side == "sell" else "sell"
            self._sides[user.index] = side
            body = {"symbol": "BTC", "side": side, "type": "market", "size": str(info.order_size())}
        headers = self._headers(user)
        await self._request(RouteClass.ORDER, user.target, "POST", "/v1/orders", headers=headers, json=body,
                            recorder=recorder)
        await self._request(RouteClass.ACCOUNT, user.target, "GET", "/v1/account/positions", headers=headers,
                            recorder=recorder)


async def provision(sandbox_url: str, targets: list[str], tenant_key: str, users: list[User],
                    balance: str = "1000000", concurrency: int = 32, on_done=None) -> Counter[str]:
    """One sandbox account and one primary gateway connection per connected user.

    A connection that already exists for the user (a rerun on the same store) counts as
    ``exists``. Returns the outcomes counted (``created``, ``exists``, ``failed <status>``).

    Raises:
        RuntimeError: no connection could be made at all (the detail has the first answer).
    """
    outcomes: Counter[str] = Counter()
    first_error: list[str] = []
    gate = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(user: User) -> None:
            async with gate:
                async with session.post(f"{sandbox_url}/__sandbox/accounts",
                                        json={"venue": user.venue, "balance": balance}) as r:
                    account = await r.json()
                    if r.status != 200 and r.status != 201:
                        outcomes[f"failed sandbox {r.status}"] += 1
                        first_error.append(str(account))
                        return
                async with session.post(f"{targets[user.target]}/v1/connections", json={
                        "exchange": user.venue, "credentials": account["credentials"], "is_primary": True},
                        headers={"Authorization": f"Bearer {tenant_key}", "X-User-Id": user.user_id}) as r:
                    if r.status == 201:
                        outcomes["created"] += 1
                    elif r.status == 409:
                        outcomes["exists"] += 1
                    else:
                        outcomes[f"failed {r.status}"] += 1
                        first_error.append(await r.text())
                if on_done is not None:
                    on_done()

        await asyncio.gather(*(one(u) for u in users if u.connected))
    if users and not (outcomes["created"] or outcomes["exists"]) and any(u.connected for u in users):
        raise RuntimeError(f"no account could be connected: {first_error[0][:300] if first_error else 'no answer'}")
    return outcomes
