"""Bybit v5's request signing, as the sandbox verifies it
(https://bybit-exchange.github.io/docs/v5/guide#authentication).

Headers: ``X-BAPI-API-KEY``, ``X-BAPI-TIMESTAMP`` (ms), ``X-BAPI-RECV-WINDOW`` (ms, default
5000), ``X-BAPI-SIGN`` = hex ``HMAC_SHA256(secret, timestamp + apiKey + recvWindow + payload)``
where the payload is the raw query string of a GET and the raw JSON body of a POST. A request
is accepted when ``serverTime - recvWindow <= timestamp < serverTime + 1000``.

Answers (HTTP 200, the v5 envelope; ccxt's ``exact`` table): ``10003 "API key is invalid."``
(AuthenticationError) for a missing or unknown key, ``10004 "error sign! origin_string[...]"``
(AuthenticationError) for a bad signature, ``10002 "invalid request, please check your server
timestamp or recv_window param. ..."`` (InvalidNonce) for a timestamp outside the window.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response

from exgate.sandbox.accounts import AccountDesk, SandboxAccount
from exgate.sandbox.venue import json_response
from exgate.sandbox.venues.bybit.errors import BybitError

DEFAULT_RECV_WINDOW = 5_000


async def authenticate(request: Request, desk: AccountDesk, now_ms: int) -> tuple[SandboxAccount, dict]:
    """Verify a signed v5 request: ``(account, params)`` (the query's parameters for GET, the
    JSON body's for POST); ``now_ms`` is the venue's server time (skewed, ``server_now()``)
    the window is checked at.

    Raises:
        BybitError: 10003, 10004, 10002 or 10001 (a body that is not a JSON object)."""
    key = request.headers.get("x-bapi-api-key", "")
    account = desk.by_id(key)
    if account is None:
        raise BybitError("API key is invalid.", 10003)
    timestamp = request.headers.get("x-bapi-timestamp", "")
    window = request.headers.get("x-bapi-recv-window", str(DEFAULT_RECV_WINDOW))
    signature = request.headers.get("x-bapi-sign", "")
    if request.method == "POST":
        payload = (await request.body()).decode("utf-8", "replace")
    else:
        payload = request.url.query
    origin = timestamp + key + window + payload
    expected = hmac.new(account.credentials["secret"].encode(), origin.encode(), hashlib.sha256).hexdigest()
    if not signature or not hmac.compare_digest(expected, signature.lower()):
        raise BybitError(f"error sign! origin_string[{origin}]", 10004)
    if not timestamp.isdigit() or not window.isdigit():
        raise BybitError("invalid request, please check your server timestamp or recv_window param", 10002)
    if not (now_ms - int(window) <= int(timestamp) < now_ms + 1000):
        raise BybitError(f"invalid request, please check your server timestamp or recv_window param. "
                         f"req_timestamp[{timestamp}],server_timestamp[{now_ms}],recv_window[{window}]", 10002)
    if request.method != "POST":
        return account, dict(parse_qsl(payload, keep_blank_values=True))
    try:
        params = orjson.loads(payload) if payload else {}
    except orjson.JSONDecodeError:
        raise BybitError("Request parameter error.") from None
    if not isinstance(params, dict):
        raise BybitError("Request parameter error.")
    return account, {k: v for k, v in params.items() if v is not None}


class Limited(Exception):
    """An account past :data:`~.private.ORDER_RATE`; ``headers`` its ``X-Bapi-Limit*`` headers."""

    def __init__(self, headers: dict[str, str]):
        super().__init__("Too many visits!")
        self.headers = headers


def signed(handler):
    """Decorator: run ``handler(self, request, account, params)`` on a verified request; an
    account over :data:`~.private.ORDER_RATE` gets retCode 10006."""

    async def run(self, request: Request) -> Response:
        account, params = await authenticate(request, self.desk, self.server_now())
        try:
            return await handler(self, request, account, params)
        except Limited as limited:
            return json_response({"retCode": 10006, "retMsg": "Too many visits!", "result": {}, "retExtInfo": {},
                                  "time": self.server_now()}, headers=limited.headers)

    run.__doc__ = handler.__doc__
    return run
