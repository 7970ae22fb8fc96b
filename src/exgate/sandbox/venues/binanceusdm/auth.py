"""Binance's SIGNED endpoint security, as the sandbox verifies it.

https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
("SIGNED (TRADE, USER_DATA) Endpoint Security"): the API key travels in the ``X-MBX-APIKEY``
header; ``signature`` is ``HMAC_SHA256(secret, totalParams)`` in hex, where ``totalParams`` is
the query string concatenated with the request body (``application/x-www-form-urlencoded``),
each without the ``signature`` parameter; ``timestamp`` (ms) is mandatory and the request is
refused unless ``timestamp < serverTime + 1000`` and ``serverTime - timestamp <= recvWindow``
(``recvWindow`` ms, default 5000, at most 60000).

Answers, as Binance gives them (ccxt's ``exceptions``):
``-2015 Invalid API-key, IP, or permissions for action.`` HTTP 401 (AuthenticationError) for a
missing or unknown key; ``-1022 Signature for this request is not valid.`` HTTP 400
(AuthenticationError); ``-1021 Timestamp for this request is outside of the recvWindow.`` HTTP
400 (InvalidNonce); ``-1102`` for a missing ``timestamp``/``signature``.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from exgate.sandbox.accounts import AccountDesk, SandboxAccount
from exgate.sandbox.venues.binanceusdm.errors import error

DEFAULT_RECV_WINDOW = 5_000
MAX_RECV_WINDOW = 60_000


def _strip_signature(raw: str) -> tuple[str, str | None]:
    """``raw`` (a query string or form body) without its ``signature`` parameter, and the
    signature (``None`` when absent). The other parameters keep their order and encoding."""
    kept, signature = [], None
    for part in raw.split("&") if raw else []:
        if part.startswith("signature="):
            signature = part[len("signature="):]
        else:
            kept.append(part)
    return "&".join(kept), signature


async def authenticate(request: Request, desk: AccountDesk,
                       now_ms: int) -> tuple[SandboxAccount, dict[str, str]] | Response:
    """Verify a SIGNED request: ``(account, params)`` (query and body parameters merged, body
    last, ``signature`` left out) or Binance's error answer (see the module's description);
    ``now_ms`` is the venue's server time (skewed, ``server_now()``) the window is checked at."""
    account = desk.by_id(request.headers.get("x-mbx-apikey", ""))
    if account is None:
        return error(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
    query, q_sig = _strip_signature(request.url.query)
    body, b_sig = _strip_signature((await request.body()).decode("utf-8", "replace"))
    signature = q_sig or b_sig
    params = dict(parse_qsl(query, keep_blank_values=True))
    params.update(parse_qsl(body, keep_blank_values=True))
    if not params.get("timestamp"):
        return error(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
    if not signature:
        return error(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    expected = hmac.new(account.credentials["secret"].encode(), (query + body).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        return error(-1022, "Signature for this request is not valid.")
    try:
        timestamp = int(params["timestamp"])
        window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW))
    except ValueError:
        return error(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
    if not 0 < window <= MAX_RECV_WINDOW:
        return error(-1131, "recvWindow must be less than 60000")
    if not (timestamp < now_ms + 1000 and now_ms - timestamp <= window):
        return error(-1021, "Timestamp for this request is outside of the recvWindow.")
    return account, params


def signed(handler):
    """Decorator of a venue handler: run ``handler(self, request, account, params)`` on a verified request."""

    async def run(self, request: Request) -> Response:
        verified = await authenticate(request, self.desk, self.server_now())
        if isinstance(verified, Response):
            return verified
        account, params = verified
        return await handler(self, request, account, params)

    run.__doc__ = handler.__doc__
    return run
