"""Accounts and trading: tenants' users' exchange connections, their account reads through the
shared cache, and orders placed once and confirmed without a retry loop.

Public face: :class:`AccountService` (connections, cached reads), :class:`OrderDesk` (orders,
cancels, leverage), :class:`Idempotency` (``Idempotency-Key`` records), the models in
:mod:`exgate.accounts.models`.
"""

from exgate.accounts.idempotency import Idempotency, Recorded
from exgate.accounts.orders import OrderDesk
from exgate.accounts.service import AccountService, Caller

__all__ = ["AccountService", "Caller", "Idempotency", "OrderDesk", "Recorded"]
