"""Pacifica's signed operations, as the sandbox serves them on sandbox accounts.

``POST`` with a flat JSON body signed as :mod:`.signing` describes (path → operation type):
``/orders/create`` (``create_order``: limit, ``tif`` GTC/IOC/ALO/TOB, ALO and TOB post-only),
``/orders/create_market`` (``create_market_order``; ``slippage_percent`` bounds the fill
price around the mid), ``/orders/cancel`` (``cancel_order``, by ``order_id`` or
``client_order_id``), ``/orders/cancel_all`` (``cancel_all_orders``: ``all_symbols`` or one
``symbol``), ``/account/leverage`` (``update_leverage``), ``/account/margin``
(``update_margin_mode``), ``/account/builder_codes/approve`` and ``/revoke``
(``approve_builder_code`` / ``revoke_builder_code``: the side call ccxt makes with keys set,
recorded) and ``/agent/bind`` (``bind_agent_wallet``). Every accepted operation is counted by
type under ``by_action`` in ``/__sandbox/stats``.

Refusals, in Pacifica's envelope: a signature that does not verify, HTTP 400 ``Verification
failed: signature does not match signer and canonical payload.`` with ``error_id``
``signature_verification_failed`` (ccxt: ``AuthenticationError``); an expired message
(``timestamp + expiry_window`` before the venue's server time, ``server_now()``), HTTP 400
``Invalid message: expired`` (ccxt: ``BadRequest``); an unknown account, 422 code 1 ``ACCOUNT_NOT_FOUND``; order refusals 422 with
the business codes ccxt maps (5 insufficient balance, 36 duplicate client order id, ...).
Injected order faults (``/__sandbox/faults``) hit the two create paths.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import orjson
from starlette.requests import Request
from starlette.responses import Response

from exgate.sandbox.accounts.desk import OrderFault
from exgate.sandbox.accounts.ledger import MarginMode
from exgate.sandbox.limits import pacifica_reject
from exgate.sandbox.matching.types import OrderNotFound, OrderRejected, OrderType, RejectReason, Side, TimeInForce
from exgate.sandbox.venues.pacifica.envelope import business_error, error, num, ok
from exgate.sandbox.venues.pacifica.signing import canonical_message, payload_of, verify

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TIFS = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "ALO": TimeInForce.POST_ONLY, "TOB": TimeInForce.POST_ONLY}
OPERATIONS = {
    "/api/v1/orders/create": "create_order",
    "/api/v1/orders/create_market": "create_market_order",
    "/api/v1/orders/cancel": "cancel_order",
    "/api/v1/orders/cancel_all": "cancel_all_orders",
    "/api/v1/account/leverage": "update_leverage",
    "/api/v1/account/margin": "update_margin_mode",
    "/api/v1/account/builder_codes/approve": "approve_builder_code",
    "/api/v1/account/builder_codes/revoke": "revoke_builder_code",
    "/api/v1/agent/bind": "bind_agent_wallet",
}
"""Signed paths → the operation type their signature covers."""

_REJECTS = {
    RejectReason.INSUFFICIENT_MARGIN: (5, "Insufficient balance"),
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: (36, "Duplicate client order id"),
    RejectReason.BAD_TICK: (52, "Invalid tick size"),
    RejectReason.BAD_LOT: (59, "Invalid amount"),
    RejectReason.BAD_PRICE: (59, "Invalid price"),
    RejectReason.REDUCE_ONLY_WOULD_INCREASE: (23, "No position for reduce-only order"),
    RejectReason.POST_ONLY_WOULD_CROSS: (20, "Post-only order would cross the book"),
    RejectReason.NO_LIQUIDITY: (25, "No reasonable price"),
    RejectReason.TOO_MANY_OPEN_ORDERS: (10, "Open order limit reached"),
    RejectReason.MARKET_INACTIVE: (3, "Book not found"),
    RejectReason.BAD_LEVERAGE: (11, "Invalid leverage"),
}
"""Engine refusals → Pacifica business code and message prefix."""


def _decimal(value: object) -> Decimal | None:
    try:
        out = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return out if out.is_finite() and out > 0 else None


class SignedOperations:
    """The signed ``POST`` handlers of the Pacifica venue (mixed into it)."""

    def _init_signed(self) -> None:
        self.agents: dict[str, str] = {}  # agent public key -> account address
        self.builder_codes: dict[str, dict[str, tuple[str, int]]] = {}  # account -> code -> (max fee rate, ms)

    async def signed(self, request: Request) -> Response:
        """Verify the signature of a signed ``POST`` and dispatch on its path."""
        operation = OPERATIONS[request.url.path.removeprefix("/" + self.name)]
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return error("Invalid JSON body")
        if not isinstance(body, dict):
            return error("Invalid request body")
        address, signature = body.get("account"), body.get("signature")
        timestamp, window = body.get("timestamp"), body.get("expiry_window", 30_000)
        if not isinstance(address, str) or not isinstance(signature, str) or not isinstance(timestamp, int) \
                or not isinstance(window, int):
            return error("Missing required fields: account, signature, timestamp")
        payload = payload_of(body, operation)
        signer = address if "agent_wallet" in payload else body.get("agent_wallet") or address
        message = canonical_message(operation, timestamp, window, payload)
        if not isinstance(signer, str) or not verify(signer, signature, message):
            return error("Verification failed: signature does not match signer and canonical payload.",
                         error_id="signature_verification_failed")
        now = self.server_now()  # the venue's (skewed) server time, as the expiry is checked at
        if now > timestamp + window:
            return error(f"Invalid message: expired (timestamp {timestamp} + expiry_window {window} < {now})")
        account = self.desk.by_id(address)
        if account is None:
            return business_error(1, f"ACCOUNT_NOT_FOUND: {address}")
        if signer != address and self.agents.get(signer) != address:
            return error("Agent not authorized for account")
        if self.stats is not None:
            self.stats.record_action(self.name, operation)
        return await getattr(self, "_op_" + operation)(account, payload)

    # -- orders ----------------------------------------------------------------------------
    async def _op_create_order(self, account, data: dict) -> Response:
        return await self._create(account, data, market=False)

    async def _op_create_market_order(self, account, data: dict) -> Response:
        return await self._create(account, data, market=True)

    async def _create(self, account, data: dict, *, market: bool) -> Response:
        symbol = data.get("symbol")
        sim = self.sims.get(symbol) if isinstance(symbol, str) else None
        if sim is None:
            return error(f"Invalid symbol: {symbol}")
        side = {"bid": Side.BUY, "ask": Side.SELL}.get(data.get("side"))
        amount = _decimal(data.get("amount"))
        price = None if market else _decimal(data.get("price"))
        tif = TimeInForce.IOC if market else _TIFS.get(str(data.get("tif", "GTC")).upper())
        cid = data.get("client_order_id")
        if side is None or amount is None or tif is None or (not market and price is None):
            return error("Invalid order: side, amount, tif and (limit) price are required")
        if cid is not None and (not isinstance(cid, str) or not _UUID.match(cid)):
            return error(f"Invalid client_order_id: {cid}")
        reduce_only = bool(data.get("reduce_only", False))
        fault = self.desk.take_fault()
        if fault is not None and fault[0] is OrderFault.RATE_LIMIT:
            status, payload = pacifica_reject(429, 0, 0)
            return Response(payload, status_code=status, media_type="application/json")
        now = self.now()
        reference = price if price is not None else sim.price(now)
        minimum = Decimal(str(sim.instrument.raw.get("min_order_size", "10")))
        if not reduce_only and amount * reference < minimum:
            answer = business_error(0, f"Order amount too low for {account.account_id}: "
                                       f"{num(amount * reference)} < {num(minimum)}", error_id="invalid_amount")
        else:
            answer = self._place(account, symbol, side, amount, price, tif, reduce_only, cid, market, data)
        if fault is not None and fault[0] is OrderFault.SERVER_ERROR:
            return error("Service Unavailable", 503)
        if fault is not None and fault[0] is OrderFault.TIMEOUT:
            await self.desk.hold(fault[1])
        return answer

    def _place(self, account, symbol: str, side: Side, amount: Decimal, price: Decimal | None, tif: TimeInForce,
               reduce_only: bool, cid: str | None, market: bool, data: dict) -> Response:
        kind = OrderType.MARKET
        if market:
            slippage = _decimal(data.get("slippage_percent", "0.5"))
            if slippage is not None:  # a market order fills no worse than mid ± slippage %
                bids, asks = self.sims[symbol].book(self.now(), 1)
                if bids and asks:
                    mid = (bids[0][0] + asks[0][0]) / 2
                    bound = mid * (1 + side.sign * slippage / 100)
                    tick = self.sims[symbol].instrument.tick
                    price = (bound / tick).to_integral_value() * tick
                    kind = OrderType.LIMIT
        else:
            kind = OrderType.LIMIT
        try:
            order, _ = self.desk.place(account, symbol, side, kind, amount, price, tif, reduce_only=reduce_only,
                                       client_order_id=cid)
        except OrderRejected as exc:
            code, text = _REJECTS.get(exc.reason, (422, "Order rejected"))
            return business_error(code, f"{text}: {exc}")
        if market:
            order.type = OrderType.MARKET  # shown as the market order it was (bounded by its slippage)
        return ok({"order_id": order.id})

    async def _op_cancel_order(self, account, data: dict) -> Response:
        symbol = data.get("symbol")
        if symbol not in self.sims:
            return error(f"Invalid symbol: {symbol}")
        order_id, cid = data.get("order_id"), data.get("client_order_id")
        try:
            self.desk.cancel(account, symbol, order_id=order_id if isinstance(order_id, int) else None,
                             client_order_id=cid if isinstance(cid, str) else None)
        except OrderNotFound:
            return business_error(6, f"ORDER_NOT_FOUND: {order_id if cid is None else cid}")
        return ok(None)

    async def _op_cancel_all_orders(self, account, data: dict) -> Response:
        symbol = None if data.get("all_symbols", True) else data.get("symbol")
        if symbol is not None and symbol not in self.sims:
            return error(f"Invalid symbol: {symbol}")
        orders = self.desk.open_orders(account, symbol)
        if data.get("exclude_reduce_only"):
            orders = [o for o in orders if not o.reduce_only]
        count = 0
        for o in orders:
            try:
                self.desk.cancel(account, o.symbol, order_id=o.id)
                count += 1
            except OrderNotFound:  # filled meanwhile
                pass
        return ok({"cancelled_count": count})

    # -- account settings ----------------------------------------------------------------------
    async def _op_update_leverage(self, account, data: dict) -> Response:
        symbol, leverage = data.get("symbol"), data.get("leverage")
        if symbol not in self.sims or not isinstance(leverage, int) or isinstance(leverage, bool):
            return error("Invalid request: symbol and an integer leverage are required")
        try:
            self.desk.set_leverage(account, symbol, leverage)
        except OrderRejected as exc:
            return business_error(11, f"INVALID_LEVERAGE: {exc}")
        return ok(None)

    async def _op_update_margin_mode(self, account, data: dict) -> Response:
        symbol, isolated = data.get("symbol"), data.get("is_isolated")
        if symbol not in self.sims or not isinstance(isolated, bool):
            return error("Invalid request: symbol and is_isolated are required")
        try:
            self.desk.set_leverage(account, symbol, account.leverage_of(symbol),
                                   MarginMode.ISOLATED if isolated else MarginMode.CROSS)
        except OrderRejected as exc:
            return business_error(12, f"CANNOT_UPDATE_MARGIN: {exc}")
        return ok(None)

    async def _op_approve_builder_code(self, account, data: dict) -> Response:
        code = data.get("builder_code")
        if not isinstance(code, str) or not code:
            return error("Invalid request: builder_code is required")
        self.builder_codes.setdefault(account.account_id, {})[code] = (str(data.get("max_fee_rate", "0")), self.now())
        return ok(None)

    async def _op_revoke_builder_code(self, account, data: dict) -> Response:
        self.builder_codes.get(account.account_id, {}).pop(str(data.get("builder_code")), None)
        return ok(None)

    async def _op_bind_agent_wallet(self, account, data: dict) -> Response:
        agent = data.get("agent_wallet")
        if not isinstance(agent, str) or not agent:
            return error("Invalid request: agent_wallet is required")
        self.agents[agent] = account.account_id
        return ok(None)
