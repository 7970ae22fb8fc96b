"""Binance USD-M's private REST (SIGNED TRADE / USER_DATA endpoints) over the sandbox's
accounts desk: what ccxt's binanceusdm calls for fetchBalance, fetchPositions, fetchOpenOrders,
fetchOrder, fetchMyTrades, createOrder, cancelOrder, cancelAllOrders, setLeverage,
setMarginMode, plus the side endpoints it touches with keys set (leverageBracket, which
fetchPositions loads once; positionSide/dual, multiAssetsMargin, commissionRate, listenKey).

Every request is verified by :func:`~.auth.authenticate`. New orders count against the
account's order-rate limits (:data:`ORDER_LIMITS`: 300 per 10 s, 1,200 per minute). Order faults injected with
``/__sandbox/faults`` are taken once per ``POST /fapi/v1/order``: ``429`` answers Binance's
rate-limit answer and places nothing; ``5xx`` places the order then answers HTTP 503
``-1001``; ``timeout`` places it then holds the answer.
"""

from __future__ import annotations

import secrets
import string
from collections import deque
from decimal import Decimal, InvalidOperation

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exgate.sandbox.accounts import MarginMode, OrderFault
from exgate.sandbox.data import D
from exgate.sandbox.limits import DEFAULT_RULES, binance_reject
from exgate.sandbox.matching.types import OrderNotFound, OrderRejected, OrderType, RejectReason, Side, TimeInForce
from exgate.sandbox.venue import json_response
from exgate.sandbox.venues.binanceusdm import formats
from exgate.sandbox.venues.binanceusdm.auth import signed as _signed
from exgate.sandbox.venues.binanceusdm.errors import error

_ID_CHARS = string.ascii_letters + string.digits
_CLIENT_ID_CHARS = set(_ID_CHARS + ".:/_-")


ORDER_LIMITS = ((10_000, 300, "TEN_SECONDS", "10S"), (60_000, 1_200, "MINUTE", "1M"))
"""Binance's per-account order-rate limits on ``POST /fapi/v1/order``: ``(window ms, orders,
interval name, header suffix)``; past one: HTTP 429 ``-1015``, the ``X-MBX-ORDER-COUNT-*``
headers on every accepted order."""


def _mandatory(name: str) -> Response:
    return error(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _history_window(params, from_name: str) -> tuple[int, int, int, int] | Response:
    """``(limit, startTime, endTime, from id)`` of a history read (``limit`` 1..1000, default
    500; ``from_name``: ``fromId`` for trades, ``orderId`` for orders), or Binance's -1100 /
    -1130 answer."""
    try:
        limit = int(params.get("limit", 500))
        start, end = int(params.get("startTime", 0)), int(params.get("endTime", 2 ** 62))
        from_id = int(params.get(from_name, 0))
    except ValueError:
        return error(-1100, "Illegal characters found in a parameter.")
    if not 1 <= limit <= 1000:
        return error(-1130, "Data sent for parameter 'limit' is not valid.")
    return limit, start, end, from_id


class PrivateEndpoints:
    """Mixed into :class:`~exgate.sandbox.venues.binanceusdm.venue.BinanceUsdm` (``desk``,
    ``sims``, ``now``)."""

    def _min_notional(self, symbol: str) -> Decimal:
        f = next((f for f in self.sims[symbol].instrument.raw.get("filters", [])
                  if f.get("filterType") == "MIN_NOTIONAL"), {})
        return D(f.get("notional", "0"))

    def _symbol(self, params: dict, required: bool = True) -> str | Response | None:
        symbol = params.get("symbol", "").upper()
        if not symbol:
            return _mandatory("symbol") if required else None
        return symbol if symbol in self.sims else error(-1121, "Invalid symbol.")

    def _count_order(self, account) -> dict[str, str] | Response:
        """Charge one new order to ``account``'s order-rate limits (:data:`ORDER_LIMITS`): the
        ``X-MBX-ORDER-COUNT-*`` headers, or the ``-1015`` answer (nothing charged)."""
        times = self.__dict__.setdefault("_order_times", {}).setdefault(account.account_id, deque())
        now = self.now()
        while times and times[0] <= now - ORDER_LIMITS[-1][0]:
            times.popleft()
        counts = [sum(1 for t in times if t > now - window) for window, *_ in ORDER_LIMITS]
        for (window, cap, name, _), used in zip(ORDER_LIMITS, counts):
            if used >= cap:
                return error(-1015, f"Too many new orders; current limit is {cap} orders per {name}.", status=429)
        times.append(now)
        return {f"X-MBX-ORDER-COUNT-{suffix}": str(used + 1) for (*_, suffix), used in zip(ORDER_LIMITS, counts)}

    def _reject(self, exc: OrderRejected, symbol: str) -> Response:
        code, msg = formats.REJECTS.get(exc.reason, (-1000, "An unknown error occured while processing the request."))
        if exc.reason is RejectReason.MIN_NOTIONAL:
            minimum = f"{self._min_notional(symbol).normalize():f}"
            msg = f"Order's notional must be no smaller than {minimum} (unless you choose reduce only)."
        return error(code, msg)

    def _order_json(self, order, **kw) -> dict:
        inst = self.sims[order.symbol].instrument
        return formats.order_payload(order, inst.tick, inst.lot, **kw)

    # -- reads ------------------------------------------------------------------------------
    @_signed
    async def account_v2(self, request, account, params) -> Response:
        """``GET /fapi/v2/account``: balances and every market's position (entry price, leverage)."""
        return json_response(formats.account_payload(self.desk, account, 2))

    @_signed
    async def account_v3(self, request, account, params) -> Response:
        """``GET /fapi/v3/account``: balances and the open positions (ccxt's fetchBalance)."""
        return json_response(formats.account_payload(self.desk, account, 3))

    async def _position_risk(self, request, account, params, version: int) -> Response:
        symbol = self._symbol(params, required=False)
        if isinstance(symbol, Response):
            return symbol
        summary = self.desk.summary(account)
        symbols = [symbol] if symbol else list(self.sims)
        return json_response(formats.position_rows(self.desk, account, summary, version, symbols))

    @_signed
    async def position_risk_v2(self, request, account, params) -> Response:
        """``GET /fapi/v2/positionRisk[?symbol=]``: every market's row (flat ones zero)."""
        return await self._position_risk(request, account, params, 2)

    @_signed
    async def position_risk_v3(self, request, account, params) -> Response:
        """``GET /fapi/v3/positionRisk[?symbol=]``: the markets with a position or open order
        (ccxt's fetchPositions)."""
        return await self._position_risk(request, account, params, 3)

    @_signed
    async def open_orders(self, request, account, params) -> Response:
        """``GET /fapi/v1/openOrders[?symbol=]``: open orders, oldest first."""
        symbol = self._symbol(params, required=False)
        if isinstance(symbol, Response):
            return symbol
        return json_response([self._order_json(o) for o in self.desk.open_orders(account, symbol)])

    def _find(self, account, params):
        """The order named by ``orderId`` or ``origClientOrderId`` in ``symbol``, or an error."""
        symbol = self._symbol(params)
        if isinstance(symbol, Response):
            return symbol
        order_id, client_id = params.get("orderId"), params.get("origClientOrderId")
        if not order_id and not client_id:
            return error(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        if order_id and not order_id.isdigit():
            return error(-1100, "Illegal characters found in parameter 'orderId'; legal range is '^[0-9]{1,20}$'.")
        order = self.desk.order(account, int(order_id) if order_id else None, None if order_id else client_id)
        if order is None or order.symbol != symbol:
            return None
        return order

    @_signed
    async def query_order(self, request, account, params) -> Response:
        """``GET /fapi/v1/order?symbol=&orderId=|origClientOrderId=``: an open or recently closed
        order, fills up to now included (not lagged); unknown: ``-2013 Order does not exist.``"""
        order = self._find(account, params)
        if isinstance(order, Response):
            return order
        return json_response(self._order_json(order)) if order else error(-2013, "Order does not exist.")

    @_signed
    async def user_trades(self, request, account, params) -> Response:
        """``GET /fapi/v1/userTrades?symbol=``: the account's fills the history shows (they
        appear ``history_lag_ms`` after they happen), oldest first; ``orderId``, ``startTime``,
        ``endTime``, ``fromId`` filter, ``limit`` 1..1000 (default 500) keeps the latest."""
        symbol = self._symbol(params)
        if isinstance(symbol, Response):
            return symbol
        window = _history_window(params, "fromId")
        if isinstance(window, Response):
            return window
        limit, start, end, from_id = window
        try:
            order_id = int(params["orderId"]) if params.get("orderId") else None
        except ValueError:
            return error(-1100, "Illegal characters found in a parameter.")
        inst = self.sims[symbol].instrument
        rows = [f for f in self.desk.fills(account, symbol)
                if start <= f.fill.time <= end and f.fill.trade_id >= from_id
                and (order_id is None or f.fill.order_id == order_id)]
        rows = rows[:limit] if from_id or "startTime" in params else rows[-limit:]
        return json_response([formats.trade_payload(f, inst.lot, inst.tick) for f in rows])

    @_signed
    async def all_orders(self, request, account, params) -> Response:
        """``GET /fapi/v1/allOrders?symbol=``: the account's orders in ``symbol`` the venue still
        remembers (open and recently closed), oldest first; ``orderId`` (from), ``startTime``,
        ``endTime``, ``limit`` 1..1000 (default 500)."""
        symbol = self._symbol(params)
        if isinstance(symbol, Response):
            return symbol
        window = _history_window(params, "orderId")
        if isinstance(window, Response):
            return window
        limit, start, end, from_id = window
        self.desk.sync()
        orders = sorted((o for o in self.desk.engine.orders.values() if o.account == account.account_id
                         and o.symbol == symbol and o.id >= from_id and start <= o.created <= end), key=lambda o: o.id)
        rows = orders[:limit] if from_id or "startTime" in params else orders[-limit:]
        return json_response([self._order_json(o) for o in rows])

    # -- writes -----------------------------------------------------------------------------
    @_signed
    async def new_order(self, request, account, params) -> Response:
        """``POST /fapi/v1/order``: ``symbol``, ``side`` BUY|SELL, ``type`` LIMIT|MARKET,
        ``quantity``, ``price`` and ``timeInForce`` GTC|IOC|FOK|GTX (limit), ``reduceOnly``,
        ``newClientOrderId`` (1..36 of ``[.A-Za-z0-9:/_-]``; generated when absent),
        ``newOrderRespType`` ACK (default) | RESULT. Rejections: :data:`formats.REJECTS`."""
        symbol = self._symbol(params)
        if isinstance(symbol, Response):
            return symbol
        for name in ("side", "type", "quantity"):
            if not params.get(name):
                return _mandatory(name)
        side = {"BUY": Side.BUY, "SELL": Side.SELL}.get(params["side"].upper())
        if side is None:
            return error(-1117, "Invalid side.")
        kind = {"LIMIT": OrderType.LIMIT, "MARKET": OrderType.MARKET}.get(params["type"].upper())
        if kind is None:
            return error(-1116, "Invalid orderType.")
        if params.get("positionSide", "BOTH").upper() != "BOTH":
            return error(-4061, "Order's position side does not match user's setting.")
        try:
            qty = Decimal(params["quantity"])
            price = Decimal(params["price"]) if kind is OrderType.LIMIT and params.get("price") else None
        except InvalidOperation:
            return error(-1100, "Illegal characters found in parameter 'quantity' or 'price'.")
        tif = TimeInForce.GTC
        if kind is OrderType.LIMIT:
            if price is None:
                return _mandatory("price")
            if not params.get("timeInForce"):
                return _mandatory("timeInForce")
            tif = formats.TIF_IN.get(params["timeInForce"].upper())
            if tif is None:
                return error(-1115, "Invalid timeInForce.")
        if qty <= 0:
            return error(-4003, "Quantity less than or equal to zero.")
        client_id = params.get("newClientOrderId") or "".join(secrets.choice(_ID_CHARS) for _ in range(22))
        if not 1 <= len(client_id) <= 36 or not set(client_id) <= _CLIENT_ID_CHARS:
            return error(-1100, "Illegal characters found in parameter 'newClientOrderId'; legal range is "
                                "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        ack = params.get("newOrderRespType", "ACK").upper() != "RESULT"
        counted = self._count_order(account)
        if isinstance(counted, Response):
            return counted
        fault = self.desk.take_fault()
        if fault is not None and fault[0] is OrderFault.RATE_LIMIT:
            rules = DEFAULT_RULES["binanceusdm"]
            status, body = binance_reject(429, rules.capacity, rules.window_ms)
            return Response(body, status_code=status, media_type="application/json", headers={"Retry-After": "1"})
        sim = self.sims[symbol]
        ref = price if price is not None else sim.price(self.now())
        minimum = self._min_notional(symbol)
        try:
            if not reduce_only and minimum and qty * ref < minimum:
                raise OrderRejected(RejectReason.MIN_NOTIONAL)
            order, _ = self.desk.place(account, symbol, side, kind, qty, price, tif, reduce_only=reduce_only,
                                       client_order_id=client_id)
        except OrderRejected as exc:
            return self._reject(exc, symbol)
        if fault is not None and fault[0] is OrderFault.SERVER_ERROR:
            return error(-1001, "Internal error; unable to process your request. Please try again.", status=503)
        if fault is not None and fault[0] is OrderFault.TIMEOUT:
            await self.desk.hold(fault[1])
        return json_response(self._order_json(order, ack=ack, with_time=False), headers=counted)

    @_signed
    async def cancel_order(self, request, account, params) -> Response:
        """``DELETE /fapi/v1/order?symbol=&orderId=|origClientOrderId=``: the canceled order;
        one that is not open: ``-2011 Unknown order sent.``"""
        symbol = self._symbol(params)
        if isinstance(symbol, Response):
            return symbol
        order_id, client_id = params.get("orderId"), params.get("origClientOrderId")
        if not order_id and not client_id:
            return error(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        try:
            order = self.desk.cancel(account, symbol, int(order_id) if order_id else None,
                                     None if order_id else client_id)
        except (OrderNotFound, ValueError):
            return error(-2011, "Unknown order sent.")
        return json_response(self._order_json(order, with_time=False))

    @_signed
    async def cancel_all(self, request, account, params) -> Response:
        """``DELETE /fapi/v1/allOpenOrders?symbol=``: ``{"code": 200, "msg": "The operation of
        cancel all open order is done."}``."""
        symbol = self._symbol(params)
        if isinstance(symbol, Response):
            return symbol
        self.desk.cancel_all(account, symbol)
        return json_response({"code": 200, "msg": "The operation of cancel all open order is done."})

    @_signed
    async def leverage(self, request, account, params) -> Response:
        """``POST /fapi/v1/leverage?symbol=&leverage=``: ``{"leverage", "maxNotionalValue",
        "symbol"}``; out of range: ``-4028 Leverage N is not valid``."""
        symbol = self._symbol(params)
        if isinstance(symbol, Response):
            return symbol
        raw = params.get("leverage", "")
        if not raw.isdigit():
            return _mandatory("leverage")
        try:
            self.desk.set_leverage(account, symbol, int(raw))
        except OrderRejected:
            return error(-4028, f"Leverage {raw} is not valid")
        return json_response({"leverage": int(raw), "maxNotionalValue": "1000000000", "symbol": symbol})

    @_signed
    async def margin_type(self, request, account, params) -> Response:
        """``POST /fapi/v1/marginType?symbol=&marginType=ISOLATED|CROSSED``: ``{"code": 200,
        "msg": "success"}``; unchanged ``-4046``, with an open order ``-4047``, a position ``-4048``."""
        symbol = self._symbol(params)
        if isinstance(symbol, Response):
            return symbol
        mode = {"ISOLATED": MarginMode.ISOLATED, "CROSSED": MarginMode.CROSS}.get(params.get("marginType", "").upper())
        if mode is None:
            return error(-4044, "The marginType is invalid.") if params.get("marginType") else _mandatory("marginType")
        if account.margin_mode_of(symbol) is mode:
            return error(-4046, "No need to change margin type.")
        if self.desk.open_orders(account, symbol):
            return error(-4047, "Margin type cannot be changed if there exists open orders.")
        if account.position(symbol).size != 0:
            return error(-4048, "Margin type cannot be changed if there exists position.")
        self.desk.set_leverage(account, symbol, account.leverage_of(symbol), mode)
        return json_response({"code": 200, "msg": "success"})

    def private_routes(self) -> list[BaseRoute]:
        return [
            Route("/fapi/v2/account", self.account_v2, methods=["GET"]),
            Route("/fapi/v3/account", self.account_v3, methods=["GET"]),
            Route("/fapi/v2/positionRisk", self.position_risk_v2, methods=["GET"]),
            Route("/fapi/v3/positionRisk", self.position_risk_v3, methods=["GET"]),
            Route("/fapi/v1/openOrders", self.open_orders, methods=["GET"]),
            Route("/fapi/v1/order", self.query_order, methods=["GET"]),
            Route("/fapi/v1/order", self.new_order, methods=["POST"]),
            Route("/fapi/v1/order", self.cancel_order, methods=["DELETE"]),
            Route("/fapi/v1/allOrders", self.all_orders, methods=["GET"]),
            Route("/fapi/v1/allOpenOrders", self.cancel_all, methods=["DELETE"]),
            Route("/fapi/v1/userTrades", self.user_trades, methods=["GET"]),
            Route("/fapi/v1/leverage", self.leverage, methods=["POST"]),
            Route("/fapi/v1/marginType", self.margin_type, methods=["POST"]),
            Route("/fapi/v1/symbolConfig", self.symbol_config, methods=["GET"]),
            Route("/fapi/v1/leverageBracket", self.leverage_bracket, methods=["GET"]),
            Route("/fapi/v1/positionSide/dual", self.position_side, methods=["GET", "POST"]),
            Route("/fapi/v1/multiAssetsMargin", self.multi_assets, methods=["GET"]),
            Route("/fapi/v1/commissionRate", self.commission_rate, methods=["GET"]),
            Route("/sapi/v1/capital/config/getall", self.capital_config, methods=["GET"]),
            Route("/sapi/v1/margin/allPairs", self.margin_pairs, methods=["GET"]),
            Route("/fapi/v1/listenKey", self.listen_key, methods=["POST", "PUT", "DELETE"]),
        ]
