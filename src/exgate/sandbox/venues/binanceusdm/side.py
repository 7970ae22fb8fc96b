"""Binance USD-M's side endpoints: the signed calls ccxt's binanceusdm makes besides the
user's own reads and orders when keys are set (``load_markets`` → fetchCurrencies:
``/sapi/v1/capital/config/getall``, ``/sapi/v1/margin/allPairs``; fetchPositions → once per
client ``/fapi/v1/leverageBracket``), and the account settings endpoints a trading client reads
(``positionSide/dual``, ``multiAssetsMargin``, ``commissionRate``, ``listenKey``).
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response

from exgate.sandbox.venue import json_response
from exgate.sandbox.venues.binanceusdm import formats
from exgate.sandbox.venues.binanceusdm.auth import signed as _signed
from exgate.sandbox.venues.binanceusdm.errors import error

_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class SideEndpoints:
    """Mixed into :class:`~exgate.sandbox.venues.binanceusdm.venue.BinanceUsdm` beside
    :class:`~.private.PrivateEndpoints` (whose ``_symbol`` it uses)."""

    @_signed
    async def leverage_bracket(self, request, account, params) -> Response:
        """``GET /fapi/v1/leverageBracket[?symbol=]``: one bracket per market (the ledger's single
        maintenance rate); a list, or the one market's object when ``symbol`` is given."""
        symbol = self._symbol(params, required=False)
        if isinstance(symbol, Response):
            return symbol

        def row(s: str) -> dict:
            return {"symbol": s, "notionalCoef": 1.0, "brackets": [
                {"bracket": 1, "initialLeverage": self.desk.max_leverage(s), "notionalCap": 1_000_000_000,
                 "notionalFloor": 0, "maintMarginRatio": float(formats.MAINTENANCE_RATE), "cum": 0.0}]}

        return json_response(row(symbol) if symbol else [row(s) for s in self.sims])

    @_signed
    async def symbol_config(self, request, account, params) -> Response:
        """``GET /fapi/v1/symbolConfig[?symbol=]`` (ccxt's fetchLeverage(s), fetchMarginMode(s)):
        ``[{"symbol", "marginType" CROSSED|ISOLATED, "isAutoAddMargin", "leverage", "maxNotionalValue"}]``."""
        symbol = self._symbol(params, required=False)
        if isinstance(symbol, Response):
            return symbol
        return json_response([{
            "symbol": s, "marginType": "ISOLATED" if account.margin_mode_of(s).value == "isolated" else "CROSSED",
            "isAutoAddMargin": "false", "leverage": account.leverage_of(s), "maxNotionalValue": "1000000000"}
            for s in ([symbol] if symbol else self.sims)])

    @_signed
    async def position_side(self, request, account, params) -> Response:
        """``GET /fapi/v1/positionSide/dual``: ``{"dualSidePosition": false}`` (one-way mode,
        the only mode the sandbox keeps); ``POST`` with ``false`` is ``-4059`` (no change),
        with ``true`` refused (``-4068``, as with a position open)."""
        if request.method == "GET":
            return json_response({"dualSidePosition": False})
        if params.get("dualSidePosition", "").lower() == "false":
            return error(-4059, "No need to change position side.")
        return error(-4068, "The position side cannot be changed if there exists position.")

    @_signed
    async def multi_assets(self, request, account, params) -> Response:
        """``GET /fapi/v1/multiAssetsMargin``: ``{"multiAssetsMargin": false}``."""
        return json_response({"multiAssetsMargin": False})

    @_signed
    async def commission_rate(self, request, account, params) -> Response:
        """``GET /fapi/v1/commissionRate?symbol=``: the desk's maker/taker rates."""
        symbol = self._symbol(params)
        if isinstance(symbol, Response):
            return symbol
        engine = self.desk.engine
        return json_response({"symbol": symbol, "makerCommissionRate": f"{engine.maker_fee:f}",
                              "takerCommissionRate": f"{engine.taker_fee:f}"})

    @_signed
    async def capital_config(self, request, account, params) -> Response:
        """``GET /sapi/v1/capital/config/getall`` (the wallet's coins; ccxt's fetchCurrencies
        calls it inside ``load_markets`` whenever keys are set): every asset the markets use, one
        network each, nothing held in the spot wallet (the sandbox funds futures only)."""
        coins = sorted({i.instrument.base for i in self.sims.values()} | {i.instrument.quote for i in self.sims.values()})
        return json_response([{
            "coin": c, "name": c, "depositAllEnable": True, "withdrawAllEnable": True, "free": "0", "locked": "0",
            "freeze": "0", "withdrawing": "0", "ipoing": "0", "ipoable": "0", "storage": "0", "isLegalMoney": False,
            "trading": True, "networkList": [{
                "network": c, "coin": c, "withdrawIntegerMultiple": "0.00000001", "isDefault": True,
                "depositEnable": True, "withdrawEnable": True, "depositDesc": "", "withdrawDesc": "", "specialTips": "",
                "name": c, "resetAddressStatus": False, "addressRegex": "", "memoRegex": "", "withdrawFee": "0",
                "withdrawMin": "0", "withdrawMax": "9999999999", "minConfirm": 1, "unLockConfirm": 0,
                "sameAddress": False, "estimatedArrivalTime": 5, "busy": False}]} for c in coins])

    @_signed
    async def margin_pairs(self, request, account, params) -> Response:
        """``GET /sapi/v1/margin/allPairs`` (ccxt's fetchCurrencies with ``fetchMargins``, on by
        default for binanceusdm): ``[]``, the sandbox has no spot margin market."""
        return json_response([])

    async def listen_key(self, request: Request) -> Response:
        """``POST|PUT|DELETE /fapi/v1/listenKey`` (API key only, no signature): ``{"listenKey"}``
        / ``{}`` (the sandbox has no user data stream behind it)."""
        account = self.desk.by_id(request.headers.get("x-mbx-apikey", ""))
        if account is None:
            return error(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
        if request.method == "POST":
            return json_response({"listenKey": "".join(secrets.choice(_ID_CHARS) for _ in range(64))})
        return json_response({})
