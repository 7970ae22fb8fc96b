"""Hyperliquid's ``POST /exchange``, as the sandbox serves it: signed actions on sandbox accounts.

Body ``{"action", "nonce", "signature": {"r", "s", "v"}, "vaultAddress"?, "expiresAfter"?}``
(https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/exchange-endpoint). The
signer is recovered from the signature (:mod:`.signing`) and must be a sandbox account or an
agent one approved (``approveAgent``); otherwise, as on Hyperliquid, HTTP 200
``{"status": "err", "response": "User or API Wallet 0x… does not exist."}`` (ccxt: the broad
match ``User or API Wallet `` → ``InvalidOrder``). Nonces (ms) must lie within (T - 2 days,
T + 1 day), T the venue's server time (``server_now()``: the sandbox clock plus its skew),
and not repeat among the signer's 100 highest (Hyperliquid's nonce rules).

Actions: ``order`` (limit orders, ``tif`` ``Gtc``/``Ioc``/``Alo``; ccxt's market orders are
``Ioc`` limits at a slippage price and match as such; ``c`` a 16-byte hex cloid),
``cancel``, ``cancelByCloid``, ``updateLeverage``, and the side actions ccxt sends with keys set
(``approveBuilderFee``, ``setReferrer``) plus ``approveAgent``: accepted, remembered, and counted
under ``by_action`` in ``/__sandbox/stats``. Each answer's statuses follow Hyperliquid's:
``{"resting": {"oid"}}``, ``{"filled": {"totalSz", "avgPx", "oid"}}`` or ``{"error": "… asset=N"}``
with Hyperliquid's texts. Injected order faults (``/__sandbox/faults``) hit ``order`` requests.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from exgate.sandbox.accounts.desk import OrderFault
from exgate.sandbox.limits import hyperliquid_reject
from exgate.sandbox.matching.types import (OrderNotFound, OrderRejected, OrderStatus, OrderType, RejectReason, Side,
                                           TimeInForce)
from exgate.sandbox.venue import json_response
from exgate.sandbox.venues.hyperliquid.account_info import CLOID, ADDRESS
from exgate.sandbox.venues.hyperliquid.grid import num, price_decimals
from exgate.sandbox.venues.hyperliquid.signing import (USER_SIGNED_TYPES, BadSignature, l1_digest, recover_signer,
                                                       user_signed_digest)

_DAY = 86_400_000
_NONCES_KEPT = 100
_MIN_VALUE = Decimal(10)
_TIFS = {"Gtc": TimeInForce.GTC, "Ioc": TimeInForce.IOC, "Alo": TimeInForce.POST_ONLY}
_OK_DEFAULT = {"status": "ok", "response": {"type": "default"}}


def _err(text: str) -> Response:
    return json_response({"status": "err", "response": text})


def _bad_body() -> Response:
    return PlainTextResponse("Failed to deserialize the JSON body into the target type", status_code=422)


class ExchangeEndpoint:
    """``POST /exchange`` of the Hyperliquid venue (mixed into it)."""

    def _init_exchange(self) -> None:
        self.agents: dict[str, str] = {}  # agent address -> account address
        self.agent_names: dict[str, tuple[str, str]] = {}  # agent -> (account, name)
        self.nonces: dict[str, list[int]] = {}  # signer -> its highest nonces
        self.builder_approvals: dict[str, dict] = {}  # account -> {builder: max fee rate}
        self.referrers: dict[str, str] = {}  # account -> referral code

    def _coin_of(self, asset: object) -> str | None:
        coins = list(self.instruments)
        if isinstance(asset, int) and not isinstance(asset, bool) and 0 <= asset < len(coins):
            return coins[asset]
        return None

    def _take_nonce(self, signer: str, nonce: int, now: int) -> str | None:
        """Record ``nonce`` for ``signer``; the error text when it is refused."""
        if not now - 2 * _DAY < nonce < now + _DAY:
            return f"Invalid nonce: nonce {nonce} is outside the allowed window (now - 2 days, now + 1 day)"
        kept = self.nonces.setdefault(signer, [])
        if nonce in kept:
            return "Invalid nonce: duplicate nonce"
        if len(kept) >= _NONCES_KEPT and nonce < min(kept):
            return "Invalid nonce: nonce is lower than the signer's 100 highest"
        kept.append(nonce)
        kept.sort()
        del kept[:-_NONCES_KEPT]
        return None

    async def exchange(self, request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return PlainTextResponse(f"Failed to parse the request body as JSON: {exc}", status_code=400)
        if not isinstance(body, dict) or not isinstance(body.get("action"), dict) \
                or not isinstance(body.get("nonce"), int) or not isinstance(body.get("action", {}).get("type"), str):
            return _bad_body()
        action, nonce, kind = body["action"], body["nonce"], body["action"]["type"]
        vault = body.get("vaultAddress")
        if vault is not None and (not isinstance(vault, str) or not ADDRESS.match("0x" + vault.removeprefix("0x"))):
            return _bad_body()
        try:
            if kind in USER_SIGNED_TYPES:
                signers = [recover_signer(user_signed_digest(action), body.get("signature"))]
            else:  # mainnet ("a") first: a refusal names the signer recovered as on mainnet
                signers = [recover_signer(l1_digest(action, nonce, vault, body.get("expiresAfter"), source),
                                          body.get("signature")) for source in ("a", "b")]
        except (BadSignature, KeyError, ValueError, TypeError):
            return _bad_body()
        now = self.server_now()  # the venue's (skewed) server time the nonce window is checked at
        account, signer = None, signers[0]
        for candidate in signers:  # mainnet ("a") or testnet ("b") phantom agent
            owner = candidate if self.desk.by_id(candidate) is not None else self.agents.get(candidate)
            if owner is not None:
                account, signer = self.desk.by_id(owner), candidate
                break
        if account is None:
            return _err(f"User or API Wallet {signer} does not exist.")
        if vault is not None and "0x" + vault.lower().removeprefix("0x") != account.account_id:
            return _err(f"Vault {('0x' + vault.removeprefix('0x')).lower()} does not exist.")
        refused = self._take_nonce(signer, nonce, now)
        if refused:
            return _err(refused)
        if self.stats is not None:
            self.stats.record_action(self.name, kind)
        handler = self._ACTIONS.get(kind)
        if handler is None:
            return _bad_body()
        return await handler(self, account, action)

    # -- actions ---------------------------------------------------------------------------
    async def _act_order(self, account, action: dict) -> Response:
        orders = action.get("orders")
        if not isinstance(orders, list) or not orders:
            return _bad_body()
        fault = self.desk.take_fault()
        if fault is not None and fault[0] is OrderFault.RATE_LIMIT:
            status, payload = hyperliquid_reject(429, 0, 0)
            return Response(payload, status_code=status, media_type="application/json")
        statuses = [self._place_one(account, wire) for wire in orders]
        if fault is not None and fault[0] is OrderFault.SERVER_ERROR:
            return PlainTextResponse("Service Unavailable", status_code=503)
        if fault is not None and fault[0] is OrderFault.TIMEOUT:
            await self.desk.hold(fault[1])
        return json_response({"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}})

    def _place_one(self, account, wire: object) -> dict:
        """One order of an ``order`` action → its status entry."""
        if not isinstance(wire, dict):
            return {"error": "Invalid order."}
        asset = wire.get("a")
        coin = self._coin_of(asset)
        if coin is None:
            return {"error": f"Invalid asset {asset}."}
        tail = f" asset={asset}"
        limit = (wire.get("t") or {}).get("limit") if isinstance(wire.get("t"), dict) else None
        if not isinstance(limit, dict) or limit.get("tif") not in _TIFS:
            return {"error": "Trigger orders are not simulated by the sandbox." + tail}
        try:
            price, size = Decimal(str(wire["p"])), Decimal(str(wire["s"]))
        except (KeyError, InvalidOperation):
            return {"error": "Order has invalid price." + tail}
        cloid = wire.get("c")
        if cloid is not None and (not isinstance(cloid, str) or not CLOID.match(cloid)):
            return {"error": "Invalid cloid." + tail}
        cloid = cloid.lower() if cloid else None
        sim = self.sims[coin]
        sz_decimals = int(sim.instrument.raw["szDecimals"])
        if not price.is_finite() or price <= 0:
            return {"error": "Order has invalid price." + tail}
        if not size.is_finite() or size <= 0:
            return {"error": "Order has zero size." + tail}
        if size % Decimal(1).scaleb(-sz_decimals) != 0:
            return {"error": "Order has invalid size." + tail}
        sig_ok = len(price.normalize().as_tuple().digits) <= 5 or price == price.to_integral()
        if not sig_ok or -price.normalize().as_tuple().exponent > price_decimals(price, sz_decimals):
            return {"error": "Price must be divisible by tick size." + tail}
        reduce_only = bool(wire.get("r"))
        if not reduce_only and price * size < _MIN_VALUE:
            return {"error": "Order must have minimum value of $10." + tail}
        side = Side.BUY if wire.get("b") else Side.SELL
        try:
            order, fills = self.desk.place(account, coin, side, OrderType.LIMIT, size, price, _TIFS[limit["tif"]],
                                           reduce_only=reduce_only, client_order_id=cloid)
        except OrderRejected as exc:
            return {"error": self._reject_text(exc, coin) + tail}
        ident = {"oid": order.id, **({"cloid": cloid} if cloid else {})}
        if order.status is OrderStatus.FILLED or (not order.is_open and order.filled > 0):
            avg = sum((f.price * f.qty for f in order.fills), Decimal(0)) / order.filled
            return {"filled": {"totalSz": num(order.filled), "avgPx": num(avg.quantize(Decimal("0.000001"))), **ident}}
        if order.is_open:
            return {"resting": ident}
        return {"error": "Order could not immediately match against any resting orders." + tail}

    def _reject_text(self, exc: OrderRejected, coin: str) -> str:
        """Hyperliquid's text for an engine or margin refusal (without the ``asset=`` tail)."""
        reason = exc.reason
        if reason is RejectReason.POST_ONLY_WOULD_CROSS:
            bids, asks = self._book(self.sims[coin], self.now(), 1)
            bbo = f"{num(bids[0][0]) if bids else '0.0'}@{num(asks[0][0]) if asks else '0.0'}"
            return f"Post only order would have immediately matched, bbo was {bbo}."
        return {
            RejectReason.INSUFFICIENT_MARGIN: "Insufficient margin to place order.",
            RejectReason.REDUCE_ONLY_WOULD_INCREASE: "Reduce only order would increase position.",
            RejectReason.BAD_TICK: "Price must be divisible by tick size.",
            RejectReason.BAD_PRICE: "Order has invalid price.",
            RejectReason.BAD_LOT: "Order has invalid size.",
            RejectReason.MIN_NOTIONAL: "Order must have minimum value of $10.",
            RejectReason.NO_LIQUIDITY: "No liquidity available for market order.",
            RejectReason.DUPLICATE_CLIENT_ORDER_ID: "Order has duplicate cloid.",
            RejectReason.TOO_MANY_OPEN_ORDERS: "Too many open orders.",
            RejectReason.MARKET_INACTIVE: "Trading is halted.",
        }.get(reason, "Order rejected.")

    async def _act_cancel(self, account, action: dict) -> Response:
        cancels = action.get("cancels")
        if not isinstance(cancels, list):
            return _bad_body()
        by_cloid = action["type"] == "cancelByCloid"
        statuses = []
        for entry in cancels:
            if not isinstance(entry, dict):
                return _bad_body()
            asset = entry.get("asset") if by_cloid else entry.get("a")
            coin = self._coin_of(asset)
            ref = entry.get("cloid") if by_cloid else entry.get("o")
            try:
                if coin is None:
                    raise OrderNotFound(str(asset))
                if by_cloid:
                    self.desk.cancel(account, coin, client_order_id=str(ref).lower())
                else:
                    self.desk.cancel(account, coin, order_id=ref if isinstance(ref, int) else -1)
                statuses.append("success")
            except OrderNotFound:
                statuses.append({"error": f"Order was never placed, already canceled, or filled. asset={asset}"})
        return json_response({"status": "ok", "response": {"type": "cancel", "data": {"statuses": statuses}}})

    async def _act_update_leverage(self, account, action: dict) -> Response:
        from exgate.sandbox.accounts.ledger import MarginMode

        coin, leverage = self._coin_of(action.get("asset")), action.get("leverage")
        if coin is None or not isinstance(leverage, int) or not isinstance(action.get("isCross"), bool):
            return _bad_body()
        mode = MarginMode.CROSS if action["isCross"] else MarginMode.ISOLATED
        try:
            self.desk.set_leverage(account, coin, leverage, mode)
        except OrderRejected as exc:
            if "margin mode" in str(exc):
                return _err("Cannot switch leverage type with open position.")
            return _err("Invalid leverage value.")
        return json_response(_OK_DEFAULT)

    async def _act_approve_builder_fee(self, account, action: dict) -> Response:
        self.builder_approvals.setdefault(account.account_id, {})[str(action.get("builder", "")).lower()] = \
            action.get("maxFeeRate")
        return json_response(_OK_DEFAULT)

    async def _act_set_referrer(self, account, action: dict) -> Response:
        self.referrers.setdefault(account.account_id, str(action.get("code", "")))
        return json_response(_OK_DEFAULT)

    async def _act_approve_agent(self, account, action: dict) -> Response:
        agent = str(action.get("agentAddress", "")).lower()
        if not ADDRESS.match(agent):
            return _bad_body()
        self.agents[agent] = account.account_id
        self.agent_names[agent] = (account.account_id, str(action.get("agentName") or ""))
        return json_response(_OK_DEFAULT)

    _ACTIONS = {
        "order": _act_order,
        "cancel": _act_cancel,
        "cancelByCloid": _act_cancel,
        "updateLeverage": _act_update_leverage,
        "approveBuilderFee": _act_approve_builder_fee,
        "setReferrer": _act_set_referrer,
        "approveAgent": _act_approve_agent,
    }
