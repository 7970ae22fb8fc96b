"""Hyperliquid's account ``/info`` types, as the sandbox serves them from its accounts desk.

Wire formats of https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint
(and its ``perpetuals`` page), checked against ccxt's recorded answers (fetchBalance,
fetchPositions, fetchOpenOrders, fetchOrder, fetchMyTrades):

* ``clearinghouseState`` ``{user}``: ``marginSummary`` / ``crossMarginSummary``
  (``accountValue`` equity, ``totalNtlPos`` |notional| at mark, ``totalRawUsd`` equity less the
  signed notional, ``totalMarginUsed``), ``crossMaintenanceMarginUsed``, ``withdrawable``
  (available, never negative), ``assetPositions`` (``{"type": "oneWay", "position": {coin, szi,
  leverage {type, value}, entryPx, positionValue, unrealizedPnl, returnOnEquity,
  liquidationPx, marginUsed, maxLeverage, cumFunding}}``) and ``time``: one answer holds the
  account and every position. An unknown address gets the empty state, as on Hyperliquid.
* ``openOrders`` / ``frontendOpenOrders`` ``{user}``: resting orders, newest first (the
  frontend form adds ``orderType``, ``tif``, ``reduceOnly``, ``cloid``, trigger fields).
* ``userFills`` ``{user}`` (newest first, at most 2000) and ``userFillsByTime`` ``{user,
  startTime[, endTime]}``: fills visible in trade history (the desk's ``history_lag_ms``).
* ``orderStatus`` ``{user, oid}`` (``oid`` a number or a ``0x`` cloid): ``{"status": "order",
  "order": {"order": {...}, "status", "statusTimestamp"}}`` or ``{"status": "unknownOid"}``;
  closed orders are found at once (no lag).
* ``spotClearinghouseState`` (``{"balances": []}``: sandbox accounts hold no spot tokens),
  ``userAbstraction`` (``"default"``), ``userRole`` (``{"role": "user"}``, ``"agent"`` for an
  approved agent, ``"missing"``), ``extraAgents`` and ``userFees``.
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal

from starlette.responses import Response

from exgate.sandbox.accounts.ledger import MAINTENANCE_RATE
from exgate.sandbox.matching.types import Order, OrderStatus, Side, TimeInForce
from exgate.sandbox.venue import json_response
from exgate.sandbox.venues.hyperliquid.grid import num

ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
CLOID = re.compile(r"^0x[0-9a-fA-F]{32}$")
_MAX_FILLS = 2000
_USD = Decimal("0.000001")
_TIF = {TimeInForce.GTC: "Gtc", TimeInForce.IOC: "Ioc", TimeInForce.POST_ONLY: "Alo", TimeInForce.FOK: "Ioc"}
_STATUS = {OrderStatus.NEW: "open", OrderStatus.PARTIALLY_FILLED: "open", OrderStatus.FILLED: "filled",
           OrderStatus.CANCELED: "canceled", OrderStatus.REJECTED: "rejected", OrderStatus.EXPIRED: "canceled"}


def usd(value: Decimal) -> str:
    """A USDC amount as Hyperliquid prints it (6 decimals at most)."""
    return num(value.quantize(_USD))


def side_code(side: Side) -> str:
    """``B`` (bid, buy) or ``A`` (ask, sell)."""
    return "B" if side is Side.BUY else "A"


def fill_hash(*parts: object) -> str:
    """A deterministic 32-byte transaction hash for a fill."""
    return "0x" + hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=32).hexdigest()


def _deserialize_error() -> Response:
    from starlette.responses import PlainTextResponse

    return PlainTextResponse("Failed to deserialize the JSON body into the target type", status_code=422)


class AccountInfo:
    """The account ``/info`` handlers of the Hyperliquid venue (mixed into it)."""

    def _user(self, body: dict):
        """``(account or None, error response or None)`` for the body's ``user``."""
        user = body.get("user")
        if not isinstance(user, str) or not ADDRESS.match(user):
            return None, _deserialize_error()
        return self.desk.by_id(user.lower()), None

    def _order_record(self, order: Order, frontend: bool) -> dict:
        out = {"coin": order.symbol, "side": side_code(order.side), "limitPx": num(order.price or Decimal(0)),
               "sz": num(order.remaining if order.is_open else Decimal(0)), "oid": order.id,
               "timestamp": order.created, "origSz": num(order.qty)}
        if frontend:
            out.update({"triggerCondition": "N/A", "isTrigger": False, "triggerPx": "0.0", "children": [],
                        "isPositionTpsl": False, "reduceOnly": order.reduce_only, "orderType": "Limit",
                        "tif": _TIF[order.tif], "cloid": order.client_order_id})
        elif order.client_order_id is not None:
            out["cloid"] = order.client_order_id
        return out

    def _clearinghouse_state(self, account, now: int) -> dict:
        empty = {"accountValue": "0.0", "totalNtlPos": "0.0", "totalRawUsd": "0.0", "totalMarginUsed": "0.0"}
        if account is None:
            return {"marginSummary": dict(empty), "crossMarginSummary": dict(empty),
                    "crossMaintenanceMarginUsed": "0.0", "withdrawable": "0.0", "assetPositions": [], "time": now}
        summary = self.desk.summary(account)
        positions, signed, notional, maintenance = [], Decimal(0), Decimal(0), Decimal(0)
        for p in summary.positions:
            signed += p.size * p.mark_price
            notional += p.notional
            maintenance += p.notional * MAINTENANCE_RATE
            positions.append({"type": "oneWay", "position": {
                "coin": p.symbol, "szi": num(p.size),
                "leverage": {"type": p.margin_mode.value, "value": p.leverage},
                "entryPx": num(p.entry_price.quantize(Decimal("0.000001"))), "positionValue": usd(p.notional),
                "unrealizedPnl": usd(p.unrealized_pnl),
                "returnOnEquity": num((p.unrealized_pnl / p.margin).quantize(Decimal("0.00000001"))) if p.margin else "0.0",
                "liquidationPx": num(p.liquidation_price.quantize(Decimal("0.00000001")))
                if p.liquidation_price is not None else None,
                "marginUsed": usd(p.margin), "maxLeverage": self.max_leverage(p.symbol),
                "cumFunding": {"allTime": "0.0", "sinceOpen": "0.0", "sinceChange": "0.0"}}})
        margin = {"accountValue": usd(summary.equity), "totalNtlPos": usd(notional),
                  "totalRawUsd": usd(summary.equity - signed), "totalMarginUsed": usd(summary.position_margin)}
        return {"marginSummary": margin, "crossMarginSummary": dict(margin),
                "crossMaintenanceMarginUsed": usd(maintenance),
                "withdrawable": usd(max(Decimal(0), summary.available)), "assetPositions": positions, "time": now}

    def _info_clearinghouse(self, body: dict, now: int) -> Response:
        account, error = self._user(body)
        if error:
            return error
        if body.get("dex", "") != "":
            account = None  # builder-deployed dexs are not simulated: nothing held there
        return json_response(self._clearinghouse_state(account, now))

    def _open_orders(self, body: dict, frontend: bool) -> Response:
        account, error = self._user(body)
        if error:
            return error
        orders = self.desk.open_orders(account) if account is not None else []
        return json_response([self._order_record(o, frontend) for o in reversed(orders)])

    def _info_open_orders(self, body: dict, now: int) -> Response:
        return self._open_orders(body, frontend=False)

    def _info_frontend_open_orders(self, body: dict, now: int) -> Response:
        return self._open_orders(body, frontend=True)

    def _fill_records(self, account, start: int | None = None, end: int | None = None) -> list[dict]:
        """Visible fills of ``account``, oldest first, in ``userFills``' shape."""
        visible = {id(f) for f in self.desk.fills(account)}
        held: dict[str, Decimal] = {}
        rows = []
        for f in account.fills:  # every fill, in order, to know the position before each
            before = held.get(f.symbol, Decimal(0))
            after = before + f.fill.qty * f.fill.side.sign
            held[f.symbol] = after
            if id(f) not in visible or (start is not None and f.fill.time < start) \
                    or (end is not None and f.fill.time > end):
                continue
            row = {"coin": f.symbol, "px": num(f.fill.price), "sz": num(f.fill.qty), "side": side_code(f.fill.side),
                   "time": f.fill.time, "startPosition": num(before), "dir": _direction(before, after),
                   "closedPnl": usd(f.realized_pnl), "hash": fill_hash(self.name, f.fill.trade_id),
                   "oid": f.fill.order_id, "crossed": not f.fill.maker, "fee": usd(f.fill.fee),
                   "tid": f.fill.trade_id, "feeToken": "USDC"}
            if f.client_order_id is not None:
                row["cloid"] = f.client_order_id
            rows.append(row)
        return rows

    def _info_user_fills(self, body: dict, now: int) -> Response:
        account, error = self._user(body)
        if error:
            return error
        rows = self._fill_records(account) if account is not None else []
        return json_response(rows[::-1][:_MAX_FILLS])

    def _info_user_fills_by_time(self, body: dict, now: int) -> Response:
        account, error = self._user(body)
        if error:
            return error
        start, end = body.get("startTime"), body.get("endTime")
        if not isinstance(start, int) or (end is not None and not isinstance(end, int)):
            return _deserialize_error()
        rows = self._fill_records(account, start, end) if account is not None else []
        return json_response(rows[:_MAX_FILLS])

    def _info_order_status(self, body: dict, now: int) -> Response:
        account, error = self._user(body)
        if error:
            return error
        oid = body.get("oid")
        order = None
        if account is not None:
            if isinstance(oid, int) and not isinstance(oid, bool):
                order = self.desk.order(account, order_id=oid)
            elif isinstance(oid, str) and CLOID.match(oid):
                order = self.desk.order(account, client_order_id=oid.lower())
            else:
                return _deserialize_error()
        if order is None:
            return json_response({"status": "unknownOid"})
        return json_response({"status": "order", "order": {"order": self._order_record(order, frontend=True),
                                                           "status": _STATUS[order.status],
                                                           "statusTimestamp": order.updated}})

    def _info_spot_clearinghouse(self, body: dict, now: int) -> Response:
        _, error = self._user(body)
        return error or json_response({"balances": []})

    def _info_user_abstraction(self, body: dict, now: int) -> Response:
        _, error = self._user(body)
        return error or json_response("default")

    def _info_user_role(self, body: dict, now: int) -> Response:
        account, error = self._user(body)
        if error:
            return error
        if account is not None:
            return json_response({"role": "user"})
        owner = self.agents.get(body["user"].lower())
        return json_response({"role": "agent", "data": {"user": owner}} if owner else {"role": "missing"})

    def _info_extra_agents(self, body: dict, now: int) -> Response:
        account, error = self._user(body)
        if error:
            return error
        return json_response([{"name": name, "address": agent, "validUntil": now + 180 * 86_400_000}
                              for agent, (owner, name) in self.agent_names.items()
                              if account is not None and owner == account.account_id])

    def _info_user_fees(self, body: dict, now: int) -> Response:
        _, error = self._user(body)
        if error:
            return error
        taker, maker = num(self.desk.engine.taker_fee), num(self.desk.engine.maker_fee)
        return json_response({"dailyUserVlm": [], "feeSchedule": {"cross": taker, "add": maker, "tiers": {"vip": [], "mm": []},
                                                                  "referralDiscount": "0.0"},
                              "userCrossRate": taker, "userAddRate": maker, "activeReferralDiscount": "0.0"})


def _direction(before: Decimal, after: Decimal) -> str:
    """A fill's ``dir``: Open/Close Long/Short, or a flip (``Long > Short``, ``Short > Long``)."""
    if before > 0 and after < 0:
        return "Long > Short"
    if before < 0 and after > 0:
        return "Short > Long"
    if after > before:
        return "Open Long" if before >= 0 else "Close Short"
    return "Open Short" if before <= 0 else "Close Long"


ACCOUNT_INFO_HANDLERS = {
    "clearinghouseState": AccountInfo._info_clearinghouse,
    "openOrders": AccountInfo._info_open_orders,
    "frontendOpenOrders": AccountInfo._info_frontend_open_orders,
    "userFills": AccountInfo._info_user_fills,
    "userFillsByTime": AccountInfo._info_user_fills_by_time,
    "orderStatus": AccountInfo._info_order_status,
    "spotClearinghouseState": AccountInfo._info_spot_clearinghouse,
    "userAbstraction": AccountInfo._info_user_abstraction,
    "userRole": AccountInfo._info_user_role,
    "extraAgents": AccountInfo._info_extra_agents,
    "userFees": AccountInfo._info_user_fees,
}
"""Account ``/info`` types → handlers ``(venue, body, now) -> Response``."""
