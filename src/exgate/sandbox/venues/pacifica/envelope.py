"""Pacifica's response envelope and number printing, shared by its public and private handlers.

Every body is ``{"success": bool, "data": ..., "error": str|null, "code": int|null}``
(https://docs.pacifica.fi/api-documentation/api/error-codes). Errors echo the HTTP status in
``code``, except business-logic refusals: HTTP 422 with the engine's business code (ccxt maps
both, e.g. ``5`` INSUFFICIENT_BALANCE → ``InsufficientFunds``, ``36`` DUPLICATE_CLIENT_ORDER_ID →
``InvalidOrder``), some with the ``error_id`` live answers carry.
"""

from __future__ import annotations

from decimal import Decimal

from starlette.responses import Response

from exgate.sandbox.data import fmt
from exgate.sandbox.venue import json_response


def num(value: Decimal) -> str:
    """A Decimal as Pacifica prints it: plain notation, no trailing zeros (``"0.0103"``)."""
    return fmt(value.normalize()) if value else "0"


def ok(data: object, **extra: object) -> Response:
    """Pacifica's success envelope."""
    return json_response({"success": True, "data": data, "error": None, "code": None, **extra})


def error(message: str, status: int = 400, **extra: object) -> Response:
    """Pacifica's error envelope; ``code`` echoes the HTTP status."""
    return json_response({"success": False, "data": None, "error": message, "code": status, **extra}, status=status)


def business_error(code: int, message: str, error_id: str | None = None) -> Response:
    """A business-logic refusal: HTTP 422, ``code`` the business code (``error_id`` if given)."""
    extra = {"error_id": error_id} if error_id else {}
    return json_response({"success": False, "data": None, "error": message, "code": code, **extra}, status=422)
