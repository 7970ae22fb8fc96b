"""Bybit v5's private REST over the sandbox's accounts desk: what ccxt's bybit calls for
fetchBalance (``/v5/account/wallet-balance``), fetchPositions/fetchPosition
(``/v5/position/list``), fetchOpenOrders and order lookups (``/v5/order/realtime``),
fetchMyTrades (``/v5/execution/list``, lagged), createOrder, cancelOrder, cancelAllOrders,
setLeverage, setMarginMode (``/v5/account/set-margin-mode``, a unified account's), and the
unified-account detection ccxt runs once with keys set (``/v5/user/query-api``,
``/v5/account/info``: the sandbox's accounts are UTA 2.0, ``unifiedMarginStatus`` 6).

Every request is verified by :func:`~.auth.authenticate`; only ``category=linear`` has
markets. Order faults injected with ``/__sandbox/faults`` are taken once per
``/v5/order/create``: ``429`` answers Bybit's rate-limit answer (retCode 10006) and places
nothing; ``5xx`` places the order then answers HTTP 503 with retCode 10016; ``timeout``
places it then holds the answer.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exgate.sandbox.accounts import MarginMode, OrderFault
from exgate.sandbox.data import D
from exgate.sandbox.limits import DEFAULT_RULES, bybit_reject
from exgate.sandbox.matching.types import (Order, OrderNotFound, OrderRejected, OrderStatus, OrderType, RejectReason,
                                           Side, TimeInForce)
from exgate.sandbox.venue import json_response
from exgate.sandbox.venues.bybit import formats
from exgate.sandbox.venues.bybit.auth import authenticate
from exgate.sandbox.venues.bybit.errors import SYMBOL_INVALID, BybitError, answers_errors, envelope

_LINK_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def _signed(handler):
    """Decorator: run ``handler(self, request, account, params)`` on a verified request."""

    async def run(self, request: Request) -> Response:
        account, params = await authenticate(request, self.desk, self.now())
        return await handler(self, request, account, params)

    run.__doc__ = handler.__doc__
    return run


class PrivateRoutes:
    """Mixed into :class:`~exgate.sandbox.venues.bybit.Bybit` (``desk``, ``sims``, ``now``)."""

    def _private_init(self) -> None:
        # orders Bybit accepts and cancels at once (post-only that would take, FOK not fillable)
        self._cancelled_at_once: dict[int, tuple[Order, str]] = {}
        self._cancelled_links: dict[tuple[str, str], int] = {}

    def _linear(self, params: dict, *, symbol_required: bool = True) -> str | None:
        if params.get("category") not in ("linear", "spot", "inverse", "option"):
            raise BybitError("Illegal category")
        symbol = str(params.get("symbol", "")).upper()
        if not symbol:
            if symbol_required:
                raise BybitError("params error: symbol invalid")
            return None
        if params["category"] != "linear" or symbol not in self.sims:
            raise BybitError(SYMBOL_INVALID)
        return symbol

    def _find(self, account, params: dict) -> tuple[Order, str] | None:
        """The order named by ``orderId`` (precedence) or ``orderLinkId``, open or closed."""
        order_id, link = params.get("orderId"), params.get("orderLinkId")
        if order_id:
            number = formats.order_int(str(order_id))
            if number is None:
                return None
            if number in self._cancelled_at_once:
                found = self._cancelled_at_once[number]
                return found if found[0].account == account.account_id else None
            order = self.desk.order(account, number)
        else:
            number = self._cancelled_links.get((account.account_id, str(link)))
            if number is not None:
                return self._cancelled_at_once[number]
            order = self.desk.order(account, client_order_id=str(link))
        return (order, "EC_NoError") if order is not None else None

    # -- account detection and reads ---------------------------------------------------------
    @_signed
    async def query_api(self, request, account, params) -> Response:
        """``GET /v5/user/query-api``: the key's information (a read-write key of a UTA:
        ``uta`` 1); the secret is never shown (``"secret": ""``, as Bybit answers)."""
        now = self.now()
        return envelope({
            "id": str(abs(hash(account.account_id)) % 10 ** 8), "note": "sandbox", "apiKey": account.account_id,
            "readOnly": 0, "secret": "", "permissions": {"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"],
                                                         "Wallet": ["AccountTransfer"], "Options": [], "Derivatives": [],
                                                         "CopyTrading": [], "BlockTrade": [], "Exchange": [], "NFT": []},
            "ips": ["*"], "type": 1, "deadlineDay": -1, "expiredAt": "", "createdAt": "2026-01-01T00:00:00Z",
            "unified": 0, "uta": 1, "userID": int(str(abs(hash(account.account_id)))[:8]), "inviterID": 0,
            "vipLevel": "No VIP", "mktMakerLevel": "0", "affiliateID": 0, "rsaPublicKey": "", "isMaster": True,
            "parentUid": "0", "kycLevel": "LEVEL_DEFAULT", "kycRegion": ""}, now)

    @_signed
    async def account_info(self, request, account, params) -> Response:
        """``GET /v5/account/info``: ``unifiedMarginStatus`` 6 (UTA 2.0 pro), the margin mode."""
        modes = {account.margin_mode_of(s) for s in self.sims}
        mode = "ISOLATED_MARGIN" if modes == {MarginMode.ISOLATED} else "REGULAR_MARGIN"
        return envelope({"marginMode": mode, "updatedTime": str(account.created), "unifiedMarginStatus": 6,
                         "dcpStatus": "OFF", "timeWindow": 10, "smpGroup": 0, "isMasterTrader": False,
                         "spotHedgingStatus": "OFF"}, self.now())

    @_signed
    async def coin_info(self, request, account, params) -> Response:
        """``GET /v5/asset/coin/query-info`` (ccxt's fetchCurrencies, inside ``load_markets``
        whenever keys are set): every coin the markets use, one chain each."""
        coins = sorted({i.base for i in self.instruments.values()} | {i.quote for i in self.instruments.values()})
        return envelope({"rows": [{
            "name": c, "coin": c, "remainAmount": "1000000", "chains": [{
                "chainType": c, "confirmation": "1", "withdrawFee": "0", "depositMin": "0", "withdrawMin": "0",
                "chain": c, "chainDeposit": "1", "chainWithdraw": "1", "minAccuracy": "8",
                "withdrawPercentageFee": "0", "contractAddress": "", "safeConfirmNumber": "1"}]} for c in coins]},
            self.now())

    @_signed
    async def wallet_balance(self, request, account, params) -> Response:
        """``GET /v5/account/wallet-balance?accountType=UNIFIED``; another type is 10001
        "accountType only support UNIFIED."."""
        if params.get("accountType", "").upper() != "UNIFIED":
            raise BybitError("accountType only support UNIFIED.")
        return envelope(formats.wallet_payload(self.desk, account), self.now())

    @_signed
    async def position_list(self, request, account, params) -> Response:
        """``GET /v5/position/list?category=linear&symbol=|settleCoin=``: with ``symbol`` its row
        (flat too), with ``settleCoin`` the open positions; one of them is required."""
        symbol = self._linear(params, symbol_required=False)
        if symbol is None and not params.get("settleCoin") and not params.get("baseCoin"):
            raise BybitError("Missing some parameters that must be filled in, symbol or settleCoin")
        summary = self.desk.summary(account)
        views = {p.symbol: p for p in summary.positions}
        now = self.now()
        symbols = [symbol] if symbol else [s for s in views if params.get("settleCoin", "USDT").upper() == "USDT"]
        rows = [formats.position_payload(account, s, views.get(s), views[s].mark_price if s in views
                                         else self.sims[s].mark_price(now), account.created) for s in symbols]
        return envelope({"list": rows, "nextPageCursor": "", "category": "linear"}, now)

    @_signed
    async def order_realtime(self, request, account, params) -> Response:
        """``GET /v5/order/realtime?category=linear``: open orders (of ``symbol``, or all with
        ``settleCoin``), newest first; with ``orderId`` or ``orderLinkId`` that order whatever
        its status, its fills up to now included (cumExecQty, avgPrice, cumExecFee: not lagged)."""
        symbol = self._linear(params, symbol_required=False)
        if params.get("orderId") or params.get("orderLinkId"):
            found = self._find(account, params)
            rows = [formats.order_payload(*found)] if found and (symbol is None or found[0].symbol == symbol) else []
        else:
            if symbol is None and not params.get("settleCoin") and not params.get("baseCoin"):
                raise BybitError("Missing some parameters that must be filled in, symbol or settleCoin or baseCoin")
            rows = [formats.order_payload(o) for o in reversed(self.desk.open_orders(account, symbol))]
        return envelope({"list": rows, "nextPageCursor": "", "category": "linear"}, self.now())

    @_signed
    async def execution_list(self, request, account, params) -> Response:
        """``GET /v5/execution/list?category=linear[&symbol=][&orderId=][&startTime=&endTime=]
        [&limit=1..100, default 50]``: the fills the history shows (``history_lag_ms`` after
        they happen), newest first."""
        symbol = self._linear(params, symbol_required=False)
        try:
            limit = int(params.get("limit", 50))
            start, end = int(params.get("startTime", 0)), int(params.get("endTime", 2 ** 62))
        except ValueError:
            raise BybitError("params error: limit invalid") from None
        if not 1 <= limit <= 100:
            raise BybitError("params error: limit invalid")
        order_id = formats.order_int(params["orderId"]) if params.get("orderId") else None
        now = self.now()
        rows = [f for f in self.desk.fills(account, symbol) if start <= f.fill.time <= end
                and (order_id is None or f.fill.order_id == order_id)
                and (not params.get("orderLinkId") or f.client_order_id == params["orderLinkId"])]
        engine = self.desk.engine
        out = [formats.execution_payload(f, engine.order(f.fill.order_id),
                                         engine.maker_fee if f.fill.maker else engine.taker_fee,
                                         self.sims[f.symbol].mark_price(now)) for f in reversed(rows[-limit:])]
        return envelope({"list": out, "nextPageCursor": "", "category": "linear"}, now)

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
                                  "retExtInfo": {}, "time": self.now()}, status=503)
        if fault is not None and fault[0] is OrderFault.TIMEOUT:
            await self.desk.hold(fault[1])
        return envelope({"orderId": formats.order_uuid(order.id), "orderLinkId": order.client_order_id or ""},
                        self.now())

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
                        self.now())

    @_signed
    async def order_cancel_all(self, request, account, params) -> Response:
        """``POST /v5/order/cancel-all`` (``symbol`` or ``settleCoin``): ``{"list": [{"orderId",
        "orderLinkId"}], "success": "1"}``."""
        symbol = self._linear(params, symbol_required=False)
        if symbol is None and not params.get("settleCoin") and not params.get("baseCoin"):
            raise BybitError("Missing some parameters that must be filled in, symbol or settleCoin or baseCoin")
        done = self.desk.cancel_all(account, symbol)
        return envelope({"list": [{"orderId": formats.order_uuid(o.id), "orderLinkId": o.client_order_id or ""}
                                  for o in done], "success": "1"}, self.now())

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
            raise BybitError(f"leverage invalid: 1 to {self.desk.max_leverage(symbol)}", 10001) from None
        return envelope({}, self.now())

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
                "retExtInfo": {}, "time": self.now()})
        for s in self.sims:
            account.margin_mode[s] = mode
        return envelope({"reasons": []}, self.now())

    def private_routes(self) -> list[BaseRoute]:
        guard = answers_errors(self.now)
        return [
            Route("/v5/user/query-api", guard(self.query_api), methods=["GET"]),
            Route("/v5/account/info", guard(self.account_info), methods=["GET"]),
            Route("/v5/asset/coin/query-info", guard(self.coin_info), methods=["GET"]),
            Route("/v5/account/wallet-balance", guard(self.wallet_balance), methods=["GET"]),
            Route("/v5/position/list", guard(self.position_list), methods=["GET"]),
            Route("/v5/order/realtime", guard(self.order_realtime), methods=["GET"]),
            Route("/v5/execution/list", guard(self.execution_list), methods=["GET"]),
            Route("/v5/order/create", guard(self.order_create), methods=["POST"]),
            Route("/v5/order/cancel", guard(self.order_cancel), methods=["POST"]),
            Route("/v5/order/cancel-all", guard(self.order_cancel_all), methods=["POST"]),
            Route("/v5/position/set-leverage", guard(self.set_leverage), methods=["POST"]),
            Route("/v5/account/set-margin-mode", guard(self.set_margin_mode), methods=["POST"]),
        ]
