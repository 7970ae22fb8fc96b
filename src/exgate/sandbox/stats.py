"""Request counting for the sandbox: per venue, per path and per status (``/__sandbox/stats``)."""

from __future__ import annotations

from collections import Counter, defaultdict

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exgate.sandbox.limits import OPERATION


class SandboxStats:
    """Counters of requests the sandbox answered.

    ``snapshot()`` shape: ``{"venues": {venue: {"requests": N, "by_path": {path: N},
    "by_operation": {"METHOD /path[ type]": N}, "by_status": {"200": N}, "by_action": {action: N}}}}``;
    the path excludes the ``/{venue}`` prefix; ``by_operation`` tells apart the methods of one
    path and Hyperliquid's request types (see :func:`exgate.sandbox.limits.operation`), answered
    or refused; ``by_action`` counts the signed actions venues accepted, by kind.
    """

    def __init__(self) -> None:
        self._requests: Counter[str] = Counter()
        self._by_path: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._by_operation: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._by_status: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._by_action: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def record_action(self, venue: str, action: str) -> None:
        """Count one signed action a venue accepted by its kind (Hyperliquid's ``/exchange``
        action types, Pacifica's signed operation types), e.g. to check ccxt's side calls."""
        self._by_action[venue][action] += 1

    def record(self, venue: str, path: str, status: int, operation: str | None = None) -> None:
        """Count one answered request (``operation``: see ``by_operation``)."""
        self._requests[venue] += 1
        self._by_path[venue][path] += 1
        if operation is not None:
            self._by_operation[venue][operation] += 1
        self._by_status[venue][str(status)] += 1

    def reset(self) -> None:
        """Zero every counter."""
        self._requests.clear()
        self._by_path.clear()
        self._by_operation.clear()
        self._by_status.clear()
        self._by_action.clear()

    def snapshot(self, venues: list[str]) -> dict:
        """The counters as a JSON-ready dict; every known venue appears, counted or not."""
        return {
            "venues": {
                venue: {
                    "requests": self._requests[venue],
                    "by_path": dict(self._by_path[venue]),
                    "by_operation": dict(self._by_operation[venue]),
                    "by_status": dict(self._by_status[venue]),
                    "by_action": dict(self._by_action[venue]),
                }
                for venue in sorted(set(venues) | set(self._requests))
            }
        }


class StatsMiddleware:
    """ASGI middleware recording the status of every request under a venue prefix."""

    def __init__(self, app: ASGIApp, stats: SandboxStats, venues: set[str]):
        self.app = app
        self.stats = stats
        self.venues = venues

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        venue, _, rest = path.lstrip("/").partition("/")
        if venue not in self.venues:
            await self.app(scope, receive, send)
            return
        status = 500

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.stats.record(venue, "/" + rest, status, scope.get("state", {}).get(OPERATION))
