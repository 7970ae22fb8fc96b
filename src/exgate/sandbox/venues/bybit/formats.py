"""Bybit v5's private payloads (orders, executions, positions, wallet) built from the sandbox's
accounts desk, in the shapes of https://bybit-exchange.github.io/docs/v5/ (order/open-order,
order/execution, position, account/wallet-balance) and the recorded answers in ccxt's static
tests and nautilus_trader's Bybit test data. Numbers are decimal strings, times ms strings;
one-way mode (``positionIdx`` 0), a unified trading account settled in USDT.

Order ids are UUIDs as Bybit's are: the engine's integer id in the low 64 bits under a fixed
sandbox prefix (:func:`order_uuid` / :func:`order_int`); execution ids likewise.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from exgate.sandbox.accounts import MarginMode, SandboxAccount
from exgate.sandbox.accounts.ledger import MAINTENANCE_RATE
from exgate.sandbox.data import fmt
from exgate.sandbox.matching.types import Order, OrderStatus, OrderType, RejectReason, TimeInForce

_ZERO = Decimal(0)
_ORDER_PREFIX = 0x5A4E_D8B0_0000_4000 << 64
_EXEC_PREFIX = 0xE8EC_0000_0000_4000 << 64
_LOW = (1 << 64) - 1

TIF_OUT = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK", TimeInForce.POST_ONLY: "PostOnly"}
TIF_IN = {v: k for k, v in TIF_OUT.items()}

REJECTS: dict[RejectReason, tuple[int, str]] = {
    RejectReason.INSUFFICIENT_MARGIN: (110007, "ab not enough for new order"),
    RejectReason.BAD_LOT: (10001, "Qty invalid"),
    RejectReason.BAD_TICK: (10001, "The order price has too many decimals."),
    RejectReason.BAD_PRICE: (10001, "params error: price invalid"),
    RejectReason.MIN_NOTIONAL: (110094, "Order does not meet minimum order value"),
    RejectReason.MARKET_INACTIVE: (110074, "This contract is not live"),
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: (110072, "OrderLinkedID is duplicate"),
    RejectReason.REDUCE_ONLY_WOULD_INCREASE: (110017, "Reduce-only rule not satisfied"),
    RejectReason.TOO_MANY_OPEN_ORDERS: (110020, "Not allowed to have more than 500 active orders."),
    RejectReason.NO_LIQUIDITY: (110010, "The order has been cancelled"),
}
"""Bybit's retCode and text for each engine :class:`RejectReason` refused at create (ccxt's
``exact``: 110007 InsufficientFunds, 110072/110017/110094/110020 InvalidOrder, 10001
BadRequest). Post-only and FOK orders that cannot rest or fill are not refused: Bybit accepts
them and cancels them at once (see :data:`CANCEL_REASONS`)."""

CANCEL_REASONS = {RejectReason.POST_ONLY_WOULD_CROSS: "EC_PostOnlyWillTakeLiquidity",
                  RejectReason.FOK_NOT_FILLABLE: "EC_CancelForNoFullFill"}
"""``rejectReason`` of an accepted order Bybit cancels at once."""


def order_uuid(order_id: int) -> str:
    return str(uuid.UUID(int=_ORDER_PREFIX | order_id))


def order_int(text: str) -> int | None:
    """The engine id of a sandbox order UUID, or ``None`` when ``text`` is not one."""
    try:
        value = uuid.UUID(text).int
    except ValueError:
        return None
    return value & _LOW if value & ~_LOW == _ORDER_PREFIX else None


def exec_uuid(trade_id: int) -> str:
    return str(uuid.UUID(int=_EXEC_PREFIX | trade_id))


def status_of(order: Order) -> str:
    """v5 ``orderStatus``: a remainder an IOC/FOK/market did not fill is cancelled
    (``PartiallyFilledCanceled`` once something filled)."""
    if order.status is OrderStatus.CANCELED and order.filled > 0:
        return "PartiallyFilledCanceled"
    return {OrderStatus.NEW: "New", OrderStatus.PARTIALLY_FILLED: "PartiallyFilled", OrderStatus.FILLED: "Filled",
            OrderStatus.CANCELED: "Cancelled", OrderStatus.REJECTED: "Rejected",
            OrderStatus.EXPIRED: "Cancelled"}[order.status]


def order_payload(order: Order, reject: str = "EC_NoError") -> dict:
    """One order of ``/v5/order/realtime``: fills up to now included (``cumExecQty``,
    ``cumExecValue``, ``cumExecFee``, ``avgPrice``), never lagged."""
    value = sum((f.price * f.qty for f in order.fills), _ZERO)
    fee = sum((f.fee for f in order.fills), _ZERO)
    avg = value / order.filled if order.filled else None
    leaves = order.remaining if order.is_open else _ZERO
    price = order.price if order.price is not None else (avg or _ZERO)
    cancel_type = "UNKNOWN"
    if order.status is OrderStatus.CANCELED:
        cancel_type = "CancelByUser" if order.tif in (TimeInForce.GTC, TimeInForce.POST_ONLY) else "UNKNOWN"
    return {
        "orderId": order_uuid(order.id), "orderLinkId": order.client_order_id or "", "blockTradeId": "",
        "symbol": order.symbol, "price": fmt(price), "qty": fmt(order.qty), "side": order.side.value.capitalize(),
        "isLeverage": "", "positionIdx": 0, "orderStatus": status_of(order), "cancelType": cancel_type,
        "rejectReason": reject, "avgPrice": fmt(avg) if avg is not None else "", "leavesQty": fmt(leaves),
        "leavesValue": fmt(leaves * (order.price or _ZERO)), "cumExecQty": fmt(order.filled),
        "cumExecValue": fmt(value), "cumExecFee": fmt(fee),
        "timeInForce": TIF_OUT[order.tif] if order.type is OrderType.LIMIT else "IOC",
        "orderType": "Market" if order.type is OrderType.MARKET else "Limit", "stopOrderType": "", "orderIv": "",
        "triggerPrice": "", "takeProfit": "", "stopLoss": "", "tpTriggerBy": "", "slTriggerBy": "",
        "triggerDirection": 0, "triggerBy": "", "lastPriceOnCreated": "", "reduceOnly": order.reduce_only,
        "closeOnTrigger": False, "smpType": "None", "smpGroup": 0, "smpOrderId": "", "tpslMode": "",
        "tpLimitPrice": "", "slLimitPrice": "", "placeType": "", "createdTime": str(order.created),
        "updatedTime": str(order.updated),
    }


def execution_payload(fill, order: Order | None, rate: Decimal, mark: Decimal) -> dict:
    """One row of ``/v5/execution/list`` (an :class:`~exgate.sandbox.accounts.AccountFill`)."""
    f = fill.fill
    return {
        "symbol": fill.symbol, "orderType": "Market" if order is not None and order.type is OrderType.MARKET else "Limit",
        "underlyingPrice": "", "orderLinkId": fill.client_order_id or "", "side": f.side.value.capitalize(),
        "indexPrice": "", "orderId": order_uuid(f.order_id), "stopOrderType": "UNKNOWN",
        "leavesQty": fmt(order.remaining) if order is not None and order.is_open else "0", "execTime": str(f.time),
        "feeCurrency": "", "isMaker": f.maker, "execFee": fmt(f.fee), "feeRate": fmt(rate),
        "execId": exec_uuid(f.trade_id), "tradeIv": "", "blockTradeId": "", "markPrice": fmt(mark),
        "execPrice": fmt(f.price), "markIv": "", "orderQty": fmt(order.qty) if order is not None else fmt(f.qty),
        "orderPrice": fmt(order.price) if order is not None and order.price is not None else fmt(f.price),
        "execValue": fmt(f.price * f.qty), "execType": "Trade", "execQty": fmt(f.qty),
        "closedSize": fmt(f.qty) if fill.realized_pnl else "0", "seq": f.trade_id,
    }


def position_payload(account: SandboxAccount, symbol: str, view, mark: Decimal, created: int) -> dict:
    """One row of ``/v5/position/list`` (``view`` a :class:`PositionView`, ``None`` when flat)."""
    lev = account.leverage_of(symbol)
    size = view.size if view else _ZERO
    notional = abs(size) * mark
    isolated = account.margin_mode_of(symbol) is MarginMode.ISOLATED
    state = account.positions.get(symbol)
    return {
        "positionIdx": 0, "riskId": 1, "riskLimitValue": "2000000", "symbol": symbol,
        "side": "" if size == 0 else ("Buy" if size > 0 else "Sell"), "size": fmt(abs(size)),
        "avgPrice": fmt(view.entry_price) if view else "0", "positionValue": fmt(abs(size) * (view.entry_price if view else _ZERO)),
        "tradeMode": 1 if isolated else 0, "positionStatus": "Normal", "autoAddMargin": 0,
        "adlRankIndicator": 2 if size else 0, "leverage": str(lev), "positionBalance": fmt(notional / lev),
        "markPrice": fmt(mark),
        "liqPrice": fmt(view.liquidation_price.quantize(Decimal("0.01"))) if view and view.liquidation_price else "",
        "bustPrice": "", "positionMM": fmt(notional * MAINTENANCE_RATE), "positionIM": fmt(notional / lev),
        "tpslMode": "Full", "takeProfit": "0", "stopLoss": "0", "trailingStop": "0",
        "unrealisedPnl": fmt(view.unrealized_pnl) if view else "0",
        "curRealisedPnl": fmt(state.realized_pnl) if state else "0",
        "cumRealisedPnl": fmt(state.realized_pnl) if state else "0", "seq": 0, "isReduceOnly": False,
        "mmrSysUpdatedTime": "", "leverageSysUpdatedTime": "", "sessionAvgPrice": "",
        "createdTime": str(created), "updatedTime": str(state.updated if state and state.updated else created),
    }


def wallet_payload(desk, account: SandboxAccount) -> dict:
    """``/v5/account/wallet-balance?accountType=UNIFIED``: one UNIFIED account with its USDT coin
    (``availableToWithdraw`` empty as on UTA 2.0: ccxt computes the free part from
    ``totalPositionIM`` and ``totalOrderIM``)."""
    s = desk.summary(account)
    maint = sum((p.notional * MAINTENANCE_RATE for p in s.positions), _ZERO)
    initial = s.position_margin + s.order_margin

    def m(v: Decimal) -> str:
        return fmt(v.quantize(Decimal("0.00000001")))

    coin = {
        "availableToBorrow": "", "bonus": "0", "accruedInterest": "0", "availableToWithdraw": "",
        "totalOrderIM": m(s.order_margin), "equity": m(s.equity), "totalPositionMM": m(maint), "usdValue": m(s.equity),
        "unrealisedPnl": m(s.unrealized_pnl), "collateralSwitch": True, "spotHedgingQty": "0", "borrowAmount": "0",
        "totalPositionIM": m(s.position_margin), "walletBalance": m(s.wallet),
        "cumRealisedPnl": m(account.realized_pnl), "locked": "0", "marginCollateral": True, "coin": account.currency,
    }
    ratio = (lambda v: fmt((v / s.equity).quantize(Decimal("0.0001")))) if s.equity > 0 else (lambda v: "0")
    return {"list": [{
        "totalEquity": m(s.equity), "accountIMRate": ratio(initial), "totalMarginBalance": m(s.equity),
        "totalInitialMargin": m(initial), "accountType": "UNIFIED", "totalAvailableBalance": m(s.available),
        "accountMMRate": ratio(maint), "totalPerpUPL": m(s.unrealized_pnl), "totalWalletBalance": m(s.wallet),
        "accountLTV": "0", "totalMaintenanceMargin": m(maint), "coin": [coin],
    }]}
