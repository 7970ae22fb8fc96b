"""What a run measures, and from where: upstream calls from the sandbox's own counters
(``/__sandbox/stats``), the cache's hit rate from each gateway's ``/metrics``, latencies from
the client. Rates are converted back to model time (divided by the speed ``K``)."""

from __future__ import annotations

import math
from collections import Counter

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from exgate.loadtest.model import RouteClass
from exgate.loadtest.stack import published_limit_per_min
from exgate.loadtest.traffic import Recorder

_HL_PUBLIC_INFO = frozenset({"meta", "metaAndAssetCtxs", "spotMeta", "spotMetaAndAssetCtxs", "l2Book", "allMids",
                             "candleSnapshot", "recentTrades", "fundingHistory", "predictedFundings", "perpDexs"})
_BINANCE_PRIVATE = ("/fapi/v2/", "/fapi/v3/", "/fapi/v1/openOrders", "/fapi/v1/order", "/fapi/v1/allOrders",
                    "/fapi/v1/allOpenOrders", "/fapi/v1/userTrades", "/fapi/v1/leverage", "/fapi/v1/marginType",
                    "/fapi/v1/symbolConfig", "/fapi/v1/leverageBracket", "/fapi/v1/positionSide",
                    "/fapi/v1/multiAssetsMargin", "/fapi/v1/commissionRate", "/sapi/")
_PACIFICA_PRIVATE = ("/api/v1/account", "/api/v1/positions", "/api/v1/orders", "/api/v1/trades/history")


def classify(venue: str, operation: str) -> str:
    """``write`` (an order, cancel or leverage change: irreducible), ``account`` (a private read)
    or ``market`` (a public read) for one sandbox operation (``METHOD /path[ type]``)."""
    method, _, rest = operation.partition(" ")
    path, _, kind = rest.partition(" ")
    if venue == "hyperliquid":
        if path == "/exchange":
            return "write"
        return "market" if kind in _HL_PUBLIC_INFO else "account"
    if method in ("POST", "PUT", "DELETE"):
        return "write"
    if venue == "binanceusdm":
        return "account" if path.startswith(_BINANCE_PRIVATE) else "market"
    if venue == "bybit":
        return "market" if path.startswith(("/v5/market/", "/v5/system/")) else "account"
    if venue == "pacifica":
        return "account" if path.startswith(_PACIFICA_PRIVATE) else "market"
    return "market"


def upstream_report(stats: dict, model_s: float) -> dict:
    """The ``upstream`` section from one window's ``/__sandbox/stats`` (counters reset at its
    start): per venue calls/s (model time) split into reads and writes, by operation and by
    class, weight per minute against the published limit, and 429/418 answers."""
    total, reads, writes = 0, 0, 0
    throttled: Counter[str] = Counter()
    by_class: Counter[str] = Counter()
    venues = {}
    for venue, counters in sorted(stats.get("venues", {}).items()):
        ops = counters.get("by_operation", {})
        kinds = Counter({k: 0 for k in ("market", "account", "write")})
        for op, count in ops.items():
            kinds[classify(venue, op)] += count
        v_total = sum(ops.values())
        status = counters.get("by_status", {})
        for code in ("429", "418"):
            throttled[code] += status.get(code, 0)
        weight = counters.get("limit", {}).get("admitted_weight", 0)
        limit = published_limit_per_min(venue)
        venues[venue] = {
            "per_s": v_total / model_s, "reads_per_s": (kinds["market"] + kinds["account"]) / model_s,
            "writes_per_s": kinds["write"] / model_s,
            "by_class": {k: n / model_s for k, n in kinds.items()},
            "by_operation": {op: n / model_s for op, n in sorted(ops.items(), key=lambda kv: -kv[1])},
            "weight_per_min": weight / model_s * 60, "limit_per_min": limit,
            "throttled": {code: status.get(code, 0) for code in ("429", "418")},
        }
        total += v_total
        reads += kinds["market"] + kinds["account"]
        writes += kinds["write"]
        by_class.update(kinds)
    return {"per_s": total / model_s, "reads_per_s": reads / model_s, "writes_per_s": writes / model_s,
            "by_class": {k: n / model_s for k, n in by_class.items()}, "throttled": dict(throttled),
            "by_venue": venues}


async def scrape_lookups(session: aiohttp.ClientSession, targets: list[str]) -> Counter[str]:
    """``exgate_cache_lookups_total`` summed over tiers and targets, by result (a target that
    does not answer adds nothing)."""
    out: Counter[str] = Counter()
    for url in targets:
        try:
            async with session.get(f"{url}/metrics") as r:
                text = await r.text()
        except (aiohttp.ClientError, TimeoutError):
            continue
        for family in text_string_to_metric_families(text):
            if family.name == "exgate_cache_lookups":
                for sample in family.samples:
                    if sample.name == "exgate_cache_lookups_total":
                        out[sample.labels.get("result", "?")] += int(sample.value)
    return out


def cache_report(before: Counter[str], after: Counter[str]) -> dict:
    """Hit rate over the window: reads answered without an upstream call of their own (hit,
    coalesced, stale) over all reads."""
    lookups = {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(before) | set(after))}
    total = sum(lookups.values())
    served = total - lookups.get("miss", 0)
    return {"hit_rate": served / total if total else None, "lookups": lookups}


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _latency(values: list[float], model_s: float) -> dict:
    ordered = sorted(values)
    return {"count": len(ordered), "per_s": len(ordered) / model_s, "p50_ms": _percentile(ordered, 0.50),
            "p95_ms": _percentile(ordered, 0.95), "p99_ms": _percentile(ordered, 0.99)}


def client_report(recorder: Recorder, model_s: float, late: int, dropped: int) -> dict:
    """The ``client`` section: requests and latency per route class and overall, errors by
    status (``timeout``, ``connection: ...`` for no answer), events fired late or dropped."""
    every = [ms for values in recorder.latencies.values() for ms in values]
    return {"requests": recorder.requests, "per_s": recorder.requests / model_s, "late": late, "dropped": dropped,
            "by_class": {route.value: _latency(recorder.latencies.get(route, []), model_s) for route in RouteClass},
            "all": _latency(every, model_s), "errors": dict(recorder.errors)}
