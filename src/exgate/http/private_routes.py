"""Private routes: connections, account reads, orders, leverage. Thin handlers over
:class:`~exgate.accounts.AccountService` and :class:`~exgate.accounts.OrderDesk`.

Every route needs ``Authorization: Bearer <tenant key>`` and ``X-User-Id``; ``?exchange=``
picks the user's connection on that venue (default: their primary).
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from exgate.accounts.models import (Account, CanceledOrders, Connection, ConnectionPatch, Fill, LeverageChange,
                                    LeverageResult, NewConnection, NewOrder, Order, OrderResult, Position)
from exgate.accounts.service import AccountService, Caller
from exgate.accounts.orders import OrderDesk
from exgate.http.manners import reject_repeated_scalars
from exgate.http.openapi import problem_responses
from exgate.http.routes import cached_response

router = APIRouter(default_response_class=Response, dependencies=[Depends(reject_repeated_scalars)])

_JSON = "application/json"
_AUTH_ERRORS = (401, 403, 503)


class Connections(BaseModel):
    connections: list[Connection]


class Positions(BaseModel):
    exchange: str
    positions: list[Position]


class OpenOrders(BaseModel):
    exchange: str
    orders: list[Order]


class Fills(BaseModel):
    exchange: str
    fills: list[Fill]


class Canceled(BaseModel):
    exchange: str
    canceled: str
    symbol: str
    upstream_requests: int


def _accounts(request: Request) -> AccountService:
    return request.app.state.accounts


def _orders(request: Request) -> OrderDesk:
    return request.app.state.orders


async def caller(request: Request,
                 authorization: Annotated[str | None, Header(description="Bearer <tenant key>")] = None,
                 x_user_id: Annotated[str | None, Header(alias="X-User-Id", description="the app's user id")] = None
                 ) -> Caller:
    """The tenant and user of the request (401 without a valid tenant key, 403 without a user)."""
    return await _accounts(request).caller(authorization, x_user_id)


Exchange = Annotated[str | None, Query(min_length=1, max_length=64,
                                       description="the connection's exchange; default: the primary")]
Symbol = Annotated[str | None, Query(min_length=1, max_length=100, description="any symbol form the market routes take")]


def _json(payload: bytes, status: int = 200) -> Response:
    return Response(payload, status_code=status, media_type=_JSON)


# -- connections ---------------------------------------------------------------------------------------
@router.post("/v1/connections", tags=["connections"], status_code=201,
             responses={201: {"model": Connection}, **problem_responses(*_AUTH_ERRORS, 404, 409, 422, 502)})
async def create_connection(request: Request, body: NewConnection, who: Caller = Depends(caller)) -> Response:
    """Connect an exchange account; the credentials are checked against the venue (one balance
    read) before anything is stored, encrypted. 422 when the venue refuses them."""
    connection = await _accounts(request).create_connection(who, body)
    return _json(connection.model_dump_json().encode(), 201)


@router.get("/v1/connections", tags=["connections"],
            responses={200: {"model": Connections}, **problem_responses(*_AUTH_ERRORS)})
async def list_connections(request: Request, who: Caller = Depends(caller)) -> Response:
    """The user's connections (never their credentials)."""
    found = await _accounts(request).connections(who)
    return _json(orjson.dumps({"connections": [c.model_dump(mode="json") for c in found]}))


@router.patch("/v1/connections/{connection_id}", tags=["connections"],
              responses={200: {"model": Connection}, **problem_responses(*_AUTH_ERRORS, 404, 409, 422)})
async def update_connection(request: Request, body: ConnectionPatch,
                            connection_id: str = Path(min_length=1, max_length=64),
                            who: Caller = Depends(caller)) -> Response:
    """Mark a connection primary or (in)active; 409 when another one is primary."""
    updated = await _accounts(request).update_connection(who, connection_id, is_primary=body.is_primary,
                                                         is_active=body.is_active)
    return _json(updated.model_dump_json().encode())


@router.delete("/v1/connections/{connection_id}", tags=["connections"], status_code=204,
               responses={204: {"description": "deleted"}, **problem_responses(*_AUTH_ERRORS, 404, 422)})
async def delete_connection(request: Request, connection_id: str = Path(min_length=1, max_length=64),
                            who: Caller = Depends(caller)) -> Response:
    """Delete a connection and its stored credentials."""
    await _accounts(request).delete_connection(who, connection_id)
    return Response(status_code=204)


# -- account reads ----------------------------------------------------------------------------------------
_READ_ERRORS = (*_AUTH_ERRORS, 404, 422, 502)


@router.get("/v1/account/summary", tags=["account"], responses={200: {"model": Account}, **problem_responses(*_READ_ERRORS)})
async def summary(request: Request, exchange: Exchange = None, who: Caller = Depends(caller)) -> Response:
    """Equity, available, margin used, unrealized PnL and balances (cached 5 s, one upstream
    answer shared with positions)."""
    service = _accounts(request)
    body, result = await service.summary(await service.connection(who, exchange))
    return cached_response(result, body)


@router.get("/v1/account/positions", tags=["account"],
            responses={200: {"model": Positions}, **problem_responses(*_READ_ERRORS)})
async def positions(request: Request, exchange: Exchange = None, symbol: Symbol = None,
                    who: Caller = Depends(caller)) -> Response:
    """Open positions (cached 5 s)."""
    service = _accounts(request)
    body, result = await service.positions(await service.connection(who, exchange), symbol)
    return cached_response(result, body)


@router.get("/v1/account/orders/open", tags=["account"],
            responses={200: {"model": OpenOrders}, **problem_responses(*_READ_ERRORS)})
async def open_orders(request: Request, exchange: Exchange = None, symbol: Symbol = None,
                      who: Caller = Depends(caller)) -> Response:
    """Open orders, oldest first (cached 3 s)."""
    service = _accounts(request)
    body, result = await service.open_orders(await service.connection(who, exchange), symbol)
    return cached_response(result, body)


@router.get("/v1/account/trades", tags=["account"], responses={200: {"model": Fills}, **problem_responses(*_READ_ERRORS)})
async def account_trades(request: Request, exchange: Exchange = None, symbol: Symbol = None,
                         since: Annotated[int | None, Query(ge=0, description="earliest fill time, ms")] = None,
                         limit: Annotated[int, Query(ge=1, le=1000, description="most fills")] = 100,
                         who: Caller = Depends(caller)) -> Response:
    """Fills, newest first (cached 10 s; venues show fills with a delay)."""
    service = _accounts(request)
    body, result = await service.trades(await service.connection(who, exchange), symbol, since, limit)
    return cached_response(result, body)


# -- orders ---------------------------------------------------------------------------------------------------
@router.post("/v1/orders", tags=["orders"], status_code=201,
             responses={201: {"model": OrderResult, "description": "placed (with its fill and the position after)"},
                        202: {"model": OrderResult, "description": "outcome unknown: not re-sent"},
                        **problem_responses(*_AUTH_ERRORS, 404, 409, 422, 502)})
async def place_order(request: Request, body: NewOrder, exchange: Exchange = None,
                      idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1,
                                                                    max_length=200)] = None,
                      who: Caller = Depends(caller)) -> Response:
    """Place an order; a retry with the same ``Idempotency-Key`` returns the first answer."""
    recorded = await _orders(request).place(who, exchange, body, idempotency_key)
    return _json(recorded.body, recorded.status)


@router.delete("/v1/orders/{order_id}", tags=["orders"],
               responses={200: {"model": Canceled}, **problem_responses(*_AUTH_ERRORS, 404, 422, 502)})
async def cancel_order(request: Request, order_id: str = Path(min_length=1, max_length=100),
                       exchange: Exchange = None, symbol: Symbol = None,
                       who: Caller = Depends(caller)) -> Response:
    """Cancel one open order (its symbol found among the open orders when not given)."""
    return _json(await _orders(request).cancel(who, exchange, order_id, symbol))


@router.delete("/v1/orders", tags=["orders"],
               responses={200: {"model": CanceledOrders}, **problem_responses(*_AUTH_ERRORS, 404, 422, 502)})
async def cancel_all(request: Request, exchange: Exchange = None, symbol: Symbol = None,
                     who: Caller = Depends(caller)) -> Response:
    """Cancel every open order (in ``symbol``); emulated one by one where the venue lacks it."""
    result = await _orders(request).cancel_all(who, exchange, symbol)
    return _json(result.model_dump_json().encode())


@router.post("/v1/account/leverage", tags=["account"],
             responses={200: {"model": LeverageResult}, **problem_responses(*_AUTH_ERRORS, 404, 422, 502)})
async def set_leverage(request: Request, body: LeverageChange, exchange: Exchange = None,
                       who: Caller = Depends(caller)) -> Response:
    """Set a market's leverage (and margin mode)."""
    result = await _orders(request).set_leverage(who, exchange, body.symbol, body.leverage, body.margin_mode)
    return _json(result.model_dump_json().encode())
