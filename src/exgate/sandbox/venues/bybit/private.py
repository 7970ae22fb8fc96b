"""Bybit v5's private REST over the sandbox's accounts desk: what ccxt's bybit calls for
fetchBalance (``/v5/account/wallet-balance``), fetchPositions/fetchPosition
(``/v5/position/list``), fetchOpenOrders and order lookups (``/v5/order/realtime``),
fetchMyTrades (``/v5/execution/list``, lagged), createOrder, cancelOrder, cancelAllOrders,
setLeverage, setMarginMode (``/v5/account/set-margin-mode``, a unified account's), and the
unified-account detection ccxt runs once with keys set (``/v5/user/query-api``,
``/v5/account/info``: the sandbox's accounts are UTA 2.0, ``unifiedMarginStatus`` 6).

The reads live in :mod:`.reads`. Every request is verified by :func:`~.auth.authenticate`; only
``category=linear`` has markets. Creates and cancels count against the account's order rate
(:data:`ORDER_RATE`, 10 per second each, retCode 10006 past it). Order faults injected with ``/__sandbox/faults`` are taken once per
``/v5/order/create``: ``429`` answers Bybit's rate-limit answer (retCode 10006) and places
nothing; ``5xx`` places the order then answers HTTP 503 with retCode 10016; ``timeout``
places it then holds the answer.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exgate.sandbox.accounts import MarginMode, OrderFault
from exgate.sandbox.data import D
from exgate.sandbox.limits import DEFAULT_RULES, bybit_reject
from exgate.sandbox.matching.types import (Order, OrderNotFound, OrderRejected, OrderStatus, OrderType, RejectReason,
                                           Side)
from exgate.sandbox.venue import json_response
from exgate.sandbox.venues.bybit import formats
from exgate.sandbox.venues.bybit.auth import Limited, signed as _signed
from exgate.sandbox.venues.bybit.errors import BybitError, answers_errors, envelope
from exgate.sandbox.venues.bybit.reads import AccountReads

ORDER_RATE = (10, 1_000)
"""Bybit's per-account limit on ``/v5/order/create`` and ``/v5/order/cancel`` (linear: 10
requests per second per UID, https://bybit-exchange.github.io/docs/v5/rate-limit): past it
retCode 10006 "Too many visits!"; the ``X-Bapi-Limit*`` headers go with every answer."""

_LINK_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


class PrivateRoutes(AccountReads):
    """Mixed into :class:`~exgate.sandbox.venues.bybit.Bybit` (``desk``, ``sims``, ``now``); the
    reads come from :class:`~.reads.AccountReads`."""

    def _private_init(self) -> None:
        # orders Bybit accepts and cancels at once (post-only that would take, FOK not fillable)
        self._cancelled_at_once: dict[int, tuple[Order, str]] = {}
        self._cancelled_links: dict[tuple[str, str], int] = {}
        self._order_times: dict[tuple[str, str], list[int]] = {}

    def _rate(self, account, path: str) -> dict[str, str]:
        """Charge one request of ``path`` to ``account``'s :data:`ORDER_RATE`: its
        ``X-Bapi-Limit*`` headers. Raises :class:`~.auth.Limited` (with them) past the limit."""
        cap, window = ORDER_RATE
        now = self.now()
        times = self._order_times.setdefault((account.account_id, path), [])
        times[:] = [t for t in times if t > now - window]
        reset = str((times[0] if times else now) + window)
        if len(times) >= cap:
            raise Limited({"X-Bapi-Limit": str(cap), "X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": reset})
        times.append(now)
        return {"X-Bapi-Limit": str(cap), "X-Bapi-Limit-Status": str(cap - len(times)),
                "X-Bapi-Limit-Reset-Timestamp": reset}

    # -- writes -----------------------------------------------------------------------------
    def _min_notional(self, symbol: str) -> Decimal:
        return D(self.sims[symbol].instrument.raw.get("lotSizeFilter", {}).get("minNotionalValue") or "0")

    @_signed
    async def order_create(self, request, account, params) -> Response:
        """``POST /v5/order/create`` (JSON): ``category`` linear, ``symbol``, ``side`` Buy|Sell,
        ``orderType`` Market|Limit, ``qty``, ``price`` (limit), ``timeInForce``
        GTC|IOC|FOK|PostOnly, ``reduceOnly``, ``orderLinkId`` (1..36 of ``[A-Za-z0-9_-]``):
        ``{"orderId", "orderLinkId"}``. Refusals: :data:`formats.REJECTS`; a post-only order that
        would take and a FOK that cannot fill are accepted then cancelled, as on Bybit."""
        symbol = self._linear(params)
        limit_headers = self._rate(account, "create")
        side = {"Buy": Side.BUY, "Sell": Side.SELL}.get(str(params.get("side", "")))
        if side is None:
            raise BybitError("params error: side invalid")
        kind = {"Market": OrderType.MARKET, "Limit": OrderType.LIMIT}.get(str(params.get("orderType", "")))
        if kind is None:
            raise BybitError("params error: orderType invalid")
        try:
            qty = Decimal(str(params.get("qty", "")))
            price = Decimal(str(params["price"])) if kind is OrderType.LIMIT and params.get("price") else None
        except InvalidOperation:
            raise BybitError("params error: qty or price invalid") from None
        if kind is OrderType.LIMIT and price is None:
            raise BybitError("params error: price invalid")
        tif = formats.TIF_IN.get(str(params.get("timeInForce", "GTC" if kind is OrderType.LIMIT else "IOC")))
        if tif is None:
            raise BybitError("params error: timeInForce invalid")
        link = str(params.get("orderLinkId") or "") or None
        if link is not None and (len(link) > 36 or not set(link) <= _LINK_CHARS):
            raise BybitError("params error: orderLinkId invalid")
        if link is not None and (account.account_id, link) in self._cancelled_links:
            raise BybitError(*formats.REJECTS[RejectReason.DUPLICATE_CLIENT_ORDER_ID][::-1])
        reduce_only = params.get("reduceOnly") in (True, "true", "True")
        if int(params.get("positionIdx", 0) or 0) != 0:
            raise BybitError("position idx not match position mode", 10001)
        fault = self.desk.take_fault()
        now = self.now()
        if fault is not None and fault[0] is OrderFault.RATE_LIMIT:
            rules = DEFAULT_RULES["bybit"]
            status, body = bybit_reject(429, rules.capacity, rules.window_ms)
            return Response(body, status_code=status, media_type="application/json")
        ref = price if price is not None else self.sims[symbol].price(now)
        try:
            minimum = self._min_notional(symbol)
            if not reduce_only and minimum and qty * ref < minimum and qty > 0:
                raise OrderRejected(RejectReason.MIN_NOTIONAL)
            order, _ = self.desk.place(account, symbol, side, kind, qty, price, tif, reduce_only=reduce_only,
                                       client_order_id=link)
        except OrderRejected as exc:
            if exc.reason not in formats.CANCEL_REASONS:
                code, msg = formats.REJECTS.get(exc.reason, (10001, "params error"))
                raise BybitError(msg, code) from None
            order = self._cancel_at_once(account, symbol, side, kind, qty, price, tif, reduce_only, link, exc.reason)
        if fault is not None and fault[0] is OrderFault.SERVER_ERROR:
            return json_response({"retCode": 10016, "retMsg": "Internal server error.", "result": {},
                                  "retExtInfo": {}, "time": self.server_now()}, status=503)
        if fault is not None and fault[0] is OrderFault.TIMEOUT:
            await self.desk.hold(fault[1])
        return envelope({"orderId": formats.order_uuid(order.id), "orderLinkId": order.client_order_id or ""},
                        self.server_now(), headers=limit_headers)

    def _cancel_at_once(self, account, symbol, side, kind, qty, price, tif, reduce_only, link, reason) -> Order:
        """Record an order Bybit accepts and cancels at once (its id from the engine's counter,
        so ids stay unique and increasing)."""
        engine = self.desk.engine
        now = self.now()
        order = Order(id=engine._next_order, account=account.account_id, symbol=symbol, side=side, type=kind, qty=qty,
                      price=price, tif=tif, reduce_only=reduce_only, client_order_id=link, created=now,
                      status=OrderStatus.CANCELED, updated=now)
        engine._next_order += 1
        self._cancelled_at_once[order.id] = (order, formats.CANCEL_REASONS[reason])
        if link is not None:
            self._cancelled_links[(account.account_id, link)] = order.id
        return order

    @_signed
    async def order_cancel(self, request, account, params) -> Response:
        """``POST /v5/order/cancel``: ``{"orderId", "orderLinkId"}``; an order that is not open:
        110001 "Order does not exist."."""
        symbol = self._linear(params)
        limit_headers = self._rate(account, "cancel")
        order_id, link = params.get("orderId"), params.get("orderLinkId")
        if not order_id and not link:
            raise BybitError("params error: orderId or orderLinkId is required")
        number = formats.order_int(str(order_id)) if order_id else None
        try:
            if order_id and number is None:
                raise OrderNotFound(order_id)
            order = self.desk.cancel(account, symbol, number, None if order_id else str(link))
        except OrderNotFound:
            raise BybitError("Order does not exist.", 110001) from None
        return envelope({"orderId": formats.order_uuid(order.id), "orderLinkId": order.client_order_id or ""},
                        self.server_now(), headers=limit_headers)

    @_signed
    async def order_cancel_all(self, request, account, params) -> Response:
        """``POST /v5/order/cancel-all`` (``symbol`` or ``settleCoin``): ``{"list": [{"orderId",
        "orderLinkId"}], "success": "1"}``."""
        symbol = self._linear(params, symbol_required=False)
        if symbol is None and not params.get("settleCoin") and not params.get("baseCoin"):
            raise BybitError("Missing some parameters that must be filled in, symbol or settleCoin or baseCoin")
        done = self.desk.cancel_all(account, symbol)
        return envelope({"list": [{"orderId": formats.order_uuid(o.id), "orderLinkId": o.client_order_id or ""}
                                  for o in done], "success": "1"}, self.server_now())

    @_signed
    async def set_leverage(self, request, account, params) -> Response:
        """``POST /v5/position/set-leverage`` (``buyLeverage`` = ``sellLeverage`` in one-way
        mode): ``{}``; unchanged 110043 "Set leverage not modified", out of range 10001."""
        symbol = self._linear(params)
        buy, sell = str(params.get("buyLeverage", "")), str(params.get("sellLeverage", ""))
        try:
            value = Decimal(buy)
        except InvalidOperation:
            raise BybitError("params error: buyLeverage invalid") from None
        if buy != sell:
            raise BybitError("buy leverage must equal sell leverage in one-way mode")
        if value != value.to_integral():
            raise BybitError("params error: leverage invalid (the sandbox takes whole leverages)")
        if int(value) == account.leverage_of(symbol):
            raise BybitError("Set leverage not modified", 110043)
        try:
            self.desk.set_leverage(account, symbol, int(value))
        except OrderRejected:
            top = self.desk.max_leverage(symbol)
            raise BybitError(f"cannot set leverage [{int(value)}] gt maxLeverage [{top}] by risk limit"
                             if value > top else "params error: buyLeverage invalid", 110013 if value > top else 10001) from None
        return envelope({}, self.server_now())

    @_signed
    async def set_margin_mode(self, request, account, params) -> Response:
        """``POST /v5/account/set-margin-mode`` (``setMarginMode`` ISOLATED_MARGIN |
        REGULAR_MARGIN, the whole unified account): ``{"reasons": []}``; refused with 3400045
        while a position or an order is open (the reasons name them)."""
        mode = {"ISOLATED_MARGIN": MarginMode.ISOLATED, "REGULAR_MARGIN": MarginMode.CROSS}.get(
            str(params.get("setMarginMode", "")))
        if mode is None:
            raise BybitError("params error: setMarginMode invalid")
        busy = [s for s in self.sims if account.position(s).size != 0] + \
            [o.symbol for o in self.desk.open_orders(account)]
        if busy:
            return json_response({"retCode": 3400045, "retMsg": "Set margin mode failed", "result": {"reasons": [
                {"reasonCode": "3400045", "reasonMsg": f"{s} has an open position or order"} for s in sorted(set(busy))]},
                "retExtInfo": {}, "time": self.server_now()})
        for s in self.sims:
            account.margin_mode[s] = mode
        return envelope({"reasons": []}, self.server_now())

    def private_routes(self) -> list[BaseRoute]:
        guard = answers_errors(self.server_now)
        return [
            Route("/v5/user/query-api", guard(self.query_api), methods=["GET"]),
            Route("/v5/account/info", guard(self.account_info), methods=["GET"]),
            Route("/v5/asset/coin/query-info", guard(self.coin_info), methods=["GET"]),
            Route("/v5/account/fee-rate", guard(self.fee_rate), methods=["GET"]),
            Route("/v5/account/wallet-balance", guard(self.wallet_balance), methods=["GET"]),
            Route("/v5/position/list", guard(self.position_list), methods=["GET"]),
            Route("/v5/order/realtime", guard(self.order_realtime), methods=["GET"]),
            Route("/v5/order/history", guard(self.order_history), methods=["GET"]),
            Route("/v5/execution/list", guard(self.execution_list), methods=["GET"]),
            Route("/v5/order/create", guard(self.order_create), methods=["POST"]),
            Route("/v5/order/cancel", guard(self.order_cancel), methods=["POST"]),
            Route("/v5/order/cancel-all", guard(self.order_cancel_all), methods=["POST"]),
            Route("/v5/position/set-leverage", guard(self.set_leverage), methods=["POST"]),
            Route("/v5/account/set-margin-mode", guard(self.set_margin_mode), methods=["POST"]),
        ]
