"""Bybit v5's signed reads over the sandbox's accounts desk: unified-account detection
(``/v5/user/query-api``, ``/v5/account/info``: UTA 2.0, ``unifiedMarginStatus`` 6), coins
(``/v5/asset/coin/query-info``, ccxt's fetchCurrencies with keys), fee rates, the wallet,
positions, open orders and order lookups (``/v5/order/realtime``: closed orders too by
``orderId``/``orderLinkId``, fills at once), order history and executions (lagged).
"""

from __future__ import annotations

from starlette.responses import Response

from exgate.sandbox.accounts import MarginMode
from exgate.sandbox.matching.types import Order
from exgate.sandbox.venues.bybit import formats
from exgate.sandbox.venues.bybit.auth import signed as _signed
from exgate.sandbox.venues.bybit.errors import SYMBOL_INVALID, BybitError, envelope


class AccountReads:
    """Mixed into :class:`~exgate.sandbox.venues.bybit.Bybit` through
    :class:`~.private.PrivateRoutes` (``desk``, ``sims``, ``instruments``, ``now``, ``server_now``,
    ``_cancelled_at_once``, ``_cancelled_links``)."""

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
        return envelope({
            "id": str(abs(hash(account.account_id)) % 10 ** 8), "note": "sandbox", "apiKey": account.account_id,
            "readOnly": 0, "secret": "", "permissions": {"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"],
                                                         "Wallet": ["AccountTransfer"], "Options": [], "Derivatives": [],
                                                         "CopyTrading": [], "BlockTrade": [], "Exchange": [], "NFT": []},
            "ips": ["*"], "type": 1, "deadlineDay": -1, "expiredAt": "", "createdAt": "2026-01-01T00:00:00Z",
            "unified": 0, "uta": 1, "userID": int(str(abs(hash(account.account_id)))[:8]), "inviterID": 0,
            "vipLevel": "No VIP", "mktMakerLevel": "0", "affiliateID": 0, "rsaPublicKey": "", "isMaster": True,
            "parentUid": "0", "kycLevel": "LEVEL_DEFAULT", "kycRegion": ""}, self.server_now())

    @_signed
    async def account_info(self, request, account, params) -> Response:
        """``GET /v5/account/info``: ``unifiedMarginStatus`` 6 (UTA 2.0 pro), the margin mode."""
        modes = {account.margin_mode_of(s) for s in self.sims}
        mode = "ISOLATED_MARGIN" if modes == {MarginMode.ISOLATED} else "REGULAR_MARGIN"
        return envelope({"marginMode": mode, "updatedTime": str(account.created), "unifiedMarginStatus": 6,
                         "dcpStatus": "OFF", "timeWindow": 10, "smpGroup": 0, "isMasterTrader": False,
                         "spotHedgingStatus": "OFF"}, self.server_now())

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
            self.server_now())

    @_signed
    async def fee_rate(self, request, account, params) -> Response:
        """``GET /v5/account/fee-rate?category=linear[&symbol=]`` (ccxt's fetchTradingFee(s)):
        the desk's taker/maker rates per market."""
        symbol = self._linear(params, symbol_required=False)
        engine = self.desk.engine
        return envelope({"list": [{"symbol": s, "takerFeeRate": f"{engine.taker_fee:f}",
                                   "makerFeeRate": f"{engine.maker_fee:f}"} for s in ([symbol] if symbol else self.sims)],
                         "category": "linear"}, self.server_now())

    @_signed
    async def wallet_balance(self, request, account, params) -> Response:
        """``GET /v5/account/wallet-balance?accountType=UNIFIED``; another type is 10001
        "accountType only support UNIFIED."."""
        if params.get("accountType", "").upper() != "UNIFIED":
            raise BybitError("accountType only support UNIFIED.")
        return envelope(formats.wallet_payload(self.desk, account), self.server_now())

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
        return envelope({"list": rows, "nextPageCursor": "", "category": "linear"}, self.server_now())

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
        return envelope({"list": rows, "nextPageCursor": "", "category": "linear"}, self.server_now())

    @_signed
    async def order_history(self, request, account, params) -> Response:
        """``GET /v5/order/history?category=linear[&symbol=][&orderId=|orderLinkId=]
        [&limit=1..50, default 20]``: the account's closed orders the venue remembers (filled,
        cancelled, and those cancelled at once), newest first."""
        symbol = self._linear(params, symbol_required=False)
        try:
            limit = int(params.get("limit", 20))
        except ValueError:
            raise BybitError("params error: limit invalid") from None
        if not 1 <= limit <= 50:
            raise BybitError("params error: limit invalid")
        if params.get("orderId") or params.get("orderLinkId"):
            found = self._find(account, params)
            found_list = [found] if found and not found[0].is_open else []
        else:
            self.desk.sync()
            found_list = [(o, "EC_NoError") for o in self.desk.engine.orders.values()
                          if o.account == account.account_id and not o.is_open]
            found_list += [entry for entry in self._cancelled_at_once.values() if entry[0].account == account.account_id]
        rows = sorted((f for f in found_list if symbol is None or f[0].symbol == symbol), key=lambda f: -f[0].id)
        return envelope({"list": [formats.order_payload(*f) for f in rows[:limit]], "nextPageCursor": "",
                         "category": "linear"}, self.server_now())

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
        return envelope({"list": out, "nextPageCursor": "", "category": "linear"}, self.server_now())
