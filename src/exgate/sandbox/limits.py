"""Rate limits the sandbox enforces, as the exchanges publish them.

Per venue, one IP budget of weight per fixed window (aligned on the epoch, like Binance's
per-minute weight): each request's weight comes from the exchange's documentation (written
here from the exchange's side, independently of the gateway's metering); usage headers go on
every answer; past the budget the answer is 429 with ``Retry-After`` (seconds to the window's
end); after ``ban_after`` rejected requests in one window the IP is banned: 418 with
``Retry-After`` for ``ban_ms``, every request meanwhile included.

A slow exchange is injected with :meth:`RateLimiter.delay`: the next requests to a venue are
answered only after a delay (an asyncio wait, so the sandbox keeps serving the others);
clearing the fault lets the requests it holds go on at once.

Real venues differ in details the sandbox leaves out: Bybit answers an IP over its limit with
403 and lifts it after 10 minutes, and Binance's bans escalate from 2 minutes to 3 days; the
sandbox answers 429/418 on every venue, with a fixed ban length.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _int(params: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(params.get(name, default))
    except ValueError:
        return default


def binance_weight(path: str, params: Mapping[str, str], body: dict) -> int:
    """USD-M request weight (developers.binance.com, USDⓈ-M Futures market data endpoints)."""
    if path.endswith("/depth"):
        limit = _int(params, "limit", 500)
        return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20
    if path.endswith(("/klines", "/markPriceKlines", "/indexPriceKlines", "/premiumIndexKlines")):
        limit = _int(params, "limit", 500)
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10
    if path.endswith("/ticker/24hr"):
        return 1 if params.get("symbol") else 40
    if path.endswith("/ticker/price"):
        return 1 if params.get("symbol") else 2
    if path.endswith("/premiumIndex"):
        return 1 if params.get("symbol") else 10
    if path.endswith("/ticker/bookTicker"):
        return 2 if params.get("symbol") else 5
    if path.endswith("/fundingInfo"):
        # documented as weight 0 (it shares fundingRate's 500 per 5 min); counted 1 like every
        # request the gateway's budget admits (it charges at least 1)
        return 1
    if path.endswith("/aggTrades"):
        return 20
    # private (USER_DATA / TRADE) endpoints, developers.binance.com usds-margined-futures trade/account
    if path.endswith(("/v2/account", "/v3/account", "/positionRisk", "/userTrades", "/allOrders", "/symbolConfig")):
        return 5
    if path.endswith("/openOrders"):
        return 1 if params.get("symbol") else 40
    if path.endswith("/positionSide/dual"):
        return 30
    if path.endswith("/commissionRate"):
        return 20
    if path.endswith("/capital/config/getall"):
        return 10
    if path.endswith("/trades"):
        return 5
    return 1


def hyperliquid_weight(path: str, params: Mapping[str, str], body: dict) -> int:
    """``/info`` weight by type, ``/exchange`` ``1 + floor(batch length / 40)`` (Hyperliquid
    docs, rate limits and user limits)."""
    if path.endswith("/exchange"):
        action = body.get("action") if isinstance(body.get("action"), dict) else {}
        batch = action.get("orders") or action.get("cancels") or []
        return 1 + (len(batch) // 40 if isinstance(batch, list) else 0)
    kind = body.get("type")
    if kind in {"l2Book", "allMids", "clearinghouseState", "orderStatus", "spotClearinghouseState", "exchangeStatus"}:
        return 2
    return 60 if kind == "userRole" else 20


def pacifica_weight(path: str, params: Mapping[str, str], body: dict) -> int:
    """Pacifica's limits are not in the notes the sandbox is built from; ccxt's model: klines
    and histories cost 12, everything else 1."""
    return 12 if path.endswith("/kline") or path.endswith("/trades/history") else 1


def one(path: str, params: Mapping[str, str], body: dict) -> int:
    """Every request counts 1 (Bybit: 600 requests per 5 s per IP)."""
    return 1


def binance_headers(used: int, capacity: int, window_end_ms: int) -> dict[str, str]:
    return {"X-MBX-USED-WEIGHT-1M": str(used)}


def bybit_headers(used: int, capacity: int, window_end_ms: int) -> dict[str, str]:
    return {"X-Bapi-Limit": str(capacity), "X-Bapi-Limit-Status": str(max(0, capacity - used)),
            "X-Bapi-Limit-Reset-Timestamp": str(window_end_ms)}


def no_headers(used: int, capacity: int, window_end_ms: int) -> dict[str, str]:
    return {}


_MESSAGES = {429: "Too many requests; current limit is {capacity} per {window} ms. Please retry after the window.",
             418: "Way too many requests; IP banned until the Retry-After has passed."}


def binance_reject(status: int, capacity: int, window_ms: int) -> tuple[int, bytes]:
    """Binance's answer past the IP limit: 429 (418 once banned) with ``{"code": -1003, "msg"}``."""
    return status, orjson.dumps({"code": -1003, "msg": _MESSAGES[status].format(capacity=capacity, window=window_ms)})


def bybit_reject(status: int, capacity: int, window_ms: int) -> tuple[int, bytes]:
    """Bybit's answers (https://bybit-exchange.github.io/docs/v5/rate-limit): over the budget,
    HTTP 200 with ``retCode`` 10006 "Too many visits!" (the X-Bapi-Limit headers go with it);
    once banned (418), HTTP 403 "access too frequent" (the IP limit's answer). ccxt raises
    RateLimitExceeded for both (``exact`` 10006, ``httpExceptions`` 403). The hook has no
    sandbox clock, so the envelope's ``time`` is the wall clock's."""
    if status == 418:
        return 403, b"access too frequent"
    return 200, orjson.dumps({"retCode": 10006, "retMsg": "Too many visits!", "result": {}, "retExtInfo": {},
                              "time": time.time_ns() // 1_000_000})


def hyperliquid_reject(status: int, capacity: int, window_ms: int) -> tuple[int, bytes]:
    """Hyperliquid's answer past its 1,200 weight/min IP budget: HTTP 429 (its rate-limit doc
    describes no ban: the sandbox's ban period answers 429 too), the JSON ``null`` body its
    ``/info`` gives when it has nothing to say. ccxt: ``RateLimitExceeded`` (``httpExceptions``)."""
    return 429, b"null"


def pacifica_reject(status: int, capacity: int, window_ms: int) -> tuple[int, bytes]:
    """Pacifica's answer when an IP's credits are exhausted
    (https://docs.pacifica.fi/api-documentation/api/rate-limits: "requests return HTTP 429", no
    ban): 429 in its error envelope. ccxt: ``RateLimitExceeded``."""
    return 429, orjson.dumps({"success": False, "data": None, "error": "Rate limit exceeded", "code": 429})


@dataclass(frozen=True)
class VenueRules:
    """One venue's IP budget: ``capacity`` weight per ``window_ms``, weights, headers, bans."""

    capacity: int
    window_ms: int
    weigh: Callable[[str, Mapping[str, str], dict], int]
    headers: Callable[[int, int, int], dict[str, str]] = no_headers
    ban_after: int = 20
    ban_ms: int = 120_000
    reject: Callable[[int, int, int], tuple[int, bytes]] = binance_reject
    """``(limiter status 429|418, capacity, window_ms) -> (HTTP status, JSON body)`` of the
    venue's own rate-limit answer."""


DEFAULT_RULES: dict[str, VenueRules] = {
    "binanceusdm": VenueRules(2_400, 60_000, binance_weight, binance_headers),
    "bybit": VenueRules(600, 5_000, one, bybit_headers, reject=bybit_reject),
    "hyperliquid": VenueRules(1_200, 60_000, hyperliquid_weight, reject=hyperliquid_reject),
    "pacifica": VenueRules(100, 60_000, pacifica_weight, reject=pacifica_reject),
}


def rules_for(limits: Mapping[str, tuple[int, int]] | None, *, ban_after: int | None = None,
              ban_ms: int | None = None) -> dict[str, VenueRules]:
    """The default rules with ``limits`` (venue → capacity, window) and ban settings applied."""
    rules = dict(DEFAULT_RULES)
    for venue, (capacity, window) in (limits or {}).items():
        if venue in rules:
            rules[venue] = replace(rules[venue], capacity=capacity, window_ms=window)
    if ban_after is not None or ban_ms is not None:
        rules = {v: replace(r, ban_after=ban_after if ban_after is not None else r.ban_after,
                            ban_ms=ban_ms if ban_ms is not None else r.ban_ms) for v, r in rules.items()}
    return rules


class _State:
    __slots__ = ("window", "used", "rejected", "banned_until", "ban_status", "admitted_weight", "history")

    def __init__(self) -> None:
        self.history: deque[tuple[int, int]] = deque(maxlen=32)  # (window index, weight used), past windows
        self.window = -1
        self.used = 0
        self.rejected = 0
        self.banned_until = 0
        self.ban_status = 418
        self.admitted_weight = 0


class RateLimiter:
    """Per-venue IP budget state (one client IP: the sandbox's users all come from loopback)."""

    def __init__(self, rules: Mapping[str, VenueRules], clock: Callable[[], int]):
        self.rules = dict(rules)
        self.clock = clock
        self._state = {venue: _State() for venue in rules}
        self._delays: dict[str, tuple[int, int | None]] = {}
        self._delayed: dict[str, int] = {}
        self._clearing: dict[str, asyncio.Event] = {}

    def admit(self, venue: str, weight: int) -> tuple[int, dict[str, str]]:
        """Charge one request: ``(0, headers)`` when admitted, else ``(429 or 418, headers)``."""
        rules, state, now = self.rules[venue], self._state[venue], self.clock()
        window = now // rules.window_ms
        end = (window + 1) * rules.window_ms
        if window != state.window:
            if state.window >= 0:
                state.history.append((state.window, state.used))
            state.window, state.used, state.rejected = window, 0, 0
        if state.banned_until > now:
            return state.ban_status, {"Retry-After": str(max(1, -(-(state.banned_until - now) // 1000)))}
        if state.used + weight > rules.capacity:
            state.rejected += 1
            if state.rejected > rules.ban_after:
                state.banned_until, state.ban_status = now + rules.ban_ms, 418
                return 418, {"Retry-After": str(max(1, rules.ban_ms // 1000))}
            return 429, {"Retry-After": str(max(1, -(-(end - now) // 1000))),
                         **rules.headers(state.used, rules.capacity, end)}
        state.used += weight
        state.admitted_weight += weight
        return 0, rules.headers(state.used, rules.capacity, end)

    def inject(self, venue: str, status: int, retry_after_s: int) -> None:
        """Answer every request to ``venue`` with ``status`` (429 or 418) for ``retry_after_s``."""
        state = self._state[venue]
        state.banned_until, state.ban_status = self.clock() + retry_after_s * 1000, status

    def delay(self, venue: str, delay_ms: int, count: int | None = None) -> None:
        """Answer the next ``count`` requests to ``venue`` (``None``: every one until changed)
        only after ``delay_ms``; ``delay_ms=0`` or ``count=0`` clears the fault and lets the
        requests it holds go on at once."""
        if delay_ms <= 0 or count == 0:
            self._delays.pop(venue, None)
            self._clear(venue)
        else:
            self._delays[venue] = (delay_ms, count)

    def _clear(self, venue: str) -> None:
        event = self._clearing.pop(venue, None)
        if event is not None:
            event.set()

    async def hold(self, venue: str) -> None:
        """Hold the request to ``venue`` arriving now for the delay of the fault, if one is set
        (counting it against the fault), or until the fault is cleared."""
        delay_ms = self._take_delay(venue)
        if delay_ms:
            cleared = self._clearing.setdefault(venue, asyncio.Event())
            try:
                async with asyncio.timeout(delay_ms / 1000):
                    await cleared.wait()
            except TimeoutError:
                pass

    def _take_delay(self, venue: str) -> int:
        fault = self._delays.get(venue)
        if fault is None:
            return 0
        delay_ms, count = fault
        self._delayed[venue] = self._delayed.get(venue, 0) + 1
        if count is not None:
            if count <= 1:
                del self._delays[venue]
            else:
                self._delays[venue] = (delay_ms, count - 1)
        return delay_ms

    def snapshot(self, venue: str) -> dict[str, object]:
        """``{"capacity", "window_ms", "used" (this window), "admitted_weight" (since start),
        "windows": [[window start ms, weight used], ...] (the last 32 past windows with traffic),
        "delay": {"delay_ms", "count" (left; null: until cleared)} or null, "delayed": requests
        held back by a delay since start}``."""
        rules, state = self.rules[venue], self._state[venue]
        current = state.window == self.clock() // rules.window_ms
        past = [*state.history, *([] if current or state.window < 0 else [(state.window, state.used)])]
        return {"capacity": rules.capacity, "window_ms": rules.window_ms, "used": state.used if current else 0,
                "admitted_weight": state.admitted_weight,
                "windows": [[w * rules.window_ms, used] for w, used in past],
                "delay": ({"delay_ms": fault[0], "count": fault[1]} if (fault := self._delays.get(venue)) else None),
                "delayed": self._delayed.get(venue, 0)}

    def reset(self) -> None:
        """Forget usage, bans and delays."""
        self._state = {venue: _State() for venue in self.rules}
        self._delays.clear()
        self._delayed.clear()
        for venue in list(self._clearing):
            self._clear(venue)


OPERATION = "exgate.sandbox.operation"
"""Scope state key: the request's operation as :func:`operation` names it (for the stats)."""


def operation(method: str, path: str, body: object) -> str:
    """What a request does, for ``/__sandbox/stats``' ``by_operation``: ``METHOD /path``, and for
    the venues that multiplex one path (Hyperliquid's ``POST /info`` and ``POST /exchange``) the
    body's ``type`` or ``action.type`` after it: ``POST /info l2Book``, ``POST /exchange order``."""
    if isinstance(body, dict):
        action = body.get("action")
        kind = action.get("type") if isinstance(action, dict) else body.get("type")
        if isinstance(kind, str) and kind:
            return f"{method} {path} {kind[:40]}"
    return f"{method} {path}"


class LimitMiddleware:
    """ASGI middleware enforcing :class:`RateLimiter` on every request under a venue prefix."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter):
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        venue, _, rest = scope["path"].lstrip("/").partition("/") if scope["type"] == "http" else ("", "", "")
        rules = self.limiter.rules.get(venue)
        if rules is None:
            await self.app(scope, receive, send)
            return
        await self.limiter.hold(venue)  # a slow exchange (the fault of delay()); never blocks the loop
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = {}
        params = dict(parse_qsl(scope.get("query_string", b"").decode()))
        scope.setdefault("state", {})[OPERATION] = operation(scope["method"], "/" + rest, body)
        status, headers = self.limiter.admit(venue, rules.weigh("/" + rest, params, body if isinstance(body, dict) else {}))
        if status:
            status, payload = rules.reject(status, rules.capacity, rules.window_ms)
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"),
                                    *((k.lower().encode(), v.encode()) for k, v in headers.items())]})
            await send({"type": "http.response.body", "body": payload})
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and headers:
                # a header the venue's handler set itself (a per-account limit: Bybit's order
                # endpoints' X-Bapi-Limit*) is more specific than the IP budget's: it stays
                own = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in headers.items() if k.lower().encode() not in own]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, replay, with_headers)
