"""Pacifica's account reads, as the sandbox serves them from its accounts desk.

Unsigned ``GET``s by ``account=<base58 address>`` (https://docs.pacifica.fi/api-documentation/api/rest-api,
account and orders pages; shapes as ccxt's recorded testnet answers show them):

* ``/account``: ``balance`` (cash: deposit + realized PnL - fees), ``account_equity``,
  ``available_to_spend`` / ``available_to_withdraw``, ``total_margin_used``, ``cross_mmr``,
  counts, fee rates, ``updated_at``.
* ``/account/settings``: the markets whose leverage or margin mode the account changed
  (Pacifica lists only those).
* ``/positions``: ``symbol, side (bid long / ask short), amount, entry_price, margin (isolated
  only, else "0"), funding, isolated, liquidation_price, created_at, updated_at``.
* ``/orders``: open orders; ``/orders/history``: the account's recent orders, newest first,
  just-closed ones included at once (cursor paging); ``/orders/history_by_id?order_id=``: one
  order's events (``make``, ``fulfill_*``, ``cancel``), each with the order's state then.
* ``/trades/history``: fills, newest first, only once ``history_lag_ms`` old (the eventual
  consistency of trade history), with ``symbol``/``start_time``/``end_time``/``limit``/``cursor``.
* ``/account/builder_codes/approvals``: the builder codes the account approved.

A missing or malformed ``account`` is HTTP 400; an address the sandbox does not know, 404
``Account not found`` (ccxt: ``BadRequest``).
"""

from __future__ import annotations

from decimal import Decimal

from starlette.requests import Request
from starlette.responses import Response

from exgate.sandbox.accounts.ledger import MAINTENANCE_RATE, MarginMode
from exgate.sandbox.matching.types import Order, OrderStatus, OrderType, Side
from exgate.sandbox.venues.pacifica.envelope import error, num, ok

_PAGE = 100
_STATUS = {OrderStatus.NEW: "open", OrderStatus.PARTIALLY_FILLED: "partially_filled", OrderStatus.FILLED: "filled",
           OrderStatus.CANCELED: "cancelled", OrderStatus.REJECTED: "rejected", OrderStatus.EXPIRED: "cancelled"}


def side_word(side: Side) -> str:
    return "bid" if side is Side.BUY else "ask"


def trade_side(before: Decimal, side: Side) -> str:
    """A fill's ``side`` in trade history: opening or closing a long or a short."""
    if side is Side.BUY:
        return "close_short" if before < 0 else "open_long"
    return "close_long" if before > 0 else "open_short"


def _int_query(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name, "")
    return int(raw) if raw.isdigit() else None


class AccountReads:
    """The account ``GET`` handlers of the Pacifica venue (mixed into it)."""

    def _account_of(self, request: Request):
        """``(account, None)`` or ``(None, error response)`` for the ``account`` query parameter."""
        address = request.query_params.get("account")
        if not address:
            return None, error("Missing required parameter: account")
        account = self.desk.by_id(address)
        if account is None:
            return None, error("Account not found", 404)
        return account, None

    def _order_fields(self, order: Order) -> dict:
        cancelled = order.remaining if order.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED) else Decimal(0)
        return {"order_id": order.id, "client_order_id": order.client_order_id, "symbol": order.symbol,
                "side": side_word(order.side), "price": num(order.price) if order.price is not None else "0",
                "initial_amount": num(order.qty), "filled_amount": num(order.filled),
                "cancelled_amount": num(cancelled), "stop_price": None,
                "order_type": "market" if order.type is OrderType.MARKET else "limit",
                "stop_parent_order_id": None, "reduce_only": order.reduce_only}

    @staticmethod
    def _average(order: Order) -> Decimal:
        return sum((f.price * f.qty for f in order.fills), Decimal(0)) / order.filled if order.filled else Decimal(0)

    async def account_info(self, request: Request) -> Response:
        """``GET /api/v1/account?account=``."""
        account, err = self._account_of(request)
        if err:
            return err
        s = self.desk.summary(account)
        maintenance = sum((p.notional * MAINTENANCE_RATE for p in s.positions), Decimal(0))
        available = max(Decimal(0), s.available)
        return ok({"balance": num(s.wallet.quantize(Decimal("0.000001"))), "fee_level": 0,
                   "maker_fee": num(self.desk.engine.maker_fee), "taker_fee": num(self.desk.engine.taker_fee),
                   "account_equity": num(s.equity.quantize(Decimal("0.000001"))),
                   "available_to_spend": num(available.quantize(Decimal("0.000001"))),
                   "available_to_withdraw": num(available.quantize(Decimal("0.000001"))),
                   "pending_balance": "0", "pending_interest": "0",
                   "total_margin_used": num((s.position_margin + s.order_margin).quantize(Decimal("0.000001"))),
                   "cross_mmr": num(maintenance.quantize(Decimal("0.000001"))),
                   "positions_count": len(s.positions), "orders_count": len(self.desk.open_orders(account)),
                   "stop_orders_count": 0, "updated_at": self.now()})

    async def account_settings(self, request: Request) -> Response:
        """``GET /api/v1/account/settings?account=``."""
        account, err = self._account_of(request)
        if err:
            return err
        symbols = sorted(set(account.leverage) | set(account.margin_mode))
        return ok([{"symbol": sym, "isolated": account.margin_mode_of(sym) is MarginMode.ISOLATED,
                    "leverage": account.leverage_of(sym), "created_at": account.created,
                    "updated_at": account.created} for sym in symbols])

    async def positions(self, request: Request) -> Response:
        """``GET /api/v1/positions?account=``."""
        account, err = self._account_of(request)
        if err:
            return err
        rows = []
        for p in self.desk.summary(account).positions:
            isolated = p.margin_mode is MarginMode.ISOLATED
            rows.append({"symbol": p.symbol, "side": "bid" if p.size > 0 else "ask", "amount": num(abs(p.size)),
                         "entry_price": num(p.entry_price.quantize(Decimal("0.000001"))),
                         "margin": num(p.margin.quantize(Decimal("0.000001"))) if isolated else "0",
                         "funding": "0", "isolated": isolated,
                         "liquidation_price": num(p.liquidation_price.quantize(Decimal("0.000001")))
                         if p.liquidation_price is not None else None,
                         "created_at": p.updated, "updated_at": p.updated})
        return ok(rows, last_order_id=self.desk.engine._next_order - 1)

    async def open_orders(self, request: Request) -> Response:
        """``GET /api/v1/orders?account=``: open orders, oldest first."""
        account, err = self._account_of(request)
        if err:
            return err
        rows = [{**self._order_fields(o), "trigger_price_type": None, "created_at": o.created, "updated_at": o.updated}
                for o in self.desk.open_orders(account)]
        return ok(rows, last_order_id=self.desk.engine._next_order - 1)

    def _paged(self, rows: list[dict], request: Request, key: str) -> Response:
        """Newest-first ``rows`` after the ``cursor`` (an id in ``key``), ``limit`` of them."""
        cursor, limit = _int_query(request, "cursor"), min(_int_query(request, "limit") or _PAGE, _PAGE)
        if cursor is not None:
            rows = [r for r in rows if r[key] < cursor]
        page, more = rows[:limit], len(rows) > limit
        return ok(page, next_cursor=str(page[-1][key]) if more else None, has_more=more)

    async def order_history(self, request: Request) -> Response:
        """``GET /api/v1/orders/history?account=[&limit=&cursor=]``: recent orders, newest first."""
        account, err = self._account_of(request)
        if err:
            return err
        self.desk.sync()
        orders = [o for o in self.desk.engine.orders.values() if o.account == account.account_id]
        rows = []
        for o in sorted(orders, key=lambda o: o.id, reverse=True):
            fields = self._order_fields(o)
            rows.append({"order_id": o.id, "client_order_id": o.client_order_id, "symbol": o.symbol,
                         "side": fields["side"], "initial_price": fields["price"],
                         "average_filled_price": num(self._average(o)), "amount": num(o.qty),
                         "filled_amount": num(o.filled), "order_status": _STATUS[o.status],
                         "order_type": fields["order_type"], "stop_price": None, "stop_parent_order_id": None,
                         "reduce_only": o.reduce_only, "reason": None, "created_at": o.created,
                         "updated_at": o.updated})
        return self._paged(rows, request, "order_id")

    async def order_history_by_id(self, request: Request) -> Response:
        """``GET /api/v1/orders/history_by_id?order_id=``: the order's events, newest first."""
        order_id = _int_query(request, "order_id")
        if order_id is None:
            return error("Missing or invalid parameter: order_id")
        self.desk.sync()
        order = self.desk.engine.order(order_id)
        if order is None:
            return ok([])
        base = self._order_fields(order)
        events, filled = [], Decimal(0)
        events.append({**base, "filled_amount": "0", "cancelled_amount": "0", "event_type": "make",
                       "order_status": "open", "created_at": order.created})
        for f in order.fills:
            filled += f.qty
            events.append({**base, "price": num(f.price), "filled_amount": num(filled), "cancelled_amount": "0",
                           "event_type": "fulfill_market" if order.type is OrderType.MARKET else "fulfill_limit",
                           "order_status": "filled" if filled == order.qty else "partially_filled",
                           "created_at": f.time})
        if order.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
            events.append({**base, "event_type": "cancel", "order_status": "cancelled", "created_at": order.updated})
        rows = [{"history_id": order.id * 1000 + i, **event} for i, event in enumerate(events)]
        return ok(rows[::-1])

    async def trade_history(self, request: Request) -> Response:
        """``GET /api/v1/trades/history?account=[&symbol=&start_time=&end_time=&limit=&cursor=]``."""
        account, err = self._account_of(request)
        if err:
            return err
        symbol = request.query_params.get("symbol")
        start, end = _int_query(request, "start_time"), _int_query(request, "end_time")
        visible = {id(f) for f in self.desk.fills(account)}
        held: dict[str, Decimal] = {}
        rows = []
        for f in account.fills:
            before = held.get(f.symbol, Decimal(0))
            held[f.symbol] = before + f.fill.qty * f.fill.side.sign
            if id(f) not in visible or (symbol and f.symbol != symbol) \
                    or (start is not None and f.fill.time < start) or (end is not None and f.fill.time > end):
                continue
            rows.append({"history_id": f.fill.trade_id, "order_id": f.fill.order_id,
                         "client_order_id": f.client_order_id, "symbol": f.symbol, "amount": num(f.fill.qty),
                         "price": num(f.fill.price), "entry_price": num(f.fill.price), "fee": num(f.fill.fee),
                         "pnl": num(f.realized_pnl), "event_type": "fulfill_maker" if f.fill.maker else "fulfill_taker",
                         "side": trade_side(before, f.fill.side), "created_at": f.fill.time, "cause": "normal"})
        return self._paged(rows[::-1], request, "history_id")

    async def builder_approvals(self, request: Request) -> Response:
        """``GET /api/v1/account/builder_codes/approvals?account=``."""
        account, err = self._account_of(request)
        if err:
            return err
        return ok([{"builder_code": code, "max_fee_rate": rate, "updated_at": when}
                   for code, (rate, when) in self.builder_codes.get(account.account_id, {}).items()])
