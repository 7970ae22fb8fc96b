"""Binance USD-M's private payloads (orders, trades, positions, account), built from the
sandbox's accounts desk.

Shapes follow https://developers.binance.com/docs/derivatives/usds-margined-futures (trade:
New-Order, Query-Order, Current-All-Open-Orders, Account-Trade-List, Position-Information-V2/V3;
account: Account-Information-V2/V3) and the recorded answers in ccxt's static tests and
nautilus_trader's ``http_futures_account_*`` files. Numbers are decimal strings, times ms; the
account is one-way (``positionSide`` ``BOTH``), cross margin unless set isolated.
"""

from __future__ import annotations

from decimal import Decimal

from exgate.sandbox.accounts import MarginMode, SandboxAccount, Summary
from exgate.sandbox.accounts.ledger import MAINTENANCE_RATE
from exgate.sandbox.data import fmt
from exgate.sandbox.matching.types import Order, OrderStatus, OrderType, RejectReason, TimeInForce

_ZERO = Decimal(0)

STATUS = {OrderStatus.NEW: "NEW", OrderStatus.PARTIALLY_FILLED: "PARTIALLY_FILLED", OrderStatus.FILLED: "FILLED",
          OrderStatus.CANCELED: "CANCELED", OrderStatus.REJECTED: "REJECTED", OrderStatus.EXPIRED: "EXPIRED"}
TIF_OUT = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK", TimeInForce.POST_ONLY: "GTX"}
TIF_IN = {v: k for k, v in TIF_OUT.items()}

REJECTS: dict[RejectReason, tuple[int, str]] = {
    RejectReason.INSUFFICIENT_MARGIN: (-2019, "Margin is insufficient."),
    RejectReason.BAD_LOT: (-1111, "Precision is over the maximum defined for this asset."),
    RejectReason.BAD_TICK: (-4014, "Price not increased by tick size."),
    RejectReason.BAD_PRICE: (-4001, "Price less than 0."),
    RejectReason.MIN_NOTIONAL: (-4164, "Order's notional must be no smaller than 5 (unless you choose reduce only)."),
    RejectReason.MARKET_INACTIVE: (-4140, "Invalid symbol status for opening position."),
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: (-4116, "ClientOrderId is duplicated."),
    RejectReason.REDUCE_ONLY_WOULD_INCREASE: (-2022, "ReduceOnly Order is rejected."),
    RejectReason.POST_ONLY_WOULD_CROSS: (-5022, "Due to the order could not be executed as maker, the Post Only order "
                                                "will be rejected. The order will not be recorded in the order history"),
    RejectReason.FOK_NOT_FILLABLE: (-5021, "Due to the order could not be filled immediately, the FOK order has been "
                                           "rejected. The order will not be recorded in the order history"),
    RejectReason.TOO_MANY_OPEN_ORDERS: (-2025, "Reach max open order limit."),
    RejectReason.NO_LIQUIDITY: (-2020, "Unable to fill."),
}
"""Binance's code and text for each engine :class:`RejectReason` (HTTP 400). ccxt (its
``linear`` table): -2019 InsufficientFunds, -4164/-4116/-2022 InvalidOrder, -5021/-5022
OrderNotFillable, -1111/-4014/-4001 BadRequest (its broad ``PRICE_FILTER``/``LOT_SIZE`` texts are
not used by fapi for these)."""


def _q(value: Decimal, step: Decimal) -> str:
    """``value`` printed with ``step``'s places (Binance prints quantities and prices so)."""
    return fmt(value.quantize(step) if step.as_tuple().exponent < 0 else value)


def _m(value: Decimal) -> str:
    """A money amount with 8 places (fapi's account fields)."""
    return fmt(value.quantize(Decimal("0.00000001")))


def status_of(order: Order) -> str:
    """fapi's status: an IOC/FOK/market remainder that did not fill is ``EXPIRED`` (Binance's
    word for it), a user cancel ``CANCELED``."""
    if order.status is OrderStatus.CANCELED and order.tif in (TimeInForce.IOC, TimeInForce.FOK):
        return "EXPIRED" if order.filled < order.qty else "FILLED"
    return STATUS[order.status]


def average_price(order: Order) -> Decimal:
    notional = sum((f.price * f.qty for f in order.fills), _ZERO)
    return notional / order.filled if order.filled else _ZERO


def order_payload(order: Order, tick: Decimal, lot: Decimal, *, ack: bool = False, with_time: bool = True) -> dict:
    """One order as fapi's ``/fapi/v1/order`` answers it. ``ack``: the ``ACK`` answer (the
    order as accepted: ``NEW``, nothing executed); else as it stands now (``RESULT``, queries)."""
    filled = _ZERO if ack else order.filled
    quote = _ZERO if ack else sum((f.price * f.qty for f in order.fills), _ZERO)
    avg = quote / filled if filled else _ZERO
    kind = "MARKET" if order.type is OrderType.MARKET else "LIMIT"
    out = {
        "orderId": order.id, "symbol": order.symbol, "status": "NEW" if ack else status_of(order),
        "clientOrderId": order.client_order_id or "", "price": _q(order.price or _ZERO, tick),
        "avgPrice": _q(avg, tick / 100) if avg else "0.00", "origQty": _q(order.qty, lot),
        "executedQty": _q(filled, lot), "cumQty": _q(filled, lot), "cumQuote": _m(quote),
        "timeInForce": TIF_OUT[order.tif] if order.type is OrderType.LIMIT else "GTC", "type": kind,
        "reduceOnly": order.reduce_only, "closePosition": False, "side": order.side.value.upper(),
        "positionSide": "BOTH", "stopPrice": "0", "workingType": "CONTRACT_PRICE", "priceProtect": False,
        "origType": kind, "priceMatch": "NONE", "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0,
        "updateTime": order.created if ack else order.updated,
    }
    if with_time:
        out["time"] = order.created
    return out


def trade_payload(fill, lot: Decimal, tick: Decimal) -> dict:
    """One row of ``/fapi/v1/userTrades`` (an :class:`~exgate.sandbox.accounts.AccountFill`)."""
    f = fill.fill
    return {
        "symbol": fill.symbol, "id": f.trade_id, "orderId": f.order_id, "side": f.side.value.upper(),
        "price": _q(f.price, tick), "qty": _q(f.qty, lot), "realizedPnl": _m(fill.realized_pnl),
        "quoteQty": _m(f.price * f.qty), "commission": _m(f.fee), "commissionAsset": "USDT", "time": f.time,
        "positionSide": "BOTH", "buyer": f.side.value == "buy", "maker": f.maker,
    }


def _order_margins(desk, account: SandboxAccount) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for o in desk.open_orders(account):
        out[o.symbol] = out.get(o.symbol, _ZERO) + o.remaining * (o.price or _ZERO) / account.leverage_of(o.symbol)
    return out


def position_rows(desk, account: SandboxAccount, summary: Summary, version: int, symbols) -> list[dict]:
    """``/fapi/v{2,3}/positionRisk`` rows. v3 lists the markets with a position or an open order;
    v2 every market of ``symbols`` (flat ones zero), with leverage and margin type."""
    now = desk.clock()
    views = {p.symbol: p for p in summary.positions}
    order_margin = _order_margins(desk, account)
    rows = []
    for symbol in symbols:
        p = views.get(symbol)
        if version == 3 and p is None and symbol not in order_margin:
            continue
        sim = desk.sims[symbol]
        tick = sim.instrument.tick
        size = p.size if p else _ZERO
        mark = p.mark_price if p else sim.mark_price(now)
        entry = p.entry_price if p else _ZERO
        notional = size * mark
        lev = account.leverage_of(symbol)
        isolated = account.margin_mode_of(symbol) is MarginMode.ISOLATED
        margin = abs(notional) / lev
        row = {
            "symbol": symbol, "positionSide": "BOTH", "positionAmt": fmt(size), "entryPrice": fmt(entry),
            "breakEvenPrice": fmt(entry), "markPrice": _m(mark), "unRealizedProfit": _m(p.unrealized_pnl if p else _ZERO),
            "liquidationPrice": _q(p.liquidation_price, tick) if p and p.liquidation_price else "0",
            "isolatedMargin": _m(margin if isolated else _ZERO), "notional": _m(notional),
            "isolatedWallet": _m(margin if isolated else _ZERO), "updateTime": p.updated if p else 0,
        }
        if version == 3:
            om = order_margin.get(symbol, _ZERO)
            row.update({"marginAsset": "USDT", "initialMargin": _m(margin + om),
                        "maintMargin": _m(abs(notional) * MAINTENANCE_RATE), "positionInitialMargin": _m(margin),
                        "openOrderInitialMargin": _m(om), "adl": 0, "bidNotional": "0", "askNotional": "0"})
        else:
            row.update({"leverage": str(lev), "maxNotionalValue": "1000000000",
                        "marginType": "isolated" if isolated else "cross", "isAutoAddMargin": "false",
                        "isolated": isolated, "adlQuantile": 0})
        rows.append(row)
    return rows


def account_payload(desk, account: SandboxAccount, version: int) -> dict:
    """``/fapi/v2/account`` or ``/fapi/v3/account``: totals, the settle asset, and positions
    (v3: markets with a position or an open order, without entry price or leverage; v2: every
    market, with them)."""
    summary = desk.summary(account)
    now = desk.clock()
    maint = sum((p.notional * MAINTENANCE_RATE for p in summary.positions), _ZERO)
    initial = summary.position_margin + summary.order_margin
    withdraw = max(_ZERO, min(summary.available, summary.wallet))
    asset = {
        "asset": account.currency, "walletBalance": _m(summary.wallet), "unrealizedProfit": _m(summary.unrealized_pnl),
        "marginBalance": _m(summary.equity), "maintMargin": _m(maint), "initialMargin": _m(initial),
        "positionInitialMargin": _m(summary.position_margin), "openOrderInitialMargin": _m(summary.order_margin),
        "crossWalletBalance": _m(summary.wallet), "crossUnPnl": _m(summary.unrealized_pnl),
        "availableBalance": _m(summary.available), "maxWithdrawAmount": _m(withdraw), "updateTime": now,
    }
    totals = {
        "totalInitialMargin": _m(initial), "totalMaintMargin": _m(maint), "totalWalletBalance": _m(summary.wallet),
        "totalUnrealizedProfit": _m(summary.unrealized_pnl), "totalMarginBalance": _m(summary.equity),
        "totalPositionInitialMargin": _m(summary.position_margin),
        "totalOpenOrderInitialMargin": _m(summary.order_margin), "totalCrossWalletBalance": _m(summary.wallet),
        "totalCrossUnPnl": _m(summary.unrealized_pnl), "availableBalance": _m(summary.available),
        "maxWithdrawAmount": _m(withdraw),
    }
    order_margin = _order_margins(desk, account)
    views = {p.symbol: p for p in summary.positions}
    if version == 3:
        positions = [{"symbol": r["symbol"], "positionSide": "BOTH", "positionAmt": r["positionAmt"],
                      "unrealizedProfit": r["unRealizedProfit"], "isolatedMargin": r["isolatedMargin"],
                      "notional": r["notional"], "isolatedWallet": r["isolatedWallet"],
                      "initialMargin": r["initialMargin"], "maintMargin": r["maintMargin"],
                      "updateTime": r["updateTime"]}
                     for r in position_rows(desk, account, summary, 3, desk.sims)]
        return {**totals, "assets": [asset], "positions": positions}
    positions = []
    for symbol in desk.sims:
        p = views.get(symbol)
        lev = account.leverage_of(symbol)
        om = order_margin.get(symbol, _ZERO)
        positions.append({
            "symbol": symbol, "initialMargin": _m((p.margin if p else _ZERO) + om),
            "maintMargin": _m(p.notional * MAINTENANCE_RATE if p else _ZERO),
            "unrealizedProfit": _m(p.unrealized_pnl if p else _ZERO),
            "positionInitialMargin": _m(p.margin if p else _ZERO), "openOrderInitialMargin": _m(om),
            "leverage": str(lev), "isolated": account.margin_mode_of(symbol) is MarginMode.ISOLATED,
            "entryPrice": fmt(p.entry_price) if p else "0.0", "breakEvenPrice": fmt(p.entry_price) if p else "0.0",
            "maxNotional": "1000000000", "bidNotional": "0", "askNotional": "0", "positionSide": "BOTH",
            "positionAmt": fmt(p.size) if p else "0", "updateTime": p.updated if p else 0})
    return {"feeTier": 0, "feeBurn": False, "canTrade": True, "canDeposit": True, "canWithdraw": True,
            "updateTime": 0, "multiAssetsMargin": False, "tradeGroupId": -1, **totals,
            "assets": [{**asset, "marginAvailable": True}], "positions": positions}
