"""The sandbox's matching engine: client orders against the market model's books (see
:mod:`.engine`)."""

from exgate.sandbox.matching.engine import MatchingEngine
from exgate.sandbox.matching.types import (Fill, Order, OrderNotFound, OrderRejected, OrderStatus, OrderType,
                                           RejectReason, Side, TimeInForce)

__all__ = ["MatchingEngine", "Fill", "Order", "OrderNotFound", "OrderRejected", "OrderStatus", "OrderType",
           "RejectReason", "Side", "TimeInForce"]
