"""Orders: checked, signed by ccxt, sent once through the budget (``Priority.ORDER``, charged
to the account's order limits), confirmed without a retry loop, and answered with the fill and
the position after.

Confirmation, per venue's answer:

- the answer carries the immediate fill (``fill_in_order_answer``: Binance RESULT, Hyperliquid
  ``filled``): no follow-up; the fee is the fill's notional x the market's taker rate
  (``fee_estimated``) where the answer has none;
- otherwise, when the order may have executed (a market order, or a limit crossing the cached
  best bid/ask), one follow-up: the order by id (Bybit ``/v5/order/realtime``), which is
  consistent at once, unlike trade history;
- the position after: the account's snapshot from the cache (no request) plus the fill
  (``position_source: computed``); when the cache holds none, the snapshot is read once
  (``venue``), which also refills the account's keys.

A timeout, 5xx or 429 on the order is an unknown outcome: the order is looked up by its
client order id (always set) before answering, never re-sent; 202 ``unknown`` when the venue
still does not know it. The account's cached reads are invalidated on every instance before
the answer.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

import orjson
import structlog

from exgate.accounts.idempotency import Idempotency, Recorded
from exgate.accounts.models import (Confirmation, Execution, MarginMode, NewOrder, Order, OrderResult, OrderStatus,
                                    OrderType, Position, PositionSide, TimeInForce, CanceledOrders, LeverageResult)
from exgate.accounts.service import AccountService, Caller
from exgate.budget.model import Priority, priority
from exgate.cache.keys import account_hash, idempotency_key
from exgate.errors import BadRequest, NotFound, UpstreamError, UpstreamRateLimited, VenueRejected, echo
from exgate.models import Side
from exgate.venues.private import PrivateClient
from exgate.venues.private_calls import RequestCounter

log = structlog.get_logger("exgate.orders")

_HEX_CLOID = re.compile(r"^0x[0-9a-fA-F]{32}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def new_client_order_id(venue: str) -> str:
    """A fresh client order id in the form ``venue`` takes: Hyperliquid a 16-byte hex ``cloid``,
    Pacifica a UUID, the others 32 alphanumerics (Binance allows 36 of ``[.A-Z:/a-z0-9_-]``,
    Bybit 36)."""
    if venue == "hyperliquid":
        return "0x" + uuid.uuid4().hex
    if venue == "pacifica":
        return str(uuid.uuid4())
    return "x" + uuid.uuid4().hex[:31]


def _check_client_order_id(venue: str, value: str) -> None:
    if venue == "hyperliquid" and not _HEX_CLOID.match(value):
        raise BadRequest("client_order_id: hyperliquid takes 0x followed by 32 hex digits (a 16-byte cloid)",
                         field="client_order_id")
    if venue == "pacifica" and not _UUID.match(value):
        raise BadRequest("client_order_id: pacifica takes a UUID", field="client_order_id")


def apply_fill(before: Position | None, exchange: str, symbol: str, side: Side, size: Decimal,
               price: Decimal) -> Position | None:
    """The position after a fill of ``size`` at ``price`` on ``before`` (net mode): same
    direction moves the entry to the size-weighted mean, the other way keeps it (or opens the
    rest at ``price`` past flat); mark price and leverage carry over; liquidation price unknown."""
    signed = size if side is Side.BUY else -size
    held = Decimal(0) if before is None else (before.size if before.side is PositionSide.LONG else -before.size)
    entry = Decimal(0) if before is None or before.entry_price is None else before.entry_price
    after = held + signed
    if after == 0:
        return None
    if held == 0 or (held > 0) == (signed > 0):
        entry = (entry * abs(held) + price * size) / (abs(held) + size)
    elif (after > 0) != (held > 0):
        entry = price
    mark = before.mark_price if before is not None and before.mark_price else price
    leverage = before.leverage if before is not None else None
    return Position(exchange=exchange, symbol=symbol, id=before.id if before else symbol,
                    side=PositionSide.LONG if after > 0 else PositionSide.SHORT, size=abs(after),
                    entry_price=entry.quantize(Decimal("1e-12")).normalize(), mark_price=mark,
                    unrealized_pnl=((mark - entry) * after).quantize(Decimal("1e-12")).normalize(),
                    leverage=leverage, liquidation_price=None, margin_mode=before.margin_mode if before else None,
                    margin=(abs(after) * mark / leverage).quantize(Decimal("1e-12")).normalize() if leverage else None,
                    notional=abs(after) * mark, timestamp=None)


class OrderDesk:
    """Order routes' logic over :class:`AccountService` (see the module's description)."""

    def __init__(self, accounts: AccountService, idempotency: Idempotency):
        self.accounts = accounts
        self.idempotency = idempotency
        self.market_data = accounts.market_data

    # -- validation ---------------------------------------------------------------------------------
    async def _checked(self, connection, body: NewOrder):
        market = await self.market_data.adapter(connection.exchange).resolve(body.symbol)
        if body.type is OrderType.LIMIT and body.price is None:
            raise BadRequest("price: a limit order needs a price (quote per base)", field="price")
        if body.type is OrderType.MARKET and body.price is not None:
            raise BadRequest("price: market orders take no price", field="price")
        if body.type is OrderType.MARKET and body.time_in_force not in (None, TimeInForce.IOC, TimeInForce.FOK):
            raise BadRequest("time_in_force: a market order is IOC or FOK", field="time_in_force",
                             allowed=[TimeInForce.IOC.value, TimeInForce.FOK.value])
        if market.min_size is not None and body.size < market.min_size:
            raise BadRequest(f"size: below {market.symbol}'s minimum {market.min_size}", field="size",
                             allowed={"min": str(market.min_size)})
        if market.lot_size and body.size % market.lot_size != 0:
            raise BadRequest(f"size: not a multiple of {market.symbol}'s lot size {market.lot_size}", field="size",
                             allowed={"step": str(market.lot_size)})
        if body.price is not None and market.tick_size and body.price % market.tick_size != 0:
            raise BadRequest(f"price: off {market.symbol}'s tick size {market.tick_size}", field="price",
                             allowed={"step": str(market.tick_size)})
        if body.client_order_id is not None:
            _check_client_order_id(connection.exchange, body.client_order_id)
        if not market.active:
            raise BadRequest(f"symbol: {market.symbol} does not trade now", field="symbol")
        return market

    async def _ticker(self, connection, symbol: str) -> dict | None:
        """The cached ticker of ``symbol`` (a market-data read through the shared cache)."""
        result = await self.market_data.prices(connection.exchange, symbol)
        return next((t for t in orjson.loads(result.body).get("prices") or [] if t.get("symbol") == symbol), None)

    async def _reference_price(self, connection, symbol: str) -> Decimal | None:
        """The cached ticker's price (mark, else last) of ``symbol``."""
        ticker = await self._ticker(connection, symbol) or {}
        value = ticker.get("mark") or ticker.get("last")
        return Decimal(value) if value else None

    async def _may_fill_now(self, connection, body: NewOrder, symbol: str) -> bool:
        """Whether the order may execute on arrival: a market order, or a limit at or through
        the cached best ask (buy) / bid (sell); where the ticker has no bid/ask (Pacifica), its
        mark (else last) stands in for both."""
        if body.type is OrderType.MARKET:
            return True
        if body.time_in_force is TimeInForce.PO:
            return False
        ticker = await self._ticker(connection, symbol) or {}
        touch = (ticker.get("ask") if body.side is Side.BUY else ticker.get("bid")) or ticker.get("mark") \
            or ticker.get("last")
        if touch is None:
            return True
        return body.price >= Decimal(touch) if body.side is Side.BUY else body.price <= Decimal(touch)

    # -- place ----------------------------------------------------------------------------------------
    async def place(self, caller: Caller, exchange: str | None, body: NewOrder,
                    idempotency: str | None) -> Recorded:
        """Place ``body`` on the caller's connection; the answer (status, JSON) as recorded for
        ``Idempotency-Key`` retries. Errors (4xx) leave no record."""
        connection = await self.accounts.connection(caller, exchange)
        market = await self._checked(connection, body)
        record_key = None
        if idempotency:
            record_key = idempotency_key(connection.exchange, connection.account_id,
                                         f"{caller.tenant_id}:{caller.user_id}:{connection.id}", idempotency)
            earlier = await self.idempotency.claim(record_key)
            if earlier is not None:
                if earlier.status != 202:
                    return earlier
                return await self._resolve_unknown(connection, market.symbol, earlier, record_key)
        try:
            answer = await self._send(connection, body, market)
        except BaseException:
            if record_key is not None:
                await self.idempotency.release(record_key)
            raise
        if record_key is not None:
            await self.idempotency.answer(record_key, answer)
        return answer

    async def _send(self, connection, body: NewOrder, market) -> Recorded:
        venue = connection.exchange
        client = await self.accounts.pool.get(connection)
        client_order_id = body.client_order_id or new_client_order_id(venue)
        price = body.price
        if body.type is OrderType.MARKET and client.profile.market_order_price:
            price = await self._reference_price(connection, market.symbol)
        may_fill = await self._may_fill_now(connection, body, market.symbol)
        before = await self.accounts.cached_snapshot(connection)  # taken before the order can change it
        await self._charge_account_limits(client, connection)
        with priority(Priority.ORDER):
            with RequestCounter() as counter:
                try:
                    order = await client.place(market.symbol, body.side, body.type, body.size, price,
                                               reduce_only=body.reduce_only, time_in_force=body.time_in_force,
                                               client_order_id=client_order_id)
                except VenueRejected:
                    await self.accounts.invalidate(connection)
                    raise
                except UpstreamError as exc:
                    found = await self._lookup(client, market.symbol, client_order_id)
                    await self.accounts.invalidate(connection)
                    if found is None:
                        result = OrderResult(outcome="unknown", order=None, client_order_id=client_order_id,
                                             confirmation=Confirmation(upstream_requests=counter.count),
                                             detail=f"{exc.detail}; the venue does not know client order id "
                                                    f"{client_order_id} yet: it was not re-sent. Retry with the same "
                                                    f"Idempotency-Key to look it up again.")
                        return Recorded(202, result.model_dump_json().encode())
                    order = found
                result = await self._confirm(client, connection, order, market, may_fill, before, counter)
        return Recorded(201, result.model_dump_json().encode())

    async def _lookup(self, client: PrivateClient, symbol: str, client_order_id: str) -> Order | None:
        try:
            return await client.order(None, symbol, client_order_id)
        except (UpstreamError, VenueRejected) as exc:
            log.warning("order_lookup_failed", exchange=client.venue, error=exc.detail)
            return None

    async def _resolve_unknown(self, connection, symbol: str, earlier: Recorded, record_key: str) -> Recorded:
        """A retry of an order whose outcome was unknown: look it up again, never re-send."""
        client_order_id = orjson.loads(earlier.body).get("client_order_id")
        client = await self.accounts.pool.get(connection)
        with priority(Priority.ORDER):
            with RequestCounter() as counter:
                found = await self._lookup(client, symbol, client_order_id) if client_order_id else None
        if found is None:
            return earlier
        await self.accounts.invalidate(connection)
        result = OrderResult(outcome="placed", order=found, client_order_id=client_order_id,
                             confirmation=Confirmation(upstream_requests=counter.count),
                             detail="found by its client order id after an unknown outcome")
        recorded = Recorded(201, result.model_dump_json().encode())
        await self.idempotency.answer(record_key, recorded)
        return recorded

    async def _charge_account_limits(self, client: PrivateClient, connection) -> None:
        """Charge one order to the venue's per-account order limits (Binance 300/10 s and
        1,200/min), shared by every instance through the budget store."""
        gate = client.adapter.budget
        limits = gate.metering.account_limits if gate is not None else ()
        if not limits:
            return
        scope = f"{connection.exchange}:acct:{account_hash(connection.account_id)}"
        grant = await gate.store.acquire(scope, [(limit, limit.capacity) for limit in limits], 1, gate.clock(), 0)
        if not grant.granted:
            raise UpstreamRateLimited(f"{connection.exchange}: this account's order limit is spent for the window",
                                      retry_after_s=max(1, -(-grant.retry_ms // 1000)))

    async def _confirm(self, client: PrivateClient, connection, order: Order, market, may_fill: bool,
                       before, counter: RequestCounter) -> OrderResult:
        """The order's fill (from its answer, or one follow-up read of the order) and the
        position after it (``before``, the cached snapshot taken before sending, plus the fill;
        else one snapshot read)."""
        symbol = market.symbol
        if not client.profile.fill_in_order_answer and may_fill and order.status not in (OrderStatus.FILLED,):
            followed = await client.order(order.id, symbol)
            if followed is not None:
                order = followed
        fill = None
        if order.filled > 0 and order.average_price is not None:
            fee = None
            estimated = False
            rate = client.taker_rate(symbol)
            fee_currency = market.settle or market.quote
            if rate is not None:
                fee = (order.filled * order.average_price * rate).normalize()
                estimated = True
            if order.fee is not None:
                fee, estimated = order.fee, False
            fill = Execution(size=order.filled, average_price=order.average_price, fee=fee, fee_currency=fee_currency,
                             fee_estimated=estimated)
        await self.accounts.invalidate(connection)
        position, source = None, None
        if before is not None:
            held = next((p for p in before[1] if p.symbol == symbol), None)
            position = apply_fill(held, connection.exchange, symbol, order.side, fill.size, fill.average_price) \
                if fill is not None else held
            source = "computed" if fill is not None else "cache"
        elif fill is not None:
            result = await self.accounts.snapshot(connection)
            positions = orjson.loads(result.body)["positions"]
            position = next((Position.model_validate(p) for p in positions if p["symbol"] == symbol), None)
            source = "venue"
        return OrderResult(outcome="placed", order=order, client_order_id=order.client_order_id, fill=fill,
                           position=position,
                           confirmation=Confirmation(upstream_requests=counter.count, position_source=source))

    # -- cancel / leverage ------------------------------------------------------------------------------------
    async def cancel(self, caller: Caller, exchange: str | None, order_id: str, symbol: str | None) -> bytes:
        """Cancel one order; its symbol from ``symbol`` or the account's open orders."""
        connection = await self.accounts.connection(caller, exchange)
        client = await self.accounts.pool.get(connection)
        if symbol is not None:
            unified = (await self.market_data.adapter(connection.exchange).resolve(symbol)).symbol
        else:
            found = next((o for o in await self.accounts.open_order_list(connection) if o.id == order_id), None)
            if found is None:
                raise NotFound(f"no open order {echo(order_id)} on this connection", field="order_id")
            unified = found.symbol
        with priority(Priority.ORDER):
            with RequestCounter() as counter:
                try:
                    await client.cancel(order_id, unified)
                finally:
                    await self.accounts.invalidate(connection)
        return orjson.dumps({"exchange": connection.exchange, "canceled": order_id, "symbol": unified,
                             "upstream_requests": counter.count})

    async def cancel_all(self, caller: Caller, exchange: str | None, symbol: str | None) -> CanceledOrders:
        """Cancel every open order (in ``symbol``): the venue's cancel-all, else one by one."""
        connection = await self.accounts.connection(caller, exchange)
        client = await self.accounts.pool.get(connection)
        unified = (await self.market_data.adapter(connection.exchange).resolve(symbol)).symbol if symbol else None
        opened = [o for o in await self.accounts.open_order_list(connection) if unified is None or o.symbol == unified]
        with priority(Priority.ORDER):
            emulated = not client.has_cancel_all
            try:
                if not emulated:
                    try:
                        await client.cancel_all(unified)
                    except VenueRejected as exc:  # ccxt needs a symbol (Binance's): refused before sending
                        if exc.extra.get("venue_error_type") != "ArgumentsRequired":
                            raise
                        emulated = True
                if emulated:
                    for order in opened:
                        try:
                            await client.cancel(order.id, order.symbol)
                        except NotFound:
                            pass  # filled or canceled meanwhile
            finally:
                await self.accounts.invalidate(connection)
        return CanceledOrders(exchange=connection.exchange, canceled=[o.id for o in opened], emulated=emulated)

    async def set_leverage(self, caller: Caller, exchange: str | None, symbol: str, leverage: int,
                           margin_mode: MarginMode | None) -> LeverageResult:
        connection = await self.accounts.connection(caller, exchange)
        market = await self.market_data.adapter(connection.exchange).resolve(symbol)
        if market.max_leverage is not None and leverage > market.max_leverage:
            raise BadRequest(f"leverage: {market.symbol} allows at most {market.max_leverage}", field="leverage",
                             allowed={"min": 1, "max": int(market.max_leverage)})
        client = await self.accounts.pool.get(connection)
        with priority(Priority.ORDER):
            try:
                await client.set_leverage(market.symbol, leverage, margin_mode)
            finally:
                await self.accounts.invalidate(connection)
        return LeverageResult(exchange=connection.exchange, symbol=market.symbol, leverage=leverage,
                              margin_mode=margin_mode)
