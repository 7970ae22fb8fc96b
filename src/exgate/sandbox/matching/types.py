"""Types of the sandbox's matching engine: sides, order types, time in force, statuses, orders,
fills and the typed rejection. Money is Decimal, time integer ms."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal


class Side(enum.Enum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell (the change of a net position per unit)."""
        return 1 if self is Side.BUY else -1


class OrderType(enum.Enum):
    LIMIT = "limit"
    MARKET = "market"


class TimeInForce(enum.Enum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    POST_ONLY = "POST_ONLY"


class OrderStatus(enum.Enum):
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"


class RejectReason(enum.Enum):
    POST_ONLY_WOULD_CROSS = "post_only_would_cross"
    FOK_NOT_FILLABLE = "fok_not_fillable"
    REDUCE_ONLY_WOULD_INCREASE = "reduce_only_would_increase"
    BAD_TICK = "bad_tick"
    BAD_LOT = "bad_lot"
    MIN_NOTIONAL = "min_notional"
    MARKET_INACTIVE = "market_inactive"
    DUPLICATE_CLIENT_ORDER_ID = "duplicate_client_order_id"
    TOO_MANY_OPEN_ORDERS = "too_many_open_orders"
    BAD_PRICE = "bad_price"
    NO_LIQUIDITY = "no_liquidity"
    INSUFFICIENT_MARGIN = "insufficient_margin"
    BAD_LEVERAGE = "bad_leverage"


class OrderRejected(Exception):
    """An order the engine refused; nothing changed. ``reason`` is a :class:`RejectReason`."""

    def __init__(self, reason: RejectReason, message: str = ""):
        super().__init__(f"{reason.value}: {message}" if message else reason.value)
        self.reason = reason


class OrderNotFound(Exception):
    """Cancel of an order that is not open (unknown, filled or canceled already)."""


@dataclass
class Fill:
    """One execution of a client order: ``price``/``qty``/``fee`` Decimal (fee in quote,
    ``price * qty * rate``), ``time`` ms, ``maker`` (the order rested and was hit)."""

    order_id: int
    account: str
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal
    time: int
    maker: bool
    trade_id: int


@dataclass
class Order:
    """A client order. ``price`` is ``None`` for a market order; ``filled`` the executed
    quantity; ``created``/``updated`` ms."""

    id: int
    account: str
    symbol: str
    side: Side
    type: OrderType
    qty: Decimal
    price: Decimal | None
    tif: TimeInForce
    reduce_only: bool
    client_order_id: str | None
    created: int
    status: OrderStatus = OrderStatus.NEW
    filled: Decimal = Decimal(0)
    updated: int = 0
    fills: list[Fill] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled

    @property
    def is_open(self) -> bool:
        return self.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
