"""``/__sandbox/accounts`` and ``/__sandbox/faults``: create funded accounts, show their state,
inject faults on order requests."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exgate.sandbox.accounts.desk import OrderFault
from exgate.sandbox.venue import SandboxVenue, json_response


def _s(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize() if value == value.to_integral() else value, "f")


def account_state(venue: SandboxVenue, account) -> dict:
    """An account's state as ``GET /__sandbox/accounts/{venue}/{account_id}`` shows it
    (decimal strings, ms; every fill, lagged or not; never its credentials)."""
    desk = venue.desk
    summary = desk.summary(account)
    return {
        "venue": venue.name, "account_id": account.account_id, "currency": summary.currency,
        "deposit": _s(account.deposit), "wallet": _s(summary.wallet), "fees": _s(account.fees),
        "unrealized_pnl": _s(summary.unrealized_pnl), "equity": _s(summary.equity),
        "position_margin": _s(summary.position_margin), "order_margin": _s(summary.order_margin),
        "available": _s(summary.available),
        "positions": [{"symbol": p.symbol, "size": _s(p.size), "entry_price": _s(p.entry_price),
                       "mark_price": _s(p.mark_price), "unrealized_pnl": _s(p.unrealized_pnl),
                       "realized_pnl": _s(p.realized_pnl), "leverage": p.leverage,
                       "margin_mode": p.margin_mode.value, "liquidation_price": _s(p.liquidation_price)}
                      for p in summary.positions],
        "leverage": dict(account.leverage),
        "open_orders": [{"id": o.id, "client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side.value,
                         "type": o.type.value, "price": _s(o.price), "qty": _s(o.qty), "filled": _s(o.filled),
                         "status": o.status.value, "time_in_force": o.tif.value, "reduce_only": o.reduce_only}
                        for o in desk.open_orders(account)],
        "fills": [{"trade_id": f.fill.trade_id, "order_id": f.fill.order_id, "symbol": f.symbol,
                   "side": f.fill.side.value, "price": _s(f.fill.price), "qty": _s(f.fill.qty), "fee": _s(f.fill.fee),
                   "maker": f.fill.maker, "time": f.fill.time, "realized_pnl": _s(f.realized_pnl)}
                  for f in account.fills],
    }


def account_routes(venues: dict[str, SandboxVenue]) -> list[BaseRoute]:
    """The routes, over the sandbox's ``venues``."""

    def bad(detail: str) -> Response:
        return json_response({"error": detail}, status=422)

    async def create(request: Request) -> Response:
        """``{"venue", "balance"}`` → ``{"venue", "account_id", "currency", "balance", "credentials"}``
        (the ccxt credential fields of the new account)."""
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return bad("expected a JSON object with venue and balance")
        if not isinstance(body, dict) or body.get("venue") not in venues:
            return bad("venue: expected one of " + ", ".join(venues))
        try:
            balance = Decimal(str(body.get("balance", "10000")))
        except InvalidOperation:
            return bad("balance: expected a positive decimal")
        if not balance.is_finite() or balance <= 0:
            return bad("balance: expected a positive decimal")
        venue = venues[body["venue"]]
        account = venue.desk.create(balance)
        return json_response({"venue": venue.name, "account_id": account.account_id, "currency": account.currency,
                              "balance": _s(balance), "credentials": dict(account.credentials)}, status=201)

    async def show(request: Request) -> Response:
        venue = venues.get(request.path_params["venue"])
        account = venue.desk.by_id(request.path_params["account_id"]) if venue is not None else None
        if account is None:
            return json_response({"error": "no such account"}, status=404)
        return json_response(account_state(venue, account))

    async def faults(request: Request) -> Response:
        """``?venue=V&fault=timeout|5xx|429[&count=1][&delay_ms=15000]``: the venue's next
        ``count`` order requests suffer the fault (see :class:`OrderFault`)."""
        q = request.query_params
        kinds = {f.value: f for f in OrderFault}
        if q.get("venue") not in venues or q.get("fault") not in kinds \
                or not q.get("count", "1").isdigit() or not q.get("delay_ms", "0").isdigit():
            return bad("expected venue in " + ",".join(venues) + ", fault in " + ",".join(kinds)
                       + ", optionally count and delay_ms (whole numbers)")
        venues[q["venue"]].desk.arm(kinds[q["fault"]], int(q.get("count", "1")), int(q.get("delay_ms", "15000")))
        return json_response({"venue": q["venue"], "fault": q["fault"], "count": int(q.get("count", "1"))})

    return [Route("/__sandbox/accounts", create, methods=["POST"]),
            Route("/__sandbox/accounts/{venue}/{account_id}", show, methods=["GET"]),
            Route("/__sandbox/faults", faults, methods=["POST"])]
