"""Prometheus metrics of one gateway process (prometheus-client), served at ``GET /metrics``.

Each app gets its own :class:`~prometheus_client.CollectorRegistry`, so several gateways in one
process (tests) never share counters.

* ``exgate_cache_lookups_total{tier,result}``: reads by tier (l1, l2) and result (hit, miss,
  stale, coalesced);
* ``exgate_upstream_requests_total{exchange,operation,status}``: adapter calls that sent at
  least one request to the exchange (never an operation refused before any request, such as
  one the venue lacks, or a request exgate's own budget held back); ``operation`` is the ccxt
  method called (``fetch_order_book``, ``load_markets``, ...), status ``ok`` or the problem
  title's slug (``upstream_unavailable``, ...);
* ``exgate_upstream_duration_seconds{exchange,operation}``: latency of those calls (budget
  wait included); ``exgate_request_duration_seconds{route,method,status}``: HTTP latency by
  the matched route template (``/docs`` and ``/openapi.json`` included; ``unmatched`` only
  when no route matched, a 404);
* ``exgate_redis_circuit_state{state}``: 1 for the Redis circuit's current state, else 0;
* ``exgate_budget_wait_seconds{exchange,priority}``: time spent waiting for upstream budget;
* ``exgate_upstream_throttled_total{exchange,status}``: 429/418 answers from exchanges.

Read at scrape time from the running service (no Redis call; none before start-up is over):

* ``exgate_venue_status{exchange,status}``: 1 for each venue's current
  :class:`~exgate.models.VenueStatus` (``loading``, ``ready``, ``degraded``, ``unavailable``), else 0;
* ``exgate_budget_used_ratio{exchange}``: highest share of a limit's capacity used in its
  current window, as this instance saw it (:meth:`~exgate.budget.BudgetGate.used_ratio`);
* ``exgate_budget_waiting{exchange}``: requests queued for budget now.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from exgate.cache.circuit import CircuitState
from exgate.cache.entry import CacheStatus, Tier
from exgate.models import VenueStatus
from exgate.venues.calls import UpstreamCall

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The gateway's collectors on a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.cache_lookups = Counter("exgate_cache_lookups", "Cache reads by tier and result.",
                                     ["tier", "result"], registry=self.registry)
        self.upstream_requests = Counter("exgate_upstream_requests",
                                         "Adapter calls that reached the exchange, by ccxt method and outcome.",
                                         ["exchange", "operation", "status"], registry=self.registry)
        self.upstream_seconds = Histogram("exgate_upstream_duration_seconds",
                                          "Latency of adapter calls that reached the exchange.",
                                          ["exchange", "operation"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.request_seconds = Histogram("exgate_request_duration_seconds", "HTTP request latency.",
                                         ["route", "method", "status"], buckets=_LATENCY_BUCKETS,
                                         registry=self.registry)
        self.budget_wait = Histogram("exgate_budget_wait_seconds", "Time upstream requests waited for budget.",
                                     ["exchange", "priority"], buckets=(0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0,
                                                                         5.0, 10.0), registry=self.registry)
        self.upstream_throttled = Counter("exgate_upstream_throttled", "429/418 answers received from exchanges.",
                                          ["exchange", "status"], registry=self.registry)
        self.redis_circuit = Gauge("exgate_redis_circuit_state", "1 for the Redis circuit breaker's state.",
                                   ["state"], registry=self.registry)
        self.live = LiveCollector()
        self.registry.register(self.live)
        self.connectors = ConnectorCollector()
        self.registry.register(self.connectors)
        from exgate.streams.metrics import StreamCollector  # the streams package imports nothing from here

        self.streams = StreamCollector()
        self.registry.register(self.streams)
        self._lookups = {(t, s): self.cache_lookups.labels(t.value, s.value) for t in Tier for s in CacheStatus}
        self.circuit(CircuitState.CLOSED)

    def cache_lookup(self, tier: Tier, status: CacheStatus) -> None:
        """Count one cache read."""
        self._lookups[tier, status].inc()

    def circuit(self, state: CircuitState) -> None:
        """Record the Redis circuit's new state."""
        for each in CircuitState:
            self.redis_circuit.labels(each.value).set(1 if each is state else 0)

    def upstream(self, exchange: str, operation: str, status: str, seconds: float) -> None:
        """Count one upstream fetch and its latency."""
        self.upstream_requests.labels(exchange, operation, status).inc()
        self.upstream_seconds.labels(exchange, operation).observe(seconds)

    def upstream_call(self, call: UpstreamCall) -> None:
        """Count one adapter call that reached the exchange (a :class:`~exgate.venues.calls.CallMeter` observer)."""
        self.upstream(call.exchange, call.operation, call.status, call.seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every collector."""
        return generate_latest(self.registry)


class LiveCollector:
    """Venue status and budget gauges computed at each scrape from :attr:`market_data` (a
    :class:`~exgate.service.MarketData`, set once the app has started; ``None``: no samples)."""

    def __init__(self) -> None:
        self.market_data: Any = None

    def describe(self) -> list[Metric]:
        """The families, without samples (registration checks their names)."""
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        """The families with one sample per venue (status: one per venue and status)."""
        status, used, waiting = self._families()
        service = self.market_data
        if service is not None:
            for info in service.exchanges():
                for each in VenueStatus:
                    status.add_metric([info.id, each.value], 1 if info.status is each else 0)
            for venue, adapter in service.adapters.items():
                gate = getattr(adapter, "budget", None)
                if gate is not None:
                    used.add_metric([venue], gate.used_ratio())
                    waiting.add_metric([venue], gate.waiting)
        yield from (status, used, waiting)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (GaugeMetricFamily("exgate_venue_status", "1 for each venue's current status, else 0.",
                                  labels=["exchange", "status"]),
                GaugeMetricFamily("exgate_budget_used_ratio",
                                  "Highest share of a budget limit used in its current window (this instance's view).",
                                  labels=["exchange"]),
                GaugeMetricFamily("exgate_budget_waiting", "Upstream requests queued for budget now.",
                                  labels=["exchange"]))


class ConnectorCollector:
    """The connector state's figures (:meth:`exgate.connectors.ConnectorState.stats`) at each
    scrape, from :attr:`state` (``None``: no samples):

    * ``exgate_connector_state_entries{exchange,state}``: entries valid, expired, invalid;
    * ``exgate_connector_state_hits_total{exchange}``, ``..._misses_total{exchange}``,
      ``..._syncs_total{exchange}``: this process's reads found, not found, syncs made;
    * ``exgate_connector_state_hit_ratio``: hits / (hits + misses);
    * ``exgate_connector_state_last_sync_age_seconds{exchange}``;
    * ``exgate_connector_state_coalesced_total``, ``..._discarded_total``.
    """

    def __init__(self) -> None:
        self.state: Any = None

    def describe(self) -> list[Metric]:
        return list(self._families().values())

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        state = self.state
        if state is not None:
            stats = state.stats()
            for venue, figures in stats["by_venue"].items():
                for kind in ("valid", "expired", "invalid"):
                    families["entries"].add_metric([venue, kind], figures["entries"][kind])
                families["hits"].add_metric([venue], figures["hits"])
                families["misses"].add_metric([venue], figures["misses"])
                families["syncs"].add_metric([venue], figures["syncs"])
                if figures["last_sync_age_ms"] is not None:
                    families["age"].add_metric([venue], figures["last_sync_age_ms"] / 1000)
            if stats["hit_rate"] is not None:
                families["ratio"].add_metric([], stats["hit_rate"])
            families["coalesced"].add_metric([], stats["coalesced"])
            families["discarded"].add_metric([], stats["discarded"])
        yield from families.values()

    @staticmethod
    def _families() -> dict[str, Metric]:
        from prometheus_client.core import CounterMetricFamily

        name = "exgate_connector_state_"
        return {
            "entries": GaugeMetricFamily(name + "entries", "Connector state entries by state (shared store).",
                                         labels=["exchange", "state"]),
            "hits": CounterMetricFamily(name + "hits", "Connector state reads answered from a tier.",
                                        labels=["exchange"]),
            "misses": CounterMetricFamily(name + "misses", "Connector state reads that found nothing usable.",
                                          labels=["exchange"]),
            "syncs": CounterMetricFamily(name + "syncs", "Syncs with the venue (offsets measured, markets loaded).",
                                         labels=["exchange"]),
            "ratio": GaugeMetricFamily(name + "hit_ratio", "Connector state hits / (hits + misses)."),
            "age": GaugeMetricFamily(name + "last_sync_age_seconds", "Age of the venue's latest sync.",
                                     labels=["exchange"]),
            "coalesced": CounterMetricFamily(name + "coalesced", "Syncs waited for instead of made."),
            "discarded": CounterMetricFamily(name + "discarded", "Corrupt connector state entries dropped."),
        }


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _route_path(scope: Scope) -> str:
    """The path template of the plain Starlette route that served ``scope`` (FastAPI's
    ``/docs``, ``/openapi.json``, ``/docs/oauth2-redirect`` set ``endpoint`` but not ``route``),
    or ``"unmatched"`` when no route matched."""
    endpoint = scope.get("endpoint")
    app = scope.get("app")
    if endpoint is not None and app is not None:
        for route in getattr(getattr(app, "router", None), "routes", ()):
            if getattr(route, "endpoint", None) is endpoint:
                return getattr(route, "path", None) or "unmatched"
    return "unmatched"


ORIGINAL_METHOD = "exgate.original_method"
"""Scope key holding the client's method when a middleware runs the request as another one
(``HEAD`` answered as ``GET`` by :class:`exgate.http.manners.HeadAsGet`)."""


class RequestMetrics:
    """ASGI middleware timing every HTTP request by route template, method and status."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], metrics: Metrics):
        self.app = app
        self.metrics = metrics
        self._series: dict[tuple[str, str, int], Any] = {}  # labels resolved once per series

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            path = getattr(scope.get("route"), "path", None) or _route_path(scope)
            method = scope.get(ORIGINAL_METHOD) or scope["method"]  # HEAD runs as GET: label what was asked
            series = self._series.get((path, method, status))
            if series is None:
                series = self._series.setdefault((path, method, status),
                                                 self.metrics.request_seconds.labels(path, method, str(status)))
            series.observe(time.perf_counter() - started)
