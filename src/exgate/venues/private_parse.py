"""ccxt's unified private structures (balance, position, order, trade) parsed into exgate's
private models (:mod:`exgate.accounts.models`).

ccxt gives numbers as floats; :func:`~exgate.venues.parse.dec` turns each into the shortest
decimal that round-trips, which is the venue's own decimal for every value a venue sends with
at most 15 significant digits. Where ccxt leaves a figure out, the venue's raw ``info`` is read
(the keys per venue are in :data:`SUMMARY_FIELDS`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from exgate.accounts.models import (Account, Balance, Fill, MarginMode, Order, OrderStatus, OrderType, Position,
                                    PositionSide, TimeInForce)
from exgate.errors import MalformedUpstream
from exgate.venues.parse import _guard, dec, ms, side

_STATUS = {"open": OrderStatus.OPEN, "closed": OrderStatus.FILLED, "canceled": OrderStatus.CANCELED,
           "cancelled": OrderStatus.CANCELED, "rejected": OrderStatus.REJECTED, "expired": OrderStatus.EXPIRED}
_TIF = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK, "PO": TimeInForce.PO,
        "GTX": TimeInForce.PO, "ALO": TimeInForce.PO, "POSTONLY": TimeInForce.PO}

SUMMARY_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    # Binance USD-M GET /fapi/v3/account
    "binanceusdm": {"equity": ("totalMarginBalance",), "available": ("availableBalance",),
                    "margin_used": ("totalInitialMargin",), "unrealized_pnl": ("totalUnrealizedProfit",)},
    # Bybit GET /v5/account/wallet-balance: result.list[0]
    "bybit": {"equity": ("result", "list", 0, "totalEquity"), "available": ("result", "list", 0, "totalAvailableBalance"),
              "margin_used": ("result", "list", 0, "totalInitialMargin"),
              "unrealized_pnl": ("result", "list", 0, "totalPerpUPL")},
    # Hyperliquid POST /info clearinghouseState
    "hyperliquid": {"equity": ("marginSummary", "accountValue"), "available": ("withdrawable",),
                    "margin_used": ("marginSummary", "totalMarginUsed")},
    # Pacifica GET /api/v1/account: data
    "pacifica": {"equity": ("data", "account_equity"), "available": ("data", "available_to_spend"),
                 "margin_used": ("data", "total_margin_used")},
}
"""Where each venue's raw balance answer holds the summary figures (a path of keys/indexes)."""


def _dig(info: Any, path: tuple) -> Any:
    for step in path:
        if isinstance(step, int):
            info = info[step] if isinstance(info, list) and len(info) > step else None
        else:
            info = info.get(step) if isinstance(info, dict) else None
        if info is None:
            return None
    return info


def _info_dec(info: Any, *keys: str) -> Decimal | None:
    if not isinstance(info, dict):
        return None
    for key in keys:
        if info.get(key) not in (None, ""):
            return dec(info[key])
    return None


def parse_position(exchange: str, p: dict) -> Position | None:
    """A ccxt position as a :class:`Position`; ``None`` when it is flat (size 0)."""
    def build() -> Position | None:
        contracts = dec(p.get("contracts"))
        if contracts is None or contracts == 0:
            return None
        size = abs(contracts) * (dec(p.get("contractSize")) or Decimal(1))
        raw_side = p.get("side") or ("long" if contracts > 0 else "short")
        mode = p.get("marginMode")
        entry, mark, upnl = dec(p.get("entryPrice")), dec(p.get("markPrice")), dec(p.get("unrealizedPnl"))
        if mark is None and entry is not None and upnl is not None:  # Binance /fapi/v2/account sends no mark:
            mark = entry + upnl / (size if raw_side == "long" else -size)  # uPnL = (mark - entry) x signed size
        notional = abs(dec(p.get("notional")) or Decimal(0)) or (size * mark if mark is not None else None)
        return Position(
            exchange=exchange, symbol=str(p["symbol"]), id=str(p.get("id") or p["symbol"]),
            side=PositionSide(raw_side), size=size, entry_price=entry,
            mark_price=mark.normalize() if mark is not None else None, unrealized_pnl=upnl,
            leverage=dec(p.get("leverage")), liquidation_price=dec(p.get("liquidationPrice")) or None,
            margin_mode=MarginMode(mode) if mode in ("cross", "isolated") else None,
            margin=dec(p.get("initialMargin")) if p.get("initialMargin") is not None else dec(p.get("collateral")),
            notional=notional.normalize() if notional is not None else None, timestamp=ms(p.get("timestamp")))
    return _guard("position", build)


def parse_account(exchange: str, balance: dict, currency: str, positions: list[Position]) -> Account:
    """A ccxt balance structure (``fetch_balance``) as an :class:`Account` in ``currency``."""
    def build() -> Account:
        lines = []
        for code, entry in balance.items():
            if code in ("info", "free", "used", "total", "timestamp", "datetime", "debt") or not isinstance(entry, dict):
                continue
            total = dec(entry.get("total"))
            if total is None:
                continue
            lines.append(Balance(currency=code, total=total, free=dec(entry.get("free")), used=dec(entry.get("used"))))
        lines.sort(key=lambda b: b.currency)
        info = balance.get("info")
        fields = SUMMARY_FIELDS.get(exchange, {})
        picked = {name: dec(_dig(info, path)) for name, path in fields.items()}
        main = next((b for b in lines if b.currency == currency), None)
        upnl = picked.get("unrealized_pnl")
        if upnl is None and positions:
            upnl = sum((p.unrealized_pnl or Decimal(0) for p in positions), Decimal(0))
        equity = picked.get("equity")
        if equity is None and main is not None:
            equity = main.total + (upnl or Decimal(0))
        return Account(exchange=exchange, currency=currency, equity=equity,
                       available=picked.get("available") if picked.get("available") is not None
                       else (main.free if main else None),
                       margin_used=picked.get("margin_used") if picked.get("margin_used") is not None
                       else (main.used if main else None),
                       unrealized_pnl=upnl if upnl is not None else Decimal(0), balances=lines,
                       timestamp=ms(balance.get("timestamp")))
    return _guard("balance", build)


def parse_order(exchange: str, o: dict, contract_size: Decimal | None = None, defaults: dict | None = None) -> Order:
    """A ccxt order as an :class:`Order` (sizes times ``contract_size`` where the venue trades
    contracts). ``defaults`` fill what a sparse answer leaves out (Bybit's create answer is the
    order id and client order id only): the request's symbol, side, type, amount, price."""
    if isinstance(o, dict) and defaults:
        o = {**defaults, **{k: v for k, v in o.items() if v is not None}}

    def build() -> Order:
        k = contract_size or Decimal(1)
        amount = dec(o.get("amount"))
        filled = dec(o.get("filled")) or Decimal(0)
        status = _STATUS.get(str(o.get("status")), OrderStatus.OPEN if o.get("status") is None else OrderStatus.UNKNOWN)
        if status is OrderStatus.OPEN and filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        if status is OrderStatus.CANCELED and amount is not None and filled >= amount > 0:
            status = OrderStatus.FILLED
        otype = OrderType.MARKET if str(o.get("type")).lower() == "market" else OrderType.LIMIT
        tif = _TIF.get(str(o.get("timeInForce") or "").upper().replace("_", ""))
        if o.get("postOnly"):
            tif = TimeInForce.PO
        price = dec(o.get("price")) if otype is OrderType.LIMIT else None
        fee = o.get("fee") if isinstance(o.get("fee"), dict) else {}
        return Order(fee=dec(fee.get("cost")), fee_currency=fee.get("currency"),
                     exchange=exchange, id=str(o["id"]), client_order_id=o.get("clientOrderId") or None,
                     symbol=str(o["symbol"]), side=side(o.get("side")), type=otype, price=price or None,
                     size=(amount or Decimal(0)) * k, filled=filled * k, average_price=dec(o.get("average")) or None,
                     status=status, reduce_only=bool(o.get("reduceOnly")), time_in_force=tif,
                     created=ms(o.get("timestamp")), updated=ms(o.get("lastUpdateTimestamp")) or ms(o.get("timestamp")))
    if not isinstance(o, dict) or o.get("id") in (None, ""):
        raise MalformedUpstream(f"{exchange}: the order answer carries no order id")
    return _guard("order", build)


def parse_fill(exchange: str, t: dict, contract_size: Decimal | None = None) -> Fill:
    """A ccxt trade of ``fetch_my_trades`` as a :class:`Fill`."""
    def build() -> Fill:
        fee = t.get("fee") or {}
        info = t.get("info") or {}
        maker = t.get("takerOrMaker")
        return Fill(exchange=exchange, id=str(t.get("id")), order_id=str(t["order"]) if t.get("order") else None,
                    symbol=str(t["symbol"]), side=side(t.get("side")), price=dec(t.get("price")),
                    size=dec(t.get("amount")) * (contract_size or Decimal(1)), fee=dec(fee.get("cost")),
                    fee_currency=fee.get("currency"),
                    realized_pnl=_info_dec(info, "realizedPnl", "closedPnl", "realized_pnl", "pnl"),
                    maker=None if maker is None else maker == "maker", timestamp=ms(t.get("timestamp")) or 0)
    return _guard("trade", build)
