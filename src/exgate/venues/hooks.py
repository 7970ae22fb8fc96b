"""How exgate wires a ccxt instance into its own machinery: the shared budget (ccxt's
``throttle`` and per-endpoint cost routed into a :class:`~exgate.budget.BudgetGate`) and ccxt's
error tables kept on the venue's own URLs when exgate rewrote their origin."""

from __future__ import annotations

import ssl
from typing import Any

from exgate.budget import BudgetGate


def url_pairs(rewritten: Any, original: Any) -> list[tuple[str, str]]:
    """``(rewritten, original)`` for every API URL, longest first (walks ccxt's ``urls['api']``)."""
    pairs: list[tuple[str, str]] = []
    if isinstance(rewritten, str) and isinstance(original, str) and rewritten != original:
        pairs.append((rewritten, original))
    elif isinstance(rewritten, dict) and isinstance(original, dict):
        for key, value in rewritten.items():
            pairs += url_pairs(value, original.get(key))
    elif isinstance(rewritten, list) and isinstance(original, list):
        for new, old in zip(rewritten, original):
            pairs += url_pairs(new, old)
    return sorted(set(pairs), key=lambda pair: -len(pair[0]))


def keep_error_tables(exchange: Any, pairs: list[tuple[str, str]]) -> None:
    """Let ccxt pick its error table by the venue's own URL when exgate rewrote the origin:
    Binance chooses the futures table (``-2019`` → InsufficientFunds, ``-2022`` → InvalidOrder)
    only for URLs starting with ``https://fapi.binance.com``, and a sandbox or proxy URL would
    turn every such answer into a bare ExchangeError."""
    pick = getattr(exchange, "get_exceptions_by_url", None)
    if pick is None or not pairs:
        return

    def by_original_url(url: Any, kind: str) -> Any:
        if isinstance(url, str):
            for new, old in pairs:
                if url.startswith(new):
                    url = old + url[len(new):]
                    break
        return pick(url, kind)

    exchange.get_exceptions_by_url = by_original_url


def route_budget(exchange: Any, gate: BudgetGate) -> None:
    """Make ``exchange`` wait in ``gate`` for each request's weight (ccxt's cost, corrected by
    the venue's metering; the caller's :class:`~exgate.budget.Priority` from the context) and
    show every response to the gate."""
    ccxt_cost = exchange.calculate_rate_limiter_cost
    on_response = exchange.on_rest_response
    weigh = gate.metering.weigh

    def cost(api: Any, method: str, path: str, params: Any, config: Any = None) -> int:
        return weigh(str(path), params if isinstance(params, dict) else {},
                     ccxt_cost(api, method, path, params, config or {}))

    async def throttle(weight: Any = None) -> None:
        await gate.acquire(max(1, int(weight or 1)))

    def observe(code: Any, reason: Any, url: Any, method: Any, headers: Any, body: Any, *rest: Any) -> Any:
        try:
            gate.observe(int(code), headers or {})
        except (TypeError, ValueError):
            pass
        return on_response(code, reason, url, method, headers, body, *rest)

    exchange.enableRateLimit = True
    exchange.calculate_rate_limiter_cost = cost
    exchange.throttle = throttle
    exchange.on_rest_response = observe


_TLS_CONTEXTS: dict[tuple[str | None, bool], ssl.SSLContext] = {}
"""One verifying TLS context per (CA file, OS certificates too) for the whole process."""


def share_tls(exchange: Any) -> None:
    """Give ``exchange`` the process's TLS context (one per CA file and OS-certificates option).

    ccxt makes one per instance at its first request (``ssl.create_default_context`` loading the
    CA bundle: measured ~20 ms of CPU, and its certificates in memory, per instance), which a
    warm start paid for every connection. An :class:`ssl.SSLContext` is made to be shared by
    many connections; certificate checks stay on. Left alone when ``exchange`` does not verify
    or already has one.
    """
    if not exchange.verify or exchange.ssl_context is not None:
        return
    with_os = bool(exchange.safe_bool(exchange.options, "include_OS_certificates", False))
    context = _TLS_CONTEXTS.get((exchange.cafile, with_os))
    if context is None:  # as ccxt's open() makes it, once per process
        context = ssl.create_default_context(cafile=exchange.cafile)
        default = ssl.get_default_verify_paths()
        if with_os and default.cafile and default.cafile != exchange.cafile:
            context.load_verify_locations(cafile=default.cafile)
        _TLS_CONTEXTS[exchange.cafile, with_os] = context
    exchange.ssl_context = context
