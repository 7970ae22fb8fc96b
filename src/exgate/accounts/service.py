"""The private side of the gateway: tenants' users' connections, and their account reads
through the shared cache.

Flow: tenant key + user id → :class:`~exgate.store.Store` (the connection; credentials
decrypted in memory only) → one :class:`~exgate.venues.private.PrivateClient` per connection
(:class:`ClientPool`) → the venue's shared budget (``Priority.ACCOUNT`` for reads) → the
account-scoped cache keys of :mod:`exgate.cache.keys` (account id hashed).

Reads and their keys (TTL: account 5 s, positions 5 s, open orders 3 s, trade history 10 s;
never served stale):

- ``account`` holds the whole snapshot (summary and positions): ``/v1/account/summary`` and
  ``/v1/account/positions`` read the same entry, so one upstream answer (Binance
  ``/fapi/v3/account``, Hyperliquid ``clearinghouseState``) serves both, coalesced across
  instances like market data;
- ``open_orders`` holds every open order of the account (filtered per symbol here);
- ``trade_history`` one entry per (symbol, since, limit).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import structlog

from exgate.accounts.models import Account, Connection, NewConnection, Order, Position
from exgate.budget.model import Priority, priority
from exgate.cache import Cache, CacheResult
from exgate.cache.entry import Fetched
from exgate.cache.keys import account_key, account_tag
from exgate.cache.ttl import DataType
from exgate.errors import BadRequest, Forbidden, NotFound, Unauthorized, UpstreamUnavailable, VenueRejected, echo
from exgate.service import MarketData
from exgate.venues.private import PrivateClient

log = structlog.get_logger("exgate.accounts")

MAX_CLIENTS = 10_000
"""ccxt instances kept (one per connection), least recently used closed first."""


@dataclass(frozen=True)
class Caller:
    """Who is asking: the tenant (from its key) and the app's user id (``X-User-Id``)."""

    tenant_id: int
    tenant_name: str
    user_id: str


def connection_view(c) -> Connection:
    """The API view of a store connection (never its credentials)."""
    return Connection(id=c.id, exchange=c.exchange, account_id=c.account_id, user_id=c.user_id,
                      is_active=c.is_active, is_primary=c.is_primary, settings=dict(c.settings or {}),
                      connected_at=c.connected_at, updated_at=c.updated_at)


class ClientPool:
    """One :class:`PrivateClient` per connection id, built on first use from the store's
    decrypted credentials, least recently used closed beyond :data:`MAX_CLIENTS`.

    Closing a ccxt instance takes a while (its HTTP session, ~250 ms): an evicted or dropped
    client is closed in a task the pool owns, never inside the request that evicted it, and
    :meth:`close` closes them all at once."""

    def __init__(self, market_data: MarketData, credentials: Callable[[object], dict[str, str]],
                 max_clients: int = MAX_CLIENTS, clock_offsets=None):
        self.market_data = market_data
        self.credentials = credentials
        self.max_clients = max_clients
        self.clock_offsets = clock_offsets
        """:class:`exgate.connectors.ClockOffsets` applied to every new client (``None``: none)."""
        self._clients: OrderedDict[str, PrivateClient] = OrderedDict()
        self._closing: set[asyncio.Task] = set()

    async def get(self, connection) -> PrivateClient:
        client = self._clients.get(connection.id)
        if client is not None:
            self._clients.move_to_end(connection.id)
            return client
        adapter = self.market_data.adapter(connection.exchange)
        if adapter.market_count is None:
            await adapter.markets()
        client = self._clients.get(connection.id)  # another request built it meanwhile
        if client is None:
            client = PrivateClient(adapter, self.credentials(connection))
            await self.prepare(client)
            existing = self._clients.get(connection.id)
            if existing is not None:  # built by another request while this one synced the clock
                self._retire(client)
                return existing
            self._put(connection.id, client)
        return client

    async def prepare(self, client: PrivateClient) -> None:
        """Apply the venue's clock offset to a new client (and arm its recovery); never raises."""
        if self.clock_offsets is not None:
            await self.clock_offsets.prepare(client)

    def _put(self, connection_id: str, client: PrivateClient) -> None:
        self._retire(self._clients.pop(connection_id, None))
        self._clients[connection_id] = client
        while len(self._clients) > self.max_clients:
            self._retire(self._clients.popitem(last=False)[1])

    def _retire(self, client: PrivateClient | None) -> None:
        if client is not None:
            task = asyncio.get_running_loop().create_task(client.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def adopt(self, connection_id: str, client: PrivateClient) -> None:
        """Keep ``client`` (built for the connection's check) as the connection's instance."""
        self._put(connection_id, client)

    async def drop(self, connection_id: str) -> None:
        self._retire(self._clients.pop(connection_id, None))

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), OrderedDict()
        await asyncio.gather(*(c.close() for c in clients), *self._closing, return_exceptions=True)


class AccountService:
    """Connections and cached account reads (see the module's description).

    Args:
        market_data: the public side (adapters, cache, freshness).
        store: the SQL store, or ``None`` when private routes are off.
        clock_offsets: :class:`exgate.connectors.ClockOffsets` every new connection's client
            signs with (``None``: ccxt's default, no offset).
        unavailable: why private routes are off (503 detail) when ``store`` is ``None`` or
            credentials cannot be decrypted.
    """

    def __init__(self, market_data: MarketData, store, *, unavailable: str | None = None, clock_offsets=None):
        self.market_data = market_data
        self.cache: Cache = market_data.cache
        self.store = store
        self.unavailable = unavailable
        self.pool = ClientPool(market_data, store.credentials if store is not None else lambda c: {},
                               clock_offsets=clock_offsets)

    def _require(self) -> None:
        if self.store is None or self.unavailable:
            raise UpstreamUnavailable(self.unavailable or "private routes are not configured", retry_after_s=60)

    # -- who ----------------------------------------------------------------------------------------
    async def caller(self, authorization: str | None, user_id: str | None) -> Caller:
        """The tenant of ``Authorization: Bearer <key>`` and the ``X-User-Id`` user.

        Raises:
            Unauthorized: no bearer key, or an unknown or revoked one.
            Forbidden: no or an empty ``X-User-Id``.
        """
        self._require()
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("send Authorization: Bearer <tenant key>", field="Authorization")
        tenant = await self.store.tenant_by_key(key.strip())
        if tenant is None:
            raise Unauthorized("unknown or revoked tenant key", field="Authorization")
        if not user_id or not user_id.strip() or len(user_id) > 200:
            raise Forbidden("send X-User-Id: the app's own user id (1-200 characters)", field="X-User-Id")
        return Caller(tenant.id, tenant.name, user_id.strip())

    async def connection(self, caller: Caller, exchange: str | None):
        """The caller's active connection on ``exchange`` (default: their primary).

        Raises:
            NotFound: none (or it is inactive).
        """
        found = await self.store.resolve_connection(caller.tenant_id, caller.user_id, exchange)
        if found is None:
            which = f"on {echo(exchange)}" if exchange else "marked primary"
            raise NotFound(f"no active connection {which} for this user", field="exchange")
        return found

    # -- connections ----------------------------------------------------------------------------------
    async def create_connection(self, caller: Caller, body: NewConnection) -> Connection:
        """Check the credentials against the venue (one balance read), then store them.

        ``account_id`` defaults to the wallet address, else ``apikey:`` + the first 16 hex digits
        of the API key's SHA-256 (the key itself is a credential: never shown).

        Raises:
            BadRequest: the exchange is not served here, or no account id can be derived.
            VenueRejected: the venue refused the credentials (nothing stored).
            Conflict: a connection on that exchange exists, or a second primary.
        """
        adapter = self.market_data.adapter(body.exchange) if body.exchange in self.market_data.adapters else None
        if adapter is None:
            raise BadRequest(f"exchange {echo(body.exchange)} is not served by this gateway", field="exchange",
                             allowed=sorted(self.market_data.adapters))
        account_id = body.account_id or body.credentials.get("walletAddress")
        if not account_id and body.credentials.get("apiKey"):
            account_id = "apikey:" + hashlib.sha256(body.credentials["apiKey"].encode()).hexdigest()[:16]
        if not account_id:
            raise BadRequest("account_id: give the API key id or wallet address", field="account_id")
        if adapter.market_count is None:
            await adapter.markets()
        client = PrivateClient(adapter, dict(body.credentials))
        try:
            await self.pool.prepare(client)
            with priority(Priority.ACCOUNT):
                try:
                    await client.check()
                except VenueRejected as exc:
                    reason = exc.extra.get("venue_error")
                    raise VenueRejected(f"{adapter.id} refused these credentials: {reason}", field="credentials",
                                        venue_error=reason) from None
            stored = await self.store.create_connection(caller.tenant_id, caller.user_id, adapter.id, account_id,
                                                        dict(body.credentials), dict(body.settings), body.is_primary)
        except BaseException:
            await client.close()
            raise
        await self.pool.adopt(stored.id, client)  # what ccxt learnt (e.g. Bybit's account type) is kept
        log.info("connection_created", exchange=adapter.id, tenant=caller.tenant_name, connection=stored.id)
        return connection_view(stored)

    async def connections(self, caller: Caller) -> list[Connection]:
        return [connection_view(c) for c in await self.store.list_connections(caller.tenant_id, caller.user_id)]

    async def update_connection(self, caller: Caller, connection_id: str, *, is_primary: bool | None,
                                is_active: bool | None) -> Connection:
        updated = await self.store.update_connection(caller.tenant_id, caller.user_id, connection_id,
                                                     is_primary=is_primary, is_active=is_active)
        if is_active is False:
            await self.pool.drop(connection_id)
        return connection_view(updated)

    async def delete_connection(self, caller: Caller, connection_id: str) -> None:
        found = await self.store.get_connection(caller.tenant_id, caller.user_id, connection_id)
        if found is None or not await self.store.delete_connection(caller.tenant_id, caller.user_id, connection_id):
            raise NotFound(f"no connection {echo(connection_id)} for this user", field="connection_id")
        await self.pool.drop(connection_id)
        await self.invalidate(found)

    # -- reads ------------------------------------------------------------------------------------------
    def _fetched(self, body: bytes, kind: DataType) -> Fetched:
        return Fetched(body, self.market_data.freshness[kind])

    def snapshot_key(self, connection) -> str:
        return account_key(connection.exchange, connection.account_id, DataType.ACCOUNT)

    async def snapshot(self, connection) -> CacheResult:
        """The account snapshot ``{"account": Account, "positions": [Position]}`` (JSON bytes)."""
        async def fetch() -> Fetched:
            client = await self.pool.get(connection)
            account, positions = await client.snapshot()
            body = b'{"account":' + account.model_dump_json().encode() + b',"positions":[' + \
                b",".join(p.model_dump_json().encode() for p in positions) + b"]}"
            return self._fetched(body, DataType.ACCOUNT)

        return await self._read(connection, self.snapshot_key(connection), fetch)

    async def summary(self, connection) -> tuple[bytes, CacheResult]:
        result = await self.snapshot(connection)
        return orjson.dumps(orjson.loads(result.body)["account"]), result

    async def positions(self, connection, symbol: str | None = None) -> tuple[bytes, CacheResult]:
        result = await self.snapshot(connection)
        positions = orjson.loads(result.body)["positions"]
        if symbol is not None:
            market = await self.market_data.adapter(connection.exchange).resolve(symbol)
            positions = [p for p in positions if p["symbol"] == market.symbol]
        return orjson.dumps({"exchange": connection.exchange, "positions": positions}), result

    async def open_orders(self, connection, symbol: str | None = None) -> tuple[bytes, CacheResult]:
        async def fetch() -> Fetched:
            client = await self.pool.get(connection)
            orders = await client.open_orders()
            return self._fetched(b"[" + b",".join(o.model_dump_json().encode() for o in orders) + b"]",
                                 DataType.OPEN_ORDERS)

        result = await self._read(connection, account_key(connection.exchange, connection.account_id,
                                                          DataType.OPEN_ORDERS), fetch)
        orders = orjson.loads(result.body)
        if symbol is not None:
            market = await self.market_data.adapter(connection.exchange).resolve(symbol)
            orders = [o for o in orders if o["symbol"] == market.symbol]
        return orjson.dumps({"exchange": connection.exchange, "orders": orders}), result

    async def open_order_list(self, connection) -> list[Order]:
        body, _ = await self.open_orders(connection)
        return [Order.model_validate(o) for o in orjson.loads(body)["orders"]]

    async def trades(self, connection, symbol: str | None, since: int | None, limit: int) -> tuple[bytes, CacheResult]:
        unified = None
        if symbol is not None:
            unified = (await self.market_data.adapter(connection.exchange).resolve(symbol)).symbol

        async def fetch() -> Fetched:
            client = await self.pool.get(connection)
            fills = await client.fills(unified, since, limit)
            return self._fetched(b'{"exchange":"' + connection.exchange.encode() + b'","fills":[' +
                                 b",".join(f.model_dump_json().encode() for f in fills) + b"]}",
                                 DataType.TRADE_HISTORY)

        key = account_key(connection.exchange, connection.account_id, DataType.TRADE_HISTORY,
                          symbol=unified, since=since, limit=limit)
        result = await self._read(connection, key, fetch)
        return result.body, result

    async def _read(self, connection, key: str, fetch) -> CacheResult:
        with priority(Priority.ACCOUNT):
            return await self.cache.get_or_fetch(key, fetch, local_copy=False,
                                                 tags=(account_tag(connection.exchange, connection.account_id),))

    async def cached_snapshot(self, connection) -> tuple[Account, list[Position]] | None:
        """The snapshot if the cache holds a fresh one (L1 or L2), without fetching."""
        result = await self.cache.lookup(self.snapshot_key(connection), local_copy=False)
        if result is None:
            return None
        data = orjson.loads(result.body)
        return Account.model_validate(data["account"]), [Position.model_validate(p) for p in data["positions"]]

    async def invalidate(self, connection) -> None:
        """Drop every cached read of the connection's account, here and on every instance."""
        await self.cache.invalidate(tags=(account_tag(connection.exchange, connection.account_id),))

    async def close(self) -> None:
        await self.pool.close()
