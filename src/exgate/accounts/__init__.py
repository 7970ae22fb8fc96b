"""Accounts and trading: tenants' users' exchange connections, their account reads through the
shared cache, and orders placed once and confirmed without a retry loop.

Public face: :class:`AccountService` (connections, cached reads), :class:`OrderDesk` (orders,
cancels, leverage), :class:`Idempotency` (``Idempotency-Key`` records), the models in
:mod:`exgate.accounts.models`. Loaded on first use, so the venues layer can import the models
without the service above it.
"""

from importlib import import_module

_FACE = {"AccountService": "service", "Caller": "service", "Idempotency": "idempotency", "Recorded": "idempotency",
         "OrderDesk": "orders"}

__all__ = sorted(_FACE)


def __getattr__(name: str):
    if name in _FACE:
        return getattr(import_module(f"exgate.accounts.{_FACE[name]}"), name)
    raise AttributeError(name)
